/**
 * Backup and restore of a scimd SQLite file, without the sqlite3 tool.
 *
 * Backup is `VACUUM INTO`: SQLite writes a compact copy of one read transaction's snapshot, so the
 * copy is consistent while `serve` keeps writing (in WAL mode a reader never blocks writers, nor they
 * it), and it includes what is still in the WAL. The copy goes to a temporary name beside the target,
 * is fsynced and verified (scimd's application_id, schema version, `integrity_check`, foreign keys,
 * counts) and only then given its name, and the folder fsynced.
 *
 * Restore validates the file first (the same checks), then replaces the database's content in ONE
 * SQLite transaction on the live file: its tables are dropped and created again from the backup's
 * schema and rows. The database file itself is never renamed, deleted or swapped, so SQLite's atomic
 * commit is the whole crash story: killed before COMMIT, the WAL's uncommitted frames are ignored at the
 * next open and the old content is there; killed after, the new content is. No moment exists with no
 * database at the path, nor a WAL of one file beside another file (a swap by rename has both: a -wal left
 * by the old file would be replayed into the new one). Before that transaction the connection takes
 * SQLite's exclusive lock (`locking_mode = EXCLUSIVE`), which fails while any other connection has
 * the database open and keeps every other process out until the restore ends, and the old content,
 * WAL included, is saved beside it with `VACUUM INTO`.
 */
import { Database } from "bun:sqlite";
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileStamp, firstFreeName } from "../../file-names";
import type { BackupOptions, BackupResult, DatabaseSummary, RestoreOptions, RestoreResult } from "../open";
import { APPLICATION_ID, MIGRATIONS } from "./migrations";
import { lockHolders, type LockHolder } from "./lock-holders";

/** A refusal or failure of backup or restore, in one line that says what to do; nothing was changed. */
export class BackupError extends Error {}

/** The tables counted in a summary, by the name StoreStats and the CLI use. */
const COUNTED: [keyof DatabaseSummary["counts"], string][] = [
  ["users", "users"],
  ["groups", "groups"],
  ["memberships", "group_members"],
  ["tokens", "tokens"],
];

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
const isBusy = (e: unknown) => e instanceof Error && /SQLITE_BUSY|database is locked/i.test(`${(e as { code?: string }).code ?? ""} ${e.message}`);
const quoteId = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Flushes a file (or a folder: the names in it) to disk. */
function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates `path` empty with mode 0600 (it will hold token hashes and the directory); fails if it exists. */
function createPrivate(path: string): void {
  closeSync(openSync(path, "wx", 0o600));
}

/**
 * What the SQLite file at `path` holds, checked to be a database this scimd can open: SQLite, scimd's
 * application_id, a schema version it knows (older is fine: serve migrates it at its next start), no
 * finding of `integrity_check`, no row pointing at a missing one. Opened read-only; throws BackupError
 * naming `label` (how the caller calls the file) and what is wrong.
 */
function inspectDatabase(path: string, label = path): DatabaseSummary {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new BackupError(`cannot read ${label}: ${(e as { code?: string }).code === "ENOENT" ? "no such file" : message(e)}`);
  }
  if (!st.isFile()) throw new BackupError(`${label} is not a file`);
  if (st.size === 0) throw new BackupError(`${label} is empty, not a scimd database`);
  let db: Database;
  try {
    db = new Database(path, { readonly: true });
  } catch (e) {
    throw new BackupError(`cannot open ${label}: ${message(e)}`);
  }
  try {
    let appId: number, version: number;
    try {
      appId = (db.query("PRAGMA application_id").get() as { application_id: number }).application_id;
      version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    } catch (e) {
      throw new BackupError(`${label} is not an SQLite database (${message(e)})`);
    }
    if (appId !== APPLICATION_ID)
      throw new BackupError(`${label} is an SQLite database, but not one scimd made (its application_id is ${appId}, scimd's is ${APPLICATION_ID})`);
    if (version < 1) throw new BackupError(`${label} carries scimd's mark but no schema (user_version 0)`);
    if (version > MIGRATIONS.length)
      throw new BackupError(`${label} has schema version ${version}, newer than this scimd understands (${MIGRATIONS.length}); use the scimd that wrote it, or a newer one`);
    let findings: string[];
    try {
      findings = (db.query("PRAGMA integrity_check(5)").all() as { integrity_check: string }[]).map((r) => r.integrity_check);
    } catch (e) {
      throw new BackupError(`${label} is corrupt: ${message(e)}`);
    }
    if (findings.length !== 1 || findings[0] !== "ok") throw new BackupError(`${label} fails SQLite's integrity check: ${findings.join("; ")}`);
    const dangling = (db.query("PRAGMA foreign_key_check").all() as unknown[]).length;
    if (dangling) throw new BackupError(`${label} has ${dangling} row${dangling > 1 ? "s" : ""} that point at rows it does not hold (PRAGMA foreign_key_check)`);
    return { path, schemaVersion: version, bytes: st.size, counts: countRows(db, "main") };
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw new BackupError(`${label} cannot be read as a scimd database: ${message(e)}`);
  } finally {
    db.close();
  }
}

