/**
 * Two dist/scimd replicas on one PostgreSQL database, as behind a load balancer:
 * - If-Match races across the replicas have one winner (the others 412), however they interleave;
 * - PostgreSQL restarted (`pg_ctl stop -m fast`, down for a while, started again) under a bounded
 *   load of creates and PATCHes alternating between the replicas: every answer is a success or a 503
 *   with Retry-After (never a 500, a 502, a dropped connection, or a 401 for a database that does not
 *   answer), every acknowledged write is there afterwards through both replicas, and both serve
 *   again within a few seconds of the server being back (README "PostgreSQL (first increment)").
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describePostgres, startCluster, type PgCluster } from "../store/postgres/cluster";
import { buildBinaryInto, runCli, startServe, stopAll, type Served } from "./harness";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const userBody = (userName: string) => ({ schemas: [USER], userName, displayName: userName.split("@")[0], emails: [{ value: userName, type: "work", primary: true }] });
const patch = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });

/** One answer: status 0 when the connection failed or timed out (never acceptable). */
type Answer = { status: number; retryAfter: string | null; body: any; at: number };

describePostgres("two dist/scimd replicas on one PostgreSQL database", () => {
  let cluster: PgCluster;
  let dir: string;
  let token: string;
  let a: Served;
  let b: Served;
  const started = new Set<Bun.Subprocess>();

  beforeAll(async () => {
    cluster = await startCluster();
    const admin = new SQL(cluster.url(), { max: 1 });
    await admin`CREATE DATABASE scimd_replicas`;
    await admin.close();
    const url = cluster.url("scimd_replicas");
    dir = mkdtempSync(join(tmpdir(), "scimd-e2e-pg-restart-"));
    const bin = buildBinaryInto(dir);
    const gen = runCli(bin, dir, ["generate-token", "--name", "idp", "--db", url, "--create"]);
    expect(gen.code).toBe(0);
    token = gen.out.trim();
    [a, b] = await Promise.all([startServe(bin, dir, ["--db", url], started, 20_000), startServe(bin, dir, ["--db", url], started, 20_000)]);
    expect(a.exited ?? b.exited).toBeUndefined();
  }, 300_000);
  afterAll(async () => {
    await stopAll(started, dir);
    cluster?.stop();
  }, 60_000);

  async function send(s: Served, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    try {
      const res = await fetch(`${s.base}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      return { status: res.status, retryAfter: res.headers.get("retry-after"), body: parsed, at: performance.now() };
    } catch (e) {
      return { status: 0, retryAfter: null, body: String(e), at: performance.now() };
    }
  }

  it("If-Match races across the replicas have one winner; the others are refused with 412 and change nothing", async () => {
    const u = await send(a, "POST", "/Users", userBody("race-target@example.com"));
    expect(u.status).toBe(201);
    for (let round = 0; round < 5; round++) {
      const before = await send(b, "GET", `/Users/${u.body.id}`);
      const etag = before.body.meta.version as string;
      const racers = Array.from({ length: 8 }, (_, k) =>
        send(k % 2 ? b : a, "PATCH", `/Users/${u.body.id}`, patch({ op: "replace", path: "title", value: `round ${round} racer ${k}` }), { "If-Match": etag }),
      );
      const answers = await Promise.all(racers);
      expect(answers.map((r) => r.status).sort()).toEqual([200, ...Array(7).fill(412)]);
      const winner = answers.findIndex((r) => r.status === 200);
      for (const s of [a, b]) {
        const after = await send(s, "GET", `/Users/${u.body.id}`);
        expect(after.body.title).toBe(`round ${round} racer ${winner}`);
        expect(after.body.meta.version).toBe(answers[winner]!.body.meta.version);
        expect(after.body.meta.version).not.toBe(etag);
      }
    }
  }, 30_000);

  it("PostgreSQL restarted under load: only successes and 503 with Retry-After, no acknowledged write lost, both replicas serve again within seconds", async () => {
    const WORKERS = 8;
    const MAX_OPS = 6000;
    const DOWN_MS = 1500;
    const replicas = [a, b];
    const group = await send(a, "POST", "/Groups", { schemas: [GROUP], displayName: "restart-members" });
    expect(group.status).toBe(201);
    const gid = group.body.id as string;
    // Each worker PATCHes a User of its own, one request at a time: the title it ends with is known.
    const own = await Promise.all(Array.from({ length: WORKERS }, (_, w) => send(a, "POST", "/Users", userBody(`worker-${w}@example.com`))));
    expect(own.map((r) => r.status)).toEqual(Array(WORKERS).fill(201));

    const answers: (Answer & { replica: number; op: string })[] = [];
    const created: { id: string; userName: string }[] = [];
    const addedToGroup: string[] = [];
    /** Per worker, the titles it sent in order, and the index of the last one acknowledged. */
    const titles: string[][] = Array.from({ length: WORKERS }, () => []);
    const lastAcked: number[] = Array(WORKERS).fill(-1);
    let ops = 0;
    let stop = false;

    const worker = async (w: number) => {
      let toAdd: string | undefined;
      for (let i = 0; !stop && ops < MAX_OPS; i++) {
        ops++;
        const r = (w + i) % 2;
        const s = replicas[r]!;
        let answer: Answer;
        let op: string;
        if (toAdd !== undefined && i % 3 === 2) {
          op = "add member";
          const id = toAdd;
          answer = await send(s, "PATCH", `/Groups/${gid}`, patch({ op: "add", path: "members", value: [{ value: id }] }));
          if (answer.status === 204 || answer.status === 200) addedToGroup.push(id);
          toAdd = undefined;
        } else if (i % 3 === 1) {
          op = "patch title";
          const title = `w${w} #${i}`;
          titles[w]!.push(title);
          answer = await send(s, "PATCH", `/Users/${own[w]!.body.id}`, patch({ op: "replace", path: "title", value: title }));
          if (answer.status === 200 || answer.status === 204) lastAcked[w] = titles[w]!.length - 1;
        } else {
          op = "create";
          const userName = `load-${w}-${i}@example.com`;
          answer = await send(s, "POST", "/Users", userBody(userName));
          if (answer.status === 201) {
            created.push({ id: answer.body.id, userName });
            toAdd = answer.body.id;
          }
        }
        answers.push({ ...answer, replica: r, op });
        // A 503 says to retry after a second: a client that does not wait at all only spins here.
        if (answer.status === 503) await Bun.sleep(50);
      }
    };

    const t0 = performance.now();
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    await Bun.sleep(1000);
    const restartBegan = performance.now();
    const { stoppedAt, startedAt } = await cluster.restart(DOWN_MS);
    // The load goes on for a while after the server is back: the pools must recover under it.
    await Bun.sleep(4000);
    stop = true;
    await load;
    const t1 = performance.now();

    const histogram: Record<string, number> = {};
    for (const r of answers) histogram[r.status] = (histogram[r.status] ?? 0) + 1;
    const bad = answers.filter((r) => ![200, 201, 204, 503].includes(r.status) || (r.status === 503 && r.retryAfter === null));
    const unavailable = answers.filter((r) => r.status === 503);
    // Per replica: the first success once the server was back, and the 503s answered after that.
    const recovery = replicas.map((_, r) => {
      const mine = answers.filter((x) => x.replica === r && x.at > startedAt);
      const first = mine.find((x) => x.status < 300);
      return {
        firstSuccessMs: first ? Math.round(first.at - startedAt) : undefined,
        unavailableAfterStart: mine.filter((x) => x.status === 503).length,
        lastUnavailableMs: Math.round(Math.max(0, ...mine.filter((x) => x.status === 503).map((x) => x.at - startedAt))),
      };
    });
    const report = {
      requests: answers.length,
      histogram,
      unavailable: unavailable.length,
      createsAcknowledged: created.length,
      memberAddsAcknowledged: addedToGroup.length,
      titlePatchesAcknowledged: answers.filter((r) => r.op === "patch title" && r.status === 200).length,
      loadSeconds: Math.round(t1 - t0) / 1000,
      restartBeganMs: Math.round(restartBegan - t0),
      stopTookMs: Math.round(stoppedAt - restartBegan),
      downMs: Math.round(startedAt - stoppedAt),
      recovery,
    };
    console.log(`restart under load: ${JSON.stringify(report)}`);

    expect(bad.slice(0, 5).map((r) => ({ op: r.op, status: r.status, retryAfter: r.retryAfter, body: r.body }))).toEqual([]);
    expect(unavailable.every((r) => r.retryAfter === "1")).toBe(true);
    // The restart did reach the requests (else this test proves nothing), and the load was bounded.
    expect(unavailable.length).toBeGreaterThan(0);
    expect(answers.length).toBeLessThanOrEqual(MAX_OPS);
    // Both replicas served again within a few seconds of the server being back.
    for (const r of recovery) expect(r.firstSuccessMs).toBeLessThan(5000);

    // Every acknowledged write is there, through both replicas.
    for (const s of replicas) {
      for (let k = 0; k < created.length; k += 25) {
        const reads = await Promise.all(created.slice(k, k + 25).map((u) => send(s, "GET", `/Users/${u.id}?attributes=userName`)));
        expect(reads.map((r, j) => [created[k + j]!.userName, r.status, r.body?.userName])).toEqual(created.slice(k, k + 25).map((u) => [u.userName, 200, u.userName]));
      }
      const g = await send(s, "GET", `/Groups/${gid}`);
      expect(g.status).toBe(200);
      const members = new Set((g.body.members ?? []).map((m: { value: string }) => m.value));
      expect(addedToGroup.filter((id) => !members.has(id))).toEqual([]);
      for (let w = 0; w < WORKERS; w++) {
        const u = await send(s, "GET", `/Users/${own[w]!.body.id}`);
        expect(u.status).toBe(200);
        // The last acknowledged title, or one sent after it whose answer was lost (committed, then a 503).
        expect(titles[w]!.slice(Math.max(0, lastAcked[w]!))).toContain(u.body.title);
      }
    }
    // And each pool is whole again: every request in a row succeeds.
    for (const s of replicas) {
      const row = await Promise.all(Array.from({ length: 20 }, (_, k) => send(s, k % 2 ? "GET" : "POST", k % 2 ? "/Users?count=1" : "/Users", k % 2 ? undefined : userBody(`after-${s.url.slice(-5)}-${k}@example.com`))));
      expect(row.map((r) => r.status)).toEqual(Array.from({ length: 20 }, (_, k) => (k % 2 ? 200 : 201)));
    }
  }, 60_000);
});
