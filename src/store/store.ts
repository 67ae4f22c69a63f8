/**
 * The storage contract. Every store (SQLite now, PostgreSQL through Bun.SQL later) implements it and
 * passes the same contract suite (test/store/contract.ts). Verbs are SCIM-neutral; the store applies
 * SCIM's resolved filters but never decides what SCIM means.
 */
import type { ActivityEntry, ActivityQuery } from "../scim/activity";
import { ScimError, tooMany } from "../scim/errors";
import type { ResolvedFilter, Target } from "../scim/filter";
import type { MemberChange } from "../scim/patch";
import type { Resource } from "../scim/resource";
import type { ResourceKind } from "../scim/schema";

/** Raised when the database cannot be opened as a scimd store (not one, or from a newer scimd). Nothing was changed. */
export class StoreOpenError extends Error {}

/** Raised when asked not to create one and there is no database at the location given. */
export class StoreMissingError extends StoreOpenError {
  constructor(readonly location: string) {
    super(`there is no scimd database at ${location}`);
  }
}

export interface StoredResource {
  id: string;
  /** The canonical resource: attributes and extension objects, without id, meta, groups or members. */
  data: Resource;
  version: number;
  created: string;
  lastModified: string;
  /** For Users read by get, search and update: the groups the User is a direct member of. */
  groups?: GroupRef[];
  /**
   * When read from storage: `data` as the stored JSON text (canonical key order, see
   * finalizeResource), so a response can embed it without parsing and re-serialising it.
   */
  readonly json?: string;
}

export interface SearchQuery {
  filter?: ResolvedFilter;
  sortBy?: Target;
  descending?: boolean;
  /** 0-based offset. */
  offset: number;
  /** 0 returns only the total. */
  limit: number;
  /** The request's signal: when it aborts (the client went away), a search still running stops. */
  signal?: AbortSignal;
}

export interface SearchPage {
  total: number;
  resources: StoredResource[];
}

export interface Member {
  value: string;
  type: ResourceKind;
  display?: string;
}

export interface GroupRef {
  value: string;
  display?: string;
}

/**
 * Who made a write: recorded with it in the activity log, in the same transaction. A write without
 * an origin is recorded too, with via "unknown" (every SCIM operation passes one).
 */
export interface WriteOrigin {
  via: "scim" | "import";
  /** The request's id (X-Request-Id as sent, or the one scimd gave it). */
  requestId?: string;
  /** The name of the API token the request authenticated with. */
  token?: string;
}

export interface CreateInput {
  id: string;
  data: Resource;
  /** Group members (ids of existing Users or Groups). */
  members?: string[];
  origin?: WriteOrigin;
  /**
   * The resource's timestamps when it is not new here (an import from an export keeps them, so that
   * what an IdP or an auditor saw stays true); by default both are the time of the write. ISO 8601
   * UTC as `new Date().toISOString()` writes it, so that stored times compare as text.
   */
  meta?: {
    created: string;
    lastModified: string;
    /** The version to start at (a migration keeps it, so that ETags stay valid); default 1. */
    version?: number;
  };
}

/** A page of ResourceStore.scan: resources in creation order; `next` is absent on the last page. */
export interface ScanPage {
  resources: StoredResource[];
  next?: string;
}

export interface UpdateInput {
  data: Resource;
  /** When given, the write happens only if the stored version is still this one (else 412). */
  expectedVersion?: number;
  /** Replace the membership with exactly these ids (PUT of a Group with `members`). */
  members?: string[];
  /** Ordered membership changes from PATCH. */
  memberChanges?: MemberChange[];
  /**
   * Checked inside the write, against the resource as it is at that moment (a User with its groups):
   * throws (e.g. 412) to refuse the write. For If-Match / If-None-Match.
   */
  precondition?: (current: StoredResource) => void;
  origin?: WriteOrigin;
  /** The SCIM operation the update is, as the activity log names it (default "replace"). */
  op?: "replace" | "patch";
  /**
   * The data the caller read at `expectedVersion`, unchanged: when that is still the stored version,
   * the activity log's diff starts from it instead of parsing the stored text again.
   */
  before?: Resource;
}

export interface DeleteOptions {
  expectedVersion?: number;
  precondition?: (current: StoredResource) => void;
  origin?: WriteOrigin;
}

/** What a token may do: "write" (an IdP: reads and writes) or "read" (GET and .search only). */
export type TokenScope = "read" | "write";
export const TOKEN_SCOPES: readonly TokenScope[] = ["read", "write"];

