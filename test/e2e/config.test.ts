/**
 * The config file through the compiled binary: `scimd serve --config FILE` (and SCIMD_CONFIG) serves
 * with the file's settings, a flag wins over the file, a mistake in the file stops serve with one
 * line before anything is created, and `scimd config` reads the systemd unit's command line.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { BASE_PATH, buildBinaryInto, cleanEnv, freePort, REPO, stopAll } from "./harness";

let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();
let seq = 0;
const folder = () => {
  const d = join(tmp, `case-${++seq}`);
  mkdirSync(d, { recursive: true });
  return d;
};

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-config-e2e-"));
  bin = buildBinaryInto(tmp);
}, 60_000);
afterAll(() => stopAll(started, tmp));

function run(args: string[], env: Record<string, string> = {}, cwd = tmp) {
  const p = Bun.spawnSync([bin, ...args], { cwd, env: { ...cleanEnv(), ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** Starts `scimd serve args…` and waits for /healthz on `port`; throws with its stderr when it does not answer. */
async function serveOn(port: number, args: string[], env: Record<string, string> = {}, cwd = tmp) {
  const proc = Bun.spawn([bin, "serve", ...args], { cwd, env: { ...cleanEnv(), ...env }, stdout: "ignore", stderr: "pipe" });
  started.add(proc);
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) break;
    await Bun.sleep(20);
  }
  const stop = async () => {
    proc.kill("SIGTERM");
    const code = await proc.exited;
    started.delete(proc);
    return code;
  };
  if (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
    proc.kill("SIGKILL");
    await proc.exited;
    throw new Error(`serve did not answer on ${port}: ${await new Response(proc.stderr).text()}`);
  }
  return { stop };
}

/** The SCIM filter.maxResults the server at `port` advertises, read with a token made in `db`. */
async function maxResultsOf(port: number, db: string): Promise<number> {
  const t = run(["generate-token", "--name", `t${++seq}`, "--db", db]);
  expect(t.code).toBe(0);
  const res = await fetch(`http://127.0.0.1:${port}${BASE_PATH}/ServiceProviderConfig`, { headers: { Authorization: `Bearer ${t.out.trim()}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { filter: { maxResults: number } }).filter.maxResults;
}

describe("dist/scimd serve --config FILE", () => {
  it("listens on the file's port, uses its database and its limits; a flag wins over the file", async () => {
    const dir = folder();
    const port = await freePort();
    const db = join(dir, "from-file", "scimd.db");
    const file = join(dir, "scimd.toml");
    writeFileSync(file, `port = ${port}\ndb = "${db}"\nmax_results = 77\nlog-level = "warn"\n`);
    const s = await serveOn(port, ["--config", file]);
    try {
      expect(existsSync(db)).toBe(true);
      expect(await maxResultsOf(port, db)).toBe(77);
    } finally {
      expect(await s.stop()).toBe(0);
    }
    const flagPort = await freePort();
    const t = await serveOn(flagPort, ["--config", file, "--port", String(flagPort), "--max-results", "5"]);
    try {
      expect(await maxResultsOf(flagPort, db)).toBe(5);
    } finally {
      expect(await t.stop()).toBe(0);
    }
  }, 30_000);

  it("SCIMD_CONFIG names the file, and a SCIMD_* variable wins over it", async () => {
    const dir = folder();
    const port = await freePort();
    const db = join(dir, "scimd.db");
    const file = join(dir, "scimd.toml");
    writeFileSync(file, `port = ${port}\ndb = "${db}"\nmax-results = 40\n`);
    const s = await serveOn(port, [], { SCIMD_CONFIG: file, SCIMD_MAX_RESULTS: "41" });
    try {
      expect(await maxResultsOf(port, db)).toBe(41);
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 30_000);

  const mistakes: [string, string, string][] = [
    ["an unknown key", `prot = 1\n`, `: unknown key 'prot' (did you mean 'port'?); the keys are serve's option names: `],
    ["a value of the wrong type", `port = "8080"\n`, `: port must be a whole number without quotes, e.g. port = 8080; got "8080" (a string)`],
    ["invalid TOML", `port = = 1\n`, `:1:8: not valid TOML: invalid value`],
  ];
  it.each(mistakes)("refuses %s: exit 2, one line naming the file, and no database created", (_t, text, message) => {
    const dir = folder();
    const file = join(dir, "scimd.toml");
    writeFileSync(file, `db = "${join(dir, "scimd.db")}"\n${text}`);
    const r = run(["serve", "--config", file]);
    expect([r.code, r.out]).toEqual([2, ""]);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).toStartWith(`scimd: ${file}${message.replace(/^:1:/, ":2:")}`);
    expect(existsSync(join(dir, "scimd.db"))).toBe(false);
  });

  it("masks a password in a database URL's query string: in `scimd config` and in serve's started event", () => {
    const db = "postgres://scimd@db.example.com/scimd?sslmode=require&password=hunter2";
    const shown = "postgres://scimd@db.example.com/scimd?sslmode=require&password=***";
    const c = run(["config", "--db", db]);
    expect(c.code).toBe(0);
    expect(c.out).toContain(`db = "${shown}"`);
    const s = run(["serve", "--port", "0", "--log-format", "json"], { SCIMD_DB: db });
    expect(s.code).not.toBe(0);
    const started = s.out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.event === "started");
    expect(started?.db).toBe(shown);
    for (const text of [c.out, c.err, s.out, s.err]) expect(text).not.toContain("hunter2");
  });

  it("refuses a config file that does not exist in one line, exit 2", () => {
    const missing = join(folder(), "nope.toml");
    const r = run(["serve"], { SCIMD_CONFIG: missing });
    expect([r.code, r.err]).toEqual([2, `scimd: cannot read the config file ${missing} (SCIMD_CONFIG): no such file\n`]);
  });
});

