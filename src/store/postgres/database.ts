/**
 * One scimd PostgreSQL database (Bun.SQL) as the rest of the PostgreSQL store uses it: a connection
 * pool, checked to be scimd's, migrated under an advisory lock, and each write in its own transaction.
 *
 * Bun.SQL facts this file is built around (checked on the pinned Bun by test/store/postgres/cluster.test.ts):
 * - JSON is bound as text and cast with `$n::text::jsonb`: a string bound straight to a jsonb
 *   parameter is encoded once more into a JSON string (oven-sh/bun #28819).
 * - idleTimeout and maxLifetime stay 0 (Bun's default: connections are kept); on this Bun a query in
 *   flight when one fires finishes anyway (oven-sh/bun #30646 no longer holds), but nothing here needs them.
 * - int8 and count(*) come back as strings: counts are cast to integer, seqs read with Number().
 */
import { SQL, type TransactionSQL } from "bun";
import { ScimError } from "../../scim/errors";
import { StoreMissingError, StoreOpenError, type CommitBatch, type Readiness, type StoreStats } from "../store";
import { MIGRATIONS } from "./migrations";

/** The transaction client handed to a write. */
export type Tx = TransactionSQL;
/** Anything that runs statements: the pool or a transaction. */
export type Runner = SQL | Tx;

export interface PostgresStoreOptions {
  /** Create scimd's tables in an empty database (the default, for `serve`); false refuses one with StoreMissingError. */
  create?: boolean;
  /** Told of each schema migration applied while opening. */
  onMigrated?: (from: number, to: number) => void;
  /** Record every change in the activity log (default true). */
  activityLog?: boolean;
  /** Connections in the pool (default 10). */
  maxConnections?: number;
  /**
   * The password to log in with, given to Bun.SQL as its `password` option (which wins over one in
   * the URL and over PGPASSWORD); undefined leaves the URL's own, or none.
   */
  password?: string;
  /** Where the password came from, said when the server refuses the login (never the password itself). */
  passwordFrom?: string;
  /** The deadline of a search that is not an indexed lookup, in milliseconds (default 5 s; 0: none). */
  queryTimeoutMs?: number;
}

/** Times the store writes: ISO 8601 UTC strings of one fixed format (text order is time order). */
export const nowIso = () => new Date().toISOString();

/** The key of scimd's advisory lock (pg_advisory_lock) held while migrating: "SCIM" as an int. */
const MIGRATION_LOCK = 0x5343494d;

/** How many times a write rolled back by a deadlock or a serialization failure is tried in all. */
const WRITE_ATTEMPTS = 4;

/** The rows StoreStats counts. */
export type Tally = { users: number; groups: number; memberships: number };

/** The server's SQLSTATE of a failed statement, when it is one. */
export const sqlState = (e: unknown): string | undefined => (e && typeof e === "object" && typeof (e as { errno?: unknown }).errno === "string" ? (e as { errno: string }).errno : undefined);
export const isUniqueViolation = (e: unknown) => sqlState(e) === "23505";

/**
 * A failure that says the server cannot be reached or ended the connection: Bun's connection and
 * timeout codes, and the server's SQLSTATE classes 08 (connection exception) and 57P01–57P03 (shut
 * down, crashed, starting up). The request gets a 503 to retry; the pool reconnects on its own.
 */
export const isConnectionError = (e: unknown) =>
  e instanceof Error && (/^ERR_POSTGRES_(CONNECTION_|.*TIMEOUT)/.test(String((e as { code?: string }).code ?? "")) || /^(08|57P0[123])/.test(sqlState(e) ?? ""));

/** A one-line reason of a failure, for messages that name no secret: Bun's code and message only. */
const reasonOf = (e: unknown) => (e instanceof Error ? `${e.message}${(e as { code?: string }).code ? ` (${(e as { code?: string }).code})` : ""}` : String(e));

/** `e` as the store throws it: a connection failure becomes a 503 with Retry-After (`what` says what it means for the request); anything else as it is. */
export function unavailable(e: unknown, what = "retry shortly"): unknown {
  if (!isConnectionError(e)) return e;
  return new ScimError(503, `the database does not answer (${reasonOf(e)}); ${what === "retry shortly" ? what : `${what}, retry shortly`}`, undefined, { "Retry-After": "1" });
}

