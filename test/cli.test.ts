import { describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { commandLine, dbArg, shellQuote } from "../src/cli/invocation";
import { POSTGRES_HELP } from "../src/cli/db-password";
import { parseArgs } from "node:util";
import { defaultTarget } from "../src/cli/healthcheck";
import { apiUrl, baseUrlWarning, metricsExposureWarning } from "../src/cli/serve";
import { GENERATE_FLAGS, httpsUrl, isLoopback, tokenState, TOKENS_FLAGS, urlGuidance } from "../src/cli/tokens";
import { DEFAULTS, flag, flagHelp, formatDuration, parseDuration, parseFlags, SERVE_FLAGS, serveConfig, UsageError, type Env, type ServeConfig } from "../src/config";
import { main } from "../src/main";
import { tempDir, usageErrorOf } from "./helpers";

const SPECS = [
  flag({ name: "port", env: "T_PORT", kind: "int", default: 8080, help: "port" }),
  flag({ name: "host", env: "T_HOST", kind: "string", default: "0.0.0.0", help: "host" }),
  flag({ name: "strict", env: "T_STRICT", kind: "bool", default: false, help: "strict" }),
  flag({ name: "label", kind: "string", help: "no default, no env" }),
  flag({
    name: "max",
    env: "T_MAX",
    kind: "int",
    default: 10,
    help: "checked",
    check: (v) => {
      if (v < 1) throw new UsageError("--max must be at least 1");
    },
  }),
] as const;

/** A table row [argv, env, message] as [the command line a shell would show, message, argv, env], for test titles. */
const row =
  (...command: string[]) =>
  ([argv, env, message]: [string[], Env, string]): [string, string, string[], Env] => [
    `'${[...Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v ?? "")}`), ...command, ...argv.map(shellQuote)].join(" ")}'`,
    message,
    argv,
    env,
  ];

describe("parseFlags: defaults < SCIMD_* environment < flags", () => {
  it("uses the defaults when neither environment nor flags set a value", () => {
    expect(parseFlags([], SPECS, {})).toEqual({ values: { port: 8080, host: "0.0.0.0", strict: false, max: 10 }, args: [] });
  });

  it("the environment overrides the defaults, converted to the flag's type; an empty variable counts as unset", () => {
    const { values } = parseFlags([], SPECS, { T_PORT: "9000", T_HOST: "127.0.0.1", T_STRICT: "yes", T_MAX: "" });
    expect(values).toEqual({ port: 9000, host: "127.0.0.1", strict: true, max: 10 });
  });

  it("flags override both the environment and the defaults", () => {
    const { values } = parseFlags(["--port", "7000", "--host=::1", "--strict=false"], SPECS, { T_PORT: "9000", T_HOST: "127.0.0.1", T_STRICT: "true" });
    expect(values).toEqual({ port: 7000, host: "::1", strict: false, max: 10 });
  });

  it("the last occurrence of a repeated flag wins", () => {
    expect(parseFlags(["--port", "1", "--port=2"], SPECS, {}).values.port).toBe(2);
  });
});

describe("parseFlags: syntax", () => {
  const forms: [string, string[], Record<string, unknown>][] = [
    ["--flag value", ["--port", "1234"], { port: 1234 }],
    ["--flag=value", ["--port=1234"], { port: 1234 }],
    ["--flag=value containing '='", ["--label=a=b"], { label: "a=b" }],
    ["--flag= (empty value)", ["--label="], { label: "" }],
    ["--flag value starting with a single dash", ["--label", "-x"], { label: "-x" }],
    ["--flag value that looks like a negative number", ["--label", "-1"], { label: "-1" }],
    ["--flag=value starting with a dash", ["--label=-x"], { label: "-x" }],
    ["--flag=value starting with two dashes", ["--label=--x"], { label: "--x" }],
    ["--flag followed by an empty argument", ["--label", ""], { label: "" }],
    ["--flag= followed by a positional", ["--label=", "x"], { label: "" }],
    ["a bare bool flag means true", ["--strict"], { strict: true }],
    ["--bool=true", ["--strict=true"], { strict: true }],
    ["--bool=1", ["--strict=1"], { strict: true }],
    ["--bool=on", ["--strict=ON"], { strict: true }],
    ["--bool=false", ["--strict=false"], { strict: false }],
    ["--bool=0", ["--strict=0"], { strict: false }],
    ["--bool=no", ["--strict=no"], { strict: false }],
    ["--bool=off", ["--strict=off"], { strict: false }],
    ["--bool=YES", ["--strict=YES"], { strict: true }],
    ["the last of a repeated bool", ["--strict", "--strict=false"], { strict: false }],
    ["the last of a repeated value flag, '=' or not", ["--host=a", "--host", "b"], { host: "b" }],
  ];
  it.each(forms)("accepts %s", (_t, argv, expected) => {
    expect(parseFlags(argv, SPECS, {}).values).toMatchObject(expected);
  });

  it("a bare bool flag does not swallow the next argument", () => {
    expect(parseFlags(["--strict", "list"], SPECS, {})).toMatchObject({ values: { strict: true }, args: ["list"] });
  });

  it("collects positional arguments, and everything after -- as positional", () => {
    expect(parseFlags(["revoke", "okta", "--port", "1", "--", "--not-a-flag", "-x"], SPECS, {}).args).toEqual(["revoke", "okta", "--not-a-flag", "-x"]);
  });

  it("a lone '-' and an empty argument are positional; a second '--' after the first is positional too", () => {
    expect(parseFlags(["-", "", "--", "a", "--", "--port"], SPECS, {})).toEqual({ values: { port: 8080, host: "0.0.0.0", strict: false, max: 10 }, args: ["-", "", "a", "--", "--port"] });
  });

  it("flags and positional arguments may come in any order", () => {
    expect(parseFlags(["rotate", "--port=1", "okta", "--strict", "x"], SPECS, {})).toMatchObject({ values: { port: 1, strict: true }, args: ["rotate", "okta", "x"] });
  });

  it("gives each value its flag's type, with no cast at the caller (tsc checks the annotations)", () => {
    const { values } = parseFlags(["--port", "1", "--label=x"], SPECS, {});
    const port: number = values.port;
    const strict: boolean = values.strict;
    const label: string | undefined = values.label;
    // @ts-expect-error a flag without a default may be absent
    const bare: string = values.label;
    // @ts-expect-error no such flag in the table
    void values.nope;
    expect([port, strict, label, bare]).toEqual([1, false, "x", "x"]);
    // @ts-expect-error a default must be of the flag's kind
    flag({ name: "n", kind: "int", default: "8", help: "" });
    // A check receives the converted value: a number for an int flag.
    const even = flag({ name: "even", kind: "int", help: "", check: (v) => { if (v % 2) throw new UsageError("--even must be even"); } });
    expect(usageErrorOf(() => parseFlags(["--even=3"], [even], {})).message).toBe("--even must be even");
  });
});

