/**
 * `scimd config [serve's options]`: the configuration serve would run with, from the same options,
 * SCIMD_* variables and config file, and where each value comes from. Secrets are masked.
 */
import { flag, flagHelp, HELP_FLAG, SERVE_FLAGS, serveSettings, type Env, type ServeSettings, type Source } from "../config";
import { isPostgresUrl, redactDbLocation, urlHasPassword } from "../store/open";
import { commandLine } from "./invocation";

export const JSON_FLAG = flag({ name: "json", kind: "bool", default: false, help: "print JSON: {config, settings: {OPTION: {value, source, from}}}" });
/** serve's options (but --help), then config's own. */
export const CONFIG_FLAGS = [...SERVE_FLAGS.filter((s) => s.name !== "help"), JSON_FLAG, HELP_FLAG] as const;

export const CONFIG_USAGE = `Usage: scimd config [serve's options] [--json]

Prints the configuration 'scimd serve' runs with, given the same options, SCIMD_* variables and
config file (flags > SCIMD_* > file > defaults), and where each value comes from: default, env
SCIMD_X, file PATH or flag --x. The output is TOML with serve's option names as keys (the keys of a
config file). Secrets are masked: a database URL's password, any option named password, secret or
token (a file option such as db-password-file shows its path, never the content). For a PostgreSQL
db it says where the password comes from (the URL, the password file or PGPASSWORD). A mistake is
refused exactly as serve refuses it (exit 2), so this checks a config file before a restart; it
opens neither the database, nor a port, nor the certificate files (nor the password file).

Options: serve's (see 'scimd serve --help'), and
${flagHelp([JSON_FLAG, HELP_FLAG])}

Examples:
  ${commandLine("config", ["--config", "/etc/scimd/scimd.toml", "--db", "/var/lib/scimd/scimd.db"])}
  ${commandLine("config", ["--config", "/etc/scimd/scimd.toml", "--json"])}`;

/** What `scimd config` reports of one option. */
export interface SettingReport {
  /** The value serve uses (masked); null when the option is not set. */
  value: string | number | boolean | null;
  source: Source["kind"];
  /** The variable (SCIMD_PORT), the file's path or the flag (--port) the value comes from. */
  from?: string;
  /** The key as the file writes it, when it differs from the option's name (tls_cert). */
  key?: string;
  /** How a default is derived, when it depends on other settings. */
  note?: string;
}

const SECRET = /password|secret|token/i;

/** A value as `scimd config` may show it: secrets masked, a URL's password removed; a file's path (db-password-file) is no secret. */
export function masked(name: string, value: string | number | boolean): string | number | boolean {
  if (SECRET.test(name) && !name.endsWith("-file")) return "***";
  return typeof value === "string" ? redactDbLocation(value) : value;
}

/**
 * Where a PostgreSQL db's password comes from, as serve resolves it (src/cli/db-password.ts), without
 * reading the file: config opens nothing.
 */
export function passwordNote(db: string, passwordFile: string | undefined, env: Env): string | undefined {
  if (!isPostgresUrl(db)) return undefined;
  if (urlHasPassword(db)) return "password: in the URL, masked";
  if (passwordFile !== undefined) return "password: read from db-password-file at start";
  if (env.PGPASSWORD) return "password: from PGPASSWORD";
  return "password: none given";
}

/** Each of serve's options (but --help) with its value and source, in serve's help order. */
export function report(s: ServeSettings, env: Env = process.env): Record<string, SettingReport> {
  const out: Record<string, SettingReport> = {};
  for (const spec of SERVE_FLAGS) {
    if (spec.name === "help") continue;
    const v = s.values[spec.name];
    const src: Source = s.sources[spec.name] ?? { kind: "default" };
    const r: SettingReport = { value: v === undefined ? null : masked(spec.name, v), source: src.kind };
    if (src.kind === "env" || src.kind === "flag") r.from = src.name;
    if (src.kind === "file") {
      r.from = src.path;
      if (src.key !== spec.name) r.key = src.key;
    }
    if (spec.name === "host" && v === undefined) {
      r.value = s.config.host;
      r.note = s.config.tls || s.config.acme ? "with TLS: every interface" : "plain HTTP: loopback only";
    }
    if (spec.name === "log-format" && v === undefined) r.note = "pretty on a terminal, json otherwise";
    if (spec.name === "db") {
      const note = passwordNote(s.config.db, s.config.dbPasswordFile, env);
      if (note) r.note = note;
    }
    out[spec.name] = r;
  }
  return out;
}

/** Where a value comes from, as the end of its line says it. */
function sourceText(r: SettingReport): string {
  const from = r.source === "default" ? "default" : r.source === "file" ? `file ${r.from}${r.key ? ` (${r.key})` : ""}` : `${r.source} ${r.from}`;
  return r.note ? `${from} (${r.note})` : from;
}

/** The report as TOML: `key = value  # source`, unset options and --config itself as comments. */
export function renderToml(settings: Record<string, SettingReport>, configFile: string | undefined): string {
  const lines: [string, string][] = Object.entries(settings).map(([name, r]) => {
    const assignment = r.value === null ? `# ${name} (not set)` : `${name} = ${typeof r.value === "string" ? JSON.stringify(r.value) : String(r.value)}`;
    // A config file cannot name another one: --config is shown, commented out.
    return [name === "config" && r.value !== null ? `# ${assignment}` : assignment, sourceText(r)];
  });
  // Sources in one column, but a long value (the ACME directory URL) need not push it far right.
  const width = Math.min(52, Math.max(...lines.map(([a]) => a.length)) + 2);
  return [
    `# scimd serve's configuration: flags > SCIMD_* > ${configFile ?? "config file (none)"} > defaults.`,
    `# Each line ends with where its value comes from; secrets are masked.`,
    ...lines.map(([a, src]) => `${a.length + 2 > width ? `${a}  ` : a.padEnd(width)}# ${src}`),
  ].join("\n");
}

export async function config(argv: string[]): Promise<number> {
  const s = serveSettings(argv, process.env, CONFIG_FLAGS);
  if (s.help) {
    console.log(CONFIG_USAGE);
    return 0;
  }
  const settings = report(s);
  const configFile = s.config.configFile;
  console.log(s.values.json ? JSON.stringify({ config: configFile ?? null, settings }, null, 2) : renderToml(settings, configFile));
  return 0;
}