/** The database a URL's path names (`postgres://h/scimd` → scimd), or undefined when it names none or does not parse. */
export function databaseOf(url: string): string | undefined {
  try {
    const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
    return name === "" ? undefined : name;
  } catch {
    return undefined;
  }
}

export class PostgresDatabase {
  readonly sql: SQL;
  private counts: Tally = { users: 0, groups: 0, memberships: 0 };
  private databaseBytes = 0;
  private readonly observers = new Set<(batch: CommitBatch) => void>();
  /** Writes started and not finished: close waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;
  /** The last write queued for each resource key (write's `key`), while it runs. */
  private readonly chains = new Map<string, Promise<unknown>>();

  private constructor(
    url: string,
    /** The URL as it may be shown (password redacted). */
    readonly shown: string,
    opts: PostgresStoreOptions,
  ) {
    const database = databaseOf(url);
    this.sql = new SQL(url, {
      max: opts.maxConnections ?? 10,
      // The URL's database, given as an option: on this Bun PGDATABASE would win over the URL's path.
      ...(database !== undefined ? { database } : {}),
      idleTimeout: 0,
      maxLifetime: 0,
      connectionTimeout: 10,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
    });
  }

  /** Connects, checks and migrates the database; throws StoreOpenError naming only `shown`. */
  static async open(url: string, shown: string, opts: PostgresStoreOptions = {}): Promise<PostgresDatabase> {
    const d = new PostgresDatabase(url, shown, opts);
    try {
      await d.migrate(opts.create ?? true, opts.onMigrated);
      const [c] = await d.sql`SELECT (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM groups)::int AS groups,
        (SELECT count(*) FROM group_members)::int AS memberships, pg_database_size(current_database())::float8 AS bytes`;
      d.counts = { users: c.users, groups: c.groups, memberships: c.memberships };
      d.databaseBytes = c.bytes;
    } catch (e) {
      await d.sql.close().catch(() => {});
      if (e instanceof StoreOpenError) throw e;
      // SQLSTATE class 28: the server refused the login (a wrong password, or none where one is needed).
      const login = /^28/.test(sqlState(e) ?? "") && opts.passwordFrom ? `; ${opts.passwordFrom}` : "";
      throw new StoreOpenError(`cannot open ${shown} as a scimd database: ${reasonOf(e)}${login}`);
    }
    return d;
  }

  /**
   * Applies the migrations this database lacks, one transaction each, on one reserved connection
   * holding scimd's advisory lock: a replica starting at the same time waits, then finds nothing to do.
   * A database with tables but no `scimd_schema` is not scimd's and is refused untouched; one whose
   * version is newer than this scimd's is refused.
   */
  private async migrate(create: boolean, onMigrated?: (from: number, to: number) => void): Promise<void> {
    const conn = await this.sql.reserve();
    try {
      await conn`SELECT pg_advisory_lock(${MIGRATION_LOCK})`;
      try {
        const [{ has }] = await conn`SELECT to_regclass('scimd_schema') IS NOT NULL AS has`;
        let version = 0;
        if (has) {
          [{ version }] = await conn`SELECT version FROM scimd_schema`;
        } else {
          const [{ n }] = await conn`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = current_schema()`;
          if (n > 0) throw new StoreOpenError(`${this.shown} holds tables that scimd did not create; refusing to touch it (give scimd a database of its own)`);
          if (!create) throw new StoreMissingError(this.shown);
        }
        if (version > MIGRATIONS.length)
          throw new StoreOpenError(`${this.shown} has schema version ${version}, newer than this scimd understands (${MIGRATIONS.length}); run a newer scimd`);
        for (let v = version; v < MIGRATIONS.length; v++) {
          await conn.begin(async (tx) => {
            if (v === 0) await tx`CREATE TABLE scimd_schema (version integer NOT NULL)`.then(() => tx`INSERT INTO scimd_schema VALUES (0)`);
            await tx.unsafe(MIGRATIONS[v]!);
            await tx`UPDATE scimd_schema SET version = ${v + 1}`;
          });
          onMigrated?.(v, v + 1);
        }
      } finally {
        await conn`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`;
      }
    } finally {
      conn.release();
    }
  }

