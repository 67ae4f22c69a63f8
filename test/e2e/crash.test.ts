/**
 * The durability promise, on the real compiled binary: no acknowledged write is ever lost, even when
 * the process is killed with SIGKILL in the middle of concurrent traffic, and a restart on the
 * database the crash left behind needs no manual step.
 *
 * Each round drives 8 concurrent workers (user creates, title PATCHes of users, PATCHes adding users
 * to one Group), records every write that got a 2xx response, SIGKILLs the server at a seeded moment
 * 50..400 ms into the traffic, restarts it on the same file and checks every acknowledged write.
 * A write in flight at the kill was not acknowledged: it may or may not be there, but nothing that was
 * never sent may appear. Rounds run in order and share the database.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupBody, patchBody, userBody } from "../helpers";
import { buildBinaryInto, cleanEnv, startServe, stopAll, type Served } from "./harness";

const ROUNDS = 5;
const WORKERS = 8;
/** How long a restart on a crashed database may take to answer /healthz. */
const RESTART_MS = 5000;

/** mulberry32: a small seeded PRNG, so the kill schedule and the workers' choices are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const scheduleRand = prng(0x5c1d);
/** Milliseconds into each round's traffic at which the server gets SIGKILL. */
const KILL_DELAYS = Array.from({ length: ROUNDS }, () => 50 + Math.floor(scheduleRand() * 350));

let tmp = "";
let bin = "";
let dbPath = "";
let token = "";
const started = new Set<Bun.Subprocess>();

/** Starts `scimd serve` on the shared database and waits for /healthz; throws after RESTART_MS. */
async function serve(): Promise<Served> {
  const s = await startServe(bin, tmp, ["--db", dbPath], started, RESTART_MS);
  if (s.exited !== undefined) throw new Error(`scimd serve on ${dbPath} exited with ${s.exited}; stderr:\n${s.log()}`);
  return s;
}

interface Reply {
  status: number;
  body: any;
}

