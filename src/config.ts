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

export function flagHelp(specs: FlagSpec[]): string {
  return specs
    .map((s) => {
      const left = `  --${s.name}${s.kind === "bool" ? "" : ` <${s.kind === "int" ? "n" : "value"}>`}`;
      const extra = [s.default !== undefined && s.default !== false ? `default ${s.default}` : "", s.env ? `env ${s.env}` : ""].filter(Boolean).join(", ");
      return `${left.padEnd(28)}${s.help}${extra ? ` (${extra})` : ""}`;
    })
    .join("\n");
}

export const DB_FLAG: FlagSpec = { name: "db", env: "SCIMD_DB", kind: "string", default: "./data/scimd.db", help: "SQLite database file; its folder is created" };
