/**
 * One scimd SQLite file (bun:sqlite) as the rest of the SQLite store uses it: opened in WAL mode with a
 * busy timeout, checked to be scimd's, migrated by `PRAGMA user_version`; statements prepared once and
 * reused; and every write of a request queued into a group commit.
 */
import { Database, type SQLQueryBindings, type Statement } from "bun:sqlite";
import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ScimError } from "../../scim/errors";
import { StoreMissingError, StoreOpenError, type CommitBatch, type FileProblem, type Readiness, type StoreStats } from "../store";
import { APPLICATION_ID, MIGRATIONS } from "./migrations";
import type { ReaderOptions } from "./readers";

type Synchronous = "FULL" | "NORMAL";

export interface SqliteStoreOptions {
  /** SQLite `synchronous` in WAL mode. FULL (default): a commit survives power loss. */
  synchronous?: Synchronous;
  busyTimeoutMs?: number;
  /**
   * Create the file (and its folder) when it does not exist: the default, for `serve`. With false a
   * missing or empty file is refused with StoreMissingError and nothing is created.
   */
  create?: boolean;
  /** Told of each schema migration applied while opening. */
  onMigrated?: (from: number, to: number) => void;
  /** Record every change in the activity log (default true); false records nothing (what is recorded stays readable). */
  activityLog?: boolean;
  /**
   * The readers that run searches which scan a table, off the event loop (readers.ts): their
   * deadline (default 5 s), how many (default 2), or false to run every search on the main connection.
   * A `:memory:` database has none (another connection would not see it).
   */
  readers?: Partial<ReaderOptions> | false;
}

/** Times the store writes: ISO 8601 UTC strings of one fixed format, so text comparison in SQL orders them. */
export const nowIso = () => new Date().toISOString();

/** How many statements whose text depends on a request (a filter's shape, a page size) stay prepared. */
export const DYNAMIC_STATEMENTS = 256;

/**
 * A LIMIT clause with the row count written into the statement text. A LIMIT given as a bound
 * parameter costs SQLite a re-preparation on every run (measured with bun:sqlite: a one-row lookup by
 * userName took 11–13 µs with `LIMIT ?`, 5.5 µs with `LIMIT 1000`). One statement per page size: an
 * IdP uses one or two, and a client that cycles through many only churns the bounded statement cache
 * (re-preparation, no growth). OFFSET stays a parameter (no such cost).
 */
export function limitSql(limit: number): string {
  if (!Number.isSafeInteger(limit)) throw new RangeError(`LIMIT must be an integer, got ${limit}`);
  return `LIMIT ${limit}`;
}

/** A queued write: refused with 503 if the write lock cannot be had by `deadline` (performance.now()). */
type Unit = { run: () => void; resolve: () => void; reject: (e: unknown) => void; deadline: number };

/** The rows StoreStats counts. */
export type Tally = { users: number; groups: number; memberships: number };
const zero = (): Tally => ({ users: 0, groups: 0, memberships: 0 });
const addTo = (into: Tally, d: Tally) => {
  into.users += d.users;
  into.groups += d.groups;
  into.memberships += d.memberships;
};

/** SQLite's answer when another connection holds the lock (code SQLITE_BUSY, or its message). */
const isBusy = (e: unknown) => e instanceof Error && /SQLITE_BUSY|database is locked/i.test(`${(e as { code?: string }).code ?? ""} ${e.message}`);

/**
 * SQLite's errors of the disk (full, read-only, I/O) as the SCIM errors a client can act on, naming
 * the file; any other error as it is. Each comes from a statement or a COMMIT SQLite rolled back: a
 * full disk or a read-only file wrote nothing (a WAL frame without its commit frame is ignored); after
 * an I/O error the disk itself is in doubt, so that detail says only that the write is not acknowledged.
 */
export function storageError(e: unknown, path: string): unknown {
  if (!(e instanceof Error)) return e;
  const code = String((e as { code?: string }).code ?? "");
  if (code === "SQLITE_FULL" || /database or disk is full/i.test(e.message))
    return new ScimError(507, `the disk holding the database ${path} is full (or the database reached its size limit): nothing was written; free space, then retry (scimd needs no restart)`);
  if (code.startsWith("SQLITE_READONLY"))
    return new ScimError(503, `the database ${path} is read-only for scimd (${code}): nothing was written; make the file and its folder writable for scimd's user, then restart scimd`, undefined, { "Retry-After": "5" });
  if (code.startsWith("SQLITE_IOERR"))
    return new ScimError(
      503,
      `the database ${path} could not be read or written (${code}: ${e.message}): the write was rolled back and is not acknowledged; check the disk and the system log, then retry`,
      undefined,
      { "Retry-After": "5" },
    );
  return e;
}

