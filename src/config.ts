/**
 * One configuration chain: defaults < a TOML file (--config) < SCIMD_* environment < command-line
 * flags, validated once at start. Errors name the flag (or the variable, or the file and its key) and
 * say what is accepted. The flag tables drive the parsing, the environment, the file's keys, the
 * defaults, the checks and the help text; serveConfig builds the one configuration serve runs with,
 * from DEFAULTS, which createApp falls back to as well.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse as parseToml, TomlDate, TomlError } from "smol-toml";
import { parseCidr } from "./http/client-address";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "./log";
import { isPostgresUrl, urlHasPassword } from "./store/open";

export class UsageError extends Error {}
/**
 * A mistake in (or a failure to read) the config file: one line naming the file (and the key), and
 * no usage text after it, since the fix is in the file, not on the command line.
 */
export class ConfigFileError extends UsageError {}

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

/** A config file's settings by option name: the key as written and the value, typed by the option's kind. */
export type ConfigFileSettings = Map<string, { key: string; value: string | number | boolean }>;

/** Where a value came from, for errors and for `scimd config`. */
export type Source =
  | { kind: "default" }
  | { kind: "env"; name: string }
  | { kind: "file"; path: string; key: string }
  | { kind: "flag"; name: string };
export type Sources = Record<string, Source>;

/** A config file layer: the flag whose value names the file, and the flags the file may set. */
export interface FileLayer {
  flag: string;
  specs: readonly FlagSpec[];
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
  const { values, args } = resolveFlags(argv, specs, env);
  return { values, args };
}

/**
 * parseFlags with each value's source, and with a config file layer when `file` is given:
 * defaults < file < environment < flags. The file is the one the `file.flag` flag (or its variable)
 * names; `file.specs` are the keys it may hold (those of the table are merged; all are returned in
 * `file`, so that generate-token can see whether serve serves HTTPS). Errors come in this order: the
 * environment's values, the flags' (as they appear), the file's, then the checks of the merged values
 * (a check failing on a file's value names the file and the key).
 */
export function resolveFlags<const S extends readonly FlagSpec[]>(
  argv: readonly string[],
  specs: S,
  env: Env = process.env,
  file?: FileLayer,
): { values: FlagValues<S>; args: string[]; sources: Sources; file?: ConfigFileSettings } {
  const values: Record<string, string | number | boolean> = {};
  const sources: Sources = {};
  const fromEnv: Record<string, string | number | boolean> = {};
  for (const s of specs) {
    if (s.default !== undefined) {
      values[s.name] = s.default;
      sources[s.name] = { kind: "default" };
    }
    const e = s.env ? env[s.env] : undefined;
    if (e !== undefined && e !== "") fromEnv[s.name] = convert(s, e, s.env!);
  }
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(specs.map((s) => [s.name, { type: s.kind === "bool" ? "boolean" : "string" } as const])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const args: string[] = [];
  const fromFlags: Record<string, { value: string | number | boolean; rawName: string }> = {};
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
    fromFlags[spec.name] = { value: convert(spec, raw, t.rawName), rawName: t.rawName };
  }
  let settings: ConfigFileSettings | undefined;
  if (file) {
    const flagPath = fromFlags[file.flag]?.value, envPath = fromEnv[file.flag];
    const path = (flagPath ?? envPath) as string | undefined;
    if (path !== undefined) {
      const named = flagPath !== undefined ? `--${file.flag}` : specs.find((s) => s.name === file.flag)?.env ?? `--${file.flag}`;
      if (path === "") throw new UsageError(`${named} must name a TOML file`);
      settings = readConfigFile(path, named, file.specs);
      for (const [name, entry] of settings) {
        if (!specs.some((s) => s.name === name)) continue;
        values[name] = entry.value;
        sources[name] = { kind: "file", path, key: entry.key };
      }
    }
  }
  for (const s of specs) {
    if (fromEnv[s.name] !== undefined) {
      values[s.name] = fromEnv[s.name]!;
      sources[s.name] = { kind: "env", name: s.env! };
    }
    const f = fromFlags[s.name];
    if (f) {
      values[s.name] = f.value;
      sources[s.name] = { kind: "flag", name: f.rawName };
    }
  }
  for (const s of specs) {
    const v = values[s.name];
    if (v === undefined) continue;
    try {
      (s.check as ((v: string | number | boolean) => void) | undefined)?.(v);
    } catch (e) {
      throw e instanceof UsageError ? blamed(e, sources) : e;
    }
  }
  return { values: values as FlagValues<S>, args, sources, ...(settings ? { file: settings } : {}) };
}

