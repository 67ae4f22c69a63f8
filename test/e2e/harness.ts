/**
 * Shared by the end-to-end tests: build dist/scimd into an empty folder, run it with a clean
 * environment, start `scimd serve` on a free port and wait for /healthz.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const BASE_PATH = "/api/v1/scim";

/** Builds the binary with scripts/build.ts and copies it, alone, into `dir`; returns its path. */
export function buildBinaryInto(dir: string): string {
  const buildDir = mkdtempSync(join(tmpdir(), "scimd-build-"));
  const built = join(buildDir, "scimd");
  const b = Bun.spawnSync([process.execPath, "run", "scripts/build.ts"], {
    cwd: REPO,
    env: { ...process.env, SCIMD_OUTFILE: built },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (b.exitCode !== 0 || !existsSync(built)) throw new Error(`build failed (${b.exitCode}):\n${b.stderr.toString()}`);
  const bin = join(dir, "scimd");
  writeFileSync(bin, readFileSync(built), { mode: 0o755 });
  rmSync(buildDir, { recursive: true, force: true });
  return bin;
}

/** A clean environment: nothing from the test runner's SCIMD_* variables leaks in. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG"]) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return env;
}

export async function freePort(): Promise<number> {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const port = s.port!;
  await s.stop(true);
  return port;
}

export interface Served {
  proc: Bun.Subprocess<"ignore", "ignore", "pipe">;
  url: string;
  base: string;
  /** Milliseconds from spawn until /healthz answered 200. */
  readyMs: number;
  /** Everything the server wrote to stderr so far. */
  log: () => string;
  waitForLog: (re: RegExp, ms?: number) => Promise<void>;
  /** Sends SIGTERM and resolves with the exit code, or undefined after `ms`. */
  stop: (ms?: number) => Promise<number | undefined>;
  /** Set when the process exited before answering /healthz (e.g. it refused the database). */
  exited?: number;
}

/** scimd from source, as a command prefix in place of the binary: `[...SOURCE, "serve", …]`. */
export const SOURCE = [process.execPath, join(REPO, "src/main.ts")];

/**
 * Starts `bin serve` on a free port with `args`, in `cwd`, and waits until /healthz answers or the
 * process exits. `bin` is the binary's path or a command prefix such as SOURCE. Every process
 * started is added to `started` (and removed when it exits).
 */
export async function startServe(bin: string | string[], cwd: string, args: string[], started: Set<Bun.Subprocess>, timeoutMs = 5000): Promise<Served> {
  const port = await freePort();
  const t0 = performance.now();
  const proc = Bun.spawn([...[bin].flat(), "serve", "--port", String(port), "--host", "127.0.0.1", ...args], {
    cwd,
    env: cleanEnv(),
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  started.add(proc);
  void proc.exited.then(() => started.delete(proc));
  let text = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  const url = `http://127.0.0.1:${port}`;
  const served: Served = {
    proc,
    url,
    base: `${url}${BASE_PATH}`,
    readyMs: 0,
    log: () => text,
    waitForLog: async (re, ms = 3000) => {
      const until = Date.now() + ms;
      while (!re.test(text) && Date.now() < until) await Bun.sleep(20);
    },
    stop: async (ms = 5000) => {
      proc.kill("SIGTERM");
      return Promise.race([proc.exited, Bun.sleep(ms).then(() => undefined)]);
    },
  };
  let exited: number | undefined;
  void proc.exited.then((c) => (exited = c));
  while (performance.now() - t0 < timeoutMs && exited === undefined) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return { ...served, readyMs: performance.now() - t0 };
    } catch {
      // not listening yet
    }
    await Bun.sleep(10);
  }
  if (exited === undefined) {
    proc.kill("SIGKILL");
    await proc.exited;
    throw new Error(`scimd serve did not answer /healthz within ${timeoutMs} ms; stderr:\n${text}`);
  }
  await drained;
  return { ...served, exited };
}

/** Kills (SIGKILL) every process still running from `started` and removes `dir`. */
export async function stopAll(started: Set<Bun.Subprocess>, dir: string): Promise<void> {
  for (const p of [...started]) {
    p.kill("SIGKILL");
    await p.exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}
