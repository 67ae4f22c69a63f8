/**
 * One configuration chain: defaults < SCIMD_* environment < command-line flags, validated once at
 * start. Errors name the flag and say what is accepted.
 */
export class UsageError extends Error {}

export interface FlagSpec {
  name: string;
  env?: string;
  kind: "string" | "int" | "bool";
  default?: string | number | boolean;
  help: string;
  /** Validates and converts; throws UsageError. */
  check?: (v: string | number | boolean) => void;
}

export type Values = Record<string, string | number | boolean | undefined>;

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

/** Parses argv (after the command name) against the flag specs; returns values and positional args. */
export function parseFlags(argv: string[], specs: FlagSpec[], env: Record<string, string | undefined> = process.env): { values: Values; args: string[] } {
  const values: Values = {};
  for (const s of specs) {
    if (s.default !== undefined) values[s.name] = s.default;
    const e = s.env ? env[s.env] : undefined;
    if (e !== undefined && e !== "") values[s.name] = convert(s, e, s.env!);
  }
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("--")) {
      if (a.startsWith("-") && a !== "-") throw new UsageError(`unknown option '${a}'`);
      args.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new UsageError(`unknown option '--${name}'`);
    let raw: string;
    if (eq >= 0) raw = a.slice(eq + 1);
    else if (spec.kind === "bool") raw = "true";
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`option '--${name}' needs a value`);
      raw = next;
      i++;
    }
    values[name] = convert(spec, raw, `--${name}`);
  }
  for (const s of specs) if (values[s.name] !== undefined) s.check?.(values[s.name]!);
  return { values, args };
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
export function flagHelp(specs: FlagSpec[]): string {
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

/** "30m", "24h", "7d", "90s" or "0" as milliseconds; throws UsageError naming `flag`. */
export function parseDuration(raw: string, flag: string): number {
  const m = /^(\d+)([smhd])?$/.exec(raw.trim());
  if (!m || (m[2] === undefined && m[1] !== "0") || !Number.isSafeInteger(Number(m[1])))
    throw new UsageError(`${flag} must be a duration such as 30m, 24h or 7d (s, m, h, d), or 0; got '${raw}'`);
  const ms = Number(m[1]) * (m[2] ? DURATION_UNITS[m[2]]! : 0);
  if (ms > MAX_DURATION_MS) throw new UsageError(`${flag} must be at most 366d; got '${raw}'`);
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

export const DB_FLAG: FlagSpec = { name: "db", env: "SCIMD_DB", kind: "string", default: "./data/scimd.db", help: "the database: a file path or sqlite:PATH (SQLite); serve creates it and its folder" };
