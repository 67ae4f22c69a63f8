/**
 * The SQLite store (bun:sqlite): the one class open.ts constructs for a file path or a `sqlite:` URL.
 * It puts together, over one database file (database.ts: WAL mode, busy timeout, migrations by
 * `PRAGMA user_version`, prepared statements reused, every write of a request in one group commit):
 * the resources (resources.ts), group membership as its own table (membership.ts), so member changes
 * touch only the rows they name, the activity log written inside each change's write (activity.ts),
 * and the API tokens (tokens.ts).
 */
import type { Database } from "bun:sqlite";
import type { ActivityEntry, ActivityQuery } from "../../scim/activity";
import type { ResourceKind } from "../../scim/schema";
import type {
  CommitBatch,
  CreateInput,
  DeleteOptions,
  GroupRef,
  Member,
  Readiness,
  ScanPage,
  RotatedToken,
  SearchPage,
  SearchQuery,
  Store,
  StoredResource,
  StoreStats,
  FileProblem,
  TokenRecord,
  TokenRefusalDetail,
  TokenOptions,
  RotateOptions,
  UpdateInput,
  ActivityCopy,
  RowCounts,
  TokenCopy,
} from "../store";
import { SqliteActivity } from "./activity";
import { SqliteDatabase, type SqliteStoreOptions } from "./database";
import { SqliteMembership } from "./membership";
import { DEFAULT_QUERY_TIMEOUT_MS, SqliteReaders } from "./readers";
import { SqliteResources } from "./resources";
import { SqliteTokens } from "./tokens";

export class SqliteStore implements Store {
  /** The connection, for the SQLite-only checks of tests and tools (pragmas, tables). */
  readonly db: Database;
  private readonly database: SqliteDatabase;
  private readonly resources: SqliteResources;
  private readonly membership: SqliteMembership;
  private readonly tokens: SqliteTokens;
  private readonly activity: SqliteActivity;
  private readonly readers: SqliteReaders | undefined;

  /** Opens (and, unless `create` is false, creates) the database at `path`. Throws StoreOpenError or StoreMissingError. */
  constructor(
    readonly path: string,
    opts: SqliteStoreOptions = {},
  ) {
    this.database = new SqliteDatabase(path, opts);
    this.db = this.database.db;
    this.membership = new SqliteMembership(this.database);
    this.activity = new SqliteActivity(this.database, opts.activityLog ?? true);
    this.readers =
      opts.readers === false || path === ":memory:" ? undefined : new SqliteReaders(path, { timeoutMs: DEFAULT_QUERY_TIMEOUT_MS, ...opts.readers });
    this.resources = new SqliteResources(this.database, this.membership, this.activity, this.readers);
    this.tokens = new SqliteTokens(this.database);
  }

  // Each method hands the call on as it is (no wrapper promise): the parts are where the work is.

  get(kind: ResourceKind, id: string): Promise<StoredResource | undefined> {
    return this.resources.get(kind, id);
  }

  create(kind: ResourceKind, input: CreateInput): Promise<StoredResource> {
    return this.resources.create(kind, input);
  }

  update(kind: ResourceKind, id: string, input: UpdateInput): Promise<StoredResource> {
    return this.resources.update(kind, id, input);
  }

  delete(kind: ResourceKind, id: string, opts?: DeleteOptions): Promise<void> {
    return this.resources.delete(kind, id, opts);
  }

  search(kind: ResourceKind, query: SearchQuery): Promise<SearchPage> {
    return this.resources.search(kind, query);
  }

  scan(kind: ResourceKind, after: string | undefined, limit: number): Promise<ScanPage> {
    return this.resources.scan(kind, after, limit);
  }

  async memberPage(groupId: string, cursor: string | undefined, limit: number): Promise<{ members: Member[]; next?: string }> {
    return this.membership.page(groupId, cursor, limit);
  }

  async memberCount(groupId: string, atMost: number): Promise<number> {
    return this.membership.count(groupId, atMost);
  }

  async groupsOf(memberId: string): Promise<GroupRef[]> {
    return this.membership.groupsOf(memberId);
  }

  createToken(name: string, hash: string, opts?: TokenOptions): Promise<TokenRecord> {
    return this.tokens.createToken(name, hash, opts);
  }

  rotateToken(name: string, hash: string, graceMs: number, opts?: RotateOptions): Promise<RotatedToken | undefined> {
    return this.tokens.rotateToken(name, hash, graceMs, opts);
  }

  findToken(hash: string): Promise<TokenRecord | undefined> {
    return this.tokens.findToken(hash);
  }

  refusal(hash: string): Promise<TokenRefusalDetail> {
    return this.tokens.refusal(hash);
  }

  listTokens(): Promise<TokenRecord[]> {
    return this.tokens.listTokens();
  }

  revokeToken(idOrName: string): Promise<number> {
    return this.tokens.revokeToken(idOrName);
  }

  tokenCount(): Promise<number> {
    return this.tokens.tokenCount();
  }

  async listActivity(q: ActivityQuery): Promise<ActivityEntry[]> {
    return this.activity.list(q);
  }

  pruneActivity(olderThan: string, limit: number): Promise<number> {
    return this.activity.prune(olderThan, limit);
  }

  async rowCounts(): Promise<RowCounts> {
    return this.database
      .q(
        "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM groups) AS groups, (SELECT count(*) FROM group_members) AS memberships, (SELECT count(*) FROM tokens) AS tokens, (SELECT count(*) FROM activity) AS activity",
      )
      .get() as RowCounts;
  }

  createCopies(kind: ResourceKind, inputs: readonly CreateInput[]): Promise<void> {
    return this.resources.createCopies(kind, inputs);
  }

  insertMemberCopies(groupId: string, memberIds: string[]): Promise<void> {
    return this.resources.insertMemberCopies(groupId, memberIds);
  }

  tokenCopies(): Promise<TokenCopy[]> {
    return this.tokens.copies();
  }

  insertTokenCopies(tokens: readonly TokenCopy[]): Promise<void> {
    return this.tokens.insertCopies(tokens);
  }

  async activityCopies(after: number, limit: number): Promise<ActivityCopy[]> {
    return this.activity.copies(after, limit);
  }

  insertActivityCopies(entries: readonly ActivityCopy[]): Promise<void> {
    return this.activity.insertCopies(entries);
  }

  ready(timeoutMs: number): Promise<Readiness> {
    return this.database.ready(timeoutMs);
  }

  stats(): StoreStats {
    return this.database.stats();
  }

  /** The absolute path of the database file when this open created it (it did not exist, or was empty). */
  get created(): string | undefined {
    return this.database.created;
  }

  fileProblem(): FileProblem | undefined {
    return this.database.fileProblem();
  }

  onCommit(observer: (batch: CommitBatch) => void): () => void {
    return this.database.onCommit(observer);
  }

  /** Commits (or refuses) the writes still queued, then releases the connection. */
  async close(): Promise<void> {
    this.readers?.close();
    this.database.close();
  }
}