/**
 * Refuses to create a database beside a -wal or -shm file that has none: the database file was
 * deleted or moved away while its log was kept (its last writes may be in the -wal), and a new
 * empty file would be read with that log. Nothing is created.
 */
function refuseOrphanedLog(path: string): void {
  if (existsSync(path)) return;
  const base = sqliteBase(path);
  const left = [`${base}-wal`, `${base}-shm`].filter((f) => existsSync(f));
  if (left.length === 0) return;
  throw new StoreOpenError(
    `refusing to create a new database at ${path}: ${left.join(" and ")} ${left.length > 1 ? "are" : "is"} there without the database file, which was deleted or moved away (its last writes may be in the -wal file). ` +
      `Put the database file back (restore it from a backup), or, to start with an empty database, remove ${left.join(" and ")}`,
  );
}

/**
 * The path SQLite names the -wal and -shm files after: the file a symbolic link `path` points to
 * (SQLite's unix VFS follows links, so they sit beside the target), also when the target is gone.
 */
function sqliteBase(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    try {
      return resolve(dirname(path), readlinkSync(path));
    } catch {
      return path;
    }
  }
}

/**
 * Refuses a command other than serve while the database's -wal file is there without its -shm:
 * the -shm of a running server was deleted. The server goes on with the shared-memory index it holds
 * open, so the writes of a second connection (which would build a new -shm) are invisible to it, and
 * its clean stop would checkpoint its own view and drop them: `tokens revoke` would report a
 * revocation that never takes effect. Serve itself opens such a file (SQLite rebuilds the index from
 * the -wal after a crash that lost it).
 */
function refuseLostShm(path: string): void {
  const base = sqliteBase(path);
  const wal = statSync(`${base}-wal`, { throwIfNoEntry: false });
  if (!wal || wal.size === 0 || existsSync(`${base}-shm`)) return;
  throw new StoreOpenError(
    `${base}-wal is there without ${base}-shm: if scimd serve runs on this database, its shared-memory file was deleted, and a change made now would be lost when it stops. ` +
      `Stop serve cleanly (SIGTERM) and start it again, then run this command; if no server runs, start serve once (it recovers the WAL) and stop it`,
  );
}

/** Whether this process may write the file (access(W_OK); root may, unless it is immutable). */
function isWritable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Refuses to open a database file scimd cannot write (SQLite would open it read-only and fail every write). */
function refuseUnwritable(path: string): void {
  try {
    accessSync(path, constants.W_OK);
  } catch (e) {
    const code = (e as { code?: string }).code ?? String(e);
    throw new StoreOpenError(`the database file ${path} is not writable by scimd's user (${code}): make it writable (chmod u+w, or chown it to that user) and start again`);
  }
}

/** How long ready() sleeps between two tries for the write lock. */
const READY_RETRY_MS = 10;
/** The group commit's waits between two tries for the write lock: doubling from the first to the last. */
const LOCK_RETRY_FIRST_MS = 5;
const LOCK_RETRY_MAX_MS = 100;

/** What a write gets when another connection kept the write lock for its whole budget. */
const busyError = () => new ScimError(503, "the database is busy (another process holds its write lock); nothing was changed, retry shortly", undefined, { "Retry-After": "1" });

export class SqliteDatabase {
  readonly db: Database;
  private readonly stmts = new Map<string, Statement>();
  private readonly dynamicStmts = new Map<string, Statement>();
  private readonly pending: Unit[] = [];
  private readonly busyTimeoutMs: number;
  /** Users, Groups and memberships as committed: counted at open, then moved by each committed write. */
  private readonly counts: Tally;
  /** What the write running now added and removed, counted only if its transaction commits. */
  private unit: Tally | undefined;
  private readonly commitObservers = new Set<(batch: CommitBatch) => void>();
  private closed = false;
  /** Set while the queued writes wait (asynchronously) for another connection to release the write lock. */
  private lockRetry: { timer: ReturnType<typeof setTimeout>; waitMs: number } | undefined;
  /**
   * The device and inode of the database file and of its -wal and -shm files as opened: a path that
   * names another file (or none) later means it was deleted or replaced under the open connection.
   */
  private readonly identities: { path: string; name: string; dev: number; ino: number }[] = [];
  /** The absolute path of the database file when this open created it (it did not exist, or was empty). */
  readonly created: string | undefined;

