/**
 * One configuration chain: defaults < SCIMD_* environment < command-line flags, validated once at
 * start. Errors name the flag (or the variable) and say what is accepted. The flag tables drive the
 * parsing, the environment, the defaults, the checks and the help text; serveConfig builds the one
 * configuration serve runs with, from DEFAULTS, which createApp falls back to as well.
 */
import { parseArgs } from "node:util";

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
  host: "0.0.0.0",
  db: "./data/scimd.db",
  strict: false,
  sync: "full",
  maxBodyBytes: 1024 * 1024,
  maxResults: 1000,
  authFailuresPerMinute: 20,
} as const;

export const HELP_FLAG = flag({ name: "help", kind: "bool", help: "show this help" });
export const DB_FLAG = flag({ name: "db", env: "SCIMD_DB", kind: "string", default: DEFAULTS.db, help: "the database: a file path or sqlite:PATH (SQLite); serve creates it and its folder" });
export const PORT_FLAG = flag({
  name: "port",
  env: "SCIMD_PORT",
  kind: "int",
  default: DEFAULTS.port,
  help: "TCP port (0 picks a free one)",
  check: (v) => {
    if (v > 65535) throw new UsageError("--port must be 0..65535");
  },
});
export const HOST_FLAG = flag({ name: "host", env: "SCIMD_HOST", kind: "string", default: DEFAULTS.host, help: "address to listen on" });
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
  return {
    help: false,
    config: {
      port: values.port,
      host: values.host,
      db: values.db,
      baseUrl: values["base-url"],
      strict: values.strict,
      sync: values.sync.toLowerCase() === "normal" ? "NORMAL" : "FULL",
      maxBodyBytes: values["max-body-bytes"],
      maxResults: values["max-results"],
      authFailuresPerMinute: values["auth-failures-per-minute"],
    },
  };
}
