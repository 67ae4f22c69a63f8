/**
 * The PostgreSQL store (Bun.SQL): the class open.ts constructs for a `postgres://` URL. It puts
 * together, over one connection pool (database.ts: migrations under an advisory lock, one transaction
 * per write), the resources (resources.ts), group membership as its own table (membership.ts), the
 * activity log written in each change's transaction (activity.ts) and the API tokens (tokens.ts).
 * Several scimd processes may serve one database: uniqueness is the unique indexes', and each write
 * locks the row it changes.
 */
import type { ActivityEntry, ActivityQuery } from "../../scim/activity";
import type { ResourceKind } from "../../scim/schema";
import type {
  CommitBatch,
  CreateInput,
  DeleteOptions,
  GroupRef,
  Member,
  Readiness,
  RotatedToken,
  RotateOptions,
  ScanPage,
  SearchPage,
  SearchQuery,
  Store,
  StoredResource,
  StoreStats,
  TokenOptions,
  TokenRecord,
  TokenRefusalDetail,
  UpdateInput,
  ActivityCopy,
  RowCounts,
  TokenCopy,
} from "../store";
import { PostgresActivity } from "./activity";
import { PostgresDatabase, unavailable, type PostgresStoreOptions } from "./database";
import { PostgresMembership } from "./membership";
import { PostgresResources } from "./resources";
import { PostgresTokens } from "./tokens";

export type { PostgresStoreOptions };

/** Reads (and the token writes outside a transaction): a lost connection is a 503, as writes' are. */
const fail = (e: unknown): never => {
  throw unavailable(e);
};

export class PostgresStore implements Store {
  private readonly resources: PostgresResources;
  private readonly membership = new PostgresMembership();
  private readonly tokens: PostgresTokens;
  private readonly activity: PostgresActivity;

  private constructor(
    private readonly database: PostgresDatabase,
    opts: PostgresStoreOptions,
  ) {
    this.activity = new PostgresActivity(database, opts.activityLog ?? true);
    this.resources = new PostgresResources(database, this.membership, this.activity, opts.queryTimeoutMs ?? 5000);
    this.tokens = new PostgresTokens(database);
  }

  /**
   * Connects to the database `url` names, checks it is scimd's (or empty) and migrates it. `shown` is
   * the URL as errors may name it (no password). Throws StoreOpenError.
   */
  static async open(url: string, shown: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    return new PostgresStore(await PostgresDatabase.open(url, shown, opts), opts);
  }

  get(kind: ResourceKind, id: string): Promise<StoredResource | undefined> {
    return this.resources.get(kind, id).catch(fail);
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
    return this.resources.search(kind, query).catch(fail);
  }

  scan(kind: ResourceKind, after: string | undefined, limit: number): Promise<ScanPage> {
    return this.resources.scan(kind, after, limit).catch(fail);
  }

  memberPage(groupId: string, cursor: string | undefined, limit: number): Promise<{ members: Member[]; next?: string }> {
    return this.membership.page(this.database.sql, groupId, cursor, limit).catch(fail);
  }

  memberCount(groupId: string, atMost: number): Promise<number> {
    return this.membership.count(this.database.sql, groupId, atMost).catch(fail);
  }

  groupsOf(memberId: string): Promise<GroupRef[]> {
    return this.membership.groupsOf(this.database.sql, memberId).catch(fail);
  }

  createToken(name: string, hash: string, opts?: TokenOptions): Promise<TokenRecord> {
    return this.tokens.createToken(name, hash, opts);
  }

  rotateToken(name: string, hash: string, graceMs: number, opts?: RotateOptions): Promise<RotatedToken | undefined> {
    return this.tokens.rotateToken(name, hash, graceMs, opts);
  }

  findToken(hash: string): Promise<TokenRecord | undefined> {
    return this.tokens.findToken(hash).catch(fail);
  }

  refusal(hash: string): Promise<TokenRefusalDetail> {
    return this.tokens.refusal(hash).catch(fail);
  }

  listTokens(): Promise<TokenRecord[]> {
    return this.tokens.listTokens().catch(fail);
  }

  revokeToken(idOrName: string): Promise<number> {
    return this.tokens.revokeToken(idOrName).catch(fail);
  }

  tokenCount(): Promise<number> {
    return this.tokens.tokenCount().catch(fail);
  }

  listActivity(q: ActivityQuery): Promise<ActivityEntry[]> {
    return this.activity.list(q).catch(fail);
  }

  pruneActivity(olderThan: string, limit: number): Promise<number> {
    return this.activity.prune(olderThan, limit);
  }

  async rowCounts(): Promise<RowCounts> {
    const [row] = await this.database.sql
      .unsafe(
        "SELECT (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM groups)::int AS groups, (SELECT count(*) FROM group_members)::int AS memberships, (SELECT count(*) FROM tokens)::int AS tokens, (SELECT count(*) FROM activity)::int AS activity",
      )
      .catch(fail);
    return { users: row.users, groups: row.groups, memberships: row.memberships, tokens: row.tokens, activity: row.activity };
  }

  createCopies(kind: ResourceKind, inputs: readonly CreateInput[]): Promise<void> {
    return this.resources.createCopies(kind, inputs);
  }

  insertMemberCopies(groupId: string, memberIds: string[]): Promise<void> {
    return this.resources.insertMemberCopies(groupId, memberIds);
  }

  tokenCopies(): Promise<TokenCopy[]> {
    return this.tokens.copies().catch(fail);
  }

  insertTokenCopies(tokens: readonly TokenCopy[]): Promise<void> {
    return this.tokens.insertCopies(tokens);
  }

  activityCopies(after: number, limit: number): Promise<ActivityCopy[]> {
    return this.activity.copies(after, limit).catch(fail);
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

  onCommit(observer: (batch: CommitBatch) => void): () => void {
    return this.database.onCommit(observer);
  }

  /** Waits for the writes in flight, then closes the pool. */
  close(): Promise<void> {
    return this.database.close();
  }
}