describe("dist/scimd config", () => {
  it("reads the systemd unit's ExecStart (with the example as /etc/scimd/scimd.toml) and says where each value comes from", () => {
    const unit = readFileSync(join(REPO, "scripts/scimd.service"), "utf8");
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(/\s+/);
    const example = join(REPO, "scripts/scimd.toml");
    const args = exec.slice(2).map((a) => (a === "/etc/scimd/scimd.toml" ? example : a));
    const r = run(["config", ...args]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^db = "\/var\/lib\/scimd\/scimd\.db" +# flag --db$/m);
    expect(r.out).toMatch(new RegExp(`^base-url = "https://scim.example.com/api/v1/scim" +# file ${example}$`, "m"));
    const doc = parseToml(r.out);
    expect(doc).toMatchObject({ db: "/var/lib/scimd/scimd.db", port: 8080, host: "127.0.0.1", "log-level": "info" });
    const json = JSON.parse(run(["config", ...args, "--json"]).out);
    expect(json.config).toBe(example);
    expect(json.settings.db).toEqual({ value: "/var/lib/scimd/scimd.db", source: "flag", from: "--db" });
  });
});

describe("dist/scimd generate-token: the URL it prints for the IdP", () => {
  /** The URL line and the lines after "Authentication" up to the "shown once" line. */
  function urlOf(err: string): { url: string; guidance: string } {
    const url = /Tenant URL: (\S+)\n/.exec(err)![1]!;
    const guidance = err.split("\n").filter((l) => !l.startsWith(" ") && !/^(Created|In your|This token|To give|Scope:|Expires:)/.test(l)).join("\n");
    return { url, guidance };
  }

  it("on serve's defaults: the loopback URL, said to be loopback only, with what to do for a cloud IdP", () => {
    const db = join(folder(), "scimd.db");
    const r = run(["generate-token", "--name", "okta", "--db", db, "--create"]);
    expect(r.code).toBe(0);
    const { url, guidance } = urlOf(r.err);
    expect(url).toBe(`http://127.0.0.1:8080${BASE_PATH}`);
    expect(guidance).toContain("That URL is loopback only (serve's default for plain HTTP)");
    expect(guidance).toContain("start serve with --base-url set to the public https URL");
  });

  it("with serve's config file: the database, the base URL or the ACME domain from it, as serve reads them", () => {
    const dir = folder();
    const db = join(dir, "scimd.db");
    const acme = join(dir, "acme.toml");
    writeFileSync(acme, `db = "${db}"\nacme-domain = "scim.example.com"\nacme-email = "it@example.com"\nport = 443\n`);
    const a = run(["generate-token", "--name", "okta", "--config", acme, "--create"]);
    expect(a.code).toBe(0);
    expect(a.err).toContain(`Created token 'okta' (id `);
    expect(a.err).toContain(` in ${db}.`);
    expect(urlOf(a.err).url).toBe(`https://scim.example.com${BASE_PATH}`);
    expect(urlOf(a.err).guidance).not.toContain("loopback");
    const proxied = join(dir, "proxied.toml");
    writeFileSync(proxied, `db = "${db}"\nbase-url = "https://scim.example.org${BASE_PATH}"\n`);
    const b = run(["generate-token", "--name", "entra"], { SCIMD_CONFIG: proxied });
    expect(b.code).toBe(0);
    expect(urlOf(b.err)).toEqual({ url: `https://scim.example.org${BASE_PATH}`, guidance: "" });
    // The file is checked as serve checks it.
    writeFileSync(proxied, `db = "${db}"\nbase_url = "https://scim.example.org${BASE_PATH}"\nprot = 1\n`);
    const c = run(["generate-token", "--name", "x", "--config", proxied]);
    expect([c.code, c.out]).toEqual([2, ""]);
    expect(c.err).toStartWith(`scimd: ${proxied}: unknown key 'prot' (did you mean 'port'?)`);
  });
});
