/**
 * The one place that turns a `--db` value into a store: the engine is chosen by the value's form, as
 * lldap chooses its backend from a database URL. Today that is SQLite, named by a file path or a
 * `sqlite:` URL, or PostgreSQL, named by a `postgres://` or `postgresql://` URL (openStore only, so far:
 * backup, restore, import and the token commands still need a SQLite file).
 *
 * A value that holds `://` is always a URL, never a file name, so a URL whose scheme this build does
 * not serve is refused (and its password never repeated) instead of becoming a SQLite file named after it.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { lockHolders, type LockHolder } from "./sqlite/lock-holders";
import { backupSqlite, isDatabaseFile, restoreSqlite } from "./sqlite/backup";
import { PostgresStore } from "./postgres/postgres-store";
import { SqliteStore } from "./sqlite/sqlite-store";
import { StoreOpenError, type Store } from "./store";

export interface OpenOptions {
  /** Create the database when there is none (serve); false refuses a missing one with StoreMissingError. */
  create?: boolean;
  /** SQLite's `synchronous` in WAL mode (FULL survives power loss); other engines ignore it. */
  synchronous?: "FULL" | "NORMAL";
  /** How long a write waits for another process's lock before giving up. */
  busyTimeoutMs?: number;
  /** Told of each schema migration applied while opening (for the operator's log). */
  onMigrated?: (from: number, to: number) => void;
  /** Record every change in the activity log (default true). */
  activityLog?: boolean;
  /** The deadline of a search that scans a table (SQLite: run off the event loop by a reader); past it, 400 tooMany. */
  queryTimeoutMs?: number;
  /** The password of a PostgreSQL database, as the caller resolved it (see DbPassword); SQLite refuses one. */
  password?: DbPassword;
}

/**
 * The password a PostgreSQL `--db` logs in with, and where it comes from: `value` is handed to the
 * driver (undefined: the URL's own password, or none); `from` is said when the server refuses the
 * login ("the password was read from /run/secrets/db (--db-password-file)"), never the value.
 */
export interface DbPassword {
  value: string | undefined;
  from: string;
}

/** The `--db` forms this build serves, for help texts and errors. */
export const DB_FORMS = "a file path (./data/scimd.db) or a sqlite: URL (sqlite:./data/scimd.db, sqlite:///var/lib/scimd/scimd.db)";

export type DbLocation = { engine: "sqlite"; path: string };

/**
 * What a `--db` value names. A file path is SQLite; `sqlite:PATH` and `sqlite://PATH` are the same
 * path (so `sqlite:///var/x.db` is `/var/x.db`). Throws StoreOpenError for any other value that
 * holds `://` (`postgres://…`, `jdbc:postgresql://…`), naming only its scheme.
 */