/**
 * A UsageError about flags (`--port must be 0..65535`) told in the terms of where the values at fault
 * came from: the config file (`/etc/scimd/scimd.toml: port must be 0..65535`) or a SCIMD_* variable
 * (`SCIMD_PORT must be 0..65535`), or, when the message names several flags, with where those set
 * outside the command line come from appended. Other errors are returned as they are.
 */
export function blamed(e: UsageError, sources: Sources): UsageError {
  if (e instanceof ConfigFileError) return e;
  const named = [...new Set([...e.message.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!))];
  const elsewhere = named.filter((n) => sources[n]?.kind === "file" || sources[n]?.kind === "env");
  if (!elsewhere.length) return e;
  const inFile = elsewhere.some((n) => sources[n]!.kind === "file");
  const make = (message: string) => (inFile ? new ConfigFileError(message) : new UsageError(message));
  const src = (n: string) => sources[n] as Extract<Source, { kind: "file" | "env" }>;
  if (named.length === 1 && e.message.startsWith(`--${named[0]}`)) {
    const s = src(named[0]!);
    const rest = e.message.slice(2 + named[0]!.length);
    return make(s.kind === "file" ? `${s.path}: ${s.key}${rest}` : `${s.name}${rest}`);
  }
  const where = (n: string) => {
    const s = src(n);
    return s.kind === "file" ? `${s.key} is set in ${s.path}` : `--${n} is set by ${s.name}`;
  };
  return make(`${e.message} (${elsewhere.map(where).join(", ")})`);
}

/** Levenshtein distance, for suggesting the key a misspelt one meant. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** A TOML value as an error message shows it: `"8443" (a string)`, `1.5`, `an array`. */
function tomlShown(v: unknown): string {
  if (typeof v === "string") return `${JSON.stringify(v)} (a string)`;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (Array.isArray(v)) return "an array";
  if (v instanceof TomlDate) return `a date (${v.toISOString()})`;
  return "a table";
}

/** Why a file cannot be read, in a few words. */
export function readFailure(e: unknown): string {
  const code = (e as { code?: string } | null)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied (serve reads it as the user it runs as)";
  if (code === "EISDIR") return "it is a folder, not a file";
  return e instanceof Error ? e.message : String(e);
}

/**
 * Reads the TOML config file at `path` (named by `named`: `--config` or `SCIMD_CONFIG`) as the flags
 * it sets: each top-level key is a flag's name (`tls-cert`, or `tls_cert`, the same key), its value of
 * the flag's kind (a TOML integer, boolean or string). Refuses, in one line naming the file (and the
 * key): a file it cannot read, invalid TOML, an unknown key (suggesting the nearest), a key given
 * twice (once in each spelling), a table, a value of the wrong type.
 */
export function readConfigFile(path: string, named: string, specs: readonly FlagSpec[]): ConfigFileSettings {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(path));
  } catch (e) {
    if (e instanceof TypeError) throw new ConfigFileError(`${path} (${named}) is not UTF-8 text, which TOML requires`);
    throw new ConfigFileError(`cannot read the config file ${path} (${named}): ${readFailure(e)}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    const why = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
    throw new ConfigFileError(`${path}:${e.line}:${e.column}: not valid TOML: ${why}`);
  }
  const out: ConfigFileSettings = new Map();
  const known = specs.map((s) => s.name);
  for (const [key, value] of Object.entries(doc)) {
    const name = key.replaceAll("_", "-");
    const spec = specs.find((s) => s.name === name);
    if (!spec) {
      const near = known.filter((k) => distance(k, name) <= Math.max(2, Math.floor(k.length / 4))).sort((a, b) => distance(a, name) - distance(b, name));
      const hint = value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof TomlDate)
        ? ` (a table: scimd reads top-level keys only, write them before any [section])`
        : near.length ? ` (did you mean '${near[0]}'?)` : "";
      throw new ConfigFileError(`${path}: unknown key '${key}'${hint}; the keys are serve's option names: ${known.join(", ")}`);
    }
    const twice = out.get(name);
    if (twice) throw new ConfigFileError(`${path}: '${twice.key}' and '${key}' are the same setting; keep one`);
    const ok =
      spec.kind === "int" ? typeof value === "number" && Number.isSafeInteger(value) && value >= 0 : spec.kind === "bool" ? typeof value === "boolean" : typeof value === "string";
    if (!ok) {
      const accepted =
        spec.kind === "int"
          ? `a whole number without quotes, e.g. ${key} = ${typeof value === "string" && /^\d+$/.test(value) ? value : spec.default ?? 0}`
          : spec.kind === "bool"
            ? `true or false, without quotes`
            : `a string in quotes, e.g. ${key} = ${JSON.stringify(typeof value === "number" || typeof value === "boolean" ? String(value) : typeof spec.default === "string" ? spec.default : "…")}`;
      throw new ConfigFileError(`${path}: ${key} must be ${accepted}; got ${tomlShown(value)}`);
    }
    out.set(name, { key, value: value as string | number | boolean });
  }
  return out;
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