/** Rows of each counted table, and of the activity log when the schema has one. */
function countRows(db: Database, schema: string): DatabaseSummary["counts"] {
  const tables = new Set((db.query(`SELECT name FROM ${schema}.sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name));
  const count = (table: string) => (db.query(`SELECT count(*) AS n FROM ${schema}.${quoteId(table)}`).get() as { n: number }).n;
  const counts = Object.fromEntries(COUNTED.map(([key, table]) => [key, tables.has(table) ? count(table) : 0])) as DatabaseSummary["counts"];
  if (tables.has("activity")) counts.activity = count("activity");
  return counts;
}

/** Opens the live database at `path` for reading and writing, refusing a missing one and one scimd did not make. */
function openLive(path: string): Database {
  if (!existsSync(path) || statSync(path).size === 0) throw new BackupError(`there is no scimd database at ${path}`);
  let db: Database;
  try {
    db = new Database(path, { readwrite: true, create: false });
  } catch (e) {
    throw new BackupError(`cannot open ${path}: ${message(e)}`);
  }
  return db;
}

function checkLiveIdentity(db: Database, path: string): void {
  const appId = (db.query("PRAGMA application_id").get() as { application_id: number }).application_id;
  if (appId !== APPLICATION_ID) throw new BackupError(`${path} is an SQLite database that scimd did not create; refusing to touch it`);
}

/**
 * `scimd backup`: a verified copy of the database at `dbPath` at `target`. The target is refused when
 * it exists unless `force` (and even then it is replaced only by a verified copy, atomically).
 */
export function backupSqlite(dbPath: string, target: string, opts: BackupOptions = {}): BackupResult {
  const t0 = performance.now();
  const out = resolve(target);
  if (isDatabaseFile(resolve(dbPath), out)) throw new BackupError(`${target} is the database itself (${resolve(dbPath)}) or one of its files; give another file for the backup`);
  if (existsSync(out) && !opts.force) throw new BackupError(`${out} exists; choose another file, or pass --force to replace it`);
  mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  const db = openLive(dbPath);
  try {
    try {
      db.exec(`PRAGMA busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
      checkLiveIdentity(db, dbPath);
      createPrivate(partial);
      db.query("VACUUM INTO ?").run(partial);
    } finally {
      db.close();
    }
    fsyncPath(partial);
    const summary = inspectDatabase(partial, `the new backup ${partial}`);
    if (opts.force) renameSync(partial, out);
    else {
      // A link fails if the name was taken meanwhile: never replace a file that --force did not name.
      try {
        linkSync(partial, out);
      } catch (e) {
        if ((e as { code?: string }).code === "EEXIST") throw new BackupError(`${out} exists; choose another file, or pass --force to replace it`);
        throw e;
      }
      rmSync(partial);
    }
    fsyncPath(dirname(out));
    return { ...summary, path: out, ms: performance.now() - t0 };
  } catch (e) {
    rmSync(partial, { force: true });
    if (e instanceof BackupError) throw e;
    throw new BackupError(`backup of ${dbPath} failed, nothing was written to ${out}: ${message(e)}`);
  }
}

/** The refusal when another process has the database open, saying how scimd knows. */
function heldMessage(path: string, holders: LockHolder[]): string {
  const h = holders[0]!;
  return (
    `refusing to restore: process ${h.pid}${h.command ? ` (${h.command})` : ""} has ${path} open — it holds ${h.lock} (asked with fcntl F_GETLK). ` +
    `Stop the server first (e.g. systemctl stop scimd), then run the restore again; nothing was changed`
  );
}

/** `base`, or `base-2`, `base-3`, … : the first name no file has (two restores in one second keep both side copies). */
const freeName = (base: string) => firstFreeName((n) => (n === 1 ? base : `${base}-${n}`), existsSync);

/** Whether two paths name one file: the same path, or one file under two names (a link, another spelling). */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    const x = statSync(a), y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Whether `path` is the database at `dbPath` or one of the files SQLite keeps beside it (-wal, -shm,
 * -journal): writing there (a backup with --force, an export's --out, a restore's source) would
 * replace or corrupt the live database under a server that keeps writing to the file it opened.
 */
export function isDatabaseFile(dbPath: string, path: string): boolean {
  return ["", "-wal", "-shm", "-journal"].some((suffix) => sameFile(`${dbPath}${suffix}`, path));
}

/**
 * `scimd restore`: the database at `dbPath` gets the content of the backup `source` (see the module
 * comment for the order of steps and why a crash at any point leaves the old or the new content).
 * `onStep` is told each step as it is reached (the CLI's test-only pause hook uses it).
 */
export async function restoreSqlite(dbPath: string, source: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const step = opts.onStep ?? (() => {});
  const src = resolve(source);
  const path = resolve(dbPath);
  if (isDatabaseFile(path, src)) throw new BackupError(`${source} is the database itself (${path}) or one of its files; give a backup file`);
  const incoming = inspectDatabase(src);
  const holders = await lockHolders(path);
  if (holders?.length) throw new BackupError(heldMessage(path, holders));
  step("validated");
  if (!existsSync(path) || statSync(path).size === 0) return restoreIntoNew(path, src, incoming, step);

  const db = openLive(path);
  let previous: string | undefined;
  try {
    // busy_timeout 0: a server that has the database open makes the exclusive lock fail at once.
    db.exec("PRAGMA busy_timeout = 0");
    db.exec("PRAGMA foreign_keys = OFF");
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    try {
      checkLiveIdentity(db, path);
      db.exec("BEGIN EXCLUSIVE");
      db.exec("COMMIT");
    } catch (e) {
      if (!isBusy(e)) throw e;
      const now = await lockHolders(path);
      throw new BackupError(
        now?.length
          ? heldMessage(path, now)
          : `refusing to restore: another connection has ${path} open — SQLite refused this restore its exclusive lock (SQLITE_BUSY). Stop the server (e.g. systemctl stop scimd) and any other program using the file, then run the restore again; nothing was changed`,
      );
    }
    // From here on this connection holds SQLite's exclusive lock: no other process can open the database until it closes.
    step("locked");
    previous = freeName(`${path}.before-restore-${fileStamp()}`);
    const partial = `${previous}.partial`;
    rmSync(partial, { force: true });
    createPrivate(partial);
    db.query("VACUUM INTO ?").run(partial);
    fsyncPath(partial);
    renameSync(partial, previous);
    fsyncPath(dirname(path));
    step("saved");

    db.query("ATTACH DATABASE ? AS incoming").run(src);
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        replaceContent(db);
        step("copied");
        const counts = countRows(db, "main");
        if (JSON.stringify(counts) !== JSON.stringify(incoming.counts))
          throw new BackupError(`the copied rows do not match ${src} (${JSON.stringify(counts)} against ${JSON.stringify(incoming.counts)}); nothing was changed`);
        const findings = (db.query("PRAGMA main.integrity_check(5)").all() as { integrity_check: string }[]).map((r) => r.integrity_check);
        if (findings.length !== 1 || findings[0] !== "ok") throw new BackupError(`the restored content fails SQLite's integrity check (${findings.join("; ")}); nothing was changed`);
        db.exec("COMMIT");
      } catch (e) {
        if (db.inTransaction) db.exec("ROLLBACK");
        throw e;
      }
    } finally {
      db.exec("DETACH DATABASE incoming");
    }
    step("committed");
    // Fold the restore into the database file, so the WAL holds nothing of it when the lock is released.
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw new BackupError(`restore of ${path} from ${src} failed, the database keeps its previous content: ${message(e)}`);
  } finally {
    db.close();
  }
  return { restored: { ...inspectSummary(path, incoming) }, previous };
}