/**
 * The lifetime a rotation keeps: from the secret's creation to the end of its lifetime, to the
 * second. The end was computed from the command's clock a moment before the store stamped
 * `created`, so the raw difference is a few milliseconds short of the 30d asked for; lifetimes are
 * chosen in whole seconds (--expires-in 30m, 90d), so the second is exact.
 */
/** Thrown by a search whose request's signal aborted: the client is gone, no one reads the answer. */
export class SearchCancelled extends ScimError {
  constructor() {
    super(503, "the search was cancelled: the client closed the request");
  }
}

export function queryTooExpensive(timeoutMs: number): ScimError {
  return tooMany(
    `the filter is too expensive: it has to be evaluated on every resource, and it did not finish within the query timeout (${timeoutMs / 1000} s, --query-timeout). ` +
      "Narrow it with a term that an index answers, combined with 'and': userName, externalId or id with 'eq', or an email value with emails[value eq \"…\"]; fewer 'co' and 'or' terms also help",
  );
}

/**
 * Whether a search is an indexed lookup that needs no deadline: one `eq` on an attribute both engines
 * index (userName, externalId, id; a Group's displayName). An IdP's lookups are these.
 */
export function isIndexedLookup(kind: ResourceKind, query: SearchQuery): boolean {
  const f = query.filter;
  if (!f || query.sortBy || f.kind !== "compare" || f.op !== "eq" || f.target.extension || f.target.sub || f.target.element) return false;
  const name = f.target.attr.name;
  return name === "id" || name === "externalId" || (kind === "User" ? name === "userName" : name === "displayName");
}

export function keptLifetimeMs(created: string, expiresAt: string): number {
  return Math.max(0, Math.round((Date.parse(expiresAt) - Date.parse(created)) / 1000) * 1000);
}

/**
 * One secret of an API token. A token is a name (unique among tokens not revoked) with one current
 * secret (no `rotated`) and, after a rotation, the secrets it replaced, each accepted until `expires`.
 * A revoked secret is kept, never accepted again, for `tokens list --all` and the refusal's reason.
 */
export interface TokenRecord {
  id: string;
  name: string;
  created: string;
  lastUsed: string | null;
  /** What the token may do; every secret of a name has the same scope (rotation keeps it). */
  scope: TokenScope;
  /**
   * When this secret stops being accepted, whatever ends it first: the lifetime chosen when it was
   * made (`expiresAt`), the grace period after a rotation replaced it, or its revocation; null while
   * nothing ends it.
   */
  expires: string | null;
  /** The end of the lifetime chosen with --expires-in (null: no expiry); a rotation does not change it. */
  expiresAt: string | null;
  /** When a rotation replaced this secret by a new one; absent for the name's current secret. */
  rotated?: string;
  /** When this secret was revoked; absent while it is not (so on every record findToken returns). */
  revoked?: string;
}

/** How a new token or a rotated secret is made: its scope (default write) and the end of its lifetime (default none). */
export interface TokenOptions {
  scope?: TokenScope;
  /** ISO 8601 UTC time; absent or undefined: the secret does not expire. */
  expiresAt?: string;
}

/** What rotateToken gives the new secret: the scope is always the token's; the lifetime may be set, dropped (null) or kept (absent). */
export interface RotateOptions {
  /** A new end of lifetime (ISO), null for none; absent: as long a lifetime as the replaced secret had (none if it had none). */
  expiresAt?: string | null;
}

/** createToken with a name a token not revoked already has (rotate it, or revoke it first). */
export class TokenNameTaken extends Error {
  constructor(readonly tokenName: string) {
    super(`a token named '${tokenName}' already exists`);
  }
}

export interface RotatedToken {
  /** The new current secret of the name. */
  token: TokenRecord;
  /** The name's older secrets that are still accepted, each until its `expires`. */
  retiring: TokenRecord[];
}