/**
 * "30m", "24h", "7d", "90s" or "0" as milliseconds; throws UsageError naming `option` and, as the
 * other accepted value, `orElse` (an option that refuses 0 offers its own word instead).
 */
export function parseDuration(raw: string, option: string, orElse = "0"): number {
  const m = /^(\d+)([smhd])?$/.exec(raw.trim());
  if (!m || (m[2] === undefined && m[1] !== "0") || !Number.isSafeInteger(Number(m[1])))
    throw new UsageError(`${option} must be a duration such as 30m, 24h or 7d (s, m, h, d), or ${orElse}; got '${raw}'`);
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
  maxListMembers: 10_000,
  authFailuresPerMinute: 20,
  maxConnections: 0,
  maxConnectionsPerClient: 0,
  logLevel: "info",
  acmeDirectory: "https://acme-v02.api.letsencrypt.org/directory",
  acmeHttpPort: 80,
  activityLog: true,
  activityRetention: "90d",
  queryTimeout: "5s",
} as const;

export const HELP_FLAG = flag({ name: "help", kind: "bool", help: "show this help" });
export const DB_FLAG = flag({
  name: "db",
  env: "SCIMD_DB",
  kind: "string",
  default: DEFAULTS.db,
  help: "the database: a file path or sqlite:PATH (SQLite; serve creates it and its folder), or a PostgreSQL URL such as postgres://scimd@db.example.com:5432/scimd?sslmode=require",
});
export const DB_PASSWORD_FILE_FLAG = flag({
  name: "db-password-file",
  env: "SCIMD_DB_PASSWORD_FILE",
  kind: "string",
  help: "PostgreSQL only: read the database password from this file (its content, one trailing newline dropped; mode 0600). Used when the --db URL holds no password; wins over PGPASSWORD",
});

/**
 * Refuses a --db-password-file that cannot apply: beside a SQLite --db (a password is PostgreSQL's),
 * or beside a --db URL that holds a password itself (two passwords: which one is meant is not
 * guessed). Never repeats the URL. The file itself is read when the database is opened.
 */
/** The flags a database and its password file are given by: serve's and most commands' --db and --db-password-file, migrate's --from/--to and --from-/--to-password-file. */
export interface DbFlagNames {
  db: string;
  file: string;
}
export const DB_FLAG_NAMES: DbFlagNames = { db: "--db", file: "--db-password-file" };

/**
 * The flag names a refused login is told in: the password file by where it was set (`--db-password-file`,
 * `SCIMD_DB_PASSWORD_FILE`, or `db-password-file in /etc/scimd/scimd.toml`), so the reader looks in the right place.
 */
export function dbFlagNamesFrom(sources: Sources | undefined): DbFlagNames {
  const s = sources?.["db-password-file"];
  if (s?.kind === "env") return { ...DB_FLAG_NAMES, file: s.name };
  if (s?.kind === "file") return { ...DB_FLAG_NAMES, file: `${s.key} in ${s.path}` };
  return DB_FLAG_NAMES;
}

export function checkDbPasswordFile(db: string, file: string | undefined, sources?: Sources, names: DbFlagNames = DB_FLAG_NAMES): void {
  if (sources) {
    try {
      checkDbPasswordFile(db, file, undefined, names);
    } catch (e) {
      // Told in the terms of where --db and --db-password-file were set (a SCIMD_* variable, the config file).
      throw e instanceof UsageError ? blamed(e, sources) : e;
    }
    return;
  }
  if (file === undefined) return;
  const { db: dbFlag, file: fileFlag } = names;
  if (file.trim() === "") throw new UsageError(`${fileFlag} is empty; give the path of the file that holds the PostgreSQL password`);
  if (!isPostgresUrl(db))
    throw new UsageError(
      db.includes("://")
        ? `${fileFlag} applies to PostgreSQL only, and ${dbFlag} is not a postgres:// or postgresql:// URL`
        : `${fileFlag} applies to PostgreSQL only (a postgres:// ${dbFlag}); ${dbFlag} ${db} is a SQLite file, which has no password`,
    );
  if (urlHasPassword(db))
    throw new UsageError(`${fileFlag} is given, but the ${dbFlag} URL holds a password too: give the password one way, either in the URL or in the file (then remove it from ${dbFlag})`);
}
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

