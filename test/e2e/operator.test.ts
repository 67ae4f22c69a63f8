/**
 * Operator mistakes fail loudly: a second server on a busy port, a token name used twice, a rotation,
 * a --db that does not exist, `kill` of `npm start`, a base URL without the API path, the commands
 * scimd suggests, and the binary's command line read as the source reads it. Every case runs real processes (scimd from source, and a slice from the compiled
 * binary) on 127.0.0.1 against SQLite files in a temp folder.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GENERATE_FLAGS, TOKENS_FLAGS } from "../../src/cli/tokens";
import { POSTGRES_HELP } from "../../src/cli/db-password";
import { flagHelp, SERVE_FLAGS } from "../../src/config";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { userBody } from "../helpers";
import { BASE_PATH, buildBinaryInto, cleanEnv, freePort, REPO, SOURCE, startServe, stopAll, type Served } from "./harness";

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

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs `prefix …args` (SOURCE or [bin]) to completion with a clean environment plus `env`. */
function run(prefix: string[], args: string[], env: Record<string, string> = {}, cwd = tmp): Run {
  const p = Bun.spawnSync([...prefix, ...args], { cwd, env: { ...cleanEnv(), ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}
/** scimd (the compiled binary: the product, and it starts in a fraction of the time of the source). */
const cli = (args: string[], env: Record<string, string> = {}) => run([bin], args, env);

/** Runs a command line exactly as a person pasting it would: through sh, from another folder. */
function paste(line: string, cwd = tmp): Run {
  const p = Bun.spawnSync(["sh", "-c", line], { cwd, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** The indented line right after the first line matching `intro` (how scimd prints a suggested command). */
function suggested(text: string, intro: RegExp): string {
  const lines = text.split("\n");
  const i = lines.findIndex((l) => intro.test(l));
  expect(i).toBeGreaterThanOrEqual(0);
  const next = lines[i + 1] ?? "";
  expect(next).toMatch(/^ {2}\S/);
  return next.trim();
}

const status = async (s: Served, token: string, path = "/Users?count=0") => (await fetch(`${s.base}${path}`, { headers: { Authorization: `Bearer ${token}` } })).status;

/** A new scimd database without tokens (as serve creates it) in a fresh folder; returns its path. */
function newDb(): string {
  const db = join(folder(), "scimd.db");
  new SqliteStore(db).close();
  return db;
}

function token(r: Run): string {
  expect(r.code).toBe(0);
  const lines = r.out.split("\n").filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^scimd_[A-Za-z0-9_-]{43}$/);
  return lines[0]!;
}

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

describe("token names are unique; rotate issues a new secret under the same name with a grace period", () => {
  it("generate-token refuses a taken name, prints no secret, stores nothing, and the commands it suggests work when pasted", async () => {
    const db = newDb();
    token(cli(["generate-token", "--name", "okta", "--db", db]));
    const again = cli(["generate-token", "--name", "okta", "--db", db]);
    expect(again.code).toBe(1);
    expect(again.out).toBe("");
    expect(again.err).toMatch(/token named 'okta' already exists/);
    const list = cli(["tokens", "list", "--db", db]);
    expect(list.out.split("\n").filter((l) => l.startsWith("okta "))).toHaveLength(1);
    // The rotate command it suggests, pasted as printed, rotates.
    const rotate = suggested(again.err, /already exists/);
    expect(rotate).toContain("rotate okta");
    token(paste(rotate));
    const after = cli(["tokens", "list", "--db", db]).out;
    expect(after).toMatch(/^okta +\S+ +write +expires in 23h 59m \(rotated\)/m);
    expect(after).toMatch(/^okta +\S+ +write +active /m);
  });

  it("through a running server: after rotate both secrets work, the old one is refused once the grace period ends, and the new one keeps working", async () => {
    const dir = folder();
    const db = join(dir, "scimd.db");
    const s = await startServe(bin, dir, ["--db", db], started);
    try {
      const old = token(cli(["generate-token", "--name", "okta", "--db", db]));
      expect(await status(s, old)).toBe(200);
      const r = cli(["tokens", "rotate", "okta", "--grace", "2s", "--db", db]);
      const fresh = token(r);
      expect(fresh).not.toBe(old);
      expect(r.err).not.toContain(fresh);
      const until = Date.parse(/stays valid until (\S+)/.exec(r.err)![1]!);
      expect(await status(s, old)).toBe(200);
      expect(await status(s, fresh)).toBe(200);
      expect(cli(["tokens", "list", "--db", db]).out).toMatch(/^okta +\S+ +write +expires in [0-2]s \(rotated\)/m);
      await Bun.sleep(Math.max(0, until - Date.now()) + 50);
      expect(await status(s, old)).toBe(401);
      expect(await status(s, fresh)).toBe(200);
      // The replaced secret is history: shown with --all only, as replaced at the end of its grace.
      const shown = cli(["tokens", "list", "--db", db]);
      expect(shown.out).toMatch(/^okta +\S+ +write +active /m);
      expect(shown.out.match(/^okta /gm)).toHaveLength(1);
      expect(shown.err).toContain("(1 replaced secret not shown: ");
      const list = cli(["tokens", "list", "--all", "--db", db]).out;
      expect(list).toMatch(new RegExp(`^okta +\\S+ +write +replaced +${new Date(until).toISOString().replace(/\./g, "\\.")} `, "m"));
      expect(list).toMatch(/^okta +\S+ +write +active /m);
      expect(list).not.toContain(old);
      expect(list).not.toContain(fresh);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 20_000);

  it("--grace 0 refuses the old secret on the next request; revoke ID removes one secret, revoke NAME every secret of the name", async () => {
    const dir = folder();
    const db = join(dir, "scimd.db");
    const s = await startServe(bin, dir, ["--db", db], started);
    try {
      const a = token(cli(["generate-token", "--name", "okta", "--db", db]));
      const b = token(cli(["tokens", "rotate", "okta", "--grace", "0", "--db", db]));
      expect(await status(s, a)).toBe(401);
      expect(await status(s, b)).toBe(200);
      const r = cli(["tokens", "rotate", "okta", "--grace", "7d", "--db", db]);
      const c = token(r);
      expect(r.err).toMatch(/stays valid until \S+ \(in 7d\)/);
      expect(await status(s, b)).toBe(200);
      // The revoke command the rotation suggests removes exactly the previous secret.
      const revokeOld = suggested(r.err, /refuse the old one at once/);
      expect(paste(revokeOld).code).toBe(0);
      expect(await status(s, b)).toBe(401);
      expect(await status(s, c)).toBe(200);
      const d = token(cli(["tokens", "rotate", "okta", "--db", db]));
      const all = cli(["tokens", "revoke", "okta", "--db", db]);
      expect(all.code).toBe(0);
      expect(all.err).toMatch(/revoked token 'okta' \(3 secrets\)/);
      for (const t of [c, d]) expect(await status(s, t)).toBe(401);
      // A revoked name is free again.
      token(cli(["generate-token", "--name", "okta", "--db", db]));
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 20_000);

  it("tokens rotate refuses a --grace it cannot read with exit code 2, changing nothing", () => {
    const db = newDb();
    token(cli(["generate-token", "--name", "okta", "--db", db]));
    const before = cli(["tokens", "list", "--db", db]).out;
    const r = cli(["tokens", "rotate", "okta", "--grace=1y", "--db", db]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/--grace must be/);
    expect(cli(["tokens", "list", "--db", db]).out).toBe(before);
  });

  it("tokens rotate of a name no token has exits 1 and stores nothing", () => {
    const db = newDb();
    const r = cli(["tokens", "rotate", "okta", "--db", db]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/no token named 'okta'/);
    expect(cli(["tokens", "list", "--db", db]).err).toMatch(/no tokens/);
  });
});

describe("generate-token and tokens on a --db that does not exist", () => {
  const commands: [string, string[]][] = [
    ["generate-token", ["generate-token", "--name", "okta"]],
    ["tokens list", ["tokens", "list"]],
    ["tokens rotate", ["tokens", "rotate", "okta"]],
    ["tokens revoke", ["tokens", "revoke", "okta"]],
  ];
  it.each(commands)("%s refuses it with exit code 1, names the path, says serve creates it, and creates neither file nor folder", (_t, args) => {
    const db = join(folder(), "missing", "scimd.db");
    const r = cli([...args, "--db", db]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toContain(db);
    expect(r.err).toMatch(/'serve' creates it/);
    expect(existsSync(join(db, ".."))).toBe(false);
  });

  it("the binary refuses too, for the default ./data/scimd.db in an empty folder", () => {
    const dir = folder();
    const r = run([bin], ["generate-token", "--name", "okta"], {}, dir);
    expect(r.code).toBe(1);
    expect(r.err).toContain(join(dir, "data", "scimd.db"));
    expect(readdirSync(dir)).toEqual([]);
  });

  it("generate-token --create creates it, and the command the refusal suggests (with --create) works when pasted", () => {
    const db = join(folder(), "new", "scimd.db");
    const refused = cli(["generate-token", "--name", "okta", "--db", db]);
    const line = suggested(refused.err, /add --create/);
    expect(line).toContain("--create");
    token(paste(line));
    expect(existsSync(db)).toBe(true);
    expect(cli(["tokens", "list", "--db", db]).out).toMatch(/^okta +\S+ +write +active /m);
  });

  it("a server started with the command the refusal suggests uses that database", async () => {
    const db = join(folder(), "later", "scimd.db");
    const refused = cli(["tokens", "list", "--db", db]);
    const line = suggested(refused.err, /start the server first/);
    expect(line).toContain(db);
    // The suggested serve line, on a free port of 127.0.0.1 (flags after it win).
    const port = await freePort();
    const p = Bun.spawn(["sh", "-c", `exec ${line} --port ${port} --host 127.0.0.1`], { cwd: tmp, env: cleanEnv(), stdout: "ignore", stderr: "ignore" });
    started.add(p);
    try {
      expect(await healthy(port, 15_000)).toBe(true);
      expect(existsSync(db)).toBe(true);
    } finally {
      const children = descendants(p.pid);
      p.kill("SIGTERM");
      await exitOf(p, 5000);
      for (const c of children) killIfAlive(c);
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
      const log = await new Response(npm.stdout).text();
      expect(log).toMatch(/"event":"stopping"/);
      expect(log).toMatch(/"signal":"SIGTERM"/);
    } finally {
      // An orphaned server (the bug this test is about) must not outlive the test.
      for (const pid of [...below, ...descendants(npm.pid)]) killIfAlive(pid);
    }
  }, 30_000);
});

describe("the URL and the commands that generate-token and serve print", () => {
  const urls: [string, string[], Record<string, string>, string][] = [
    ["--port and --host", ["--port", "9123", "--host", "127.0.0.1"], {}, `http://127.0.0.1:9123${BASE_PATH}`],
    ["SCIMD_PORT and SCIMD_HOST", [], { SCIMD_PORT: "9124", SCIMD_HOST: "10.1.2.3" }, `http://10.1.2.3:9124${BASE_PATH}`],
    ["an IPv6 --host", ["--host", "::1"], {}, `http://[::1]:8080${BASE_PATH}`],
    ["the defaults (loopback, port 8080)", [], {}, `http://127.0.0.1:8080${BASE_PATH}`],
    ["--base-url", ["--port", "9125", "--base-url", `https://scim.example.com${BASE_PATH}`], {}, `https://scim.example.com${BASE_PATH}`],
    ["SCIMD_BASE_URL", [], { SCIMD_BASE_URL: `https://idp-facing.example.org${BASE_PATH}/` }, `https://idp-facing.example.org${BASE_PATH}`],
  ];
  it.each(urls)("generate-token prints the SCIM base URL from %s", (_t, args, env, url) => {
    const db = newDb();
    const r = cli(["generate-token", "--name", "okta", "--db", db, ...args], env);
    token(r);
    expect(r.err).toContain(`SCIM base URL / Tenant URL: ${url}\n`);
    expect(r.err).not.toMatch(/<[a-z|-]+>/);
  });

  it("the URL generate-token prints is the one the server serves: the IdP's request to it succeeds", async () => {
    const dir = folder();
    const db = join(dir, "scimd.db");
    const s = await startServe(bin, dir, ["--db", db], started);
    try {
      const port = new URL(s.url).port;
      const r = cli(["generate-token", "--name", "okta", "--db", db, "--port", port, "--host", "127.0.0.1"]);
      const t = token(r);
      const url = /Tenant URL: (\S+)/.exec(r.err)![1]!;
      const res = await fetch(`${url}/ServiceProviderConfig`, { headers: { Authorization: `Bearer ${t}` } });
      expect(res.status).toBe(200);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  const servers: [string, () => string[]][] = [
    ["from source", () => SOURCE],
    ["the compiled binary", () => [bin]],
  ];
  it.each(servers)("serve (%s) on a database without tokens prints a generate-token command that works pasted into a shell from another folder", async (_t, prefix) => {
    const dir = folder();
    const s = await startServe(prefix(), dir, ["--db", "./fresh/scimd.db"], started);
    try {
      await s.waitForLog(/no API token exists yet/);
      const line = String(s.records().find((r) => /no API token exists yet/.test(String(r.message)))?.command);
      expect(line).toContain(join(dir, "fresh", "scimd.db"));
      const r = paste(line, folder());
      const t = token(r);
      expect(await status(s, t)).toBe(200);
      // The rotate command of the banner, pasted, rotates the token the server then accepts.
      const rotate = suggested(r.err, /To give it a new secret later/);
      const fresh = token(paste(rotate, folder()));
      expect(await status(s, fresh)).toBe(200);
      expect(await status(s, t)).toBe(200);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 20_000);
});

describe("--base-url without the /api/v1/scim path", () => {
  it("serve warns at start with what Location will look like and what to pass, and Location is indeed that", async () => {
    const dir = folder();
    const db = newDb();
    const t = token(cli(["generate-token", "--name", "okta", "--db", db]));
    const s = await startServe(bin, dir, ["--db", db, "--base-url", "https://scim.example.com"], started);
    try {
      await s.waitForLog(/warning/);
      expect(s.log()).toContain(`Location headers and meta.location will read https://scim.example.com/Users/{id}`);
      expect(s.log()).toContain(`otherwise pass --base-url https://scim.example.com${BASE_PATH}`);
      const res = await fetch(`${s.base}/Users`, {
        method: "POST",
        headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/scim+json" },
        body: JSON.stringify(userBody("located@example.com")),
      });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      expect(res.headers.get("location")).toBe(`https://scim.example.com/Users/${id}`);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  it("serve does not warn when the base URL ends in /api/v1/scim (with or without a trailing slash)", async () => {
    for (const url of [`https://scim.example.com${BASE_PATH}`, `https://example.com/idp${BASE_PATH}/`]) {
      const dir = folder();
      const s = await startServe(bin, dir, ["--db", join(dir, "scimd.db"), "--base-url", url], started);
      try {
        await s.waitForLog(/"event":"listening"/);
        expect(s.records().find((r) => r.event === "listening")?.apiUrl).toBe(url.replace(/\/$/, ""));
        expect(s.log()).not.toMatch(/warning/i);
      } finally {
        expect(await s.stop()).toBe(0);
      }
    }
  });

  it("generate-token repeats the warning next to the URL it prints", () => {
    const db = newDb();
    const r = cli(["generate-token", "--name", "okta", "--db", db], { SCIMD_BASE_URL: "https://scim.example.com/" });
    token(r);
    expect(r.err).toContain("does not end in /api/v1/scim");
    expect(r.err).toContain(`otherwise pass --base-url https://scim.example.com${BASE_PATH}`);
  });
});

describe("the binary's help", () => {
  const helps: [string, string[]][] = [["--help"], ["serve", "--help"], ["generate-token", "--help"], ["tokens", "--help"], ["config", "--help"], ["healthcheck", "--help"], ["export", "--help"], ["import", "--help"]].map((a) => [a.join(" "), a]);
  it.each(helps)("'scimd %s' suggests commands by the binary's own path, without placeholders", (_t, argv) => {
    const r = run([bin], argv);
    expect(r.code).toBe(0);
    const commands = r.out.split("\n").filter((l) => l.includes(`${bin} `));
    expect(commands.length).toBeGreaterThan(0);
    for (const l of commands) {
      expect(l).toMatch(new RegExp(`^ {2}(TOKEN=\\$\\()?${bin.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} (serve|generate-token|tokens|activity|config|healthcheck|backup|restore|export|import|migrate)( |$)`));
      expect(l).not.toMatch(/<[a-z|-]+>/);
    }
  });
});

describe("the binary's command line (node:util parseArgs under bun build --compile --minify)", () => {
  const refused: [string[], Record<string, string>, string][] = [
    [["serve", "--port", "-1"], {}, "--port must be a whole number, got '-1'"],
    [["serve", "--port"], {}, "option '--port' needs a value"],
    [["serve", "--host", "--strict"], {}, "option '--host' needs a value"],
    [["serve", "--strict=maybe"], {}, "--strict must be true or false, got 'maybe'"],
    [["serve", "--nope=1"], {}, "unknown option '--nope'"],
    [["serve", "-abc"], {}, "unknown option '-abc'"],
    [["serve", "--", "--help"], {}, "unexpected argument '--help'"],
    [["serve"], { SCIMD_PORT: "eighty" }, "SCIMD_PORT must be a whole number, got 'eighty'"],
    [["serve"], { SCIMD_MAX_RESULTS: "0" }, "SCIMD_MAX_RESULTS must be at least 1"],
    [["generate-token", "--name", "-x"], {}, "--name must not begin with '-' (the tokens commands would read '-x' as an option)"],
    [["tokens", "rotate", "okta", "--grace=1y"], {}, "--grace must be a duration such as 30m, 24h or 7d (s, m, h, d), or 0; got '1y'"],
  ];
  it.each(refused.map(([argv, env, message]) => [[...Object.entries(env).map(([k, v]) => `${k}=${v}`), "scimd", ...argv].join(" "), message, argv, env] as const))(
    "'%s' exits 2 with exactly 'scimd: %s' and the command's usage",
    (_t, message, argv, env) => {
      const r = cli([...argv], { ...env });
      expect([r.code, r.out]).toEqual([2, ""]);
      expect(r.err).toStartWith(`scimd: ${message}\n\nUsage: scimd ${argv[0]} `);
    },
  );

  it("reads --flag=value, --flag value, --bool=false, a repeated flag (the last wins) and '--' as the source does", () => {
    const db = newDb();
    const r = cli(["generate-token", "--name=okta", "--db", db, "--create=false", "--port", "1", "--port=9126", "--host=127.0.0.1"]);
    token(r);
    expect(r.err).toContain(`SCIM base URL / Tenant URL: http://127.0.0.1:9126${BASE_PATH}\n`);
    const list = cli(["tokens", `--db=${db}`, "--", "list"]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^okta +\S+ +write +active /m);
    expect(cli(["serve", "--strict=false", "--strict", "--port=1", "--help"]).code).toBe(0);
  });

  const tables: [string, Parameters<typeof flagHelp>[0]][] = [
    ["serve", SERVE_FLAGS],
    ["generate-token", GENERATE_FLAGS],
    ["tokens", TOKENS_FLAGS],
  ];
  it.each(tables)("'scimd %s --help' lists the options of the source's flag table", (command, table) => {
    const r = cli([command, "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`\nOptions:\n${flagHelp(table)}\n\n${POSTGRES_HELP}\n\nExamples:\n`);
  });
});