  constructor(
    readonly path: string,
    opts: SqliteStoreOptions = {},
  ) {
    const fresh = path === ":memory:" || !existsSync(path) || statSync(path).size === 0;
    const create = opts.create ?? true;
    if (!create && fresh && path !== ":memory:") throw new StoreMissingError(path);
    if (create && path !== ":memory:") refuseOrphanedLog(path);
    if (!create && path !== ":memory:") refuseLostShm(path);
    // serve (and a command asked to create) must be able to write; a read-only copy can still be
    // exported, listed or read by `activity`, and a command that writes to it fails with SQLite's error.
    const writable = path === ":memory:" || fresh || isWritable(path);
    if (create && !writable) refuseUnwritable(path);
    if (create && path !== ":memory:") {
      mkdirSync(dirname(path), { recursive: true });
      if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
    }
    // Without `create` the file is opened read-write only: if it vanished since the check, the open fails.
    try {
      this.db = new Database(path, create ? { create: true, strict: true } : { readwrite: true, create: false, strict: true });
    } catch (e) {
      // A folder, an unreadable file, a path under a file: say which path could not be opened.
      throw new StoreOpenError(`cannot open ${path} as a scimd database: ${e instanceof Error ? e.message : String(e)}`);
    }
    try {
      this.busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
      this.db.exec(`PRAGMA busy_timeout = ${this.busyTimeoutMs}`);
      this.checkIdentity(fresh);
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec(`PRAGMA synchronous = ${opts.synchronous ?? "FULL"}`);
      this.db.exec("PRAGMA foreign_keys = ON");
      // 16 MiB of page cache (the default is 2 MiB): the lookup indexes of 100,000 users stay in memory.
      // Measured on 100,000 users: random lookups by userName and id cost the same as with 32 MiB
      // (15.8 / 12.7 µs against 15.7 / 12.6 µs in-process), and reading a 100,000-member group (which
      // touches every user row) peaks ~19 MB lower in resident memory.
      this.db.exec("PRAGMA cache_size = -16384");
      this.migrate(opts.onMigrated);
      // Counted once here; from now on every committed write moves the counts (tally), so stats() never counts rows.
      this.counts = this.db
        .query("SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM groups) AS groups, (SELECT count(*) FROM group_members) AS memberships")
        .get() as Tally;
    } catch (e) {
      this.db.close();
      if (e instanceof StoreOpenError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      throw new StoreOpenError(`cannot open ${path} as a scimd database: ${msg}`);
    }
    if (path !== ":memory:") {
      const base = sqliteBase(path);
      // Best effort, and never on a copy scimd may not write (a read-only backup being exported).
      if (writable)
        for (const f of [base, `${base}-wal`, `${base}-shm`])
          try {
            if (existsSync(f)) chmodSync(f, 0o600);
          } catch {
            // not scimd's file to change (another owner): its mode stays
          }
      // The -wal and -shm exist by now (the count above read in WAL mode), and SQLite keeps both open until close.
      for (const [f, name] of [[path, "database file"], [`${base}-wal`, "WAL file"], [`${base}-shm`, "shared-memory file"]] as const) {
        const st = statSync(f, { throwIfNoEntry: false });
        if (st) this.identities.push({ path: f, name, dev: st.dev, ino: st.ino });
      }
      if (fresh) this.created = resolve(path);
    }
  }

  /**
   * What is wrong with the database's files on disk, or undefined while nothing is; a stat of each
   * file and an access(W_OK) of the database (about 1 µs each), so it is asked before and after every
   * write transaction, by ready() and by serve's watch. A deleted or replaced file (`rm`, `mv` of
   * scimd.db or of its -wal or -shm): SQLite goes on writing to the files it holds open, which nobody
   * can reach any more, so every write from then on would be lost at the next restart; only a restart
   * opens the files the path names now. An unwritable file (chmod a-w) is the same file: writes are
   * refused while it is, and accepted again once it is writable.
   */
  fileProblem(): FileProblem | undefined {
    for (const id of this.identities) {
      const label = id.name === "database file" ? id.name : `database ${id.name}`;
      let st;
      try {
        st = statSync(id.path, { throwIfNoEntry: false });
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== "ENOTDIR")
          return { event: `${label} unreadable`, gone: true, reason: `the ${id.name} ${id.path} cannot be checked: ${code ?? String(e)}` };
      }
      if (st && st.dev === id.dev && st.ino === id.ino) continue;
      const how = st ? "replaced" : "deleted";
      const was = `the ${id.name} ${id.path} was ${st ? "replaced by another file" : "deleted"} while scimd had it open`;
      // Closing checkpoints the WAL it holds open into the database file it holds open: a clean stop keeps
      // the writes when only the -wal or -shm went, never when the database file itself did.
      const reason =
        id === this.identities[0]
          ? `${was}; writes now go to a file nobody can reach and are lost at the next restart: restart scimd to open the file the path names now (restore the database from a backup first if it was ${how} by mistake)`
          : `${was}; the writes not yet copied into the database file are lost if scimd is killed: stop it cleanly (SIGTERM: closing copies them into the database file) and start it again`;
      return { event: `${label} ${how}`, gone: true, reason };
    }
    const main = this.identities[0];
    if (main) {
      try {
        accessSync(main.path, constants.W_OK);
      } catch (e) {
        const code = (e as { code?: string }).code ?? String(e);
        return {
          event: "database file unwritable",
          gone: false,
          reason: `the database file ${main.path} is not writable (${code}: its permissions or attributes changed?); scimd refuses writes until it is: make it writable for scimd's user again (chmod u+w), no restart needed`,
        };
      }
    }
    return undefined;
  }

