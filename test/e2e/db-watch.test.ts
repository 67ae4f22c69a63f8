/**
 * dist/scimd as a process when its database changes under it: the file deleted (noticed by the watch
 * within seconds: the log says so, a POST gets 503 and never its 201, /readyz says why), made
 * unwritable and writable again (recovers without a restart), the disk full on a small tmpfs (507,
 * then the same POST succeeds once space is back; skipped where mounting is not allowed), a new
 * database announced in the log, and a -wal without its database refused at start with nothing created.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupBody, userBody } from "../helpers";
import { api, buildBinaryInto, runCli, startServe, stopAll, type Served } from "./harness";

let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-dbwatch-"));
  bin = buildBinaryInto(tmp);
}, 120_000);

afterAll(async () => {
  await stopAll(started, tmp);
});

/** A server on a new database at `db`, with a token. */
async function serveWithToken(db: string): Promise<{ s: Served; token: string }> {
  const s = await startServe(bin, tmp, ["--db", db], started);
  expect(s.exited).toBeUndefined();
  const t = runCli(bin, tmp, ["generate-token", "--name", "e2e", "--db", db]);
  expect(t.code).toBe(0);
  return { s, token: t.out.trim() };
}

/** Milliseconds until the server logged a record with `event` (polling every 20 ms), or undefined after `ms`. */
async function loggedWithin(s: Served, event: string, ms: number): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (s.records().some((r) => r.event === event)) return performance.now() - t0;
    await Bun.sleep(20);
  }
  return undefined;
}

