/**
 * One scimd SQLite file (bun:sqlite) as the rest of the SQLite store uses it: opened in WAL mode with a
 * busy timeout, checked to be scimd's, migrated by `PRAGMA user_version`; statements prepared once and
 * reused; and every write of a request queued into a group commit.
 */
import { Database, type Statement } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ScimError } from "../../scim/errors";
import { StoreMissingError, StoreOpenError, type CommitBatch, type Readiness, type StoreStats } from "../store";
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

type Unit = { run: () => void; resolve: () => void; reject: (e: unknown) => void };

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

/** How long ready() sleeps between two tries for the write lock. */
const READY_RETRY_MS = 10;

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
  /** The file's device and inode as opened: a path that names another file (or none) later means it was deleted or replaced. */
  private readonly identity: { dev: number; ino: number } | undefined;

  constructor(
    readonly path: string,
    opts: SqliteStoreOptions = {},
  ) {
    const fresh = path === ":memory:" || !existsSync(path) || statSync(path).size === 0;
    const create = opts.create ?? true;
    if (!create && fresh && path !== ":memory:") throw new StoreMissingError(path);
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
      for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
      const st = statSync(path);
      this.identity = { dev: st.dev, ino: st.ino };
    }
  }

  /**
   * Why the path no longer names the file this connection opened (deleted, or replaced by `mv`), or
   * undefined while it does. SQLite keeps writing to the open file descriptor, so every write from
   * then on is lost at the next restart; only a restart opens the file the path names now.
   */
  private fileGone(): string | undefined {
    if (!this.identity) return undefined;
    let st;
    try {
      st = statSync(this.path);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") return `the database file ${this.path} cannot be checked: ${code ?? String(e)}`;
    }
    if (st && st.dev === this.identity.dev && st.ino === this.identity.ino) return undefined;
    return `the database file ${this.path} was ${st ? "replaced by another file" : "deleted"} while scimd had it open; writes now go to a file nobody can reach and are lost at the next restart: restart scimd to open the file the path names now (restore the database first if it was deleted by mistake)`;
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
   * back alone and the others commit. A promise resolves only after COMMIT returned: a response
   * never leaves before its write is durable.
   */
  write(run: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ run, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    const failures = new Map<number, unknown>();
    if (this.db.inTransaction) {
      // Someone holds a transaction on this connection: do not join it, and do not end it.
      for (const unit of batch) unit.reject(new Error("the store's connection is inside a transaction it did not open"));
      return;
    }
    let began = false;
    const delta = zero();
    let commitMs = 0;
    try {
      this.q("BEGIN IMMEDIATE").run();
      began = true;
      batch.forEach((unit, i) => {
        this.q("SAVEPOINT unit").run();
        this.unit = zero();
        try {
          unit.run();
          this.q("RELEASE unit").run();
          addTo(delta, this.unit);
        } catch (e) {
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
      const err = isBusy(e) ? new ScimError(503, "the database is busy (another process holds its write lock); nothing was changed, retry shortly", undefined, { "Retry-After": "1" }) : e;
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
    batch.forEach((unit, i) => (failures.has(i) ? unit.reject(failures.get(i)) : unit.resolve()));
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
    if (this.fileGone()) return { ...this.counts, databaseBytes: NaN, walBytes: NaN };
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
    const gone = this.fileGone();
    if (gone) return { ok: false, reason: gone };
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
    this.flush();
    for (const s of [...this.stmts.values(), ...this.dynamicStmts.values()]) s.finalize();
    this.stmts.clear();
    this.dynamicStmts.clear();
    this.closed = true;
    this.db.close();
  }
}
