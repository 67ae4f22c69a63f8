/**
 * The commands scimd suggests (in help, banners and log lines) are written so that they can be
 * pasted into a shell as they are: the real invocation (the npm script from source, the binary's own
 * path when compiled), concrete values instead of placeholders, and every argument shell-quoted.
 */
import { basename, resolve } from "node:path";
import { describeDb } from "../store/open";

/** True when running from source under Bun (npm start / bun run), false for the compiled binary. */
export const fromSource = /^bun(\.exe)?$/.test(basename(process.execPath));

/** `s` as one shell word: as it is when it has no special characters, else in single quotes. */
export function shellQuote(s: string): string {
  if (s !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export type Command = "serve" | "generate-token" | "tokens" | "activity" | "config" | "healthcheck" | "backup" | "restore" | "export" | "import" | "migrate";

/** The checkout this source runs from (src/cli/ is two levels below it). */
const checkout = resolve(import.meta.dir, "../..");

/**
 * The command line that runs `scimd <command> <args…>` here, from any folder: the binary by its
 * absolute path, or from source the npm script with --prefix (npm runs it in the checkout, so
 * relative paths such as the default ./data/scimd.db mean the same as for `npm start`).
 */
export function commandLine(command: Command, args: string[] = []): string {
  const quoted = args.map(shellQuote);
  if (!fromSource) return [shellQuote(process.execPath), command, ...quoted].join(" ");
  const npm = ["npm", "--prefix", shellQuote(checkout)];
  const script = command === "serve" ? [...npm, "start"] : [...npm, "run", "--silent", command];
  return [...script, ...(quoted.length ? ["--", ...quoted] : [])].join(" ");
}

/**
 * A --db value for a suggested command: the absolute path of the file it names (a `sqlite:` URL's
 * path, not a file called `sqlite:…`), so the line works whatever the current folder; a PostgreSQL
 * URL without its password (never printed: the reader adds it, or uses PGPASSWORD), and the
 * password file the command was given, if any (its path is no secret).
 */
export const dbArg = (db: string, passwordFile?: string): string[] => ["--db", describeDb(db), ...(passwordFile === undefined ? [] : ["--db-password-file", resolve(passwordFile)])];
