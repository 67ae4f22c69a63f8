/**
 * One configuration chain: defaults < SCIMD_* environment < command-line flags, validated once at
 * start. Errors name the flag (or the variable) and say what is accepted. The flag tables drive the
 * parsing, the environment, the defaults, the checks and the help text; serveConfig builds the one
 * configuration serve runs with, from DEFAULTS, which createApp falls back to as well.
 */
import { parseArgs } from "node:util";
import { parseCidr } from "./http/client-address";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "./log";

export class UsageError extends Error {}

/** The kinds of value a flag takes, and what each converts to. */
export type FlagKind = "string" | "int" | "bool";
export type FlagValue<K extends FlagKind> = K extends "int" ? number : K extends "bool" ? boolean : string;

interface KindSpec<K extends FlagKind> {
  name: string;
  env?: string;
  kind: K;
  default?: FlagValue<K>;
  help: string;
  /** Refuses a value (from the environment, a flag or the default) with a UsageError. */
  check?: (v: FlagValue<K>) => void;
}
/** One row of a command's flag table: its name, environment variable, default, check and help line. */
export type FlagSpec = KindSpec<"string"> | KindSpec<"int"> | KindSpec<"bool">;

/**
 * A flag spec with its name, kind and default kept as literal types, so that a table of them gives
 * parseFlags' values their exact types; `check` receives the flag's converted value.
 */
export const flag = <const F extends FlagSpec>(spec: F): F => spec;

type Simplify<T> = { [K in keyof T]: T[K] };
/** The values parseFlags returns for a table: a flag with a default is always set, any other may be absent. */
export type FlagValues<S extends readonly FlagSpec[]> = Simplify<
  { [F in S[number] as F extends { default: {} } ? F["name"] : never]: FlagValue<F["kind"]> } & {
    [F in S[number] as F extends { default: {} } ? never : F["name"]]?: FlagValue<F["kind"]>;
  }
>;

export type Env = Record<string, string | undefined>;

function convert(spec: FlagSpec, raw: string, from: string): string | number | boolean {
  if (spec.kind === "int") {
    if (!/^\d+$/.test(raw.trim())) throw new UsageError(`${from} must be a whole number, got '${raw}'`);
    return Number(raw);
  }
  if (spec.kind === "bool") {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new UsageError(`${from} must be true or false, got '${raw}'`);
  }
  return raw;
}

/** How an option scimd does not know is named in the error: `--name` of `--name=value`, a short one as written. */
function unknownOption(arg: string): string {
  if (!arg.startsWith("--")) return arg;
  const eq = arg.indexOf("=");
  return eq < 0 ? arg : arg.slice(0, eq);
}

/**
 * Parses argv (after the command name) against the flag table: defaults < environment < flags, each
 * converted to its kind and checked; returns the values and the positional arguments.
 *
 * node:util parseArgs splits argv into tokens (`--flag=value`, `--flag value`, `--`, positionals);
 * the table decides the rest, in scimd's words. parseArgs runs non-strict because its strict mode
 * refuses what scimd accepts: `--strict=false` ("does not take an argument") and a value beginning
 * with one dash, such as `--name -x` or `--port -1` ("argument is ambiguous"), which scimd takes as
 * the value and then checks. Unknown options and missing values are therefore refused here, in the
 * order they appear; in non-strict mode parseArgs itself throws no ERR_PARSE_ARGS_* error.
 */
