/**
 * Backup and restore on the compiled binary: a backup taken while a real server writes over HTTP,
 * a restore refused while that server runs (bun:ffi's fcntl F_GETLK names its pid inside the binary),
 * and restore killed with SIGKILL at each of its steps (SCIMD_TEST_RESTORE_PAUSE, test only), after
 * which the database holds the old content or the new one, opens, and restores again.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/store/open";
import { dumpRows, inconsistencies, userNames } from "../backup-rows";
import { groupBody, patchBody, userBody } from "../helpers";
import { buildBinaryInto, cleanEnv, startServe, stopAll, type Served } from "./harness";

let tmp = "";
let bin = "";
let db = "";
let token = "";
const started = new Set<Bun.Subprocess>();

const run = (args: string[], env: Record<string, string> = {}) => {
  const p = Bun.spawnSync([bin, ...args], { cwd: tmp, env: { ...cleanEnv(), ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

async function api(s: Served, method: string, path: string, body?: unknown) {
  const r = await fetch(`${s.base}${path}`, { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (r.status === 204 ? undefined : await r.json()) as any };
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-restore-e2e-"));
  bin = buildBinaryInto(tmp);
  db = join(tmp, "data", "scimd.db");
  const g = run(["generate-token", "--name", "e2e", "--db", db, "--create"]);
  if (g.code !== 0) throw new Error(g.err);
  token = g.out.trim();
}, 120_000);
afterAll(() => stopAll(started, tmp));

describe("dist/scimd backup and restore", () => {
  it("backs up while the server writes (each backup intact and consistent), matches the database row by row once writes stop, and restore is refused while the server runs", async () => {
    const s = await startServe(bin, tmp, ["--db", db], started);
    expect(s.exited).toBeUndefined();
    const group = await api(s, "POST", "/Groups", groupBody("all"));
    expect(group.status).toBe(201);
    let stop = false;
    let writes = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const u = await api(s, "POST", "/Users", userBody(`w${w}-${i}@example.com`));
        expect(u.status).toBe(201);
        expect((await api(s, "PATCH", `/Groups/${group.body.id}`, patchBody({ op: "add", path: "members", value: [{ value: u.body.id }] }))).status).toBe(204);
        if (i % 3 === 2) expect((await api(s, "DELETE", `/Users/${u.body.id}`)).status).toBe(204);
        writes += 2;
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await Bun.sleep(200);
    const during: number[] = [];
    for (let i = 0; i < 4; i++) {
      const file = join(tmp, `during-${i}.db`);
      const b = run(["backup", file, "--db", db]);
      expect(b.err).toBe("");
      expect(b.code).toBe(0);
      expect(b.out).toContain("integrity ok");
      expect(inconsistencies(file)).toEqual([]);
      during.push(userNames(file).length);
      await Bun.sleep(100);
    }
    stop = true;
    await Promise.all(writers);
    expect(writes).toBeGreaterThan(20);
    // The snapshots grew with the writes: they are of the database as it was, not a fixed copy.
    expect(during.at(-1)!).toBeGreaterThan(during[0]!);
    const final = join(tmp, "final.db");
    expect(run(["backup", final, "--db", db]).code).toBe(0);
    expect(dumpRows(final)).toEqual(dumpRows(db));

    const refused = run(["restore", join(tmp, "during-0.db"), "--db", db]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`scimd: refusing to restore: process ${s.proc.pid} (`);
    expect(refused.err).toContain(`has ${db} open — it holds SQLite's shared lock on byte 128 of ${db}-shm, which every connection to the database holds while it is open (asked with fcntl F_GETLK). Stop the server first`);
    expect(await s.stop()).toBe(0);

    // Stopped: restore a backup taken during the writes, and the server serves exactly its users.
    const r = run(["restore", join(tmp, "during-1.db"), "--db", db]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const again = await startServe(bin, tmp, ["--db", db], started);
    const listed = await api(again, "GET", "/Users?count=1000&attributes=userName");
    expect(listed.body.Resources.map((u: { userName: string }) => u.userName).sort()).toEqual(userNames(join(tmp, "during-1.db")));
    expect(await again.stop()).toBe(0);
    // A SIGKILLed server leaves no lock behind: restore works at once.
    const killed = await startServe(bin, tmp, ["--db", db], started);
    killed.proc.kill("SIGKILL");
    await killed.proc.exited;
    const after = run(["restore", final, "--db", db]);
    expect(after.err).toBe("");
    expect(userNames(db)).toEqual(userNames(final));
  }, 60_000);

  const steps: [string, "old" | "new"][] = [
    ["validated", "old"],
    ["locked", "old"],
    ["saved", "old"],
    ["copied", "old"],
    ["committed", "new"],
  ];

  it.each(steps)("killed with SIGKILL at '%s', restore leaves the %s content, openable and intact, and a second restore succeeds", async (step, expected) => {
    const dir = mkdtempSync(join(tmpdir(), "scimd-restore-kill-"));
    try {
      const live = join(dir, "scimd.db");
      const backup = join(dir, "backup.db");
      // Old content: the database of the test above; new: the same with more users, so the two differ.
      copyFileSync(join(tmp, "final.db"), live);
      copyFileSync(join(tmp, "final.db"), backup);
      const { Database } = await import("bun:sqlite");
      const b = new Database(backup);
      b.exec("UPDATE users SET data = json_set(data, '$.title', 'restored')");
      b.close();
      const oldRows = dumpRows(live);
      const newRows = dumpRows(backup);
      const p = Bun.spawn([bin, "restore", backup, "--db", live], { cwd: dir, env: { ...cleanEnv(), SCIMD_TEST_RESTORE_PAUSE: step }, stdout: "pipe", stderr: "pipe" });
      started.add(p);
      const reader = p.stderr.getReader();
      let err = "";
      while (!err.includes(`paused at ${step}`)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`restore exited before pausing at ${step}: ${err}`);
        err += new TextDecoder().decode(value);
      }
      p.kill("SIGKILL");
      await p.exited;
      const store = await openStore(live, { create: false });
      await store.close();
      const rows = dumpRows(live);
      // openStore migrates nothing here (same schema) and the rows are one side's, whole.
      expect(rows).toEqual(expected === "old" ? oldRows : newRows);
      expect(inconsistencies(live)).toEqual([]);
      const second = Bun.spawnSync([bin, "restore", backup, "--db", live], { cwd: dir, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
      expect(second.stderr.toString()).toBe("");
      expect(dumpRows(live)).toEqual(newRows);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