  /**
   * The write guard, called by flush before BEGIN (`before`) and after COMMIT (`after`): a 503 when
   * the database's files are not the ones opened (before and after: a write committed into a deleted
   * file is not durable, so it is not acknowledged) or the file is unwritable (before only: a commit
   * that happened went to the right file).
   */
  private writeGuard(stage: "before" | "after"): ScimError | undefined {
    if (this.identities.length === 0) return undefined;
    const problem = this.fileProblem();
    if (!problem || (stage === "after" && !problem.gone)) return undefined;
    const what = stage === "before" ? "nothing was written" : "the write may not be stored";
    return new ScimError(503, `${what}: ${problem.reason}`, undefined, problem.gone ? undefined : { "Retry-After": "5" });
  }

  private checkIdentity(fresh: boolean): void {
    const appId = (this.db.query("PRAGMA application_id").get() as { application_id: number }).application_id;
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    const tables = (this.db.query("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n;
    if (appId !== APPLICATION_ID && !(fresh || (appId === 0 && tables === 0)))
      throw new StoreOpenError(`${this.path} is an SQLite database that scimd did not create; refusing to touch it (choose another --db path)`);
    if (version > MIGRATIONS.length)
      throw new StoreOpenError(`${this.path} has schema version ${version}, newer than this scimd understands (${MIGRATIONS.length}); run a newer scimd`);
  }

  private migrate(onMigrated?: (from: number, to: number) => void): void {
    const current = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        const m = MIGRATIONS[v]!;
        // A blank migration is a number held for a step merged later (SQLite refuses to run empty SQL).
        if (typeof m === "string") {
          if (m.trim()) this.db.exec(m);
        } else m(this.db);
        this.db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
      }).immediate();
      onMigrated?.(v, v + 1);
    }
  }

  /** A statement of fixed text, prepared on first use and kept for the life of the connection. */
  q(sql: string): Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /**
   * Statements whose text depends on a filter's shape: kept in a bounded LRU cache, so that repeated
   * shapes (an IdP's `userName eq …`) are prepared once and arbitrary shapes cannot grow memory.
   */
  dynamic(sql: string): Statement {
    let s = this.dynamicStmts.get(sql);
    if (s) {
      this.dynamicStmts.delete(sql);
      this.dynamicStmts.set(sql, s);
      return s;
    }
    s = this.db.prepare(sql);
    this.dynamicStmts.set(sql, s);
    if (this.dynamicStmts.size > DYNAMIC_STATEMENTS) {
      const [oldest, stmt] = this.dynamicStmts.entries().next().value!;
      this.dynamicStmts.delete(oldest);
      stmt.finalize();
    }
    return s;
  }

  /**
   * Group commit: every write of a request is queued as one unit and the units queued in the same
   * turn of the event loop are committed in one transaction, one fsync. Each unit runs inside its
   * own SAVEPOINT, so a unit that fails (uniqueness, a stale version, an unknown member) is rolled
   * back alone and the others commit. A promise resolves only after COMMIT returned and the
   * database's files were checked to be still the ones opened (writeGuard): a response never leaves
   * before its write is durable in the file the path names.
   */
  write(run: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new ScimError(503, "the database is closed (scimd is stopping): nothing was written; retry", undefined, { "Retry-After": "1" }));
      this.pending.push({ run, resolve, reject, deadline: performance.now() + this.busyTimeoutMs });
      // While the queue waits for the lock, the retry's timer takes the new writes along.
      if (this.pending.length === 1 && !this.lockRetry) setImmediate(() => this.flush());
    });
  }

  /**
   * Runs one small write now, outside the group commit, if the write lock is free at once; false
   * (nothing written) when another connection holds it or a group commit is open. For best-effort
   * bookkeeping (a token's last use) that must never make a request wait for the lock.
   */
  writeNowIfFree(sql: string, ...params: SQLQueryBindings[]): boolean {
    // Never into files that are not the ones opened, or one made read-only (the guard of every write).
    if (this.closed || this.db.inTransaction || this.fileProblem()) return false;
    this.q("PRAGMA busy_timeout = 0").run();
    try {
      this.q(sql).run(...params);
      return true;
    } catch (e) {
      if (isBusy(e)) return false;
      throw e;
    } finally {
      this.q(`PRAGMA busy_timeout = ${this.busyTimeoutMs}`).run();
    }
  }

  /**
   * Takes the write lock without waiting: bun:sqlite's busy timeout waits synchronously, which would
   * stall every request (reads, /healthz, signals) while another process (a backup, a token command,
   * a second server) holds the lock. True when the transaction began; false when the lock is held
   * elsewhere. `wait` (close(), when nothing is served any more) takes the busy timeout instead.
   */
  private begin(wait: boolean): boolean {
    if (wait) {
      this.q("BEGIN IMMEDIATE").run();
      return true;
    }
    this.q("PRAGMA busy_timeout = 0").run();
    try {
      this.q("BEGIN IMMEDIATE").run();
      return true;
    } catch (e) {
      if (isBusy(e)) return false;
      throw e;
    } finally {
      this.q(`PRAGMA busy_timeout = ${this.busyTimeoutMs}`).run();
    }
  }

  /**
   * The lock is held elsewhere: the writes whose budget (the busy timeout from when each was queued)
   * is spent get 503; the others go back to the head of the queue, in their order, and are tried again
   * after a wait that doubles up to LOCK_RETRY_MAX_MS. The event loop stays free meanwhile.
   */
  private retryLater(batch: Unit[], lastWaitMs: number | undefined): void {
    const now = performance.now();
    const keep = batch.filter((u) => u.deadline > now);
    for (const u of batch) if (u.deadline <= now) u.reject(busyError());
    this.pending.unshift(...keep);
    // Nothing left to wait for: the next write starts afresh (write() schedules its flush).
    if (this.pending.length === 0) return;
    const waitMs = lastWaitMs === undefined ? LOCK_RETRY_FIRST_MS : Math.min(lastWaitMs * 2, LOCK_RETRY_MAX_MS);
    // No longer than the earliest deadline: that write is answered on time.
    const until = Math.max(1, Math.min(waitMs, Math.min(...this.pending.map((u) => u.deadline)) - now));
    this.lockRetry = { waitMs, timer: setTimeout(() => this.flush(), until) };
  }

  private flush(wait = false): void {
    if (this.lockRetry) {
      clearTimeout(this.lockRetry.timer);
    }
    const retrying = this.lockRetry;
    this.lockRetry = undefined;
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    const failures = new Map<number, unknown>();
    if (this.db.inTransaction) {
      // Someone holds a transaction on this connection: do not join it, and do not end it.
      for (const unit of batch) unit.reject(new Error("the store's connection is inside a transaction it did not open"));
      return;
    }
    const refused = this.writeGuard("before");
    if (refused) {
      for (const unit of batch) unit.reject(refused);
      return;
    }
    let began = false;
    const delta = zero();
    let commitMs = 0;
    try {
      if (!this.begin(wait)) return this.retryLater(batch, retrying?.waitMs);
      began = true;
      batch.forEach((unit, i) => {
        this.q("SAVEPOINT unit").run();
        this.unit = zero();
        try {
          unit.run();
          this.q("RELEASE unit").run();
          addTo(delta, this.unit);
        } catch (e) {
          // SQLite ends the whole transaction on some errors (SQLITE_FULL, SQLITE_IOERR): then nothing of the batch is stored.
          if (!this.db.inTransaction) throw e;
          this.q("ROLLBACK TO unit").run();
          this.q("RELEASE unit").run();
          failures.set(i, e);
        } finally {
          this.unit = undefined;
        }
      });
      const t0 = performance.now();
      this.q("COMMIT").run();
      commitMs = performance.now() - t0;
    } catch (e) {
      // BEGIN or COMMIT failed (busy beyond the timeout, disk full, I/O error): nothing of the batch is stored.
      try {
        if (began && this.db.inTransaction) this.q("ROLLBACK").run();
      } catch {
        // the connection already rolled back
      }
      const err = isBusy(e) ? busyError() : storageError(e, this.path);
      for (const unit of batch) unit.reject(err);
      return;
    }
    addTo(this.counts, delta);
    const observed: CommitBatch = { writes: batch.length, commitSeconds: commitMs / 1000 };
    for (const observer of this.commitObservers) {
      try {
        observer(observed);
      } catch {
        // An observer (metrics) cannot fail the writes, which are committed.
      }
    }
    const lost = this.writeGuard("after");
    batch.forEach((unit, i) => (failures.has(i) ? unit.reject(storageError(failures.get(i), this.path)) : lost ? unit.reject(lost) : unit.resolve()));
  }

  /**
   * Inside a write: `n` rows of `what` were added (negative: removed). Counted when the write's
   * transaction commits; forgotten when the write or its transaction is rolled back.
   */
  tally(what: keyof Tally, n: number): void {
    if (this.unit) this.unit[what] += n;
  }

  /**
   * StoreStats: the counts kept current, and the size of the file and its WAL (a stat each, no query).
   * When the path no longer names the opened file the sizes are NaN (unknown), not a size of another
   * file or 0: /readyz says why.
   */
  stats(): StoreStats {
    if (this.fileProblem()?.gone) return { ...this.counts, databaseBytes: NaN, walBytes: NaN };
    const size = (f: string) => {
      try {
        return statSync(f).size;
      } catch {
        return 0;
      }
    };
    const memory = this.path === ":memory:";
    return {
      ...this.counts,
      databaseBytes: memory ? 0 : size(this.path),
      walBytes: memory ? 0 : size(`${this.path}-wal`),
    };
  }

  onCommit(observer: (batch: CommitBatch) => void): () => void {
    this.commitObservers.add(observer);
    return () => this.commitObservers.delete(observer);
  }

  /**
   * Store.ready: a read, then BEGIN IMMEDIATE and ROLLBACK, each try with busy_timeout 0 (bun:sqlite
   * waits for a lock synchronously, which would stall every request for the whole timeout), retried
   * after a short sleep while another connection holds the lock, until `timeoutMs` has passed.
   * Each try runs within one turn of the event loop, so it never meets the group commit half-way.
   */
  async ready(timeoutMs: number): Promise<Readiness> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const tried = this.tryLock();
      if (tried !== "busy") return tried;
      const left = deadline - performance.now();
      if (left <= 0)
        return { ok: false, reason: `the database's write lock could not be taken within ${timeoutMs} ms: another connection (another process?) holds it` };
      await new Promise((r) => setTimeout(r, Math.min(READY_RETRY_MS, left)));
    }
  }

  private tryLock(): Readiness | "busy" {
    if (this.closed) return { ok: false, reason: "the database is closed (scimd is stopping)" };
    const problem = this.fileProblem();
    if (problem) return { ok: false, reason: problem.reason };
    // Never inside a write: flush runs in one turn too. A transaction left open by someone else counts as busy.
    if (this.db.inTransaction) return "busy";
    let began = false;
    try {
      this.db.exec("PRAGMA busy_timeout = 0");
      this.q("SELECT seq FROM users ORDER BY seq LIMIT 1").get();
      this.q("BEGIN IMMEDIATE").run();
      began = true;
      this.q("ROLLBACK").run();
      began = false;
      return { ok: true };
    } catch (e) {
      if (isBusy(e)) return "busy";
      return { ok: false, reason: `the database does not answer: ${e instanceof Error ? e.message : String(e)}` };
    } finally {
      try {
        if (began && this.db.inTransaction) this.q("ROLLBACK").run();
      } catch {
        // the connection already rolled back
      }
      this.db.exec(`PRAGMA busy_timeout = ${this.busyTimeoutMs}`);
    }
  }

  /** Commits (or refuses) the writes still queued, then releases every statement and the connection. */
  close(): void {
    // Nothing is served any more: the writes still queued wait for the lock (the busy timeout) here.
    this.flush(true);
    for (const s of [...this.stmts.values(), ...this.dynamicStmts.values()]) s.finalize();
    this.stmts.clear();
    this.dynamicStmts.clear();
    this.closed = true;
    this.db.close();
  }
}
