/**
 * Operator mistakes fail loudly: a second server on a busy port. Every case runs real processes
 * (scimd from source and the compiled binary) on 127.0.0.1 against SQLite files in a temp folder.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBinaryInto, cleanEnv, SOURCE, startServe, stopAll } from "./harness";

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

/** Waits until `p` exits or `ms` pass; kills it (SIGKILL) in the second case and returns undefined. */
async function exitOf(p: Bun.Subprocess, ms: number): Promise<number | undefined> {
  const code = await Promise.race([p.exited, Bun.sleep(ms).then(() => undefined)]);
  if (code === undefined) {
    p.kill("SIGKILL");
    await p.exited;
  }
  return code;
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