/** Users, Groups and group membership: what the SCIM operations read and write. */
export interface ResourceStore {
  get(kind: ResourceKind, id: string): Promise<StoredResource | undefined>;
  /** Throws 409 uniqueness when userName (Users) or displayName (Groups) is taken. */
  create(kind: ResourceKind, input: CreateInput): Promise<StoredResource>;
  /** Throws 404 when absent, 412 when `expectedVersion` is stale, 409 on a uniqueness clash. */
  update(kind: ResourceKind, id: string, input: UpdateInput): Promise<StoredResource>;
  /** Throws 404 when absent, 412 when `expectedVersion` is stale. Also removes the resource from every group. */
  delete(kind: ResourceKind, id: string, opts?: DeleteOptions): Promise<void>;
  search(kind: ResourceKind, query: SearchQuery): Promise<SearchPage>;
  /**
   * Every resource of a type in creation order, one page of at most `limit` after the opaque cursor
   * `after` a previous page returned as `next` (undefined: from the first). Keyset paging, so reading
   * any number of resources holds one page at a time and costs the same per page wherever it is; a
   * resource created while scanning is seen if it comes after the cursor. Users come with their groups.
   */
  scan(kind: ResourceKind, after: string | undefined, limit: number): Promise<ScanPage>;
  /**
   * One page of a group's direct members (Users, then Groups, each in creation order), after the opaque `cursor` a previous page returned (keyset paging, so
   * reading a large group never holds it all at once). `next` is absent on the last page.
   */
  memberPage(groupId: string, cursor: string | undefined, limit: number): Promise<{ members: Member[]; next?: string }>;
  /**
   * How many direct members a group has, counting no further than `atMost` (≥ 0): the answer is
   * min(members, atMost), so asking about a group of 100,000 members costs `atMost` steps, not 100,000.
   * 0 for an unknown group.
   */
  memberCount(groupId: string, atMost: number): Promise<number>;
  /** The groups a User or Group is a direct member of. */
  groupsOf(memberId: string): Promise<GroupRef[]>;
}

export type TokenRefusal = "revoked" | "expired" | "no such token";

/** Why a secret is refused, with when for an expired one (the 401 says it) and whether its lifetime or a rotation ended it. */
export type TokenRefusalDetail =
  | { reason: "revoked" | "no such token" }
  | { reason: "expired"; at: string; by: "lifetime" | "rotation" };

/** API tokens: what authentication and the token commands need. */
export interface TokenStore {
  /**
   * A new token; throws TokenNameTaken when a secret not revoked (current, rotated or expired) has
   * this name. A name whose secrets are all revoked is free: the revoked ones stay listed beside it.
   */
  createToken(name: string, hash: string, opts?: TokenOptions): Promise<TokenRecord>;
  /**
   * Gives `name` a new current secret; every older secret of the name is accepted for at most
   * `graceMs` more (0: refused from now on), and never past its own lifetime. The new secret has the
   * token's scope and the lifetime `opts` says. Undefined when no secret of this name is unrevoked
   * (none ever had it, or the token was revoked: a revoked token is not brought back).
   */
  rotateToken(name: string, hash: string, graceMs: number, opts?: RotateOptions): Promise<RotatedToken | undefined>;
  /** The accepted (not expired, not revoked) secret with this hash, and records its use (at most once a minute). */
  findToken(hash: string): Promise<TokenRecord | undefined>;
  /**
   * Why a secret that findToken did not accept is refused, for the log and the 401: "revoked" for a
   * revoked secret (current or rotated-out when revoked), "expired" (with when, and by what) for a
   * secret past its lifetime or a rotated-out one past its grace period, else "no such token" (never
   * created, or revoked before revocations were kept).
   */
  refusal(hash: string): Promise<TokenRefusalDetail>;
  /** Every secret, expired and revoked ones included, oldest first. */
  listTokens(): Promise<TokenRecord[]>;
  /**
   * Revokes the secret with id `idOrName`, or every secret of the token named `idOrName` (its
   * rotated-out ones too); the rows are kept with the time. Returns how many were revoked now (0 when
   * none matches, or every match was revoked already).
   */
  revokeToken(idOrName: string): Promise<number>;
  /** How many secrets are accepted now (neither expired nor revoked). */
  tokenCount(): Promise<number>;
}

/** Whether the database answers: a read, and its write lock taken and released in time; else why not. */
export type Readiness = { ok: true } | { ok: false; reason: string };

/** What a store says about itself for metrics; cheap to ask (nothing is counted per call). */
export interface StoreStats {
  /**
   * Users, Groups and group memberships (direct member entries): counted once when the store opened,
   * then kept current by each write this store commits (not another process's writes).
   */
  users: number;
  groups: number;
  memberships: number;
  /** Bytes of the database on disk (the main file for SQLite). */
  databaseBytes: number;
  /** Bytes of the write-ahead log (SQLite's -wal file; 0 when there is none). */
  walBytes: number;
}

/** One committed transaction of writes (a group commit): how many writes it held, and how long its COMMIT took. */
export interface CommitBatch {
  /** The writes in the transaction, those refused inside it (409, 412, 400) included. */
  writes: number;
  /** Seconds the COMMIT took: where the transaction is made durable (SQLite's fsync of the WAL). */
  commitSeconds: number;
}