export function parseDbLocation(value: string): DbLocation {
  const v = value.trim();
  if (v === "") throw new StoreOpenError(`--db is empty; give ${DB_FORMS}`);
  const sqlite = /^sqlite:/i.test(v);
  const path = sqlite ? v.slice("sqlite:".length).replace(/^\/\//, "") : value;
  if (sqlite && path === "") throw new StoreOpenError(`--db ${v} names no file; give ${DB_FORMS}`);
  // Whatever precedes `://` (jdbc:postgresql, my_db, …), the value is a URL, never a file name.
  const sep = path.indexOf("://");
  if (sep >= 0) {
    const head = path.slice(0, sep).trim();
    // Only a scheme is named (the text before `://` holds no password); anything else is not repeated.
    const scheme = /^[A-Za-z][A-Za-z0-9+.:_-]*$/.test(head) ? head.toLowerCase() : undefined;
    const hint =
      scheme && /(^|:)postgres(ql)?$/.test(scheme)
          ? " (for PostgreSQL give a postgres:// URL)"
          : "";
    if (scheme === "postgres" || scheme === "postgresql")
      throw new StoreOpenError(`--db names a PostgreSQL database, and this command needs a SQLite file (back PostgreSQL up with pg_dump and restore it with pg_restore); give ${DB_FORMS}`);
    throw new StoreOpenError(
      scheme
        ? `--db names a '${scheme}:' database, which scimd does not serve${hint}; give ${DB_FORMS}`
        : `--db holds '://', so it is a URL, not a file path, and not one scimd serves; give ${DB_FORMS}`,
    );
  }
  return { engine: "sqlite", path };
}

/**
 * Whether a PostgreSQL `--db` URL carries a password: in its user information
 * (`postgres://user:PASSWORD@host/db`, an empty one not counted) or as a `password` query parameter.
 * A URL the WHATWG parser refuses (a password holding an unescaped '/') counts when a ':' precedes
 * the last '@' of what follows `://`, as redactDbLocation masks it.
 */
export function urlHasPassword(value: string): boolean {
  const v = value.trim();
  try {
    const u = new URL(v);
    return u.password !== "" || !!u.searchParams.get("password");
  } catch {
    const rest = v.slice(v.indexOf("://") + 3);
    const at = rest.lastIndexOf("@");
    const colon = rest.indexOf(":");
    return at > 0 && colon >= 0 && colon < at - 1;
  }
}

/** Whether a `--db` value names a PostgreSQL database (`postgres://…` or `postgresql://…`). */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value.trim());
}

/**
 * The database a `--db` value names, as messages and suggested commands show it: the absolute path of
 * a SQLite file, or a PostgreSQL URL with its password redacted.
 */
export function describeDb(value: string): string {
  return isPostgresUrl(value) ? redactDbLocation(value.trim()) : resolve(parseDbLocation(value).path);
}

/** Query parameters whose value is a secret (libpq's `password`, `sslpassword`, a `token`, `secret`, `pwd`, …), however spelt. */
const SECRET_PARAM = /pass|pwd|secret|token|key|auth|cred/i;

/**
 * A `--db` value as it may be shown in a log line or an error: the password of a URL's user
 * information, and the value of any query parameter named like a secret
 * (`postgres://u@h/db?password=…`), replaced by `***`.
 */