/** The summary of what was restored, at the database's path and size. */
function inspectSummary(path: string, incoming: DatabaseSummary): DatabaseSummary {
  return { ...incoming, path, bytes: statSync(path).size };
}

/**
 * Inside the restore's transaction: every table, index, trigger and view of `main` dropped, then those
 * of `incoming` created from their SQL as stored, their rows copied (rowids and AUTOINCREMENT counters
 * kept), and the schema version and application id set to the backup's.
 */
function replaceContent(db: Database): void {
  type Entry = { type: string; name: string; sql: string };
  const objects = (schema: string) =>
    db.query(`SELECT type, name, sql FROM ${schema}.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid`).all() as Entry[];
  const old = objects("main");
  for (const type of ["view", "trigger", "table"])
    for (const o of old) if (o.type === type) db.exec(`DROP ${type.toUpperCase()} IF EXISTS main.${quoteId(o.name)}`);
  const hasSequence = (schema: string) => !!db.query(`SELECT 1 FROM ${schema}.sqlite_master WHERE name = 'sqlite_sequence'`).get();
  if (hasSequence("main")) db.exec("DELETE FROM main.sqlite_sequence");
  const fresh = objects("incoming");
  for (const o of fresh) if (o.type === "table" && /^\s*CREATE\s+VIRTUAL/i.test(o.sql)) throw new BackupError(`the backup holds a virtual table (${o.name}), which scimd never creates; refusing it`);
  // Tables first (their SQL names no schema, so it creates them in main), rows, then indexes, triggers and views over them.
  for (const o of fresh) if (o.type === "table") db.exec(o.sql);
  for (const o of fresh) if (o.type === "table") db.exec(`INSERT INTO main.${quoteId(o.name)} SELECT * FROM incoming.${quoteId(o.name)}`);
  // Inserting rows with their rowids moved the counters: set them to the backup's (a deleted last row leaves its counter above every rowid).
  if (hasSequence("main")) db.exec("DELETE FROM main.sqlite_sequence");
  if (hasSequence("incoming")) db.exec("INSERT INTO main.sqlite_sequence SELECT * FROM incoming.sqlite_sequence");
  for (const type of ["index", "trigger", "view"]) for (const o of fresh) if (o.type === type) db.exec(o.sql);
  const version = (db.query("PRAGMA incoming.user_version").get() as { user_version: number }).user_version;
  db.exec(`PRAGMA main.user_version = ${version}`);
  db.exec(`PRAGMA main.application_id = ${APPLICATION_ID}`);
}