/** What is wrong with a database's files on disk (see StoreProbes.fileProblem). */
export interface FileProblem {
  /** The log's event for it: "database file deleted", "database file replaced", "database file unwritable", "database WAL file deleted", … */
  event: string;
  /** Deleted or replaced: the open files are no longer the ones the path names, so only a restart mends it. */
  gone: boolean;
  /** What happened and what the operator does, for /readyz, the log and a refused write's 503. */
  reason: string;
}

/** Health and statistics of an opened database, for /readyz and /metrics. */
export interface StoreProbes {
  /**
   * Where opening made a new, empty database (a file engine: its absolute path), for serve's banner;
   * undefined when an existing one was opened.
   */
  readonly created?: string;
  /**
   * A file engine's files checked now (a stat or two, cheap enough for a timer of seconds): what is
   * wrong with them, or undefined while nothing is. Writes are refused while it says something.
   */
  fileProblem?(): FileProblem | undefined;
  /**
   * Whether the database answers a read and its write lock can be taken (and is released at once)
   * within `timeoutMs`. Waiting for the lock never blocks the event loop for the whole timeout.
   */
  ready(timeoutMs: number): Promise<Readiness>;
  stats(): StoreStats;
  /** Calls `observer` after each committed transaction of writes; returns the function that stops it. */
  onCommit(observer: (batch: CommitBatch) => void): () => void;
}

/**
 * The activity log: one entry per committed change of a resource, written by the store inside the
 * change's own write (so there is never one without the other), unless the store was opened with the
 * log off. Reading it never reads the resources.
 */
export interface ActivityStore {
  /** Entries matching `q`, newest first, at most `q.limit`. */
  listActivity(q: ActivityQuery): Promise<ActivityEntry[]>;
  /**
   * Deletes at most `limit` of the oldest entries made before `olderThan` (ISO time), in one short
   * write queued with the others; returns how many it deleted (fewer than `limit`: none are left).
   */
  pruneActivity(olderThan: string, limit: number): Promise<number>;
}

/** A token secret as `scimd migrate` copies it: the record and the hash it is looked up by (never the secret). */
export interface TokenCopy extends TokenRecord {
  /** The hash findToken takes (a store's own spelling of it, such as SQLite's `read:` prefix, removed). */
  hash: string;
}

/** An activity entry as `scimd migrate` copies it: the entry, and the name key a rename or delete is indexed by. */
export interface ActivityCopy {
  /** The entry; its `seq` orders the copies read, and is not kept by a write (the target numbers them, in the same order). */
  entry: ActivityEntry;
  /** The folded name the entry's resource gave up (see listActivity's --user / --group by an old name); absent for most entries. */
  nameKey?: string;
}

/** How many rows of each kind a database holds: every token secret (revoked ones too) and every activity entry. */
export interface RowCounts {
  users: number;
  groups: number;
  memberships: number;
  tokens: number;
  activity: number;
}

/**
 * What `scimd migrate` needs besides the other interfaces: token rows with their hashes and the
 * activity log's raw entries, read and written as they are (ids, times and state kept), and exact
 * counts. The writes are for an empty store only: they check no names and record no activity.
 */
export interface CopyStore {
  /** Counted now, in the database (not the tallies of stats()). */
  rowCounts(): Promise<RowCounts>;
  /**
   * Creates these resources (as create does, each with its meta kept) one after another in one
   * transaction, all or none: their creation order, which lists and scans follow and by which a
   * Group's members and a User's groups are ordered, is the order given.
   */
  createCopies(kind: ResourceKind, inputs: readonly CreateInput[]): Promise<void>;
  /** Adds these Users or Groups to an existing Group as members without changing its version, meta.lastModified or the log (404 for an unknown group, 400 for an unknown member). */
  insertMemberCopies(groupId: string, memberIds: string[]): Promise<void>;
  /** Every token secret with its hash, oldest first (a store holds few: they are made by hand). */
  tokenCopies(): Promise<TokenCopy[]>;
  /** Writes these secrets as they are, in one transaction; throws on a clash of id or hash. */
  insertTokenCopies(tokens: readonly TokenCopy[]): Promise<void>;
  /** At most `limit` (≥ 1) entries with a seq above `after` (0: from the first), oldest first. */
  activityCopies(after: number, limit: number): Promise<ActivityCopy[]>;
  /** Appends these entries in this order, in one transaction (they get this store's next seqs). */
  insertActivityCopies(entries: readonly ActivityCopy[]): Promise<void>;
}

/** One opened database: the stores over it. `close` finishes queued writes, then releases it. */
export interface Store extends ResourceStore, TokenStore, StoreProbes, ActivityStore, CopyStore {
  close(): Promise<void>;
}
