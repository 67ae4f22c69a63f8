/**
 * A throwaway PostgreSQL cluster: the machine's own server binaries (Debian's `postgresql` package,
 * /usr/lib/postgresql/<major>/bin, or SCIMD_PG_BIN), `initdb` on a temp folder, `pg_ctl start -w` on
 * a free loopback port, removed again by `stop()`. Used by the tests (test/store/postgres/cluster.ts)
 * and by `npm run bench -- --db postgres`; nothing here imports bun:test.
 *
 * initdb and postgres refuse to run as root (CI and this machine run as root): as root they are run
 * as the `postgres` system user, on a folder owned by it. The cluster listens on 127.0.0.1 only and
 * trusts connections there for one superuser role `scimd_test` without a password. `passwordRoles`
 * names roles that must log in with a password instead (scram-sha-256 over 127.0.0.1, ahead of the
 * trust lines in pg_hba.conf); the caller creates them (`CREATE ROLE … LOGIN PASSWORD …`).
 *
 * By default (tests) fsync, synchronous_commit and full_page_writes are off: a crash may corrupt the
 * cluster, which is thrown away anyway. `durable: true` keeps PostgreSQL's defaults (each commit
 * flushed to disk), as the benchmark needs to compare with SQLite's --sync full.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PG_ROOT = "/usr/lib/postgresql";
export const INSTALL_HINT = "apt-get install postgresql";

/** The newest server binaries folder on this machine, or undefined. */
function findBin(): string | undefined {
  if (process.env.SCIMD_PG_BIN) return existsSync(join(process.env.SCIMD_PG_BIN, "initdb")) ? process.env.SCIMD_PG_BIN : undefined;
  if (!existsSync(PG_ROOT)) return undefined;
  const majors = readdirSync(PG_ROOT)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(PG_ROOT, d, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(PG_ROOT, majors[0], "bin");
}

const BIN = findBin();
/** Whether the server binaries are here. */
export const postgresAvailable = BIN !== undefined;
/** Why a cluster cannot be started here, with the install command. */
export const UNAVAILABLE_MESSAGE = `no PostgreSQL server binaries under ${PG_ROOT}/*/bin; install them with: ${INSTALL_HINT}`;

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Runs a server binary, as the postgres user when we are root; throws with its output when it fails. */
function run(bin: string, args: string[], timeoutMs = 60_000): void {
  const [cmd, argv] = isRoot ? ["runuser", ["-u", "postgres", "--", join(BIN!, bin), ...args]] : [join(BIN!, bin), args];
  const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: timeoutMs, env: { ...process.env, LC_ALL: "C", LANG: "C" } });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
}

/** run, without blocking the event loop (a test's load goes on while the server stops and starts). */
async function runAsync(bin: string, args: string[], timeoutMs = 60_000): Promise<void> {
  const argv = isRoot ? ["runuser", "-u", "postgres", "--", join(BIN!, bin), ...args] : [join(BIN!, bin), ...args];
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, LC_ALL: "C", LANG: "C" }, timeout: timeoutMs });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${bin} ${args.join(" ")} failed (exit ${code}):\n${out}\n${err}`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface PgCluster {
  port: number;
  /** A URL of database `db` on this cluster (as scimd's --db takes it). */
  url(db?: string): string;
  /** Stops the server, keeping its data (`pg_ctl stop -m fast`: connections are ended). */
  halt(): void;
  /** Starts a halted server again on the same port. */
  resume(): void;
  /**
   * Stops the server (`pg_ctl stop -m fast`: sessions are ended, in-flight transactions rolled back),
   * keeps it down for `downMs`, and starts it again, without blocking the event loop. Resolves with
   * the moments (performance.now()) the stop returned and the start returned.
   */
  restart(downMs: number): Promise<{ stoppedAt: number; startedAt: number }>;
  /** Stops the server and removes its folder. Safe to call twice. */
  stop(): void;
}

export const TEST_ROLE = "scimd_test";

export interface ClusterOptions {
  /** Keep fsync, synchronous_commit and full_page_writes on (default false: off, tests only). */
  durable?: boolean;
  /** shared_buffers (default 32MB). */
  sharedBuffers?: string;
  /** Roles that authenticate with a password (scram-sha-256 from 127.0.0.1); every other role is trusted. */
  passwordRoles?: string[];
}

/** Starts a new cluster; throws (with initdb's or pg_ctl's output) when it cannot. */
export async function startCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  if (!BIN) throw new Error(UNAVAILABLE_MESSAGE);
  const dir = mkdtempSync(join(tmpdir(), "scimd-pg-"));
  const data = join(dir, "data");
  if (isRoot) {
    const uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim());
    const gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error("running as root, but there is no 'postgres' user to run the server as");
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  let started = false;
  const stop = () => {
    if (started) {
      started = false;
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"], 30_000);
      } catch {
        // already gone: the folder is removed anyway
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run("initdb", ["-D", data, "-U", TEST_ROLE, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
    if (opts.passwordRoles?.length) {
      // pg_hba.conf is read top down, first match wins: these lines go before initdb's trust lines.
      const hba = join(data, "pg_hba.conf");
      const lines = opts.passwordRoles.map((role) => `host all ${role} 127.0.0.1/32 scram-sha-256`);
      writeFileSync(hba, [...lines, readFileSync(hba, "utf8")].join("\n"));
    }
    // A few tries: another process may take the port between freePort() and the server's bind.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      writeFileSync(
        join(data, "postgresql.auto.conf"),
        [
          `port = ${port}`,
          "listen_addresses = '127.0.0.1'",
          `unix_socket_directories = '${dir}'`,
          // Tests only: nothing of this cluster must survive a crash.
          ...(opts.durable ? [] : ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]),
          "max_connections = 200",
          `shared_buffers = ${opts.sharedBuffers ?? "32MB"}`,
          "log_min_messages = warning",
          "",
        ].join("\n"),
      );
      try {
        run("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"], 90_000);
        started = true;
        const halt = () => {
          run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"], 60_000);
          started = false;
        };
        const resume = () => {
          run("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"], 90_000);
          started = true;
        };
        const restart = async (downMs: number) => {
          await runAsync("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
          started = false;
          const stoppedAt = performance.now();
          await Bun.sleep(downMs);
          await runAsync("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"], 90_000);
          started = true;
          return { stoppedAt, startedAt: performance.now() };
        };
        return { port, url: (db = "postgres") => `postgres://${TEST_ROLE}@127.0.0.1:${port}/${db}`, halt, resume, restart, stop };
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
  } catch (e) {
    stop();
    throw e;
  }
}
