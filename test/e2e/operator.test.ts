/**
 * Operator mistakes fail loudly: a second server on a busy port, `kill` of `npm start`. Every case
 * runs real processes (scimd from source and the compiled binary) on 127.0.0.1 against SQLite files
 * in a temp folder.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBinaryInto, cleanEnv, freePort, REPO, SOURCE, startServe, stopAll } from "./harness";

let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();
let seq = 0;
/** A fresh folder under the test's temp folder. */
const folder = () => {
  const d = join(tmp, `case-${++seq}`);
  mkdirSync(d, { recursive: true });
  return d;
};

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-operator-"));
  bin = buildBinaryInto(tmp);
}, 60_000);

afterAll(() => stopAll(started, tmp));

/** Waits until /healthz on 127.0.0.1:`port` answers 200; false after `ms`. */
async function healthy(port: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) return true;
    await Bun.sleep(50);
  }
  return false;
}

/** Waits until `p` exits or `ms` pass; kills it (SIGKILL) in the second case and returns undefined. */
async function exitOf(p: Bun.Subprocess, ms: number): Promise<number | undefined> {
  const code = await Promise.race([p.exited, Bun.sleep(ms).then(() => undefined)]);
  if (code === undefined) {
    p.kill("SIGKILL");
    await p.exited;
  }
  return code;
}

/** A process seen in /proc: its PID and start time (so that a reused PID is never mistaken for it). */
interface Proc {
  pid: number;
  start: string;
}

/** [parent PID, start time] of `pid` from /proc/<pid>/stat, or undefined when it is gone. */
function statOf(pid: number): { ppid: number; start: string; zombie: boolean } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), start: fields[19]!, zombie: fields[0] === "Z" };
  } catch {
    return undefined;
  }
}

/** Every process below `pid` now. */
function descendants(pid: number): Proc[] {
  const all = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => ({ pid: Number(d), stat: statOf(Number(d)) }))
    .filter((p) => p.stat !== undefined);
  const out: Proc[] = [];
  const walk = (parent: number) => {
    for (const p of all) if (p.stat!.ppid === parent && !out.some((o) => o.pid === p.pid)) (out.push({ pid: p.pid, start: p.stat!.start }), walk(p.pid));
  };
  walk(pid);
  return out;
}

const alive = (p: Proc) => {
  const s = statOf(p.pid);
  return s !== undefined && s.start === p.start && !s.zombie;
};

/** SIGKILL for a process this test started (seen below it earlier) that is still running. */
function killIfAlive(p: Proc): void {
  try {
    if (alive(p)) process.kill(p.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

describe("a second scimd serve on a port already in use", () => {
  const cases: [string, () => string[]][] = [
    ["from source", () => SOURCE],
    ["the compiled binary", () => [bin]],
  ];
  it.each(cases)("refuses to start (%s): exits non-zero saying the port is in use, creates no database, and the first server keeps answering", async (_t, prefix) => {
    const dir = folder();
    const first = await startServe(prefix(), dir, ["--db", join(dir, "first.db")], started);
    expect(first.exited).toBeUndefined();
    const port = new URL(first.url).port;
    try {
      for (const host of ["127.0.0.1", "0.0.0.0"]) {
        const second = Bun.spawn([...prefix(), "serve", "--port", port, "--host", host, "--db", join(dir, "second.db")], { cwd: dir, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
        started.add(second);
        const code = await exitOf(second, 5000);
        const err = await new Response(second.stderr).text();
        expect({ host, code }).toEqual({ host, code: 1 });
        expect(err).toContain(`port ${port} is already in use`);
        expect(err).not.toMatch(/\n\s+at /); // no stack trace
        expect(existsSync(join(dir, "second.db"))).toBe(false);
      }
      // Every request still reaches the one server there is.
      for (let i = 0; i < 20; i++) expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    } finally {
      expect(await first.stop()).toBe(0);
    }
  }, 20_000);
});

describe("kill -TERM of the npm start process", () => {
  it("reaches the server: it stops, the port is released and nothing is left running", async () => {
    const dir = folder();
    const port = await freePort();
    const npm = Bun.spawn(["npm", "start", "--", "--port", String(port), "--host", "127.0.0.1", "--db", join(dir, "scimd.db")], {
      cwd: REPO,
      env: cleanEnv(),
      stdout: "pipe",
      stderr: "pipe",
    });
    started.add(npm);
    let below: Proc[] = [];
    try {
      expect(await healthy(port, 15_000)).toBe(true);
      below = descendants(npm.pid);
      expect(below.length).toBeGreaterThan(0);
      process.kill(npm.pid, "SIGTERM");
      const code = await exitOf(npm, 5000);
      expect(code).toBe(0);
      const gone = Date.now() + 5000;
      while (below.some(alive) && Date.now() < gone) await Bun.sleep(50);
      expect(below.filter(alive)).toEqual([]);
      const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then(() => false, () => true);
      expect(refused).toBe(true);
      expect(await new Response(npm.stderr).text()).toMatch(/SIGTERM: finishing in-flight requests/);
    } finally {
      // An orphaned server (the bug this test is about) must not outlive the test.
      for (const pid of [...below, ...descendants(npm.pid)]) killIfAlive(pid);
    }
  }, 30_000);
});
