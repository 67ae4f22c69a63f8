/**
 * Shared by the end-to-end tests: build dist/scimd once per run, copy it into an empty folder, run it
 * with a clean environment, start `scimd serve` on a free port and wait for /healthz.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const BASE_PATH = "/api/v1/scim";

/** Everything the binary is built from: its hash names the build, so a changed input means a new build. */
const BUILD_INPUTS = ["src", "scripts/build.ts", "package.json", "package-lock.json", "tsconfig.json", "node_modules/.package-lock.json"];

function buildKey(): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(`${Bun.version} ${Bun.revision}\0`);
  const add = (rel: string) => {
    const abs = join(REPO, rel);
    if (!existsSync(abs)) return h.update(`${rel}\0missing\0`);
    if (statSync(abs).isDirectory()) return readdirSync(abs).sort().forEach((name) => add(`${rel}/${name}`));
    h.update(`${rel}\0`);
    h.update(readFileSync(abs));
    h.update("\0");
  };
  BUILD_INPUTS.forEach(add);
  return h.digest("hex").slice(0, 16);
}

let built: string | undefined;

/**
 * The binary as scripts/build.ts builds it from the current inputs, built at most once per test run
 * (bun test loads this module once for all test files) and kept in the temp folder under the hash of
 * its inputs, so an unchanged tree is not built again. One build per checkout is kept: a new one
 * replaces the older ones.
 */
export function builtBinary(): string {
  if (built) return built;
  const dir = join(tmpdir(), `scimd-e2e-build-${Bun.hash(REPO).toString(16)}`);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `scimd-${buildKey()}`);
  if (!existsSync(out)) {
    const partial = `${out}.${process.pid}.partial`;
    const b = Bun.spawnSync([process.execPath, "run", "scripts/build.ts"], {
      cwd: REPO,
      env: { ...process.env, SCIMD_OUTFILE: partial },
      stdout: "pipe",
      stderr: "pipe",
    });
    if (b.exitCode !== 0 || !existsSync(partial)) throw new Error(`build failed (${b.exitCode}):\n${b.stderr.toString()}`);
    renameSync(partial, out);
  }
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    // Older builds go; another run's build in progress stays unless it was abandoned long ago.
    if (path !== out && (!name.endsWith(".partial") || Date.now() - statSync(path).mtimeMs > 600_000)) rmSync(path, { force: true });
  }
  return (built = out);
}

/** Copies the run's binary (see builtBinary), alone, into `dir`; returns its path. */
export function buildBinaryInto(dir: string): string {
  const bin = join(dir, "scimd");
  copyFileSync(builtBinary(), bin);
  chmodSync(bin, 0o755);
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
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  base: string;
  /** Milliseconds from spawn until /healthz answered 200. */
  readyMs: number;
  /** Everything the server wrote so far: its log (stdout), then its stderr. */
  log: () => string;
  /** Every line of its log (stdout) so far, parsed as JSON (throws for a line that is not JSON). */
  records: () => Record<string, unknown>[];
  /** Everything it wrote to stdout so far. */
  stdout: () => string;
  waitForLog: (re: RegExp, ms?: number) => Promise<void>;
  /** Sends SIGTERM and resolves with the exit code, or undefined after `ms`. */
  stop: (ms?: number) => Promise<number | undefined>;
  /** Set when the process exited before answering /healthz (e.g. it refused the database). */
  exited?: number;
}

/** A JSON request to a served scimd's SCIM API with a bearer token: status, headers and the parsed body (undefined when empty). */
export async function api(s: Served, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/scim+json" } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/**
 * Runs `bin <args…>` in `cwd` with a clean environment (plus `env`), to its end: exit code, stdout,
 * stderr. `bin` is the binary's path or a command prefix such as SOURCE.
 */
export function runCli(bin: string | string[], cwd: string, args: string[], env: Record<string, string> = {}): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([...[bin].flat(), ...args], { cwd, env: { ...cleanEnv(), ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** scimd from source, as a command prefix in place of the binary: `[...SOURCE, "serve", …]`. */
export const SOURCE = [process.execPath, join(REPO, "src/main.ts")];

/**
 * Starts `bin serve` on a free port with `args`, in `cwd`, and waits until /healthz answers or the
 * process exits. `bin` is the binary's path or a command prefix such as SOURCE; `env` is added to the
 * clean environment. Every process started is added to `started` (and removed when it exits).
 */
export async function startServe(
  bin: string | string[],
  cwd: string,
  args: string[],
  started: Set<Bun.Subprocess>,
  timeoutMs = 5000,
  env: Record<string, string> = {},
): Promise<Served> {
  const port = await freePort();
  const t0 = performance.now();
  const proc = Bun.spawn([...[bin].flat(), "serve", "--port", String(port), "--host", "127.0.0.1", ...args], {
    cwd,
    env: { ...cleanEnv(), ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  started.add(proc);
  void proc.exited.then(() => started.delete(proc));
  let out = "";
  let err = "";
  const drain = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) add(decoder.decode(chunk, { stream: true }));
  };
  const drained = Promise.all([drain(proc.stdout, (s) => (out += s)), drain(proc.stderr, (s) => (err += s))]);
  const all = () => out + err;
  const url = `http://127.0.0.1:${port}`;
  const served: Served = {
    proc,
    url,
    base: `${url}${BASE_PATH}`,
    readyMs: 0,
    log: all,
    stdout: () => out,
    records: () =>
      out
        .slice(0, out.lastIndexOf("\n") + 1)
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            throw new Error(`scimd wrote a log line that is not JSON: ${l}`);
          }
        }),
    waitForLog: async (re, ms = 3000) => {
      const until = Date.now() + ms;
      while (!re.test(all()) && Date.now() < until) await Bun.sleep(20);
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
    throw new Error(`scimd serve did not answer /healthz within ${timeoutMs} ms; output:\n${all()}`);
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