describe("node:util parseArgs, which parseFlags runs on", () => {
  // parseFlags runs it non-strict and checks the tokens itself: strict mode refuses forms scimd accepts.
  const strictOnly = (args: string[]) => () =>
    parseArgs({ args, options: { strict: { type: "boolean" }, name: { type: "string" } }, strict: true, allowPositionals: true });
  it.each([
    ["--strict=false", ["--strict=false"], "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"],
    ["--name -x", ["--name", "-x"], "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"],
  ])("in strict mode refuses %s, which scimd accepts (then checks the value)", (_t, args, code) => {
    expect(strictOnly(args)).toThrow(expect.objectContaining({ code }));
    expect(() => parseFlags(args, [flag({ name: "strict", kind: "bool", help: "" }), flag({ name: "name", kind: "string", help: "" })], {})).not.toThrow();
  });

  it("non-strict, it hands a value flag the next argument even when that is an option, so parseFlags refuses '--host --strict' itself", () => {
    const { tokens } = parseArgs({ args: ["--host", "--strict"], options: { host: { type: "string" }, strict: { type: "boolean" } }, strict: false, allowPositionals: true, tokens: true });
    expect(tokens).toEqual([{ kind: "option", name: "host", rawName: "--host", index: 0, value: "--strict", inlineValue: false }]);
    expect(usageErrorOf(() => parseFlags(["--host", "--strict"], SPECS, {})).message).toBe("option '--host' needs a value");
  });
});

describe("parseFlags: errors are UsageErrors that name the flag", () => {
  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ["an int flag given letters", ["--port", "abc"], {}, /--port.*whole number.*abc/],
    ["an int flag given a negative number", ["--port=-1"], {}, /--port.*whole number/],
    ["an int flag given a decimal", ["--port=1.5"], {}, /--port.*whole number/],
    ["an int flag given an empty value", ["--port="], {}, /--port.*whole number/],
    ["an int environment variable given letters", [], { T_PORT: "eighty" }, /T_PORT.*whole number.*eighty/],
    ["a bool flag given a non-boolean", ["--strict=maybe"], {}, /--strict.*true or false.*maybe/],
    ["a bool environment variable given a non-boolean", [], { T_STRICT: "perhaps" }, /T_STRICT.*true or false/],
    ["an unknown long option", ["--prot", "1"], {}, /unknown option '--prot'/],
    ["an unknown long option with =", ["--nope=1"], {}, /unknown option '--nope'/],
    ["an unknown short option", ["-p"], {}, /unknown option '-p'/],
    ["a value flag at the end without its value", ["--port"], {}, /'--port' needs a value/],
    ["a value flag followed by another flag", ["--host", "--strict"], {}, /'--host' needs a value/],
    ["a value failing the flag's check", ["--max", "0"], {}, /--max must be at least 1/],
    ["an environment value failing the flag's check", [], { T_MAX: "0" }, /^T_MAX must be at least 1$/],
  ];
  it.each(bad)("refuses %s", (_t, argv, env, message) => {
    expect(usageErrorOf(() => parseFlags(argv, SPECS, env)).message).toMatch(message);
  });

  // The words scimd has always used, to the character: the operator-facing contract of the parser.
  const exact: [string[], Env, string][] = [
    [["--port", "abc"], {}, "--port must be a whole number, got 'abc'"],
    [["--port", "-1"], {}, "--port must be a whole number, got '-1'"],
    [["--port=-1"], {}, "--port must be a whole number, got '-1'"],
    [["--port", " 1.5"], {}, "--port must be a whole number, got ' 1.5'"],
    [["--port="], {}, "--port must be a whole number, got ''"],
    [["--strict=maybe"], {}, "--strict must be true or false, got 'maybe'"],
    [["--strict="], {}, "--strict must be true or false, got ''"],
    [["--prot", "1"], {}, "unknown option '--prot'"],
    [["--nope=1"], {}, "unknown option '--nope'"],
    [["-p"], {}, "unknown option '-p'"],
    [["-abc"], {}, "unknown option '-abc'"],
    [["-p=3"], {}, "unknown option '-p=3'"],
    [["-1"], {}, "unknown option '-1'"],
    [["--=x"], {}, "unknown option '--'"],
    [["---x"], {}, "unknown option '---x'"],
    [["--port"], {}, "option '--port' needs a value"],
    [["--host", "--strict"], {}, "option '--host' needs a value"],
    [["--host", "--"], {}, "option '--host' needs a value"],
    [["--max", "0"], {}, "--max must be at least 1"],
    [["--prot", "--port", "x"], {}, "unknown option '--prot'"],
    [["--port", "x", "--prot"], {}, "--port must be a whole number, got 'x'"],
    [[], { T_PORT: "eighty" }, "T_PORT must be a whole number, got 'eighty'"],
    [["--port", "80"], { T_PORT: "eighty" }, "T_PORT must be a whole number, got 'eighty'"],
    [[], { T_STRICT: "perhaps" }, "T_STRICT must be true or false, got 'perhaps'"],
    [[], { T_MAX: "0" }, "T_MAX must be at least 1"],
    [["--max", "0"], { T_PORT: "x" }, "T_PORT must be a whole number, got 'x'"],
  ];
  it.each(exact.map(row()))("refuses %s with exactly: %s", (_line, message, argv, env) => {
    expect(usageErrorOf(() => parseFlags(argv, SPECS, env)).message).toBe(message);
  });
});

/** The operations settings, as they are when nothing sets them. */
const OPS_DEFAULTS = {
  dbPasswordFile: undefined,
  tls: undefined,
  acme: undefined,
  trustProxy: [],
  logLevel: "info",
  logFormat: process.stdout.isTTY ? "pretty" : "json",
  metricsListen: undefined,
  activityLog: true,
  activityRetentionMs: 90 * 86_400_000,
  queryTimeoutMs: 5000,
  configFile: undefined,
} as const;

const SERVE_DEFAULTS: ServeConfig = {
  ...OPS_DEFAULTS,
  port: 8080,
  host: "127.0.0.1",
  db: "./data/scimd.db",
  baseUrl: undefined,
  strict: false,
  sync: "FULL",
  maxBodyBytes: 1048576,
  maxResults: 1000,
  maxListMembers: 10_000,
  authFailuresPerMinute: 20,
  maxConnections: 0,
  maxConnectionsPerClient: 0,
};

/** serve's configuration for argv and env; fails the test when it is a help request. */
function configOf(argv: string[], env: Env = {}): ServeConfig {
  const parsed = serveConfig(argv, env);
  if (parsed.help) throw new Error("asked for help");
  return parsed.config;
}