/**
 * Restore where there is no database yet: a verified copy under a temporary name beside the path,
 * renamed into place. A -wal or -shm left there without its database would be read with the new
 * file (a WAL's frames replayed into it), so they are refused rather than guessed about.
 */
function restoreIntoNew(path: string, src: string, incoming: DatabaseSummary, step: (name: string) => void): RestoreResult {
  for (const f of [`${path}-wal`, `${path}-journal`])
    if (existsSync(f) && statSync(f).size > 0)
      throw new BackupError(`${f} exists without its database ${path}; SQLite would read it into the restored file. Move it away, then run the restore again; nothing was changed`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const partial = join(dirname(path), `.${basename(path)}.restore-${process.pid}`);
  try {
    createPrivate(partial);
    const from = new Database(src, { readonly: true });
    try {
      from.query("VACUUM INTO ?").run(partial);
    } finally {
      from.close();
    }
    fsyncPath(partial);
    const copy = inspectDatabase(partial, `the restored copy ${partial}`);
    if (JSON.stringify(copy.counts) !== JSON.stringify(incoming.counts)) throw new BackupError(`the copy of ${src} does not match it; nothing was changed`);
    for (const f of [`${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(f, { force: true });
    step("written");
    renameSync(partial, path);
    fsyncPath(dirname(path));
  } catch (e) {
    rmSync(partial, { force: true });
    if (e instanceof BackupError) throw e;
    throw new BackupError(`restore into ${path} from ${src} failed, nothing was created: ${message(e)}`);
  }
  return { restored: inspectSummary(path, incoming) };
}
