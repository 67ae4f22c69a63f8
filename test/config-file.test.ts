/**
 * The config file layer (--config / SCIMD_CONFIG, TOML): defaults < file < SCIMD_* < flags, its keys
 * and types checked like flags, its errors naming the file and the key; `scimd config`, which reports
 * each value's source; the example scripts/scimd.toml and the systemd unit scripts/scimd.service.
 * Every file is a real one in a temp folder, read by the code serve runs.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { CONFIG_FLAGS, masked, renderToml, report } from "../src/cli/config";
import { ConfigFileError, FILE_FLAGS, readConfigFile, resolveFlags, SERVE_FLAGS, serveConfig, serveSettings, type Env, type ServeConfig } from "../src/config";
import { main } from "../src/main";
import { tempDir, usageErrorOf } from "./helpers";

const REPO = resolve(import.meta.dir, "..");
const { dir, cleanup } = tempDir("scimd-config-");
afterAll(cleanup);

let seq = 0;
/** Writes `text` to a new .toml file in the temp folder; returns its path. */
function toml(text: string): string {
  const p = join(dir, `c${++seq}.toml`);
  writeFileSync(p, text);
  return p;
}

function configOf(argv: string[], env: Env = {}): ServeConfig {
  const parsed = serveConfig(argv, env);
  if (parsed.help) throw new Error("asked for help");
  return parsed.config;
}

/** A configuration without the name of the file it was read from, to compare with one from flags. */
const sansFile = (c: ServeConfig): ServeConfig => ({ ...c, configFile: undefined });

describe("--config FILE: defaults < file < SCIMD_* < flags", () => {
  it("each layer wins over the one below it, and each value's source is the layer it came from", () => {
    const file = toml(`port = 8001\nhost = "127.0.0.2"\ndb = "/srv/file.db"\nmax-results = 30\n`);
    const s = serveSettings(["--config", file, "--port", "8003"], { SCIMD_PORT: "8002", SCIMD_HOST: "127.0.0.3" });
    if (s.help) throw new Error("help");
    expect([s.config.port, s.config.host, s.config.db, s.config.maxResults, s.config.maxBodyBytes]).toEqual([8003, "127.0.0.3", "/srv/file.db", 30, 1048576]);
    expect(s.config.configFile).toBe(file);
    expect(s.sources).toMatchObject({
      port: { kind: "flag", name: "--port" },
      host: { kind: "env", name: "SCIMD_HOST" },
      db: { kind: "file", path: file, key: "db" },
      "max-results": { kind: "file", path: file, key: "max-results" },
      "max-body-bytes": { kind: "default" },
      config: { kind: "flag", name: "--config" },
    });
  });

  it("SCIMD_CONFIG names the file when --config does not; --config wins over it; an empty SCIMD_CONFIG is unset", () => {
    const a = toml(`port = 8101\n`), b = toml(`port = 8102\n`);
    expect(configOf([], { SCIMD_CONFIG: a }).port).toBe(8101);
    expect(configOf(["--config", b], { SCIMD_CONFIG: a })).toMatchObject({ port: 8102, configFile: b });
    expect(configOf([], { SCIMD_CONFIG: "" })).toMatchObject({ port: 8080, configFile: undefined });
  });

  it("every option set in the file gives the configuration the same flags give", () => {
    const flags = [
      "--port=8443", "--host=::1", "--db=postgres://scimd@db.example.com:5432/scimd?sslmode=require", "--db-password-file=/etc/scimd/db-password", "--base-url=https://scim.example.com/api/v1/scim", "--strict", "--sync=normal",
      "--max-body-bytes=2048", "--max-results=50", "--max-list-members=500", "--auth-failures-per-minute=5", "--max-connections=5000", "--max-connections-per-client=100", "--acme-domain=a.example.com,b.example.com", "--acme-email=it@example.com",
      "--acme-directory=https://acme.example.com/dir", "--acme-ca-file=/etc/scimd/ca.pem", "--acme-dir=/srv/acme", "--acme-http-port=8081", "--trust-proxy=10.0.0.0/8, ::1",
      "--log-level=debug", "--log-format=json", "--metrics-listen=127.0.0.1:9464", "--activity-log", "--activity-retention=30d", "--query-timeout=30s",
    ];
    const lines = flags.map((f) => {
      const [name, value] = f.slice(2).split(/=(.*)/s) as [string, string | undefined];
      const spec = SERVE_FLAGS.find((s) => s.name === name)!;
      return `${name} = ${spec.kind === "bool" ? "true" : spec.kind === "int" ? value : JSON.stringify(value)}`;
    });
    // Every option a file may set appears once (the test must grow with the table).
    expect(lines.map((l) => l.split(" ")[0]).sort()).toEqual(FILE_FLAGS.map((s) => s.name).filter((n) => n !== "tls-cert" && n !== "tls-key").sort());
    const file = toml(lines.join("\n"));
    expect(sansFile(configOf(["--config", file]))).toEqual(configOf(flags));
    const tls = toml(`tls-cert = "/etc/scimd/tls/fullchain.pem"\ntls-key = "/etc/scimd/tls/privkey.pem"\n`);
    expect(configOf(["--config", tls]).tls).toEqual({ certFile: "/etc/scimd/tls/fullchain.pem", keyFile: "/etc/scimd/tls/privkey.pem" });
    expect(configOf(["--config", tls]).host).toBe("0.0.0.0");
  });

  it("accepts snake_case keys as the same option (tls_cert is tls-cert), refuses both spellings in one file", () => {
    const file = toml(`max_results = 7\nauth_failures_per_minute = 2\n`);
    expect(configOf(["--config", file])).toMatchObject({ maxResults: 7, authFailuresPerMinute: 2 });
    const both = toml(`max-results = 7\nmax_results = 8\n`);
    expect(usageErrorOf(() => serveConfig(["--config", both], {})).message).toBe(`${both}: 'max-results' and 'max_results' are the same setting; keep one`);
  });

  it("a file with only comments, or empty, changes nothing", () => {
    expect(sansFile(configOf(["--config", toml("# nothing\n\n")]))).toEqual(configOf([]));
    expect(sansFile(configOf(["--config", toml("")]))).toEqual(configOf([]));
  });
});