export function redactDbLocation(value: string): string {
  // As parseDbLocation reads it: whatever holds `://` is a URL, its user information after the `://`.
  const sep = value.indexOf("://");
  if (sep < 0) return value;
  const start = sep + 3;
  let shown = value;
  const at = value.lastIndexOf("@");
  if (at >= start) {
    // Everything up to the last '@' is taken as user information: a password holding '/' or '@' unescaped is still covered.
    const colon = value.indexOf(":", start);
    if (colon >= 0 && colon < at) shown = `${value.slice(0, colon)}:***${value.slice(at)}`;
  }
  // Every `name=value` after a '?', '&' or ';' anywhere past the scheme, not only in what parses as the
  // query: a '?' or '@' left unescaped elsewhere must not let a password through; a value runs to the
  // next '&' or ';', so an unescaped '#' in a secret does not end its mask.
  return shown.slice(0, start) + shown.slice(start).replace(/([?&;])([^=&;?#]*)=([^&;]*)/g, (all, lead: string, name: string) => {
    let decoded = name;
    try {
      decoded = decodeURIComponent(name.replaceAll("+", " "));
    } catch {
      // a malformed escape: test the name as written
    }
    return SECRET_PARAM.test(decoded) ? `${lead}${name}=***` : all;
  });
}

/**
 * `text` (an error message that may repeat what was typed: a stray argument, a flag's value) with
 * every URL in it shown as redactDbLocation shows a --db: `scimd serve postgres://u:pw@h/db` (the
 * --db forgotten) must not print the password either. A URL runs to the next space or quote.
 */
export function redactUrlsIn(text: string): string {
  return text.replace(/[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s'"`]+/g, (url) => redactDbLocation(url));
}

/** Opens the store a `--db` value names. Throws StoreOpenError (or StoreMissingError) with what to do. */
export async function openStore(value: string, opts: OpenOptions = {}): Promise<Store> {
  // The URL goes to Bun.SQL as given; errors name it only as redactDbLocation shows it.
  if (isPostgresUrl(value))
    return PostgresStore.open(value.trim(), redactDbLocation(value.trim()), {
      create: opts.create,
      onMigrated: opts.onMigrated,
      activityLog: opts.activityLog,
      password: opts.password?.value,
      passwordFrom: opts.password?.from,
      queryTimeoutMs: opts.queryTimeoutMs,
    });
  const where = parseDbLocation(value);
  if (opts.password?.value !== undefined) throw new StoreOpenError(`a database password applies to a PostgreSQL --db (postgres://…) only, not to the SQLite file ${resolve(where.path)}`);
  switch (where.engine) {
    case "sqlite":
      return new SqliteStore(where.path, { create: opts.create, synchronous: opts.synchronous, busyTimeoutMs: opts.busyTimeoutMs, onMigrated: opts.onMigrated, activityLog: opts.activityLog, readers: opts.queryTimeoutMs === undefined ? {} : { timeoutMs: opts.queryTimeoutMs } });
  }
}

/** What a backup file (or a restored database) holds, as `backup` and `restore` print it. */
export interface DatabaseSummary {
  /** The file, absolute. */
  path: string;
  /** The schema version it carries (older than this scimd's is fine: serve migrates it at its next start). */
  schemaVersion: number;
  bytes: number;
  counts: { users: number; groups: number; memberships: number; tokens: number; activity?: number };
}

export interface BackupOptions {
  /** Replace the target if it exists (by default an existing file is refused). */
  force?: boolean;
  busyTimeoutMs?: number;
}
export type BackupResult = DatabaseSummary & { ms: number };

export interface RestoreOptions {
  /** Told each step as the restore reaches it: validated, locked, saved, copied, committed (or written, for a new database). */
  onStep?: (step: string) => void;
}
export interface RestoreResult {
  restored: DatabaseSummary;
  /** Where the replaced content was saved; undefined when there was no database before. */
  previous?: string;
}

/**
 * `scimd backup`: a consistent, verified copy of the database a `--db` value names, taken while a
 * server may be writing. Throws (one line, nothing written at `target`) when it cannot.
 */
export async function backupDatabase(value: string, target: string, opts: BackupOptions = {}): Promise<BackupResult> {
  const where = parseDbLocation(value);
  switch (where.engine) {
    case "sqlite":
      return backupSqlite(where.path, target, opts);
  }
}

/** Another process that has a database open (a running `scimd serve`), as SQLite's locks show it. */
export type { LockHolder } from "./sqlite/lock-holders";

/**
 * The other processes that have the SQLite database a `--db` value names open (none when the file
 * does not exist); undefined for a PostgreSQL URL or where the locks cannot be asked (see lock-holders.ts).
 */
export async function databaseHolders(value: string): Promise<LockHolder[] | undefined> {
  if (isPostgresUrl(value)) return undefined;
  const where = parseDbLocation(value);
  switch (where.engine) {
    case "sqlite": {
      const path = resolve(where.path);
      return existsSync(path) ? lockHolders(path) : [];
    }
  }
}

/** Whether writing to `file` would write over the database a `--db` value names, or a file the engine keeps beside it. */
export function namesDatabaseFile(value: string, file: string): boolean {
  // A PostgreSQL database has no file here.
  if (isPostgresUrl(value)) return false;
  const where = parseDbLocation(value);
  switch (where.engine) {
    case "sqlite":
      return isDatabaseFile(resolve(where.path), resolve(file));
  }
}

/**
 * `scimd restore`: the database a `--db` value names gets the content of the backup `file`, or
 * nothing changes. Refuses while another process has the database open.
 */
export async function restoreDatabase(value: string, file: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const where = parseDbLocation(value);
  switch (where.engine) {
    case "sqlite":
      return restoreSqlite(where.path, file, opts);
  }
}