describe("serveConfig: serve's configuration, built in one place", () => {
  it("without environment or flags is the defaults, which are createApp's defaults too", () => {
    expect(configOf([])).toEqual(SERVE_DEFAULTS);
    expect({ maxBodyBytes: DEFAULTS.maxBodyBytes, maxResults: DEFAULTS.maxResults, maxListMembers: DEFAULTS.maxListMembers, authFailuresPerMinute: DEFAULTS.authFailuresPerMinute }).toEqual({
      maxBodyBytes: 1048576,
      maxResults: 1000,
      maxListMembers: 10_000,
      authFailuresPerMinute: 20,
    });
  });

  const ENV: Env = {
    SCIMD_PORT: "9000",
    SCIMD_HOST: "127.0.0.1",
    SCIMD_DB: "/var/lib/scimd/env.db",
    SCIMD_BASE_URL: "https://env.example.com/api/v1/scim",
    SCIMD_STRICT: "yes",
    SCIMD_SYNC: "normal",
    SCIMD_MAX_BODY_BYTES: "2048",
    SCIMD_MAX_RESULTS: "50",
    SCIMD_MAX_LIST_MEMBERS: "500",
    SCIMD_AUTH_FAILURES_PER_MINUTE: "3",
    SCIMD_MAX_CONNECTIONS: "5000",
    SCIMD_MAX_CONNECTIONS_PER_CLIENT: "100",
  };
  const FROM_ENV: ServeConfig = {
    ...OPS_DEFAULTS,
    port: 9000,
    host: "127.0.0.1",
    db: "/var/lib/scimd/env.db",
    baseUrl: "https://env.example.com/api/v1/scim",
    strict: true,
    sync: "NORMAL",
    maxBodyBytes: 2048,
    maxResults: 50,
    maxListMembers: 500,
    authFailuresPerMinute: 3,
    maxConnections: 5000,
    maxConnectionsPerClient: 100,
  };

  it("every SCIMD_* variable overrides its default", () => {
    expect(configOf([], ENV)).toEqual(FROM_ENV);
  });

  it("every flag overrides its variable, in either form", () => {
    const argv = ["--port=7000", "--host", "::1", "--db", "sqlite:flag.db", "--base-url=https://flag.example.com/api/v1/scim", "--strict=false", "--sync", "FULL", "--max-body-bytes", "4096", "--max-results=7", "--max-list-members", "20", "--auth-failures-per-minute", "0", "--max-connections", "0", "--max-connections-per-client=7"];
    expect(configOf(argv, ENV)).toEqual({ ...OPS_DEFAULTS, port: 7000, host: "::1", db: "sqlite:flag.db", baseUrl: "https://flag.example.com/api/v1/scim", strict: false, sync: "FULL", maxBodyBytes: 4096, maxResults: 7, maxListMembers: 20, authFailuresPerMinute: 0, maxConnections: 0, maxConnectionsPerClient: 7 });
  });

  it("an empty SCIMD_* variable counts as unset", () => {
    expect(configOf([], Object.fromEntries(Object.keys(ENV).map((k) => [k, ""])))).toEqual(SERVE_DEFAULTS);
  });

  const syncs: [string, ServeConfig["sync"]][] = [
    ["full", "FULL"],
    ["Normal", "NORMAL"],
    ["NORMAL", "NORMAL"],
  ];
  it.each(syncs)("--sync %p is SQLite's %p", (sync, pragma) => {
    expect(configOf(["--sync", sync]).sync).toBe(pragma);
  });

  it("--help asks for help whatever else is on the line, but not after --", () => {
    expect(serveConfig(["--help"], {})).toEqual({ help: true });
    expect(serveConfig(["--port", "1", "--help", "extra"], {})).toEqual({ help: true });
    expect(serveConfig(["--help=false"], {})).toEqual({ help: false, config: SERVE_DEFAULTS });
    expect(usageErrorOf(() => serveConfig(["--", "--help"], {})).message).toBe("unexpected argument '--help'");
  });

  it("--activity-retention is a duration (0 keeps entries forever) and --activity-log a boolean, from flags or SCIMD_*", () => {
    expect(configOf(["--activity-retention", "7d"]).activityRetentionMs).toBe(7 * 86_400_000);
    expect(configOf(["--activity-retention", "0"]).activityRetentionMs).toBe(0);
    expect(configOf([], { SCIMD_ACTIVITY_RETENTION: "12h" }).activityRetentionMs).toBe(12 * 3_600_000);
    expect(configOf(["--query-timeout", "30s"]).queryTimeoutMs).toBe(30_000);
    expect(configOf([], { SCIMD_QUERY_TIMEOUT: "2m" }).queryTimeoutMs).toBe(120_000);
    expect(usageErrorOf(() => configOf(["--query-timeout", "0"])).message).toBe("--query-timeout must be at least 1s; got '0'");
    expect(usageErrorOf(() => configOf([], { SCIMD_QUERY_TIMEOUT: "5" })).message).toContain("SCIMD_QUERY_TIMEOUT must be a duration");
    expect(configOf(["--activity-log=false"]).activityLog).toBe(false);
    expect(configOf([], { SCIMD_ACTIVITY_LOG: "off" }).activityLog).toBe(false);
    expect(usageErrorOf(() => serveConfig(["--activity-retention", "3 months"], {})).message).toBe(
      "--activity-retention must be a duration such as 30m, 24h or 7d (s, m, h, d), or 0; got '3 months'",
    );
    expect(usageErrorOf(() => serveConfig([], { SCIMD_ACTIVITY_RETENTION: "400d" })).message).toBe("SCIMD_ACTIVITY_RETENTION must be at most 366d; got '400d'");
  });

  it("accepts --metrics-listen on the API's port number at another address, and --acme-http-port equal to a port 0", () => {
    const a = serveConfig(["--port", "8080", "--host", "127.0.0.1", "--metrics-listen", "[::1]:8080"], {});
    expect(!a.help && a.config.metricsListen).toEqual({ host: "::1", port: 8080 });
    const b = serveConfig(["--port", "0", "--metrics-listen", "127.0.0.1:0"], {});
    expect(!b.help && b.config.metricsListen).toEqual({ host: "127.0.0.1", port: 0 });
  });

  const refused: [string[], Env, string][] = [
    [["extra"], {}, "unexpected argument 'extra'"],
    [["-"], {}, "unexpected argument '-'"],
    [["--port", "70000"], {}, "--port must be 0..65535"],
    [[], { SCIMD_PORT: "99999" }, "SCIMD_PORT must be 0..65535"],
    [[], { SCIMD_PORT: "eighty" }, "SCIMD_PORT must be a whole number, got 'eighty'"],
    [[], { SCIMD_STRICT: "perhaps" }, "SCIMD_STRICT must be true or false, got 'perhaps'"],
    [[], { SCIMD_MAX_BODY_BYTES: "1k" }, "SCIMD_MAX_BODY_BYTES must be a whole number, got '1k'"],
    [[], { SCIMD_AUTH_FAILURES_PER_MINUTE: "-1" }, "SCIMD_AUTH_FAILURES_PER_MINUTE must be a whole number, got '-1'"],
    [["--max-results", "0"], {}, "--max-results must be at least 1"],
    [["--max-list-members", "0"], {}, "--max-list-members must be at least 1"],
    [[], { SCIMD_MAX_RESULTS: "0" }, "SCIMD_MAX_RESULTS must be at least 1"],
    [["--max-results=-3"], {}, "--max-results must be a whole number, got '-3'"],
    [["--sync", "fast"], {}, "--sync must be 'full' or 'normal'"],
    [[], { SCIMD_SYNC: "off" }, "SCIMD_SYNC must be 'full' or 'normal'"],
    [[], { SCIMD_LOG_LEVEL: "loud" }, "SCIMD_LOG_LEVEL must be one of debug, info, warn, error, got 'loud'"],
    [[], { SCIMD_TLS_CERT: "/c.pem" }, "--tls-cert and --tls-key go together: give both, or neither (--tls-cert is set by SCIMD_TLS_CERT)"],
    [["--base-url", "ftp://x"], {}, "--base-url must be an absolute http(s) URL, got 'ftp://x'"],
    [[], { SCIMD_BASE_URL: "nope" }, "SCIMD_BASE_URL must be an absolute http(s) URL, got 'nope'"],
    [["--host", ""], {}, "--host is empty; give an address such as 127.0.0.1, 0.0.0.0 or ::"],
    [["--host", " "], {}, "--host is empty; give an address such as 127.0.0.1, 0.0.0.0 or ::"],
    [["--acme-dir", "/var/lib/scimd/acme"], {}, "--acme-dir needs --acme-domain: it is where the certificate scimd obtains is kept"],
    [["--acme-domain", "scim.example.com", "--acme-email", "a@example.com", "--acme-dir", " "], {}, "--acme-dir is empty; name a folder such as /var/lib/scimd/acme"],
    [
      ["--acme-domain", "scim.example.com", "--acme-email", "a@example.com", "--port", "80"],
      {},
      "--acme-http-port and --port are both 80: the HTTP-01 challenge needs a plain HTTP port of its own (80)",
    ],
    [
      ["--port", "9464", "--metrics-listen", "127.0.0.1:9464"],
      {},
      "--metrics-listen 127.0.0.1:9464 is the API's own port (--port 9464 on 127.0.0.1): /metrics needs a port of its own, such as 127.0.0.1:9464",
    ],
    [
      ["--port", "8080", "--host", "0.0.0.0", "--metrics-listen", "127.0.0.1:8080"],
      {},
      "--metrics-listen 127.0.0.1:8080 is the API's own port (--port 8080 on 0.0.0.0): /metrics needs a port of its own, such as 127.0.0.1:9464",
    ],
    [
      ["--port", "8080", "--host", "::1", "--metrics-listen", "[::]:8080"],
      {},
      "--metrics-listen [::]:8080 is the API's own port (--port 8080 on ::1): /metrics needs a port of its own, such as 127.0.0.1:9464",
    ],
    [["--help"], { SCIMD_PORT: "eighty" }, "SCIMD_PORT must be a whole number, got 'eighty'"],
  ];
  it.each(refused.map(row("scimd", "serve")))("refuses %s with exactly: %s", (_line, message, argv, env) => {
    expect(usageErrorOf(() => serveConfig(argv, env)).message).toBe(message);
  });
});