export const CONFIG_FLAG = flag({
  name: "config",
  env: "SCIMD_CONFIG",
  kind: "string",
  help: "read settings from this TOML file, whose keys are these options' names (port = 8443); flags > SCIMD_* > file > defaults",
});

/** serve's flags, in the order its help lists them. */
export const SERVE_FLAGS = [
  PORT_FLAG,
  HOST_FLAG,
  DB_FLAG,
  DB_PASSWORD_FILE_FLAG,
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
  flag({
    name: "max-list-members",
    env: "SCIMD_MAX_LIST_MEMBERS",
    kind: "int",
    default: DEFAULTS.maxListMembers,
    help: "most group members one list response carries: a page of Groups ends before the group that would pass it",
    check: (v) => {
      if (v < 1) throw new UsageError("--max-list-members must be at least 1");
    },
  }),
  flag({ name: "auth-failures-per-minute", env: "SCIMD_AUTH_FAILURES_PER_MINUTE", kind: "int", default: DEFAULTS.authFailuresPerMinute, help: "failed authentications per client address per minute before 429" }),
  flag({
    name: "max-connections",
    env: "SCIMD_MAX_CONNECTIONS",
    kind: "int",
    default: DEFAULTS.maxConnections,
    help: "most open connections to the API's port, all clients together; a new one past it is closed at once (0: no cap)",
    check: (v) => {
      if (v < 0) throw new UsageError("--max-connections must be 0 (no cap) or more");
    },
  }),
  flag({
    name: "max-connections-per-client",
    env: "SCIMD_MAX_CONNECTIONS_PER_CLIENT",
    kind: "int",
    default: DEFAULTS.maxConnectionsPerClient,
    help: "most open connections from one client address (IPv6: one /64); a new one past it is closed at once (0: no cap)",
    check: (v) => {
      if (v < 0) throw new UsageError("--max-connections-per-client must be 0 (no cap) or more");
    },
  }),
  flag({ name: "tls-cert", env: "SCIMD_TLS_CERT", kind: "string", help: "serve HTTPS with this certificate chain (PEM); a renewed file is picked up without a restart" }),
  flag({ name: "tls-key", env: "SCIMD_TLS_KEY", kind: "string", help: "the private key (PEM) of --tls-cert" }),
  flag({ name: "acme-domain", env: "SCIMD_ACME_DOMAIN", kind: "string", help: "obtain and renew a certificate for this domain (comma-separated for several) over ACME" }),
  flag({ name: "acme-email", env: "SCIMD_ACME_EMAIL", kind: "string", help: "contact address for the ACME account (expiry notices)" }),
  flag({ name: "acme-directory", env: "SCIMD_ACME_DIRECTORY", kind: "string", default: DEFAULTS.acmeDirectory, help: "the ACME server's directory URL" }),
  flag({ name: "acme-ca-file", env: "SCIMD_ACME_CA_FILE", kind: "string", help: "trust this CA (PEM) for the ACME server's own HTTPS (a private or test ACME server)" }),
  flag({ name: "acme-dir", env: "SCIMD_ACME_DIR", kind: "string", help: "keep the ACME account key and certificate in this folder (default: an acme folder beside a SQLite --db; needed with a PostgreSQL --db)" }),
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
  flag({
    name: "activity-log",
    env: "SCIMD_ACTIVITY_LOG",
    kind: "bool",
    default: DEFAULTS.activityLog,
    help: "record every change in the activity log (scimd activity), in the change's own transaction; false records nothing",
  }),
  flag({
    name: "activity-retention",
    env: "SCIMD_ACTIVITY_RETENTION",
    kind: "string",
    default: DEFAULTS.activityRetention,
    help: "how long activity entries are kept: 30d, 90d, 366d at most, or 0 to keep them forever; older ones are pruned in the background",
    check: (v) => void parseDuration(v, "--activity-retention"),
  }),
  flag({
    name: "query-timeout",
    env: "SCIMD_QUERY_TIMEOUT",
    kind: "string",
    default: DEFAULTS.queryTimeout,
    help: "how long a search that reads every resource (a filter no index answers) may run, off the event loop, before it is stopped with 400 tooMany: 5s, 30s, 2m",
    check: (v) => void queryTimeoutMs(v),
  }),
  CONFIG_FLAG,
  HELP_FLAG,
] as const;