export function parseFlags<const S extends readonly FlagSpec[]>(argv: readonly string[], specs: S, env: Env = process.env): { values: FlagValues<S>; args: string[] } {
  const values: Record<string, string | number | boolean> = {};
  for (const s of specs) {
    if (s.default !== undefined) values[s.name] = s.default;
    const e = s.env ? env[s.env] : undefined;
    if (e !== undefined && e !== "") values[s.name] = convert(s, e, s.env!);
  }
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(specs.map((s) => [s.name, { type: s.kind === "bool" ? "boolean" : "string" } as const])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const args: string[] = [];
  for (const t of tokens) {
    if (t.kind === "positional") args.push(t.value);
    if (t.kind !== "option") continue;
    // No flag has a short form: `-x` (or a group such as `-abc`) is never one of the table's.
    const spec = t.rawName.startsWith("--") ? specs.find((s) => s.name === t.name) : undefined;
    if (!spec) throw new UsageError(`unknown option '${unknownOption(argv[t.index]!)}'`);
    let raw = t.value;
    if (spec.kind === "bool") raw ??= "true";
    // parseArgs gives a string flag the next argument even when it is another option (`--host --strict`).
    else if (raw === undefined || (!t.inlineValue && raw.startsWith("--"))) throw new UsageError(`option '${t.rawName}' needs a value`);
    values[spec.name] = convert(spec, raw, t.rawName);
  }
  for (const s of specs) {
    const v = values[s.name];
    if (v !== undefined) (s.check as ((v: string | number | boolean) => void) | undefined)?.(v);
  }
  return { values: values as FlagValues<S>, args };
}

/** Width of the flag column in help text; a longer flag puts its description on the next line. */
const FLAG_COLUMN = 28;
/** Help lines are wrapped at this width. */
const HELP_WIDTH = 100;

/** `text` wrapped into lines of at most `width` characters (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * The options block of a help text: the flag, then at least two spaces, then what it does (wrapped
 * under itself). A flag too long for the column stands alone and its description starts below it.
 */
export function flagHelp(specs: readonly FlagSpec[]): string {
  const indent = " ".repeat(FLAG_COLUMN);
  return specs
    .map((s) => {
      const left = `  --${s.name}${s.kind === "bool" ? "" : ` <${s.kind === "int" ? "n" : "value"}>`}`;
      const extra = [s.default !== undefined && s.default !== false ? `default ${s.default}` : "", s.env ? `env ${s.env}` : ""].filter(Boolean).join(", ");
      const text = wrap(`${s.help}${extra ? ` (${extra})` : ""}`, HELP_WIDTH - FLAG_COLUMN);
      const body = text.map((l) => indent + l);
      if (left.length + 2 <= FLAG_COLUMN) body[0] = left.padEnd(FLAG_COLUMN) + text[0];
      else body.unshift(left);
      return body.join("\n");
    })
    .join("\n");
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** The longest duration parseDuration accepts (a year), so that every end time is a valid date. */
export const MAX_DURATION_MS = 366 * DURATION_UNITS.d!;

/** "30m", "24h", "7d", "90s" or "0" as milliseconds; throws UsageError naming `option`. */
export function parseDuration(raw: string, option: string): number {
  const m = /^(\d+)([smhd])?$/.exec(raw.trim());
  if (!m || (m[2] === undefined && m[1] !== "0") || !Number.isSafeInteger(Number(m[1])))
    throw new UsageError(`${option} must be a duration such as 30m, 24h or 7d (s, m, h, d), or 0; got '${raw}'`);
  const ms = Number(m[1]) * (m[2] ? DURATION_UNITS[m[2]]! : 0);
  if (ms > MAX_DURATION_MS) throw new UsageError(`${option} must be at most 366d; got '${raw}'`);
  return ms;
}

/** A duration for people: "23h 59m", "6d 23h", "29m", "45s". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return `${m}m`;
  return `${s}s`;
}

/**
 * serve's defaults, defined once: the flags below take them, and createApp falls back to them for an
 * option its caller leaves out.
 */
export const DEFAULTS = {
  port: 8080,
  /** Plain HTTP listens on loopback only unless --host says otherwise (a reverse proxy on the same VM). */
  host: "127.0.0.1",
  /** With TLS (certificate files or ACME) scimd is meant to be reached directly: every interface. */
  tlsHost: "0.0.0.0",
  db: "./data/scimd.db",
  strict: false,
  sync: "full",
  maxBodyBytes: 1024 * 1024,
  maxResults: 1000,
  authFailuresPerMinute: 20,
  logLevel: "info",
  acmeDirectory: "https://acme-v02.api.letsencrypt.org/directory",
  acmeHttpPort: 80,
} as const;

export const HELP_FLAG = flag({ name: "help", kind: "bool", help: "show this help" });
export const DB_FLAG = flag({ name: "db", env: "SCIMD_DB", kind: "string", default: DEFAULTS.db, help: "the database: a file path or sqlite:PATH (SQLite); serve creates it and its folder" });
function checkPort(option: string, v: number): void {
  if (v > 65535) throw new UsageError(`${option} must be 0..65535`);
}

export const PORT_FLAG = flag({
  name: "port",
  env: "SCIMD_PORT",
  kind: "int",
  default: DEFAULTS.port,
  help: "TCP port (0 picks a free one)",
  check: (v) => checkPort("--port", v),
});
export const HOST_FLAG = flag({
  name: "host",
  env: "SCIMD_HOST",
  kind: "string",
  help: `address to listen on (default ${DEFAULTS.host} for plain HTTP, ${DEFAULTS.tlsHost} with TLS)`,
});
export const BASE_URL_FLAG = flag({
  name: "base-url",
  env: "SCIMD_BASE_URL",
  kind: "string",
  help: "public URL of the SCIM API for meta.location and Location, e.g. https://scim.example.com/api/v1/scim (default: derived from each request)",
  check: (v) => {
    try {
      const u = new URL(v);
      if (!/^https?:$/.test(u.protocol)) throw new Error();
    } catch {
      throw new UsageError(`--base-url must be an absolute http(s) URL, got '${v}'`);
    }
  },
});

/** serve's flags, in the order its help lists them. */
export const SERVE_FLAGS = [
  PORT_FLAG,
  HOST_FLAG,
  DB_FLAG,
  BASE_URL_FLAG,
  flag({ name: "strict", env: "SCIMD_STRICT", kind: "bool", default: DEFAULTS.strict, help: "no IdP quirks: refuse every request RFC 7643/7644 do not allow (unknown attributes, unquoted filter values, string booleans, …) with 400" }),
  flag({
    name: "sync",
    env: "SCIMD_SYNC",
    kind: "string",
    default: DEFAULTS.sync,
    help: "SQLite synchronous: full (survives power loss) or normal (survives a crash of scimd)",
    check: (v) => {
      if (!/^(full|normal)$/i.test(v)) throw new UsageError("--sync must be 'full' or 'normal'");
    },
  }),
  flag({ name: "max-body-bytes", env: "SCIMD_MAX_BODY_BYTES", kind: "int", default: DEFAULTS.maxBodyBytes, help: "largest request body accepted (413 above)" }),
  flag({
    name: "max-results",
    env: "SCIMD_MAX_RESULTS",
    kind: "int",
    default: DEFAULTS.maxResults,
    help: "largest page a query returns",
    check: (v) => {
      if (v < 1) throw new UsageError("--max-results must be at least 1");
    },
  }),
  flag({ name: "auth-failures-per-minute", env: "SCIMD_AUTH_FAILURES_PER_MINUTE", kind: "int", default: DEFAULTS.authFailuresPerMinute, help: "failed authentications per client address per minute before 429" }),
  flag({ name: "tls-cert", env: "SCIMD_TLS_CERT", kind: "string", help: "serve HTTPS with this certificate chain (PEM); a renewed file is picked up without a restart" }),
  flag({ name: "tls-key", env: "SCIMD_TLS_KEY", kind: "string", help: "the private key (PEM) of --tls-cert" }),
  flag({ name: "acme-domain", env: "SCIMD_ACME_DOMAIN", kind: "string", help: "obtain and renew a certificate for this domain (comma-separated for several) over ACME" }),
  flag({ name: "acme-email", env: "SCIMD_ACME_EMAIL", kind: "string", help: "contact address for the ACME account (expiry notices)" }),
  flag({ name: "acme-directory", env: "SCIMD_ACME_DIRECTORY", kind: "string", default: DEFAULTS.acmeDirectory, help: "the ACME server's directory URL" }),
  flag({ name: "acme-ca-file", env: "SCIMD_ACME_CA_FILE", kind: "string", help: "trust this CA (PEM) for the ACME server's own HTTPS (a private or test ACME server)" }),
  flag({ name: "acme-http-port", env: "SCIMD_ACME_HTTP_PORT", kind: "int", default: DEFAULTS.acmeHttpPort, help: "port that answers the ACME HTTP-01 challenge", check: (v) => checkPort("--acme-http-port", v) }),
  flag({
    name: "trust-proxy",
    env: "SCIMD_TRUST_PROXY",
    kind: "string",
    help: "take the client address from X-Forwarded-For when the connection comes from these addresses (CIDR[,CIDR])",
    check: (v) => {
      for (const c of v.split(",").map((x) => x.trim()).filter(Boolean)) {
        try {
          parseCidr(c);
        } catch (e) {
          throw new UsageError(`--trust-proxy: ${(e as Error).message}`);
        }
      }
    },
  }),
  flag({ name: "log-level", env: "SCIMD_LOG_LEVEL", kind: "string", default: DEFAULTS.logLevel, help: "debug, info, warn or error" }),
  flag({ name: "log-format", env: "SCIMD_LOG_FORMAT", kind: "string", help: "json or pretty (default: pretty on a terminal, json otherwise)" }),
  flag({ name: "metrics-listen", env: "SCIMD_METRICS_LISTEN", kind: "string", help: "serve Prometheus /metrics on this separate HOST:PORT, e.g. 127.0.0.1:9464" }),
  flag({ name: "config", env: "SCIMD_CONFIG", kind: "string", help: "read settings from this TOML file (flags > SCIMD_* > file > defaults)" }),
  HELP_FLAG,
] as const;

/** What serve runs with: every value validated, from its default, a SCIMD_* variable or a flag. */
export interface ServeConfig {
  /** TCP port; 0 picks a free one. */
  port: number;
  host: string;
  /** The --db value as given (a file path or sqlite:PATH): store/open.ts reads it. */
  db: string;
  /** The public base URL of the SCIM API as given; when absent it is derived from each request. */
  baseUrl: string | undefined;
  strict: boolean;
  /** SQLite's synchronous pragma. */
  sync: "FULL" | "NORMAL";
  maxBodyBytes: number;
  maxResults: number;
  authFailuresPerMinute: number;
  /** Certificate and key files for HTTPS. */
  tls: { certFile: string; keyFile: string } | undefined;
  /** Automatic certificates over ACME. */
  acme: { domains: string[]; email: string; directory: string; caFile: string | undefined; httpPort: number } | undefined;
  /** --trust-proxy as given, split at commas (CIDRs or addresses). */
  trustProxy: readonly string[];
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** A separate listener for /metrics. */
  metricsListen: { host: string; port: number } | undefined;
  /** The TOML file the settings were read from. */
  configFile: string | undefined;
}

/** `HOST:PORT` (`[::1]:9464` for IPv6) as its parts; throws UsageError naming `option`. */
export function hostPort(raw: string, option: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${option} must be HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, got '${raw}'`);
  return { host: m[1] ?? m[2]!, port };
}

/** A command line that asks for the command's help, or the configuration the command runs with. */
export type Parsed<C> = { help: true } | { help: false; config: C };

/**
 * serve's configuration from its arguments and the environment (defaults < SCIMD_* < flags), or
 * `{ help: true }` for --help. Throws UsageError naming the flag or variable at fault.
 */
export function serveConfig(argv: readonly string[], env: Env = process.env): Parsed<ServeConfig> {
  const { values, args } = parseFlags(argv, SERVE_FLAGS, env);
  if (values.help) return { help: true };
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  const certFile = values["tls-cert"], keyFile = values["tls-key"];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError("--tls-cert and --tls-key go together: give both, or neither");
  const domains = (values["acme-domain"] ?? "").split(",").map((d) => d.trim()).filter(Boolean);
  if (domains.length && certFile !== undefined) throw new UsageError("--acme-domain and --tls-cert are alternatives: scimd either obtains its certificate or serves the one in the files");
  if (domains.length && !values["acme-email"]) throw new UsageError("--acme-domain needs --acme-email, the contact address of the ACME account");
  if (!domains.length && values["acme-email"] !== undefined) throw new UsageError("--acme-email needs --acme-domain, the domain to obtain a certificate for");
  const tls = certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
  const level = values["log-level"].toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got '${values["log-level"]}'`);
  const format = values["log-format"]?.toLowerCase() ?? (process.stdout.isTTY ? "pretty" : "json");
  if (format !== "json" && format !== "pretty") throw new UsageError(`--log-format must be json or pretty, got '${values["log-format"]}'`);
  return {
    help: false,
    config: {
      port: values.port,
      host: values.host ?? (tls || domains.length ? DEFAULTS.tlsHost : DEFAULTS.host),
      db: values.db,
      baseUrl: values["base-url"],
      strict: values.strict,
      sync: values.sync.toLowerCase() === "normal" ? "NORMAL" : "FULL",
      maxBodyBytes: values["max-body-bytes"],
      maxResults: values["max-results"],
      authFailuresPerMinute: values["auth-failures-per-minute"],
      tls,
      acme: domains.length
        ? { domains, email: values["acme-email"]!, directory: values["acme-directory"], caFile: values["acme-ca-file"], httpPort: values["acme-http-port"] }
        : undefined,
      trustProxy: (values["trust-proxy"] ?? "").split(",").map((c) => c.trim()).filter(Boolean),
      logLevel: level as LogLevel,
      logFormat: format,
      metricsListen: values["metrics-listen"] === undefined ? undefined : hostPort(values["metrics-listen"], "--metrics-listen"),
      configFile: values.config,
    },
  };
}