describe("--config FILE: mistakes are one line naming the file and the key, and what is accepted", () => {
  const KEYS = FILE_FLAGS.map((s) => s.name).join(", ");
  // [file text, message after "PATH"]
  const cases: [string, string, string][] = [
    ["an unknown key, with the nearest known one", `prot = 8080\n`, `: unknown key 'prot' (did you mean 'port'?); the keys are serve's option names: ${KEYS}`],
    ["an unknown snake_case key", `max_result = 5\n`, `: unknown key 'max_result' (did you mean 'max-results'?); the keys are serve's option names: ${KEYS}`],
    ["an unknown key nothing is near", `colour = "blue"\n`, `: unknown key 'colour'; the keys are serve's option names: ${KEYS}`],
    ["a key under a [section]", `[tls]\ncert = "/x"\n`, `: unknown key 'tls' (a table: scimd reads top-level keys only, write them before any [section]); the keys are serve's option names: ${KEYS}`],
    ["--config itself", `config = "/etc/other.toml"\n`, `: unknown key 'config'; the keys are serve's option names: ${KEYS}`],
    ["a whole number in quotes", `port = "8443"\n`, `: port must be a whole number without quotes, e.g. port = 8443; got "8443" (a string)`],
    ["a decimal for a whole number", `max-results = 1.5\n`, `: max-results must be a whole number without quotes, e.g. max-results = 1000; got 1.5`],
    ["a negative whole number", `port = -1\n`, `: port must be a whole number without quotes, e.g. port = 8080; got -1`],
    ["a string for a boolean", `strict = "yes"\n`, `: strict must be true or false, without quotes; got "yes" (a string)`],
    ["a number for a string", `host = 127\n`, `: host must be a string in quotes, e.g. host = "127"; got 127`],
    ["an array for a string", `trust-proxy = ["10.0.0.0/8"]\n`, `: trust-proxy must be a string in quotes, e.g. trust-proxy = "…"; got an array`],
    ["a date for a string", `db = 2026-01-01\n`, `: db must be a string in quotes, e.g. db = "./data/scimd.db"; got a date (2026-01-01)`],
    ["a value the option's check refuses", `port = 70000\n`, `: port must be 0..65535`],
    ["a value serve's own checks refuse", `sync = "fast"\n`, `: sync must be 'full' or 'normal'`],
    ["a log level scimd does not have", `log-level = "loud"\n`, `: log-level must be one of debug, info, warn, error, got 'loud'`],
    ["a base URL that is not one", `base-url = "scim.example.com"\n`, `: base-url must be an absolute http(s) URL, got 'scim.example.com'`],
    ["a metrics address without a port", `metrics-listen = "127.0.0.1"\n`, `: metrics-listen must be HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, got '127.0.0.1'`],
    ["invalid TOML, with line and column", `port = 8080\nhost = = "x"\n`, `:2:8: not valid TOML: invalid value`],
    ["a key given twice", `port = 1\nport = 2\n`, `:2:1: not valid TOML: trying to redefine an already defined table or value`],
  ];
  it.each(cases)("refuses %s", (_t, text, message) => {
    const file = toml(text);
    const e = usageErrorOf(() => serveConfig(["--config", file], {}));
    expect(e).toBeInstanceOf(ConfigFileError);
    expect(e.message).toBe(`${file}${message}`);
  });

  it("a rule across options says which of them the file sets", () => {
    const file = toml(`tls-cert = "/etc/scimd/tls/fullchain.pem"\n`);
    expect(usageErrorOf(() => serveConfig(["--config", file], {})).message).toBe(`--tls-cert and --tls-key go together: give both, or neither (tls-cert is set in ${file})`);
    // The same mistake made with flags only stays a usage error about the flags.
    const e = usageErrorOf(() => serveConfig(["--tls-cert", "/x"], {}));
    expect(e).not.toBeInstanceOf(ConfigFileError);
    expect(e.message).toBe("--tls-cert and --tls-key go together: give both, or neither");
  });

  it("a bad value in the file is not an error when a flag or variable overrides it", () => {
    // The value is read (and typed) but the check runs on what serve uses.
    const file = toml(`port = 70000\n`);
    expect(configOf(["--config", file, "--port", "8080"]).port).toBe(8080);
    expect(configOf(["--config", file], { SCIMD_PORT: "8081" }).port).toBe(8081);
  });

  it("refuses a file it cannot read: missing, a folder, not UTF-8, an empty --config", () => {
    const missing = join(dir, "missing.toml");
    expect(usageErrorOf(() => serveConfig(["--config", missing], {})).message).toBe(`cannot read the config file ${missing} (--config): no such file`);
    expect(usageErrorOf(() => serveConfig([], { SCIMD_CONFIG: missing })).message).toBe(`cannot read the config file ${missing} (SCIMD_CONFIG): no such file`);
    const folder = join(dir, "a-folder");
    mkdirSync(folder, { recursive: true });
    expect(usageErrorOf(() => serveConfig(["--config", folder], {})).message).toBe(`cannot read the config file ${folder} (--config): it is a folder, not a file`);
    const latin1 = join(dir, "latin1.toml");
    writeFileSync(latin1, Buffer.from([0x68, 0x6f, 0x73, 0x74, 0x3d, 0x22, 0xe9, 0x22, 0x0a]));
    expect(usageErrorOf(() => serveConfig(["--config", latin1], {})).message).toBe(`${latin1} (--config) is not UTF-8 text, which TOML requires`);
    expect(usageErrorOf(() => serveConfig(["--config="], {})).message).toBe("--config must name a TOML file");
  });

  const root = process.getuid?.() === 0;
  if (root) console.log("skipped: the unreadable-config-file test (runs as root, who reads any file; run bun test as another user)");
  it.skipIf(root)("refuses a file it may not read, saying so", () => {
    const file = toml(`port = 1\n`);
    chmodSync(file, 0o000);
    expect(usageErrorOf(() => serveConfig(["--config", file], {})).message).toBe(`cannot read the config file ${file} (--config): permission denied (serve reads it as the user it runs as)`);
  });

  it("main prints a config file mistake as one line, exit 2, without the usage", async () => {
    const file = toml(`prot = 1\n`);
    const err: string[] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
    try {
      expect(await main(["serve", "--config", file])).toBe(2);
      expect(await main(["config", "--config", file])).toBe(2);
    } finally {
      console.error = error;
    }
    expect(err).toHaveLength(2);
    for (const line of err) {
      expect(line).toStartWith(`scimd: ${file}: unknown key 'prot' (did you mean 'port'?)`);
      expect(line).not.toContain("\n");
    }
  });

  it("readConfigFile types each key by its option", () => {
    const file = toml(`port = 1\nstrict = false\ntls_key = "k"\n`);
    expect([...readConfigFile(file, "--config", FILE_FLAGS)]).toEqual([
      ["port", { key: "port", value: 1 }],
      ["strict", { key: "strict", value: false }],
      ["tls-key", { key: "tls_key", value: "k" }],
    ]);
  });

  it("resolveFlags without a file layer reads no file, and parseFlags' tables that have no config flag are unchanged", () => {
    const r = resolveFlags(["--config", join(dir, "missing.toml")], SERVE_FLAGS, {});
    expect(r.values.config).toBe(join(dir, "missing.toml"));
    expect(r.sources.port).toEqual({ kind: "default" });
  });
});