/** --query-timeout in milliseconds: a duration of at least one second. */
function queryTimeoutMs(v: string): number {
  const ms = parseDuration(v, "--query-timeout", "a number of seconds such as 5s");
  if (ms < 1000) throw new UsageError(`--query-timeout must be at least 1s; got '${v}'`);
  return ms;
}

/** What serve runs with: every value validated, from its default, a SCIMD_* variable or a flag. */
export interface ServeConfig {
  /** TCP port; 0 picks a free one. */
  port: number;
  host: string;
  /** The --db value as given (a file path, sqlite:PATH or a postgres:// URL): store/open.ts reads it. */
  db: string;
  /** The file holding the PostgreSQL password (checked to fit --db; read when the database is opened). */
  dbPasswordFile: string | undefined;
  /** The public base URL of the SCIM API as given; when absent it is derived from each request. */
  baseUrl: string | undefined;
  strict: boolean;
  /** SQLite's synchronous pragma. */
  sync: "FULL" | "NORMAL";
  maxBodyBytes: number;
  maxResults: number;
  maxListMembers: number;
  authFailuresPerMinute: number;
  /** Caps on open connections to the API's port (0: none); either above 0 puts the connection front in place. */
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** Certificate and key files for HTTPS. */
  tls: { certFile: string; keyFile: string } | undefined;
  /** Automatic certificates over ACME. */
  acme: { domains: string[]; email: string; directory: string; caFile: string | undefined; httpPort: number; dir?: string } | undefined;
  /** --trust-proxy as given, split at commas (CIDRs or addresses). */
  trustProxy: readonly string[];
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** A separate listener for /metrics. */
  metricsListen: { host: string; port: number } | undefined;
  /** Whether writes are recorded in the activity log. */
  activityLog: boolean;
  /** How long activity entries are kept, in milliseconds; 0 keeps them forever. */
  activityRetentionMs: number;
  /** The deadline of a search that scans a table, in milliseconds. */
  queryTimeoutMs: number;
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

/** A wildcard address: it listens on every interface, so it shares a port with any address. */
const isWildcard = (h: string) => h === "0.0.0.0" || h === "::" || h === "";

/** Whether two listen addresses can clash on one port: the same address, or either a wildcard. */
export function hostsOverlap(a: string, b: string): boolean {
  const norm = (h: string) => h.trim().replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const x = norm(a), y = norm(b);
  return x === y || isWildcard(x) || isWildcard(y);
}

/** A command line that asks for the command's help, or the configuration the command runs with. */
export type Parsed<C> = { help: true } | { help: false; config: C };

/** The flags a config file may set: serve's, but --help and --config itself. */
export const FILE_FLAGS: readonly FlagSpec[] = SERVE_FLAGS.filter((s) => s.name !== "help" && s.name !== "config");

/** serve's configuration with the flag values it was built from and where each came from (for `scimd config`). */
export interface ServeSettings {
  config: ServeConfig;
  /** Every flag's value by flag name (absent: not set), as given, before serveConfig derives its defaults. */
  values: Record<string, string | number | boolean | undefined>;
  sources: Sources;
}

/**
 * serve's configuration from its arguments, the environment and the config file (defaults < file <
 * SCIMD_* < flags), or `{ help: true }` for --help. Throws UsageError naming the flag, variable or
 * file key at fault. `specs` is SERVE_FLAGS, or a table that adds options of its own (scimd config's
 * --json) to them.
 */
export function serveSettings(argv: readonly string[], env: Env = process.env, specs: readonly FlagSpec[] = SERVE_FLAGS): { help: true } | ({ help: false } & ServeSettings) {
  const resolved = resolveFlags(argv, specs, env, { flag: "config", specs: FILE_FLAGS });
  const values = resolved.values as unknown as FlagValues<typeof SERVE_FLAGS>;
  if (values.help) return { help: true };
  try {
    return { help: false, config: build(values, resolved.args), values: resolved.values as ServeSettings["values"], sources: resolved.sources };
  } catch (e) {
    throw e instanceof UsageError ? blamed(e, resolved.sources) : e;
  }
}

/**
 * serve's configuration from its arguments, the environment and the config file (defaults < file <
 * SCIMD_* < flags), or `{ help: true }` for --help. Throws UsageError naming the flag, variable or
 * file key at fault.
 */
export function serveConfig(argv: readonly string[], env: Env = process.env): Parsed<ServeConfig> {
  const s = serveSettings(argv, env);
  return s.help ? s : { help: false, config: s.config };
}

function build(values: FlagValues<typeof SERVE_FLAGS>, args: readonly string[]): ServeConfig {
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  checkDbPasswordFile(values.db, values["db-password-file"]);
  const certFile = values["tls-cert"], keyFile = values["tls-key"];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError("--tls-cert and --tls-key go together: give both, or neither");
  const domains = (values["acme-domain"] ?? "").split(",").map((d) => d.trim()).filter(Boolean);
  if (domains.length && certFile !== undefined) throw new UsageError("--acme-domain and --tls-cert are alternatives: scimd either obtains its certificate or serves the one in the files");
  if (domains.length && !values["acme-email"]) throw new UsageError("--acme-domain needs --acme-email, the contact address of the ACME account");
  if (!domains.length && values["acme-email"] !== undefined) throw new UsageError("--acme-email needs --acme-domain, the domain to obtain a certificate for");
  if (!domains.length && values["acme-dir"] !== undefined) throw new UsageError("--acme-dir needs --acme-domain: it is where the certificate scimd obtains is kept");
  if (values["acme-dir"] !== undefined && values["acme-dir"].trim() === "") throw new UsageError("--acme-dir is empty; name a folder such as /var/lib/scimd/acme");
  const tls = certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
  if (values.host !== undefined && values.host.trim() === "") throw new UsageError(`--host is empty; give an address such as ${DEFAULTS.host}, 0.0.0.0 or ::`);
  const host = values.host ?? (tls || domains.length ? DEFAULTS.tlsHost : DEFAULTS.host);
  // serve would refuse these only after opening (and perhaps creating) the database, or not clearly.
  if (domains.length && values["acme-http-port"] === values.port && values.port !== 0)
    throw new UsageError(`--acme-http-port and --port are both ${values.port}: the HTTP-01 challenge needs a plain HTTP port of its own (80)`);
  const metricsListen = values["metrics-listen"] === undefined ? undefined : hostPort(values["metrics-listen"], "--metrics-listen");
  if (metricsListen && metricsListen.port === values.port && values.port !== 0 && hostsOverlap(metricsListen.host, host))
    throw new UsageError(
      `--metrics-listen ${values["metrics-listen"]} is the API's own port (--port ${values.port} on ${host}): /metrics needs a port of its own, such as 127.0.0.1:9464`,
    );
  const level = values["log-level"].toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got '${values["log-level"]}'`);
  const format = values["log-format"]?.toLowerCase() ?? (process.stdout.isTTY ? "pretty" : "json");
  if (format !== "json" && format !== "pretty") throw new UsageError(`--log-format must be json or pretty, got '${values["log-format"]}'`);
  return {
    port: values.port,
    host,
    db: values.db,
    dbPasswordFile: values["db-password-file"],
    baseUrl: values["base-url"],
    strict: values.strict,
    sync: values.sync.toLowerCase() === "normal" ? "NORMAL" : "FULL",
    maxBodyBytes: values["max-body-bytes"],
    maxResults: values["max-results"],
    maxListMembers: values["max-list-members"],
    authFailuresPerMinute: values["auth-failures-per-minute"],
    maxConnections: values["max-connections"],
    maxConnectionsPerClient: values["max-connections-per-client"],
    tls,
    acme: domains.length
      ? { domains, email: values["acme-email"]!, directory: values["acme-directory"], caFile: values["acme-ca-file"], httpPort: values["acme-http-port"], dir: values["acme-dir"] }
      : undefined,
    trustProxy: (values["trust-proxy"] ?? "").split(",").map((c) => c.trim()).filter(Boolean),
    logLevel: level as LogLevel,
    logFormat: format,
    metricsListen,
    activityLog: values["activity-log"],
    activityRetentionMs: parseDuration(values["activity-retention"], "--activity-retention"),
    queryTimeoutMs: queryTimeoutMs(values["query-timeout"]),
    configFile: values.config,
  };
}
