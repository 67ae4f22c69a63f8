/**
 * Where a PostgreSQL `--db` gets its password, decided here rather than left to the driver's own
 * lookups: the first of
 *   1. the URL (`postgres://user:PASSWORD@host/db`, or `?password=`),
 *   2. --db-password-file FILE (SCIMD_DB_PASSWORD_FILE, the config file's `db-password-file`): the
 *      file's content with one trailing newline dropped,
 *   3. PGPASSWORD,
 * else none. A URL password together with a password file is refused as ambiguous (checkDbPasswordFile).
 * The password found (2 or 3) is handed to the driver explicitly, so Bun.SQL's own reading of
 * PGPASSWORD never decides anything. The password is never shown: only where it came from is.
 */
import { readFileSync, statSync } from "node:fs";
import { checkDbPasswordFile, DB_FLAG_NAMES, readFailure, type DbFlagNames, type Env } from "../config";
import { isPostgresUrl, urlHasPassword, type DbPassword } from "../store/open";

/** What each command's help says about PostgreSQL URLs and the password. */
export const POSTGRES_HELP = `PostgreSQL: --db postgres://USER@HOST:5432/DB?sslmode=require (or postgresql://…). The password is
the first of: the URL's (postgres://USER:PASSWORD@HOST/DB), the content of --db-password-file FILE
(SCIMD_DB_PASSWORD_FILE; one trailing newline dropped), PGPASSWORD. A URL password and a password
file together are refused as ambiguous. The password is never printed (logs, errors, help, config).`;

/** The help of a command that needs a SQLite file (backup, restore). */
export const POSTGRES_NOT_YET_HELP = `${POSTGRES_HELP}
This command needs a SQLite --db: a postgres:// URL is refused (for PostgreSQL use pg_dump and pg_restore).`;

/** The password file's content, one trailing newline (\n or \r\n) dropped; a warning when group or others may read it. */
export function readPasswordFile(path: string, named = "--db-password-file"): { value: string; warning?: string } {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    if ((mode & 0o170000) === 0o040000) throw Object.assign(new Error("a folder"), { code: "EISDIR" });
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read the database password file ${path} (${named}): ${readFailure(e)}`);
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new Error(`the database password file ${path} (${named}) is empty; write the PostgreSQL password into it`);
  const who = [mode & 0o040 ? "its group" : "", mode & 0o004 ? "every user" : ""].filter(Boolean).join(" and ");
  const warning = who
    ? `the database password file ${path} (${named}) is readable by ${who} (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); make it readable by scimd's user only: chmod 600 ${path}`
    : undefined;
  return { value, ...(warning ? { warning } : {}) };
}

/**
 * The password a `--db` logs in with (undefined for SQLite), by the order above, and a warning about
 * the password file's mode when it has one. Throws UsageError for a file that cannot apply (a SQLite
 * --db, or a URL with its own password) and Error, one line, for one that cannot be read or is empty.
 */
export function resolveDbPassword(db: string, file: string | undefined, env: Env = process.env, names: DbFlagNames = DB_FLAG_NAMES): { password?: DbPassword; warning?: string } {
  checkDbPasswordFile(db, file, undefined, names);
  if (!isPostgresUrl(db)) return {};
  if (urlHasPassword(db)) return { password: { value: undefined, from: `the password is the one in the ${names.db} URL` } };
  if (file !== undefined) {
    const { value, warning } = readPasswordFile(file, names.file);
    return { password: { value, from: `the password was read from ${file} (${names.file})` }, ...(warning ? { warning } : {}) };
  }
  const pg = env.PGPASSWORD;
  if (pg !== undefined && pg !== "") return { password: { value: pg, from: "the password came from PGPASSWORD" } };
  return { password: { value: undefined, from: `no password was given (none in the ${names.db} URL, no ${names.file}, PGPASSWORD unset)` } };
}

/** resolveDbPassword for a command other than serve: the file's warning goes to stderr. */
export function dbPasswordFor(db: string, file: string | undefined, env: Env = process.env, names: DbFlagNames = DB_FLAG_NAMES): DbPassword | undefined {
  const { password, warning } = resolveDbPassword(db, file, env, names);
  if (warning) console.error(`scimd: warning: ${warning}`);
  return password;
}