/** What `scimd config` prints for argv and env, run through main with stdout captured. */
async function configCommand(argv: string[], env: Env = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith("SCIMD_")) delete process.env[k];
  Object.assign(process.env, env);
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main(["config", ...argv]);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe("scimd config: the effective configuration and each value's source", () => {
  it("names the source of every value: default, env SCIMD_X, file PATH, flag --x", async () => {
    const file = toml(`port = 8443\ntls_cert = "/etc/scimd/tls/fullchain.pem"\ntls-key = "/etc/scimd/tls/privkey.pem"\n`);
    const r = await configCommand(["--config", file, "--strict"], { SCIMD_MAX_RESULTS: "50" });
    expect(r.code).toBe(0);
    const lines = r.out.split("\n");
    const line = (key: string) => lines.find((l) => l.startsWith(`${key} `) || l.startsWith(`# ${key} `)) ?? "";
    expect(line("port")).toMatch(new RegExp(`^port = 8443 +# file ${file}$`));
    expect(line("tls-cert")).toMatch(new RegExp(`^tls-cert = "/etc/scimd/tls/fullchain.pem" +# file ${file} \\(tls_cert\\)$`));
    expect(line("strict")).toMatch(/^strict = true +# flag --strict$/);
    expect(line("max-results")).toMatch(/^max-results = 50 +# env SCIMD_MAX_RESULTS$/);
    expect(line("sync")).toMatch(/^sync = "full" +# default$/);
    expect(line("host")).toMatch(/^host = "0.0.0.0" +# default \(with TLS: every interface\)$/);
    expect(line("base-url")).toMatch(/^# base-url \(not set\) +# default$/);
    expect(line("config")).toMatch(new RegExp(`^# config = "${file}" +# flag --config$`));
    expect(lines[0]).toBe(`# scimd serve's configuration: flags > SCIMD_* > ${file} > defaults.`);
    // One line per option of serve but --help, after the two header lines.
    expect(lines).toHaveLength(2 + SERVE_FLAGS.length - 1);
  });

  it("prints TOML that, used as the config file, gives serve the same configuration", async () => {
    const file = toml(`port = 8443\nacme-domain = "scim.example.com"\nacme-email = "it@example.com"\ntrust-proxy = "10.0.0.0/8"\n`);
    const argv = ["--config", file, "--db", "/var/lib/scimd/scimd.db", "--log-format", "json"];
    const r = await configCommand(argv, { SCIMD_BASE_URL: "https://scim.example.com/api/v1/scim" });
    expect(r.code).toBe(0);
    const printed = toml(r.out);
    expect(Object.keys(parseToml(r.out))).not.toContain("config");
    expect(sansFile(configOf(["--config", printed]))).toEqual({
      ...configOf(argv, { SCIMD_BASE_URL: "https://scim.example.com/api/v1/scim" }),
      configFile: undefined,
    });
  });

  it("masks secrets: a database URL's password, and any option named password, secret or token", async () => {
    const r = await configCommand(["--db", "postgres://scimd:s3cret-pw@db.example.com/scimd"]);
    expect(r.out).toContain(`db = "postgres://scimd:***@db.example.com/scimd"`);
    expect(r.out).not.toContain("s3cret-pw");
    expect(masked("metrics-token", "abc")).toBe("***");
    expect(masked("db-password", "abc")).toBe("***");
    expect(masked("client-secret", 5)).toBe("***");
    expect(masked("base-url", "https://user:pw@proxy.example.com/api/v1/scim")).toBe("https://user:***@proxy.example.com/api/v1/scim");
    expect(masked("port", 8080)).toBe(8080);
  });

  it("--json prints {config, settings: {OPTION: {value, source, from}}}", async () => {
    const file = toml(`max_results = 9\n`);
    const r = await configCommand(["--config", file, "--json", "--port", "9000"], { SCIMD_DB: "sqlite://u:pw@/x.db" });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.config).toBe(file);
    expect(Object.keys(doc.settings)).toEqual(SERVE_FLAGS.map((s) => s.name).filter((n) => n !== "help"));
    expect(doc.settings.port).toEqual({ value: 9000, source: "flag", from: "--port" });
    expect(doc.settings["max-results"]).toEqual({ value: 9, source: "file", from: file, key: "max_results" });
    expect(doc.settings.db).toEqual({ value: "sqlite://u:***@/x.db", source: "env", from: "SCIMD_DB" });
    expect(doc.settings.sync).toEqual({ value: "full", source: "default" });
    expect(doc.settings["tls-cert"]).toEqual({ value: null, source: "default" });
    expect(doc.settings.host).toEqual({ value: "127.0.0.1", source: "default", note: "plain HTTP: loopback only" });
    expect(doc.settings["log-format"]).toEqual({ value: null, source: "default", note: "pretty on a terminal, json otherwise" });
  });

  it("refuses --metrics-listen on the API's own port, --acme-http-port equal to --port and an empty host, as serve does", async () => {
    for (const [argv, env, message] of [
      [["--metrics-listen", "127.0.0.1:8080"], {}, "--metrics-listen 127.0.0.1:8080 is the API's own port"],
      [["--acme-domain", "scim.example.com", "--acme-email", "a@example.com", "--port", "80"], {}, "--acme-http-port and --port are both 80"],
      [[], { SCIMD_ACME_DOMAIN: "scim.example.com", SCIMD_ACME_EMAIL: "a@example.com", SCIMD_PORT: "8000", SCIMD_ACME_HTTP_PORT: "8000" }, "--acme-http-port and --port are both 8000"],
      [["--config", toml(`host = ""\n`)], {}, ": host is empty"],
    ] as [string[], Env, string][]) {
      const r = await configCommand(argv, env);
      expect({ argv, code: r.code, out: r.out }).toEqual({ argv, code: 2, out: "" });
      expect(r.err).toContain(message);
    }
  });

  it("refuses what serve refuses, with the same words and exit code", async () => {
    const r = await configCommand(["--port", "70000"]);
    expect([r.code, r.out]).toEqual([2, ""]);
    expect(r.err).toStartWith("scimd: --port must be 0..65535\n\nUsage: scimd config ");
    expect((await configCommand(["extra"])).err).toStartWith("scimd: unexpected argument 'extra'");
  });

  it("takes serve's options and --json, and --json is not a key of the file", () => {
    expect(CONFIG_FLAGS.map((s) => s.name)).toEqual([...SERVE_FLAGS.filter((s) => s.name !== "help").map((s) => s.name), "json", "help"]);
    const file = toml(`json = true\n`);
    expect(usageErrorOf(() => serveSettings(["--config", file], {}, CONFIG_FLAGS)).message).toStartWith(`${file}: unknown key 'json'`);
  });

  it("renderToml keeps the source column, with at least two spaces after a long value", () => {
    const s = serveSettings(["--acme-directory", `https://${"a".repeat(80)}.example.com/directory`], {});
    if (s.help) throw new Error("help");
    for (const l of renderToml(report(s), undefined).split("\n").slice(2)) expect(l).toMatch(/\S {2,}# (default|flag|env|file)/);
  });
});

describe("scripts/scimd.toml, the example config file", () => {
  const example = join(REPO, "scripts/scimd.toml");
  const text = readFileSync(example, "utf8");

  it("is accepted by serve as it is", () => {
    const c = configOf(["--config", example]);
    expect(c.baseUrl).toBe("https://scim.example.com/api/v1/scim");
    expect(c.configFile).toBe(example);
  });

  // Every commented-out `# key = value` line is an option a reader may enable: each must be right.
  const commented = text.split("\n").filter((l) => /^#\s*[a-z][a-z_-]*\s*=/.test(l)).map((l) => l.replace(/^#\s*/, ""));
  it("has commented-out settings to enable", () => expect(commented.length).toBeGreaterThan(5));
  it.each(commented)("its commented-out line '%s', enabled, is a known key with a value serve accepts", (line) => {
    const file = toml(`${line}\n`);
    expect(readConfigFile(file, "--config", FILE_FLAGS).size).toBe(1);
    const name = line.split(/\s*=/)[0]!.replaceAll("_", "-");
    // With its partner for the options that go in pairs.
    const partner: Record<string, string> = { "acme-domain": `acme-email = "it@example.com"`, "acme-email": `acme-domain = "scim.example.com"`, "tls-cert": `tls-key = "/k"`, "tls-key": `tls-cert = "/c"`, "db-password-file": `db = "postgres://scimd@db.example.com/scimd"` };
    expect(() => configOf(["--config", toml(`${line}\n${partner[name] ?? ""}\n`)])).not.toThrow();
  });

  it("each of its three HTTPS choices, enabled alone, is accepted", () => {
    const blocks = text.split(/\n# \d\. /).slice(1).map((b) => b.split("\n\n")[0]!.split("\n").filter((l) => /^#\s*[a-z][a-z_-]*\s*=/.test(l)).map((l) => l.replace(/^#\s*/, "")));
    expect(blocks.map((b) => b.length)).toEqual([3, 3, 2]);
    const active = text.split("\n").filter((l) => /^[a-z]/.test(l)).join("\n");
    const modes = blocks.map((b) => configOf(["--config", toml(`${active}\n${b.join("\n")}\n`)]));
    expect(modes.map((c) => [c.acme !== undefined, c.tls !== undefined, c.host, c.port])).toEqual([
      [true, false, "0.0.0.0", 443],
      [false, true, "0.0.0.0", 8443],
      [false, false, "127.0.0.1", 8080],
    ]);
  });
});

/** The unit's [Service] directives (name → values, in order; commented lines are not directives). */
function directives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(l);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe("scripts/scimd.service, the systemd unit", () => {
  const unitFile = join(REPO, "scripts/scimd.service");
  const unit = readFileSync(unitFile, "utf8");
  const d = directives(unit);
  const exec = d.get("ExecStart")![0]!.split(/\s+/);

  it("runs the binary by its absolute path, as serve, and serve accepts its arguments (with the example as /etc/scimd/scimd.toml)", () => {
    expect(d.get("ExecStart")).toHaveLength(1);
    expect(isAbsolute(exec[0]!)).toBe(true);
    expect(exec[1]).toBe("serve");
    const args = exec.slice(2).map((a) => (a === "/etc/scimd/scimd.toml" ? join(REPO, "scripts/scimd.toml") : a));
    expect(args).toContain(join(REPO, "scripts/scimd.toml"));
    const c = configOf(args);
    // The database is absolute and inside the StateDirectory, the one path ProtectSystem=strict leaves writable.
    expect(c.db).toBe(`/var/lib/${d.get("StateDirectory")![0]}/scimd.db`);
    expect(c.configFile).toBe(join(REPO, "scripts/scimd.toml"));
  });

  it("is hardened: a dedicated user, no new privileges, a read-only system, no capability unless commented in", () => {
    const want: Record<string, string> = {
      User: "scimd",
      StateDirectory: "scimd",
      NoNewPrivileges: "yes",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      PrivateDevices: "yes",
      LockPersonality: "yes",
      Restart: "on-failure",
      RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
      CapabilityBoundingSet: "",
    };
    for (const [k, v] of Object.entries(want)) expect({ [k]: d.get(k) }).toEqual({ [k]: [v] });
    expect(d.has("AmbientCapabilities")).toBe(false);
    expect(unit).toContain("#AmbientCapabilities=CAP_NET_BIND_SERVICE");
    // The JIT needs writable and executable memory: see the comment in the unit.
    expect(d.has("MemoryDenyWriteExecute")).toBe(false);
  });

  it("restarts on failure but not forever: exit 2 (a usage or config mistake) is not restarted, and the start limit trips at RestartSec apart", () => {
    // [Unit] directives, where systemd reads the start limit (in [Service] it is ignored with a warning).
    const unitSection = unit.split(/^\[Service\]$/m)[0]!;
    const limit = directives(unitSection);
    const seconds = (v: string) => {
      const m = /^(\d+)(s|min)?$/.exec(v);
      expect({ value: v, parsed: m !== null }).toEqual({ value: v, parsed: true });
      return Number(m![1]) * (m![2] === "min" ? 60 : 1);
    };
    expect(d.get("Restart")).toEqual(["on-failure"]);
    expect(d.get("RestartPreventExitStatus")).toEqual(["2"]);
    const restartSec = seconds(d.get("RestartSec")![0]!);
    const interval = seconds(limit.get("StartLimitIntervalSec")?.[0] ?? "10");
    const burst = Number(limit.get("StartLimitBurst")?.[0] ?? "5");
    expect(restartSec).toBeGreaterThanOrEqual(5);
    expect(burst).toBeGreaterThan(1);
    expect(burst).toBeLessThanOrEqual(10);
    // burst starts, RestartSec apart, fit inside the interval: the limit trips and systemd gives up.
    expect(burst * restartSec).toBeLessThan(interval);
  });

  const analyze = Bun.which("systemd-analyze");
  if (!analyze) console.log("skipped: systemd-analyze verify of scripts/scimd.service (install systemd: apt-get install systemd)");
  it.skipIf(!analyze)("passes systemd-analyze verify without a warning (with an executable in place of /usr/local/bin/scimd)", () => {
    const copy = join(dir, "scimd.service");
    writeFileSync(copy, unit.replaceAll(exec[0]!, "/bin/true"));
    const p = Bun.spawnSync([analyze!, "verify", copy], { stdout: "pipe", stderr: "pipe" });
    const said = (p.stdout.toString() + p.stderr.toString()).split("\n").filter((l) => l.includes("scimd.service"));
    expect({ code: p.exitCode, said }).toEqual({ code: 0, said: [] });
    // And it would catch a misspelt directive.
    const bad = join(dir, "bad", "scimd.service");
    mkdirSync(join(dir, "bad"), { recursive: true });
    writeFileSync(bad, unit.replaceAll(exec[0]!, "/bin/true").replace("ProtectHome=yes", "ProtectHoem=yes"));
    const q = Bun.spawnSync([analyze!, "verify", bad], { stdout: "pipe", stderr: "pipe" });
    expect(q.stderr.toString()).toContain("Unknown key 'ProtectHoem'");
  });
});