  /**
   * Runs `fn` in a transaction of its own (READ COMMITTED; the rows a write changes are locked by its
   * `SELECT … FOR UPDATE`, uniqueness by the unique indexes). `delta` is what it added and removed,
   * counted only when it commits. A lost connection is a 503 with Retry-After. Writes given the same
   * `key` (a resource) are applied in call order.
   */
  async write<T>(fn: (tx: Tx, delta: Tally) => Promise<T>, key?: string): Promise<T> {
    if (key === undefined) return this.transact(fn);
    // Writes of one resource run in the order they were called (each on the next's heels), as the
    // store contract asks: from a pool, the later call could otherwise reach the row lock first.
    // Writes of different resources run side by side.
    const before = this.chains.get(key);
    const mine = (before ?? Promise.resolve()).catch(() => {}).then(() => this.transact(fn));
    const tail = mine.catch(() => {});
    this.chains.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    }
  }

  private async transact<T>(fn: (tx: Tx, delta: Tally) => Promise<T>): Promise<T> {
    if (this.closed) throw new ScimError(503, "the database is closed (scimd is stopping); retry shortly", undefined, { "Retry-After": "1" });
    let delta: Tally = { users: 0, groups: 0, memberships: 0 };
    const t0 = performance.now();
    // A deadlock (two writes locking rows in opposite orders: a delete bumping the versions of the
    // groups it leaves while another write holds one of them) or a serialization failure rolled the
    // whole transaction back: it is run again, a few times, before the request is refused with 503.
    const attempt = async (): Promise<T> => {
      for (let i = 1; ; i++) {
        delta = { users: 0, groups: 0, memberships: 0 };
        try {
          return (await this.sql.begin((tx) => fn(tx, delta))) as T;
        } catch (e) {
          const state = sqlState(e);
          if ((state !== "40P01" && state !== "40001") || this.closed) throw e;
          if (i >= WRITE_ATTEMPTS) throw new ScimError(503, "the database kept refusing the write as conflicting with concurrent writes; nothing was changed, retry shortly", undefined, { "Retry-After": "1" });
        }
      }
    };
    const run = attempt();
    this.inFlight.add(run);
    let result: T;
    try {
      result = (await run) as T;
    } catch (e) {
      throw unavailable(e, "nothing was changed");
    } finally {
      this.inFlight.delete(run);
    }
    this.counts.users += delta.users;
    this.counts.groups += delta.groups;
    this.counts.memberships += delta.memberships;
    // The whole transaction's time: Bun.SQL's begin() does not time its COMMIT apart.
    const batch: CommitBatch = { writes: 1, commitSeconds: (performance.now() - t0) / 1000 };
    for (const o of this.observers) {
      try {
        o(batch);
      } catch {
        // an observer (metrics) cannot fail a committed write
      }
    }
    return result;
  }

  onCommit(observer: (batch: CommitBatch) => void): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  stats(): StoreStats {
    return { ...this.counts, databaseBytes: this.databaseBytes, walBytes: 0 };
  }

  /** Store.ready: a read and a write lock (a row lock on scimd_schema, released at once) within `timeoutMs`. */
  async ready(timeoutMs: number): Promise<Readiness> {
    if (this.closed) return { ok: false, reason: "the database is closed (scimd is stopping)" };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<Readiness>((r) => (timer = setTimeout(() => r({ ok: false, reason: `the database did not answer within ${timeoutMs} ms` }), timeoutMs)));
    const probe = (async (): Promise<Readiness> => {
      try {
        await this.sql.begin(async (tx) => {
          await tx.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
          await tx`SELECT version FROM scimd_schema FOR UPDATE`;
        });
        const [{ bytes }] = await this.sql`SELECT pg_database_size(current_database())::float8 AS bytes`;
        this.databaseBytes = bytes;
        return { ok: true };
      } catch (e) {
        return { ok: false, reason: `the database does not answer: ${reasonOf(e)}` };
      }
    })();
    try {
      return await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the writes in flight, then closes the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    await this.sql.close();
  }
}