/** Runs main(argv) with console.log/console.error captured. */
async function runMain(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

describe("main: exit codes", () => {
  it("returns 2 for an unknown command and prints the error and the usage on stderr only", async () => {
    const r = await runMain(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'frobnicate'");
    expect(r.err).toContain("Usage: scimd <command>");
    expect(r.out).toBe("");
  });

  it("returns 2 for an unknown option of a command and prints that command's usage", async () => {
    const r = await runMain(["serve", "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown option '--bogus'");
    expect(r.err).toContain("Usage: scimd serve");
  });

  it("refuses ACME on a PostgreSQL --db without --acme-dir (exit 2, before connecting; the password not shown)", async () => {
    const r = await runMain(["serve", "--port", "0", "--db", "postgres://scimd:pw-never-shown@127.0.0.1:1/scimd", "--acme-domain", "scim.example.com", "--acme-email", "a@example.com", "--acme-http-port", "0"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("--acme-domain with a PostgreSQL --db needs --acme-dir");
    expect(r.out + r.err).not.toContain("pw-never-shown");
    expect(r.out + r.err).not.toContain("ECONNREFUSED");
  });

  it("never repeats a password typed in a stray argument or a flag's value (the --db forgotten)", async () => {
    const url = "postgres://alice:pw-Stray-1@127.0.0.1:5/scimd";
    for (const argv of [["serve", url], ["tokens", "list", url], ["migrate", url], ["export", url], ["serve", "--port", url], ["import", url]]) {
      const r = await runMain(argv);
      expect(r.code).not.toBe(0);
      expect(r.out + r.err).toContain("postgres://alice:***@127.0.0.1:5/scimd");
      expect(r.out + r.err).not.toContain("pw-Stray-1");
    }
  });

  it("returns 2 with the usage when no command is given", async () => {
    const r = await runMain([]);
    expect(r.code).toBe(2);
    expect(r.out + r.err).toContain("Usage: scimd <command>");
  });

  it.each([["--help"], ["help"], ["-h"]])("returns 0 for %s and prints the usage on stdout", async (flag) => {
    const r = await runMain([flag]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("Usage: scimd <command>");
  });

  it("refuses a generate-token --name that begins with '-' with 2 and creates nothing: the tokens commands would read it as an option", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      for (const name of ["-x", "--okta"]) {
        const r = await runMain(["generate-token", `--name=${name}`, "--db", db, "--create"]);
        expect([r.code, r.out]).toEqual([2, ""]);
        expect(r.err).toContain("--name must not begin with '-'");
      }
      expect(existsSync(db)).toBe(false);
      // What it would have suggested does not paste: the name is taken for an option.
      expect((await runMain(["tokens", "rotate", "-x", "--db", db])).err).toContain("unknown option '-x'");
    } finally {
      cleanup();
    }
  });

  const unopenable: [string, string[]][] = [
    ["tokens list", ["tokens", "list"]],
    ["generate-token", ["generate-token", "--name", "okta"]],
    ["serve", ["serve", "--port", "0"]],
  ];
  it.each(unopenable)("returns 1 for a --db it cannot open (%s): one line naming the supported forms, no usage, no password", async (_t, argv) => {
    const r = await runMain([...argv, "--db", "mysql://scimd:secret@db.example.com/scimd"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^scimd: --db names a 'mysql:' database, which scimd does not serve; give a file path/);
    expect(r.err.split("\n")).toHaveLength(1);
    expect(r.err).not.toContain("secret");
  });

  it.each(unopenable)("returns 1 for a PostgreSQL --db it cannot reach (%s): one line naming the URL without its password, no usage", async (_t, argv) => {
    const r = await runMain([...argv, "--db", "postgres://scimd:secret@127.0.0.1:1/scimd"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^scimd: cannot open postgres:\/\/scimd:\*\*\*@127\.0\.0\.1:1\/scimd as a scimd database: /);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).not.toContain("secret");
  });

  // Each command's refusals, to the character, followed by a blank line and that command's usage.
  const refusals: [string[], string][] = [
    [["serve", "--port", "-1"], "--port must be a whole number, got '-1'"],
    [["serve", "--host", "--strict"], "option '--host' needs a value"],
    [["serve", "-abc"], "unknown option '-abc'"],
    [["serve", "--strict=maybe"], "--strict must be true or false, got 'maybe'"],
    [["serve", "--", "--help"], "unexpected argument '--help'"],
    [["generate-token", "--name="], "--name must be 1 to 100 characters"],
    [["generate-token", "--name", "-x"], "--name must not begin with '-' (the tokens commands would read '-x' as an option)"],
    [["generate-token", "--name"], "option '--name' needs a value"],
    [["generate-token", "--create=perhaps"], "--create must be true or false, got 'perhaps'"],
    [["generate-token", "extra"], "unexpected argument 'extra'"],
    [["generate-token", "--grace", "1h"], "unknown option '--grace'"],
    [["tokens", "--grace", "1y", "rotate", "x"], "--grace must be a duration such as 30m, 24h or 7d (s, m, h, d), or 0; got '1y'"],
    [["tokens", "rotate", "x", "--grace=400d"], "--grace must be at most 366d; got '400d'"],
    [["tokens", "list", "--grace", "1h"], "--grace applies to 'tokens rotate' only"],
    [["tokens", "rotate", "okta", "--all"], "--all applies to 'tokens list' only"],
    [["tokens", "revoke", "okta", "--all"], "--all applies to 'tokens list' only"],
    [["tokens", "frob"], "unknown tokens command 'frob'"],
    [["tokens", "rotate"], "'tokens rotate' takes one token name"],
    [["tokens", "revoke", "a", "b"], "'tokens revoke' takes one token name or id"],
    [["tokens", "list", "extra"], "unexpected argument 'extra'"],
    [["tokens", "--port", "1", "list"], "unknown option '--port'"],
    [["tokens", "rotate", "-x"], "unknown option '-x'"],
  ];
  it.each(refusals.map(([argv, message]) => [`scimd ${argv.join(" ")}`, message, argv] as const))("'%s' exits 2 with exactly 'scimd: %s' and the command's usage", async (_t, message, argv) => {
    const r = await runMain([...argv]);
    expect([r.code, r.out]).toEqual([2, ""]);
    expect(r.err).toStartWith(`scimd: ${message}\n\nUsage: scimd ${argv[0]} `);
  });

  it("the commands it suggests for a sqlite: --db name the file that value names, not a file called 'sqlite:…'", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, "data", "scimd.db");
      const missing = await runMain(["generate-token", "--name", "okta", "--db", `sqlite:${file}`]);
      expect(missing.code).toBe(1);
      expect(missing.err).toContain(`there is no scimd database at sqlite:${file} (${file}).`);
      const suggested = missing.err.split("\n").filter((l) => l.startsWith("  "));
      expect(suggested).toHaveLength(2);
      for (const line of suggested) expect(line).toContain(`--db ${file}`);
      expect(missing.err).not.toContain("/sqlite:");
      expect((await runMain(["generate-token", "--name", "okta", "--db", `sqlite://${file}`, "--create"])).code).toBe(0);
      const taken = await runMain(["generate-token", "--name", "okta", "--db", `sqlite://${file}`]);
      expect(taken.code).toBe(1);
      const commands = taken.err.split("\n").filter((l) => l.startsWith("  "));
      expect(commands).toHaveLength(2);
      for (const line of commands) expect(line).toContain(`--db ${file}`);
    } finally {
      cleanup();
    }
  });

  it("returns 0 for --version and prints the version", async () => {
    const r = await runMain(["--version"]);
    expect(r.code).toBe(0);
    expect(r.out.trim().length).toBeGreaterThan(0);
  });
});

const HELPS: [string, string[]][] = [["--help"], ["serve", "--help"], ["generate-token", "--help"], ["tokens", "--help"], ["config", "--help"], ["export", "--help"], ["import", "--help"], ["migrate", "--help"]].map((argv) => [`scimd ${argv.join(" ")}`, argv]);

describe("help text", () => {
  it.each(HELPS)("every option line of '%s' leaves at least two spaces between the option and its description", async (_t, argv) => {
    const r = await runMain(argv);
    expect(r.code).toBe(0);
    const options = r.out.split("\n").filter((l) => /^ {2}--/.test(l));
    expect(options.length).toBeGreaterThan(1);
    const run = options.filter((l) => !/^ {2}--[a-z-]+( <[a-z]+>)?( {2,}\S.*)?$/.test(l));
    expect(run).toEqual([]);
    // Descriptions are wrapped at 100 columns, under the description column.
    for (const l of r.out.split("\n").filter((l) => /^ {2}--| {28}\S/.test(l))) expect(l.length).toBeLessThanOrEqual(100);
  });

  // The options blocks as scimd has printed them: the flag tables and the layout, to the character.
  const blocks: [string, readonly Parameters<typeof flagHelp>[0][number][], string[]][] = [
    [
      "serve",
      SERVE_FLAGS,
      [
        "  --port <n>                TCP port (0 picks a free one) (default 8080, env SCIMD_PORT)",
        "  --host <value>            address to listen on (default 127.0.0.1 for plain HTTP, 0.0.0.0 with",
        "                            TLS) (env SCIMD_HOST)",
        "  --db <value>              the database: a file path or sqlite:PATH (SQLite; serve creates it and",
        "                            its folder), or a PostgreSQL URL such as",
        "                            postgres://scimd@db.example.com:5432/scimd?sslmode=require (default",
        "                            ./data/scimd.db, env SCIMD_DB)",
        "  --db-password-file <value>",
        "                            PostgreSQL only: read the database password from this file (its content,",
        "                            one trailing newline dropped; mode 0600). Used when the --db URL holds",
        "                            no password; wins over PGPASSWORD (env SCIMD_DB_PASSWORD_FILE)",
        "  --base-url <value>        public URL of the SCIM API for meta.location and Location, e.g.",
        "                            https://scim.example.com/api/v1/scim (default: derived from each",
        "                            request) (env SCIMD_BASE_URL)",
        "  --strict                  no IdP quirks: refuse every request RFC 7643/7644 do not allow (unknown",
        "                            attributes, unquoted filter values, string booleans, …) with 400 (env",
        "                            SCIMD_STRICT)",
        "  --sync <value>            SQLite synchronous: full (survives power loss) or normal (survives a",
        "                            crash of scimd) (default full, env SCIMD_SYNC)",
        "  --max-body-bytes <n>      largest request body accepted (413 above) (default 1048576, env",
        "                            SCIMD_MAX_BODY_BYTES)",
        "  --max-results <n>         largest page a query returns (default 1000, env SCIMD_MAX_RESULTS)",
        "  --max-list-members <n>    most group members one list response carries: a page of Groups ends",
        "                            before the group that would pass it (default 10000, env",
        "                            SCIMD_MAX_LIST_MEMBERS)",
        "  --auth-failures-per-minute <n>",
        "                            failed authentications per client address per minute before 429 (default",
        "                            20, env SCIMD_AUTH_FAILURES_PER_MINUTE)",
        "  --max-connections <n>     most open connections to the API's port, all clients together; a new one",
        "                            past it is closed at once (0: no cap) (default 0, env",
        "                            SCIMD_MAX_CONNECTIONS)",
        "  --max-connections-per-client <n>",
        "                            most open connections from one client address (IPv6: one /64); a new one",
        "                            past it is closed at once (0: no cap) (default 0, env",
        "                            SCIMD_MAX_CONNECTIONS_PER_CLIENT)",
        "  --tls-cert <value>        serve HTTPS with this certificate chain (PEM); a renewed file is picked",
        "                            up without a restart (env SCIMD_TLS_CERT)",
        "  --tls-key <value>         the private key (PEM) of --tls-cert (env SCIMD_TLS_KEY)",
        "  --acme-domain <value>     obtain and renew a certificate for this domain (comma-separated for",
        "                            several) over ACME (env SCIMD_ACME_DOMAIN)",
        "  --acme-email <value>      contact address for the ACME account (expiry notices) (env",
        "                            SCIMD_ACME_EMAIL)",
        "  --acme-directory <value>  the ACME server's directory URL (default",
        "                            https://acme-v02.api.letsencrypt.org/directory, env",
        "                            SCIMD_ACME_DIRECTORY)",
        "  --acme-ca-file <value>    trust this CA (PEM) for the ACME server's own HTTPS (a private or test",
        "                            ACME server) (env SCIMD_ACME_CA_FILE)",
        "  --acme-dir <value>        keep the ACME account key and certificate in this folder (default: an",
        "                            acme folder beside a SQLite --db; needed with a PostgreSQL --db) (env",
        "                            SCIMD_ACME_DIR)",
        "  --acme-http-port <n>      port that answers the ACME HTTP-01 challenge (default 80, env",
        "                            SCIMD_ACME_HTTP_PORT)",
        "  --trust-proxy <value>     take the client address from X-Forwarded-For when the connection comes",
        "                            from these addresses (CIDR[,CIDR]) (env SCIMD_TRUST_PROXY)",
        "  --log-level <value>       debug, info, warn or error (default info, env SCIMD_LOG_LEVEL)",
        "  --log-format <value>      json or pretty (default: pretty on a terminal, json otherwise) (env",
        "                            SCIMD_LOG_FORMAT)",
        "  --metrics-listen <value>  serve Prometheus /metrics on this separate HOST:PORT, e.g.",
        "                            127.0.0.1:9464 (env SCIMD_METRICS_LISTEN)",
        "  --activity-log            record every change in the activity log (scimd activity), in the",
        "                            change's own transaction; false records nothing (default true, env",
        "                            SCIMD_ACTIVITY_LOG)",
        "  --activity-retention <value>",
        "                            how long activity entries are kept: 30d, 90d, 366d at most, or 0 to keep",
        "                            them forever; older ones are pruned in the background (default 90d, env",
        "                            SCIMD_ACTIVITY_RETENTION)",
        "  --query-timeout <value>   how long a search that reads every resource (a filter no index answers)",
        "                            may run, off the event loop, before it is stopped with 400 tooMany: 5s,",
        "                            30s, 2m (default 5s, env SCIMD_QUERY_TIMEOUT)",
        "  --config <value>          read settings from this TOML file, whose keys are these options' names",
        "                            (port = 8443); flags > SCIMD_* > file > defaults (env SCIMD_CONFIG)",
        "  --help                    show this help",
      ],
    ],
    [
      "generate-token",
      GENERATE_FLAGS,
      [
        "  --name <value>            the token's name, unique, e.g. the IdP's name (default default)",
        "  --scope <value>           what the token may do: write (reads and writes, for an IdP) or read (GET",
        "                            and .search only; writes are refused with 403) (default write)",
        "  --expires-in <value>      the token's lifetime: 30d, 90d, 12h (at most 366d); default never, since",
        "                            Entra ID quarantines a provisioning job whose token stops working",
        "  --db <value>              the database: a file path or sqlite:PATH (SQLite; serve creates it and",
        "                            its folder), or a PostgreSQL URL such as",
        "                            postgres://scimd@db.example.com:5432/scimd?sslmode=require (default",
        "                            ./data/scimd.db, env SCIMD_DB)",
        "  --db-password-file <value>",
        "                            PostgreSQL only: read the database password from this file (its content,",
        "                            one trailing newline dropped; mode 0600). Used when the --db URL holds",
        "                            no password; wins over PGPASSWORD (env SCIMD_DB_PASSWORD_FILE)",
        "  --create                  create the database when it does not exist yet (by default only serve",
        "                            creates it)",
        "  --port <n>                the port serve listens on, for the URL printed for the IdP (default",
        "                            8080, env SCIMD_PORT)",
        "  --host <value>            the address serve listens on, for the URL printed for the IdP (default",
        "                            127.0.0.1, or 0.0.0.0 when serve's settings have TLS) (env SCIMD_HOST)",
        "  --base-url <value>        the public URL of the SCIM API (as given to serve), printed for the IdP",
        "                            (env SCIMD_BASE_URL)",
        "  --config <value>          serve's TOML config file: its db, port, host, base-url and TLS settings",
        "                            apply here too (flags > SCIMD_* > file) (env SCIMD_CONFIG)",
        "  --help                    show this help",
      ],
    ],
    [
      "tokens",
      TOKENS_FLAGS,
      [
        "  --db <value>              the database: a file path or sqlite:PATH (SQLite; serve creates it and",
        "                            its folder), or a PostgreSQL URL such as",
        "                            postgres://scimd@db.example.com:5432/scimd?sslmode=require (default",
        "                            ./data/scimd.db, env SCIMD_DB)",
        "  --db-password-file <value>",
        "                            PostgreSQL only: read the database password from this file (its content,",
        "                            one trailing newline dropped; mode 0600). Used when the --db URL holds",
        "                            no password; wins over PGPASSWORD (env SCIMD_DB_PASSWORD_FILE)",
        "  --all                     list: the revoked secrets too, with when they were revoked, and the",
        "                            secrets a rotation replaced",
        "  --grace <value>           rotate: how long the previous secret stays valid: 30m, 24h, 7d, or 0 to",
        "                            refuse it at once (default 24h)",
        "  --expires-in <value>      rotate: the new secret's lifetime (30d, 90d, or never); default the",
        "                            lifetime the token had (none if it had none)",
        "  --help                    show this help",
      ],
    ],
  ];
  it("'scimd config --help' lists its own options after serve's, which it takes too", async () => {
    const r = await runMain(["config", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      [
        "Options: serve's (see 'scimd serve --help'), and",
        "  --json                    print JSON: {config, settings: {OPTION: {value, source, from}}}",
        "  --help                    show this help",
        "",
        "Examples:",
      ].join("\n"),
    );
  });

  it.each(blocks)("'scimd %s --help' lists its options exactly as before, under 'Options:'", async (command, table, lines) => {
    expect(flagHelp(table)).toBe(lines.join("\n"));
    const r = await runMain([command, "--help"]);
    expect(r.out).toContain(`\nOptions:\n${lines.join("\n")}\n\n${POSTGRES_HELP}\n\nExamples:\n`);
  });

  it("flagHelp puts the description of a flag too long for the column on the next line, and wraps long descriptions under the column", () => {
    const text = flagHelp([
      { name: "a-very-long-option-name-indeed", kind: "int", help: "what it does" },
      { name: "short", kind: "string", help: "word ".repeat(40).trim() },
    ]);
    const lines = text.split("\n");
    expect(lines[0]).toBe("  --a-very-long-option-name-indeed <n>");
    expect(lines[1]).toMatch(/^ {28}what it does$/);
    expect(lines[2]).toMatch(/^ {2}--short <value> {2,}word/);
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines.slice(3)) expect(l).toMatch(/^ {28}word/);
  });

  /** The example command lines of a help text: the indented lines under a heading that ends in ':' and names examples or a first run. */
  function examples(text: string): string[] {
    const out: string[] = [];
    let inside = false;
    for (const l of text.split("\n")) {
      if (/^\S/.test(l)) inside = /^(Examples|First run|Each command's options and examples)\b.*:$/.test(l);
      else if (inside && /^ {2}\S/.test(l)) out.push(l.trim());
    }
    return out;
  }

  it.each(HELPS)("the example commands of '%s' are the real invocation with no placeholder a shell would misread", async (_t, argv) => {
    const r = await runMain(argv);
    const lines = examples(r.out);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      // From source (as these tests run) the invocation is the npm script in this checkout.
      expect(line).toMatch(/^(TOKEN=\$\()?npm --prefix \S+ (start|run --silent (generate-token|tokens|activity|config|healthcheck|backup|restore|export|import|migrate))( |$)/);
      expect(line.replace(/^TOKEN=\$\((.*)\)$/, "$1")).not.toMatch(/[<>|;&`]/);
      const syntax = Bun.spawnSync(["sh", "-n", "-c", line]);
      expect({ line, exit: syntax.exitCode }).toEqual({ line, exit: 0 });
    }
  });
});

describe("scripts/bench.ts", () => {
  it("parses its flags with parseFlags: a mistake exits 2 with the flag named and its options listed, before anything runs", () => {
    const p = Bun.spawnSync([process.execPath, "scripts/bench.ts", "--concurrency=eight"], { cwd: resolve(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(2);
    const err = p.stderr.toString();
    expect(err).toStartWith("bench: --concurrency must be a whole number, got 'eight'\n\nUsage: npm run bench -- [options]\n");
    expect(err).toMatch(/^ {2}--concurrency <n> {2,}parallel keep-alive connections \(default 8\)$/m);
    expect(err).toMatch(/^ {2}--help {2,}show this help$/m);
  });
});

describe("invocation and formatting helpers", () => {
  it.each([
    ["okta", "okta"],
    ["/tmp/a b/scimd.db", "'/tmp/a b/scimd.db'"],
    ["it's", `'it'\\''s'`],
    ["<idp>", "'<idp>'"],
    ["", "''"],
    ["$(rm -rf x)", "'$(rm -rf x)'"],
  ])("shellQuote(%p) is %p, which sh reads back as the same word", (word, quoted) => {
    expect(shellQuote(word)).toBe(quoted);
    const echoed = Bun.spawnSync(["sh", "-c", `printf %s ${quoted}`]).stdout.toString();
    expect(echoed).toBe(word);
  });

  it.each([
    ["./data/scimd.db", resolve("./data/scimd.db")],
    ["/var/lib/scimd/scimd.db", "/var/lib/scimd/scimd.db"],
    ["sqlite:./data/scimd.db", resolve("./data/scimd.db")],
    ["sqlite:///var/lib/scimd/scimd.db", "/var/lib/scimd/scimd.db"],
  ])("dbArg(%p) is --db with the absolute path of the file the value names: %p", (db, path) => {
    expect(dbArg(db)).toEqual(["--db", path]);
  });

  it("commandLine from source is the npm script of this checkout, with the arguments quoted", () => {
    const root = resolve(import.meta.dir, "..");
    expect(commandLine("generate-token", ["--name", "my idp"])).toBe(`npm --prefix ${root} run --silent generate-token -- --name 'my idp'`);
    expect(commandLine("serve")).toBe(`npm --prefix ${root} start`);
    expect(commandLine("tokens", ["list"])).toBe(`npm --prefix ${root} run --silent tokens -- list`);
  });

  it.each([
    ["0", 0],
    ["0s", 0],
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["24h", 86_400_000],
    ["7d", 604_800_000],
    ["366d", 366 * 86_400_000],
  ])("parseDuration reads %p as %p ms", (raw, ms) => {
    expect(parseDuration(raw, "--grace")).toBe(ms);
  });

  it.each(["", "30", "1y", "-5m", "5 m", "1.5h", "367d", "24H", "99999999999999999999d"])("parseDuration refuses %p with a UsageError naming the flag", (raw) => {
    expect(usageErrorOf(() => parseDuration(raw, "--grace")).message).toMatch(/^--grace must be/);
  });

  it.each([
    [86_399_000, "23h 59m"],
    [6 * 86_400_000 + 23 * 3_600_000 + 5, "6d 23h"],
    [7 * 86_400_000, "7d"],
    [29 * 60_000 + 59_000, "29m"],
    [45_400, "45s"],
    [3_600_000, "1h"],
  ])("formatDuration(%p) is %p", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("tokenState says revoked, active, expires in … (rotated), replaced, or expired", () => {
    const now = Date.parse("2026-01-01T00:00:00.000Z");
    const t = { id: "i", name: "okta", created: "2025-12-31T00:00:00.000Z", lastUsed: null, scope: "write", expiresAt: null } as const;
    expect(tokenState({ ...t, expires: null }, now)).toBe("active");
    expect(tokenState({ ...t, expires: "2026-01-01T23:59:30.000Z", rotated: "2025-12-31T23:59:30.000Z" }, now)).toBe("expires in 23h 59m (rotated)");
    // A lifetime chosen with --expires-in: no "(rotated)".
    expect(tokenState({ ...t, expires: "2026-03-01T00:00:00.000Z", expiresAt: "2026-03-01T00:00:00.000Z" }, now)).toBe("expires in 59d");
    expect(tokenState({ ...t, expires: "2026-01-01T00:00:00.000Z" }, now)).toBe("expired");
    expect(tokenState({ ...t, expires: "2025-12-31T12:00:00.000Z" }, now)).toBe("expired");
    // Rotated out and its grace over: replaced (not expired), unless its own lifetime ended it.
    expect(tokenState({ ...t, expires: "2025-12-31T12:00:00.000Z", rotated: "2025-12-31T11:00:00.000Z" }, now)).toBe("replaced");
    expect(tokenState({ ...t, expires: "2025-12-31T12:00:00.000Z", expiresAt: "2026-02-01T00:00:00.000Z", rotated: "2025-12-31T11:00:00.000Z" }, now)).toBe("replaced");
    expect(tokenState({ ...t, expires: "2025-12-31T12:00:00.000Z", expiresAt: "2025-12-31T12:00:00.000Z", rotated: "2025-12-31T11:00:00.000Z" }, now)).toBe("expired");
    // Revoked wins: a current secret and a rotated-out one still in its grace alike.
    expect(tokenState({ ...t, expires: null, revoked: "2025-12-31T18:00:00.000Z" }, now)).toBe("revoked");
    expect(tokenState({ ...t, expires: "2026-01-01T23:59:30.000Z", revoked: "2025-12-31T18:00:00.000Z" }, now)).toBe("revoked");
  });

  it.each([
    ["https://scim.example.com", true],
    ["https://scim.example.com/", true],
    ["https://example.com/scim/v2", true],
    ["https://scim.example.com/api/v1/scim", false],
    ["https://scim.example.com/api/v1/scim/", false],
    ["https://example.com/tenant-a/api/v1/scim", false],
  ])("baseUrlWarning(%p) warns: %p", (url, warns) => {
    const w = baseUrlWarning(url);
    expect(w !== undefined).toBe(warns);
    if (w) expect(w).toContain(`otherwise pass --base-url ${url.replace(/\/$/, "")}/api/v1/scim`);
  });

  it.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["::1", true],
    ["localhost", true],
    ["0.0.0.0", false],
    ["10.0.0.5", false],
    ["::", false],
    ["scim.example.com", false],
  ])("isLoopback(%p) is %p", (host, loopback) => {
    expect(isLoopback(host)).toBe(loopback);
  });

  it("httpsUrl is the ACME domain (the first), else the address or this machine's name, without :443", () => {
    expect(httpsUrl("0.0.0.0", 443, "scim.example.com, other.example.com")).toBe("https://scim.example.com/api/v1/scim");
    expect(httpsUrl("0.0.0.0", 8443, "scim.example.com")).toBe("https://scim.example.com:8443/api/v1/scim");
    expect(httpsUrl("10.0.0.5", 443, undefined)).toBe("https://10.0.0.5/api/v1/scim");
    expect(httpsUrl("::1", 8443, undefined)).toBe("https://[::1]:8443/api/v1/scim");
  });

  it("urlGuidance: a loopback plain-HTTP URL is said to be unreachable for a cloud IdP; plain http anywhere needs HTTPS; an https base URL needs nothing", () => {
    const loop = urlGuidance(undefined, "127.0.0.1", false).join("\n");
    expect(loop).toContain("loopback only");
    expect(loop).toContain("--base-url");
    expect(urlGuidance(undefined, "0.0.0.0", false).join("\n")).toMatch(/^Okta and Entra ID call https URLs only/);
    expect(urlGuidance("http://10.0.0.5:8080/api/v1/scim", "0.0.0.0", false).join("\n")).toMatch(/^Okta and Entra ID call https URLs only/);
    expect(urlGuidance("https://scim.example.com/api/v1/scim", "127.0.0.1", false)).toEqual([]);
    expect(urlGuidance(undefined, "0.0.0.0", true).join("\n")).not.toContain("loopback");
  });

  it("apiUrl shows the public base URL when set, else http://host:port with the API path (IPv6 in brackets, a name for all addresses)", () => {
    expect(apiUrl("127.0.0.1", 9000, undefined)).toBe("http://127.0.0.1:9000/api/v1/scim");
    expect(apiUrl("0.0.0.0", 8080, undefined, "vm1")).toBe("http://vm1:8080/api/v1/scim");
    expect(apiUrl("::", 8080, undefined)).toBe("http://localhost:8080/api/v1/scim");
    expect(apiUrl("::1", 8080, undefined)).toBe("http://[::1]:8080/api/v1/scim");
    expect(apiUrl("0.0.0.0", 8080, "https://scim.example.com/api/v1/scim/")).toBe("https://scim.example.com/api/v1/scim");
  });
});

describe("metricsExposureWarning", () => {
  it.each([
    ["127.0.0.1", false],
    ["::1", false],
    ["localhost", false],
    ["0.0.0.0", true],
    ["::", true],
    ["10.0.0.5", true],
  ])("--metrics-listen on %p warns: %p", (host, warns) => {
    const w = metricsExposureWarning(host, 9464);
    expect(w !== undefined).toBe(warns);
    if (w) expect(w).toContain("without a token");
  });
});

describe("tokens revoke keeps the revoked secrets: list hides them, list --all shows when, rotate refuses them, the name is free", () => {
  /** main with stdout (where a secret goes) captured too, so that no secret reaches the test output. */
  async function run(argv: string[]): Promise<{ code: number; out: string; err: string; printed: string }> {
    const write = process.stdout.write;
    let printed = "";
    process.stdout.write = ((chunk: string | Uint8Array) => {
      printed += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      return { ...(await runMain(argv)), printed };
    } finally {
      process.stdout.write = write;
    }
  }
  const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

  it("from revoke to a new token under the same name", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      expect((await run(["generate-token", "--name", "okta", "--db", db, "--create"])).code).toBe(0);
      expect((await run(["generate-token", "--name", "entra", "--db", db])).code).toBe(0);
      const revoke = await run(["tokens", "revoke", "okta", "--db", db]);
      expect([revoke.code, revoke.err]).toEqual([0, "revoked token 'okta' (1 secret)"]);

      const list = await run(["tokens", "list", "--db", db]);
      expect(list.code).toBe(0);
      expect(list.out.split("\n").map((l) => l.split(/ +/)[0])).toEqual(["NAME", "entra"]);
      expect(list.out).not.toContain("REVOKED");

      const all = await run(["tokens", "list", "--all", "--db", db]);
      expect(all.code).toBe(0);
      const lines = all.out.split("\n");
      expect(lines[0]).toMatch(/^NAME +ID +SCOPE +STATE +EXPIRES +CREATED +LAST USED +REVOKED$/);
      expect(lines[1]).toMatch(new RegExp(`^okta +\\S+ +write +revoked +never +${ISO} +never +(${ISO})$`));
      expect(lines[2]).toMatch(new RegExp(`^entra +\\S+ +write +active +never +${ISO} +never$`));
      const when = lines[1]!.split(/ +/).at(-1)!;

      // Rotating the revoked token is refused, prints no secret and changes nothing.
      const rotate = await run(["tokens", "rotate", "okta", "--db", db]);
      expect([rotate.code, rotate.printed]).toEqual([1, ""]);
      expect(rotate.err).toStartWith(`scimd: token 'okta' was revoked (at ${when}) and cannot be rotated. Create a new token under that name`);
      expect(rotate.err).toContain(`\n  ${commandLine("generate-token", ["--name", "okta", ...dbArg(db)])}`);
      expect((await run(["tokens", "list", "--all", "--db", db])).out).toBe(all.out);

      // Revoking again changes nothing, and says since when.
      const again = await run(["tokens", "revoke", "okta", "--db", db]);
      expect([again.code, again.err]).toEqual([0, `token 'okta' was already revoked (at ${when})`]);
      const id = lines[1]!.split(/ +/)[1]!;
      expect((await run(["tokens", "revoke", id, "--db", db])).err).toBe(`secret ${id} of token 'okta' was already revoked (at ${when})`);
      expect((await run(["tokens", "revoke", "nobody", "--db", db])).code).toBe(1);

      // The name is free: a new okta, listed as active; the revoked one keeps its time under --all.
      const fresh = await run(["generate-token", "--name", "okta", "--db", db]);
      expect(fresh.code).toBe(0);
      expect(fresh.printed).toMatch(/^scimd_\S+\n$/);
      expect((await run(["tokens", "list", "--db", db])).out).toMatch(/^okta +\S+ +write +active /m);
      const history = (await run(["tokens", "list", "--all", "--db", db])).out.split("\n").filter((l) => l.startsWith("okta "));
      expect(history.map((l) => l.split(/ +/)[3])).toEqual(["revoked", "active"]);
      expect(history[0]!.endsWith(when)).toBe(true);

      // With every token revoked, list says so and how to see them.
      await run(["tokens", "revoke", "okta", "--db", db]);
      await run(["tokens", "revoke", "entra", "--db", db]);
      const none = await run(["tokens", "list", "--db", db]);
      expect([none.code, none.out]).toEqual([0, ""]);
      expect(none.err).toStartWith(`no tokens (3 revoked secrets: ${commandLine("tokens", ["list", "--all", ...dbArg(db)])}); create one with`);
    } finally {
      cleanup();
    }
  });
});

describe("healthcheck's default target", () => {
  const target = (host: string) => {
    const parsed = serveConfig(["--host", host, "--port", "18923"], {});
    if (parsed.help) throw new Error("help");
    return defaultTarget(parsed.config).url.href;
  };
  it.each([
    ["127.0.0.1", "http://127.0.0.1:18923/readyz"],
    ["0.0.0.0", "http://127.0.0.1:18923/readyz"],
    ["::", "http://127.0.0.1:18923/readyz"],
    ["[::]", "http://127.0.0.1:18923/readyz"],
    ["::1", "http://[::1]:18923/readyz"],
    ["[::1]", "http://[::1]:18923/readyz"],
  ])("serve on --host %p is asked at %p (brackets or none, a wildcard on loopback)", (host, url) => {
    expect(target(host)).toBe(url);
  });
});