describe("dist/scimd: the database file deleted under it", () => {
  it("says it created the database; once the file is deleted the log says so within seconds, a POST gets 503 (never 201) and /readyz says why", async () => {
    const db = join(tmp, "deleted", "scimd.db");
    const { s, token } = await serveWithToken(db);
    try {
      const created = s.records().find((r) => r.event === "database created");
      expect(created?.level).toBe("warn");
      expect(String(created?.message)).toStartWith(`created a new database at ${db}:`);
      expect((await api(s, token, "POST", "/Users", userBody("before@example.com"))).status).toBe(201);
      for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
      // At once, before the watch's next look: the write checks for itself.
      expect((await api(s, token, "POST", "/Users", userBody("at-once@example.com"))).status).toBe(503);
      const noticedMs = await loggedWithin(s, "database file deleted", 5000);
      console.log(`deletion noticed by the watch after ${noticedMs?.toFixed(0)} ms`);
      expect(noticedMs).toBeLessThan(3000);
      const line = s.records().find((r) => r.event === "database file deleted")!;
      expect(line.level).toBe("error");
      expect(line.message).toStartWith(`the database file ${db} was deleted while scimd had it open`);
      const post = await api(s, token, "POST", "/Users", userBody("after@example.com"));
      expect(post.status).toBe(503);
      expect(post.body.schemas).toEqual(["urn:ietf:params:scim:api:messages:2.0:Error"]);
      expect(post.body.status).toBe("503");
      expect(post.body.detail).toStartWith(`nothing was written: the database file ${db} was deleted`);
      expect(post.body.detail).toContain("restart scimd");
      const ready = await fetch(`${s.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { detail: string }).detail).toContain(`the database file ${db} was deleted`);
      // Logged once per change, not every 2 s.
      await Bun.sleep(2500);
      expect(s.records().filter((r) => r.event === "database file deleted").length).toBe(1);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 20_000);
});

const root = process.getuid?.() === 0;
/** Makes `path` unwritable for this user: chmod a-w, and for root (whom a mode does not stop) chattr +i; false when that cannot be done here. */
function makeUnwritable(path: string): boolean {
  chmodSync(path, 0o400);
  return !root || Bun.spawnSync(["chattr", "+i", path], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}
function makeWritable(path: string): void {
  if (root) Bun.spawnSync(["chattr", "-i", path], { stdout: "ignore", stderr: "ignore" });
  chmodSync(path, 0o600);
}

describe("dist/scimd: the database file made unwritable", () => {
  it("writes answer 503 with Retry-After while it is, the log says so and says when it is back, and the same POST then succeeds without a restart", async () => {
    const db = join(tmp, "readonly", "scimd.db");
    const { s, token } = await serveWithToken(db);
    try {
      expect((await api(s, token, "GET", "/Users?count=1")).status).toBe(200);
      if (!makeUnwritable(db)) return void console.log("skipped: chattr +i is not available here");
      try {
        expect(await loggedWithin(s, "database file unwritable", 5000)).toBeLessThan(3000);
        const post = await api(s, token, "POST", "/Users", userBody("ro@example.com"));
        expect(post.status).toBe(503);
        expect(post.headers.get("retry-after")).toBe("5");
        expect(post.body.detail).toStartWith(`nothing was written: the database file ${db} is not writable`);
        expect(post.body.detail).not.toContain("SQLITE");
        expect((await fetch(`${s.url}/readyz`)).status).toBe(503);
      } finally {
        makeWritable(db);
      }
      expect(await loggedWithin(s, "database file ok", 5000)).toBeLessThan(3000);
      expect((await api(s, token, "POST", "/Users", userBody("ro@example.com"))).status).toBe(201);
      expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    } finally {
      makeWritable(db);
      expect(await s.stop()).toBe(0);
    }
  }, 20_000);
});

describe("dist/scimd: a -wal or -shm without its database", () => {
  it("refuses to start (exit 1, a message saying what to do) and creates nothing", async () => {
    const dir = join(tmp, "orphan");
    mkdirSync(dir);
    writeFileSync(join(dir, "scimd.db-wal"), "left over");
    const s = await startServe(bin, tmp, ["--db", join(dir, "scimd.db")], started);
    expect(s.exited).toBe(1);
    expect(s.log()).toContain(`refusing to create a new database at ${join(dir, "scimd.db")}: ${join(dir, "scimd.db-wal")} is there without the database file`);
    expect(readdirSync(dir)).toEqual(["scimd.db-wal"]);
  });
});

/** Mounts a tmpfs of `bytes` at `dir` (root only); false where mounting is not allowed. */
function mountTmpfs(dir: string, bytes: number): boolean {
  mkdirSync(dir, { recursive: true });
  return Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

describe("dist/scimd: the disk full (a small tmpfs)", () => {
  const mnt = () => join(tmp, "small");
  let mounted = false;
  afterAll(() => {
    if (mounted) Bun.spawnSync(["umount", "-l", mnt()]);
  });

  it("a POST answers 507 with a SCIM body and stores nothing; once space is back the same POST succeeds, without a restart", async () => {
    mounted = root && mountTmpfs(mnt(), 8 * 1024 * 1024);
    if (!mounted) return void console.log("skipped: cannot mount a tmpfs here");
    const db = join(mnt(), "scimd.db");
    const { s, token } = await serveWithToken(db);
    try {
      const users: string[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await api(s, token, "POST", "/Users", userBody(`member${i}@example.com`));
        expect(r.status).toBe(201);
        users.push(r.body.id);
      }
      // Fill what is left of the tmpfs.
      const filler = join(mnt(), "filler");
      const chunk = Buffer.alloc(64 * 1024, 1);
      const fd = require("node:fs").openSync(filler, "w");
      try {
        for (;;) require("node:fs").writeSync(fd, chunk);
      } catch (e) {
        expect((e as { code?: string }).code).toBe("ENOSPC");
      } finally {
        require("node:fs").closeSync(fd);
      }
      const body = groupBody("everyone", users, { description: "x".repeat(200_000) });
      const full = await api(s, token, "POST", "/Groups", body);
      expect(full.status).toBe(507);
      expect(full.body.schemas).toEqual(["urn:ietf:params:scim:api:messages:2.0:Error"]);
      expect(full.body.detail).toContain("is full");
      expect(full.body.detail).toContain("nothing was written");
      expect((await api(s, token, "GET", `/Groups?filter=${encodeURIComponent('displayName eq "everyone"')}`)).body.totalResults).toBe(0);
      rmSync(filler);
      const again = await api(s, token, "POST", "/Groups", body);
      expect(again.status).toBe(201);
      const got = await api(s, token, "GET", `/Groups/${again.body.id}`);
      expect(got.body.members.length).toBe(50);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 30_000);
});
