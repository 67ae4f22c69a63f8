/**
 * Idle connections (issue 13's row "20,500 idle unauthenticated connections: new connections time
 * out, CPU at 81%"): starts the compiled binary with its open-file limit lowered to FDS (default
 * 5,000, so the row reproduces at a size this machine's own limits allow), opens N idle connections
 * from 127.0.0.2 (default FDS + 100), then, while they are held, sends `/healthz` from 127.0.0.1 on a
 * new connection each time and samples scimd's CPU. It runs once without a cap and once with
 * `--max-connections-per-client` (default 1,000) and reports, for each: how many of the idle
 * connections stayed open, how many /healthz timed out (2 s), the slowest answered, and scimd's CPU.
 * Usage: bun run scripts/bench-idle-connections.ts [--bin dist/scimd] [--fds 5000] [--idle N] [--cap 1000]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const args = process.argv.slice(2);
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const bin = resolve(option("--bin") ?? "dist/scimd");
if (!existsSync(bin)) throw new Error(`no binary at ${bin}: run \`bun run scripts/build.ts\` first`);
const fds = Number(option("--fds") ?? 5000);
const idleCount = Number(option("--idle") ?? fds + 100);
const cap = Number(option("--cap") ?? 1000);
const dir = mkdtempSync(join(tmpdir(), "scimd-bench-idle-"));

/** scimd's CPU time so far, in seconds (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/** One /healthz on a new connection: its time in ms, or undefined past 2 s. */
async function health(port: number): Promise<number | undefined> {
  const t0 = performance.now();
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { keepalive: false, headers: { Connection: "close" }, signal: AbortSignal.timeout(2000) });
    await r.text();
    return r.ok ? performance.now() - t0 : undefined;
  } catch {
    return undefined;
  }
}

async function run(label: string, flags: string[]) {
  const port = await freePort();
  const db = join(dir, `${label.replace(/\W+/g, "-")}.db`);
  // The shell lowers the hard limit; Bun raises its soft limit to the hard one.
  const proc = Bun.spawn(["sh", "-c", `ulimit -n ${fds} && exec "$0" "$@"`, bin, "serve", "--db", db, "--port", String(port), "--log-level", "error", ...flags], {
    stdout: "ignore",
    stderr: "pipe",
  });
  const sockets: Socket[] = [];
  try {
    for (const until = Date.now() + 10_000; (await health(port)) === undefined; ) if (Date.now() > until) throw new Error("scimd did not start");
    let open = 0;
    for (let i = 0; i < idleCount; i += 200) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(200, idleCount - i) }, () => {
          const s = connect({ port, host: "127.0.0.1", localAddress: "127.0.0.2" });
          s.on("error", () => {});
          sockets.push(s);
          return new Promise<void>((done) => {
            s.once("connect", () => (open++, done()));
            s.once("error", () => done());
            setTimeout(done, 2000);
          });
        }),
      );
      void batch;
    }
    await Bun.sleep(1000);
    const held = sockets.filter((s) => !s.destroyed && s.readyState === "open").length;
    const c0 = cpuSeconds(proc.pid), t0 = performance.now();
    const times: (number | undefined)[] = [];
    for (let i = 0; i < 10; i++) times.push(await health(port));
    const cpu = ((cpuSeconds(proc.pid) - c0) / ((performance.now() - t0) / 1000)) * 100;
    const answered = times.filter((t): t is number => t !== undefined);
    console.log(
      `${label}: ${open} idle connections opened, ${held} still open after 1 s; /healthz: ${10 - answered.length}/10 timed out (2 s)` +
        (answered.length ? `, slowest answered ${Math.max(...answered).toFixed(1)} ms` : "") +
        `; scimd CPU ${cpu.toFixed(0)}%`,
    );
  } finally {
    for (const s of sockets) s.destroy();
    proc.kill("SIGTERM");
    await Promise.race([proc.exited, Bun.sleep(5000)]);
    proc.kill("SIGKILL");
  }
}

try {
  console.log(`scimd with an open-file limit of ${fds}, ${idleCount} idle connections from 127.0.0.2, /healthz from 127.0.0.1`);
  await run("no cap", []);
  await run(`--max-connections-per-client ${cap}`, ["--max-connections-per-client", String(cap)]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