async function api(s: Served, method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await fetch(`${s.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/scim+json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Every User, paged. */
async function allUsers(s: Served): Promise<{ id: string; userName: string; title?: string }[]> {
  const out: { id: string; userName: string; title?: string }[] = [];
  for (let start = 1; ; start += 500) {
    const r = await api(s, "GET", `/Users?startIndex=${start}&count=500&attributes=userName,title`);
    expect(r.status).toBe(200);
    out.push(...r.body.Resources);
    if (out.length >= r.body.totalResults || r.body.Resources.length === 0) return out;
  }
}

// ---- what the client knows: acknowledged writes, and the ones in flight at the kill ----

interface KnownUser {
  id: string;
  userName: string;
  owner: number;
  /** The title the server last acknowledged (or observed after a restart). */
  title: string;
  /** A title PATCH sent but not answered when the server died. */
  inFlightTitle?: string;
}

const users = new Map<string, KnownUser>();
/** Creates sent but never answered: userName → body, per round. */
let inFlightCreates = new Map<string, Record<string, unknown>>();
let groupId = "";
/** Members acknowledged (or observed after a restart) in the Group. */
const members = new Set<string>();
/** Member ids in a PATCH that was in flight at the kill. */
let inFlightMembers = new Set<string>();
let server: Served | undefined;
let totalAcked = 0;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-crash-"));
  bin = buildBinaryInto(tmp);
  dbPath = join(tmp, "data", "scimd.db");
  const g = Bun.spawnSync([bin, "generate-token", "--name", "crash", "--db", dbPath, "--create"], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  if (g.exitCode !== 0) throw new Error(`generate-token failed (${g.exitCode}):\n${g.stderr.toString()}`);
  token = g.stdout.toString().trim();
}, 60_000);

afterAll(() => stopAll(started, tmp));

/** One worker's loop: until the server is killed, create, retitle or add its own users to the Group. */
async function worker(s: Served, round: number, w: number, isKilled: () => boolean, unexpected: string[]): Promise<number> {
  const rand = prng(round * 1000 + w);
  let acked = 0;
  for (let step = 0; !isKilled(); step++) {
    const mine = [...users.values()].filter((u) => u.owner === w);
    const candidates = mine.filter((u) => !members.has(u.id) && !inFlightMembers.has(u.id));
    const kind = step % 3 === 1 && mine.length ? "title" : step % 3 === 2 && candidates.length ? "member" : "create";
    try {
      if (kind === "create") {
        const userName = `r${round}-w${w}-${step}@crash.example.com`;
        const body = userBody(userName, { title: `t0-${userName}` });
        inFlightCreates.set(userName, body);
        const r = await api(s, "POST", "/Users", body);
        if (r.status !== 201 || r.body?.userName !== userName) {
          unexpected.push(`POST /Users ${userName}: ${r.status} ${JSON.stringify(r.body)}`);
          continue;
        }
        inFlightCreates.delete(userName);
        users.set(r.body.id, { id: r.body.id, userName, owner: w, title: body.title as string });
      } else if (kind === "title") {
        const u = mine[Math.floor(rand() * mine.length)]!;
        const title = `r${round}-w${w}-${step}`;
        u.inFlightTitle = title;
        const r = await api(s, "PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: title }));
        if (r.status !== 200) {
          unexpected.push(`PATCH /Users/${u.id} title: ${r.status} ${JSON.stringify(r.body)}`);
          continue;
        }
        u.inFlightTitle = undefined;
        u.title = title;
      } else {
        const batch = candidates.slice(0, 1 + Math.floor(rand() * 3)).map((u) => u.id);
        for (const id of batch) inFlightMembers.add(id);
        const r = await api(s, "PATCH", `/Groups/${groupId}`, patchBody({ op: "add", path: "members", value: batch.map((value) => ({ value })) }));
        if (r.status !== 204) {
          unexpected.push(`PATCH /Groups members: ${r.status} ${JSON.stringify(r.body)}`);
          continue;
        }
        for (const id of batch) {
          inFlightMembers.delete(id);
          members.add(id);
        }
      }
      acked++;
    } catch (e) {
      // A connection error: expected once the server is dead, a failure before.
      if (!isKilled()) unexpected.push(`${kind}: ${e instanceof Error ? e.message : String(e)} before the kill`);
      return acked;
    }
  }
  return acked;
}

/** After a restart: every acknowledged write is there, and nothing appears that was never sent. */
async function verify(s: Served): Promise<void> {
  const listed = await allUsers(s);
  const byName = new Map<string, { id: string; userName: string; title?: string }[]>();
  for (const u of listed) byName.set(u.userName.toLowerCase(), [...(byName.get(u.userName.toLowerCase()) ?? []), u]);
  // userNames are never duplicated.
  const dupes = [...byName.entries()].filter(([, v]) => v.length > 1).map(([k]) => k);
  expect(dupes).toEqual([]);

  // Every acknowledged user exists with its acknowledged title, or the one in flight at the kill.
  const byId = new Map(listed.map((u) => [u.id, u]));
  const lost: string[] = [];
  const wrong: string[] = [];
  for (const k of users.values()) {
    const got = byId.get(k.id);
    if (!got) {
      lost.push(`${k.userName} (${k.id})`);
      continue;
    }
    if (got.userName !== k.userName) wrong.push(`${k.id}: userName ${got.userName}, acknowledged ${k.userName}`);
    if (got.title !== k.title && got.title !== k.inFlightTitle) wrong.push(`${k.userName}: title ${got.title}, acknowledged ${k.title}${k.inFlightTitle ? ` (in flight ${k.inFlightTitle})` : ""}`);
    k.title = got.title!;
    k.inFlightTitle = undefined;
  }
  expect({ lost, wrong }).toEqual({ lost: [], wrong: [] });

  // Nothing appears that no client sent: an unknown user can only be a create in flight at the kill.
  const phantom = listed.filter((u) => !users.has(u.id) && !inFlightCreates.has(u.userName)).map((u) => u.userName);
  expect(phantom).toEqual([]);

  // An IdP retries the creates it got no answer for: 201 if the first never landed, 409 if it did; never a duplicate.
  for (const [userName, body] of inFlightCreates) {
    const r = await api(s, "POST", "/Users", body);
    expect([201, 409]).toContain(r.status);
    if (r.status === 409) expect(r.body.scimType).toBe("uniqueness");
    const f = await api(s, "GET", `/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`);
    expect(f.body.totalResults).toBe(1);
    const u = f.body.Resources[0];
    const owner = Number(/-w(\d+)-/.exec(userName)![1]);
    users.set(u.id, { id: u.id, userName, owner, title: u.title });
  }
  inFlightCreates = new Map();

  // Every acknowledged member is in the Group; any other member was in a PATCH in flight at the kill.
  const g = await api(s, "GET", `/Groups/${groupId}`);
  expect(g.status).toBe(200);
  const now = new Set<string>((g.body.members ?? []).map((m: { value: string }) => m.value));
  expect([...members].filter((id) => !now.has(id))).toEqual([]);
  expect([...now].filter((id) => !members.has(id) && !inFlightMembers.has(id))).toEqual([]);
  for (const id of now) members.add(id);
  inFlightMembers = new Set();
}

describe("crash safety (kill -9) [e2e]", () => {
  it("starts the binary on a fresh database and creates the Group the rounds fill", async () => {
    server = await serve();
    const r = await api(server, "POST", "/Groups", groupBody("crash-test-group"));
    expect(r.status).toBe(201);
    groupId = r.body.id;
  });

  for (let round = 1; round <= ROUNDS; round++) {
    const delay = KILL_DELAYS[round - 1]!;
    it(`round ${round}: every write acknowledged before SIGKILL at ${delay} ms of traffic is there after a restart that needs no manual step and answers /healthz within ${RESTART_MS / 1000} s`, async () => {
      const s = server!;
      let killed = false;
      const unexpected: string[] = [];
      const t0 = performance.now();
      const timer = Bun.sleep(delay).then(() => {
        killed = true;
        s.proc.kill(9);
      });
      const acked = await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(s, round, w, () => killed, unexpected)));
      await timer;
      await s.proc.exited;
      const trafficMs = performance.now() - t0;
      // It really died of SIGKILL, with no chance to close the database.
      expect(s.proc.signalCode).toBe("SIGKILL");
      expect(s.log()).not.toMatch(/stopped/);
      // Before the kill every request got a 2xx: no failure, no lost-update 412, no 5xx.
      expect(unexpected).toEqual([]);
      const n = acked.reduce((a, b) => a + b, 0);
      expect(n).toBeGreaterThan(0);
      totalAcked += n;
      expect(trafficMs).toBeLessThan(delay + 2000);

      // A crash leaves the database as is; the next start opens it with no repair step.
      server = await serve();
        expect(server.readyMs).toBeLessThan(RESTART_MS);
      await verify(server);
    }, 20_000);
  }

  it("after the rounds, SIGTERM exits 0 and the database passes PRAGMA integrity_check and quick_check", async () => {
    expect(totalAcked).toBeGreaterThan(ROUNDS * 5);
    const s = server!;
    s.proc.kill("SIGTERM");
    const code = await Promise.race([s.proc.exited, Bun.sleep(5000).then(() => "timeout" as const)]);
    expect(code).toBe(0);
    const db = new Database(dbPath, { readonly: true });
    try {
      expect(db.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
      expect(db.query("PRAGMA quick_check").all()).toEqual([{ quick_check: "ok" }]);
      expect(db.query("PRAGMA foreign_key_check").all()).toEqual([]);
      // The database holds exactly the users and members the client knows of.
      expect((db.query("SELECT count(*) AS n FROM users").get() as { n: number }).n).toBe(users.size);
      const dup = db.query("SELECT user_name_key, count(*) AS n FROM users GROUP BY user_name_key HAVING n > 1").all();
      expect(dup).toEqual([]);
      const stored = db
        .query("SELECT u.id AS id FROM group_members m JOIN groups g ON g.seq = m.group_seq JOIN users u ON m.member_kind = 0 AND u.seq = m.member_seq WHERE g.id = ?")
        .all(groupId)
        .map((r) => (r as { id: string }).id)
        .sort();
      expect(stored).toEqual([...members].sort());
    } finally {
      db.close();
    }
  });
});
