/**
 * Users and Groups in the PostgreSQL store: one table each, a row holding the canonical JSON text
 * (`data`), the search document as jsonb (`search`), and the keys compared in JS (src/scim/compare-keys.ts)
 * under unique indexes, so two replicas creating one userName at once get one 201 and one 409.
 * Each write is one transaction; the row it changes is locked first (`FOR UPDATE`), so version checks,
 * preconditions and member changes of concurrent writers are applied one after the other.
 */
import type { SQL } from "bun";
import { diffResources } from "../../scim/activity";
import { fold, toSearchDoc, userNameKey } from "../../scim/compare-keys";
import { notFound, preconditionFailed, uniqueness, type ScimError } from "../../scim/errors";
import type { Resource } from "../../scim/resource";
import { rtOf, type ResourceKind, type ResourceTypeDef } from "../../scim/schema";
import { isIndexedLookup, queryTooExpensive, SearchCancelled, type CreateInput, type DeleteOptions, type GroupRef, type ResourceStore, type ScanPage, type SearchPage, type SearchQuery, type StoredResource, type UpdateInput } from "../store";
import type { PostgresActivity } from "./activity";
import { isUniqueViolation, nowIso, sqlState, type PostgresDatabase, type Runner, type Tally, type Tx } from "./database";
import { GROUPS_COLUMN, type MemberLog, type PostgresMembership } from "./membership";
import { compileFilter, compileOrder } from "./sql-filter";

type Row = { seq: number; id: string; created: string; last_modified: string; version: number; data: string; groups?: string };
type CurrentRow = { seq: number; version: number; created: string; last_modified: string; data: string };
type Conditions = Pick<UpdateInput, "expectedVersion" | "precondition">;

const COLUMNS = "r.seq::float8 AS seq, r.id, r.created, r.last_modified, r.version, r.data";

interface Table {
  kind: ResourceKind;
  name: "users" | "groups";
  rt: ResourceTypeDef;
  nameAttr: "userName" | "displayName";
  keyColumn: string;
  key: (data: Resource) => string;
  /** What get, search and scan read. */
  columns: string;
}

const TABLES: Record<ResourceKind, Table> = {
  User: { kind: "User", name: "users", rt: rtOf("User"), nameAttr: "userName", keyColumn: "user_name_key", key: (d) => userNameKey(String(d.userName)), columns: `${COLUMNS}, ${GROUPS_COLUMN}` },
  Group: { kind: "Group", name: "groups", rt: rtOf("Group"), nameAttr: "displayName", keyColumn: "display_name_key", key: (d) => fold(String(d.displayName)), columns: COLUMNS },
};

const nameOf = (t: Table, data: Resource): string | undefined => (typeof data[t.nameAttr] === "string" ? (data[t.nameAttr] as string) : undefined);

/** What a Group shows for a member (displayName, else name.formatted), or a Group's own displayName. */
function displayOf(kind: ResourceKind, data: Resource): string | null {
  if (typeof data.displayName === "string") return data.displayName;
  if (kind === "User") {
    const f = (data.name as Resource | undefined)?.formatted;
    if (typeof f === "string") return f;
  }
  return null;
}

const uniquenessOf = (t: Table, data: Resource): ScimError =>
  uniqueness(`a ${t.kind} with ${t.nameAttr} "${String(data[t.nameAttr])}" already exists (${t.nameAttr} is compared case-insensitively)`);

const externalIdKey = (data: Resource) => (typeof data.externalId === "string" ? data.externalId.normalize("NFC") : null);

const memberLog = (): MemberLog => ({ added: [], removed: [] });

function toStored(row: Row): StoredResource {
  const text = row.data;
  let parsed: Resource | undefined;
  const s = { id: row.id, version: row.version, created: row.created, lastModified: row.last_modified } as StoredResource;
  Object.defineProperty(s, "data", {
    enumerable: true,
    configurable: true,
    get: () => (parsed ??= JSON.parse(text) as Resource),
    set: (v: Resource) => (parsed = v),
  });
  Object.defineProperty(s, "json", { value: text, enumerable: false });
  if (row.groups !== undefined && row.groups !== null) s.groups = (JSON.parse(row.groups) as [string, string | null][]).map(([value, display]) => (display === null ? { value } : { value, display }));
  return s;
}

export class PostgresResources implements Omit<ResourceStore, "memberPage" | "memberCount" | "groupsOf"> {
  constructor(
    private readonly d: PostgresDatabase,
    private readonly members: PostgresMembership,
    private readonly activity: PostgresActivity,
    /** The deadline of a search that is not an indexed lookup (statement_timeout); 0: none. */
    private readonly queryTimeoutMs = 0,
  ) {}

  async get(kind: ResourceKind, id: string): Promise<StoredResource | undefined> {
    const t = TABLES[kind];
    const [row] = (await this.d.sql.unsafe(`SELECT ${t.columns} FROM ${t.name} r WHERE r.id = $1`, [id])) as Row[];
    return row ? toStored(row) : undefined;
  }

  /** One create inside a write: the row, its members, its activity entry. */
  private async insert(tx: Tx, delta: Tally, kind: ResourceKind, input: CreateInput, now: string): Promise<StoredResource> {
    const t = TABLES[kind];
    const { created, lastModified } = input.meta ?? { created: now, lastModified: now };
    const version = input.meta?.version ?? 1;
    let seq: number;
    try {
      const [row] = await tx.unsafe(
        `INSERT INTO ${t.name} (id, ${t.keyColumn}, external_id, display, created, last_modified, version, data, search)
         VALUES ($1, $2, $3, $4, $5, $6, $9::int, $7, $8::text::jsonb) RETURNING seq::float8 AS seq`,
        [input.id, t.key(input.data), externalIdKey(input.data), displayOf(kind, input.data), created, lastModified, JSON.stringify(input.data), JSON.stringify(toSearchDoc(t.rt, input.data)), version],
      );
      seq = row.seq;
    } catch (e) {
      // The unique index on the name key (or on the id the caller chose) refused it: 409, never the server's text.
      throw isUniqueViolation(e) ? uniquenessOf(t, input.data) : e;
    }
    delta[t.name] += 1;
    const log = this.activity.enabled ? memberLog() : undefined;
    if (kind === "Group" && input.members?.length) await this.members.addTo(tx, delta, seq, input.members, log);
    await this.activity.record(tx, {
      at: now,
      origin: input.origin,
      op: "create",
      kind,
      id: input.id,
      name: nameOf(t, input.data),
      changes: diffResources(t.rt, undefined, input.data),
      membersAdded: log?.added,
    });
    const stored: StoredResource = { id: input.id, data: input.data, version, created, lastModified };
    if (kind === "User") stored.groups = [];
    return stored;
  }

  async create(kind: ResourceKind, input: CreateInput): Promise<StoredResource> {
    const now = nowIso();
    try {
      return await this.d.write((tx, delta) => this.insert(tx, delta, kind, input, now));
    } catch (e) {
      throw isUniqueViolation(e) ? uniquenessOf(TABLES[kind], input.data) : e;
    }
  }

  /** CopyStore.createCopies: the creates in one transaction, one after another, so their creation order (seq) is the order given. */
  async createCopies(kind: ResourceKind, inputs: readonly CreateInput[]): Promise<void> {
    if (!inputs.length) return;
    const now = nowIso();
    await this.d.write(async (tx, delta) => {
      for (const input of inputs) await this.insert(tx, delta, kind, input, now);
    });
  }

  /** CopyStore.insertMemberCopies: member rows added to a Group as they are (its version, lastModified and the log untouched). */
  async insertMemberCopies(groupId: string, memberIds: string[]): Promise<void> {
    if (!memberIds.length) return;
    await this.d.write(async (tx, delta) => {
      const [g] = (await tx.unsafe("SELECT seq::float8 AS seq FROM groups WHERE id = $1", [groupId])) as { seq: number }[];
      if (!g) throw notFound(`Group ${groupId} not found`);
      await this.members.addTo(tx, delta, g.seq, memberIds);
    });
  }

  async update(kind: ResourceKind, id: string, input: UpdateInput): Promise<StoredResource> {
    const t = TABLES[kind];
    const now = nowIso();
    const data = JSON.stringify(input.data);
    try {
      return await this.d.write(async (tx, delta) => {
        const cur = await this.current(tx, t, id, input);
        let memberRows = 0;
        const log = this.activity.enabled && kind === "Group" ? memberLog() : undefined;
        if (kind === "Group") {
          if (input.members) memberRows += await this.members.apply(tx, delta, cur.seq, { kind: "replace", ids: input.members }, log);
          for (const c of input.memberChanges ?? []) memberRows += await this.members.apply(tx, delta, cur.seq, c, log);
        }
        if (data === cur.data && memberRows === 0) {
          // Nothing changed (an IdP re-sending what is stored): the version stays, so If-Match stays valid.
          const same: StoredResource = { id, data: input.data, version: cur.version, created: cur.created, lastModified: cur.last_modified };
          if (kind === "User") same.groups = await this.members.groupsOfRow(tx, "User", cur.seq);
          return same;
        }
        await tx.unsafe(
          `UPDATE ${t.name} SET ${t.keyColumn} = $1, external_id = $2, display = $3, last_modified = $4, version = version + 1, data = $5, search = $6::text::jsonb WHERE seq = $7`,
          [t.key(input.data), externalIdKey(input.data), displayOf(kind, input.data), now, data, JSON.stringify(toSearchDoc(t.rt, input.data)), cur.seq],
        );
        if (this.activity.enabled) {
          const added = new Set(log?.added), removed = new Set(log?.removed);
          for (const m of added) if (removed.has(m)) (added.delete(m), removed.delete(m));
          const before = input.before !== undefined && input.expectedVersion === cur.version ? input.before : (JSON.parse(cur.data) as Resource);
          const name = nameOf(t, input.data), oldName = nameOf(t, before);
          const changes = data === cur.data ? [] : diffResources(t.rt, before, input.data);
          if (changes.length || added.size || removed.size)
            await this.activity.record(tx, {
              at: now,
              origin: input.origin,
              op: input.op ?? "replace",
              kind,
              id,
              name,
              leftName: oldName !== undefined && oldName !== name ? oldName : undefined,
              changes,
              membersAdded: [...added],
              membersRemoved: [...removed],
            });
        }
        const result: StoredResource = { id, data: input.data, version: cur.version + 1, created: cur.created, lastModified: now };
        if (kind === "User") result.groups = await this.members.groupsOfRow(tx, "User", cur.seq);
        return result;
      }, `${kind}:${id}`);
    } catch (e) {
      throw isUniqueViolation(e) ? uniquenessOf(t, input.data) : e;
    }
  }

  async delete(kind: ResourceKind, id: string, opts: DeleteOptions = {}): Promise<void> {
    const t = TABLES[kind];
    const now = nowIso();
    await this.d.write(async (tx, delta) => {
      const cur = await this.current(tx, t, id, opts);
      const log = this.activity.enabled ? memberLog() : undefined;
      const left = log ? await this.members.groupsOfRow(tx, kind, cur.seq) : undefined;
      const name = this.activity.enabled ? nameOf(t, JSON.parse(cur.data) as Resource) : undefined;
      await this.members.forget(tx, delta, kind, cur.seq, now, log);
      await this.activity.record(tx, {
        at: now,
        origin: opts.origin,
        op: "delete",
        kind,
        id,
        name,
        leftName: name,
        changes: [],
        membersRemoved: log?.removed,
        leftGroups: left?.map((g) => (g.display === undefined ? { value: g.value } : { value: g.value, display: g.display })),
      });
      await tx.unsafe(`DELETE FROM ${t.name} WHERE seq = $1`, [cur.seq]);
      delta[t.name] -= 1;
    }, `${kind}:${id}`);
  }

  /** The row a write changes, locked for the transaction: 404 when absent, 412 when stale, or what the precondition throws. */
  private async current(tx: Tx, t: Table, id: string, conditions: Conditions): Promise<CurrentRow> {
    const [cur] = (await tx.unsafe(`SELECT seq::float8 AS seq, version, created, last_modified, data FROM ${t.name} WHERE id = $1 FOR UPDATE`, [id])) as CurrentRow[];
    if (!cur) throw notFound(`${t.kind} ${id} not found`);
    if (conditions.expectedVersion !== undefined && cur.version !== conditions.expectedVersion)
      throw preconditionFailed(`${t.kind} ${id} has changed (version W/"${cur.version}", expected W/"${conditions.expectedVersion}"); read it again and retry`);
    if (conditions.precondition) {
      const s: StoredResource = { id, data: JSON.parse(cur.data), version: cur.version, created: cur.created, lastModified: cur.last_modified };
      if (t.kind === "User") s.groups = await this.members.groupsOfRow(tx, "User", cur.seq);
      conditions.precondition(s);
    }
    return cur;
  }

  async scan(kind: ResourceKind, after: string | undefined, limit: number): Promise<ScanPage> {
    if (after !== undefined && !/^\d{1,16}$/.test(after)) throw new RangeError(`'${after}' is not a cursor that scan returned`);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`scan needs a page size of at least 1, got ${limit}`);
    const t = TABLES[kind];
    const rows = (await this.d.sql.unsafe(`SELECT ${t.columns} FROM ${t.name} r WHERE r.seq > $1::bigint ORDER BY r.seq LIMIT $2::int`, [after === undefined ? 0 : Number(after), limit])) as Row[];
    const last = rows[rows.length - 1];
    const resources = rows.map(toStored);
    return rows.length === limit && last ? { resources, next: String(last.seq) } : { resources };
  }

  /**
   * ResourceStore.search. A search that is not an indexed lookup runs in a transaction of its own with
   * `SET LOCAL statement_timeout` (the query timeout): past it PostgreSQL cancels the statement and
   * the client gets 400 tooMany. A request that aborts (the client went away) cancels the statement
   * running. An indexed lookup (an IdP's `userName eq`) runs as before, without the extra round trips.
   */
  async search(kind: ResourceKind, query: SearchQuery): Promise<SearchPage> {
    if (this.queryTimeoutMs <= 0 || (!query.filter && !query.sortBy) || isIndexedLookup(kind, query)) return this.searchOn(this.d.sql, kind, query);
    const signal = query.signal;
    if (signal?.aborted) throw new SearchCancelled();
    let running: { cancel: () => unknown } | undefined;
    // cancel() returns the query itself, which then rejects ("canceling statement due to user
    // request"): that rejection is the search's own, already handled below; this copy of it must
    // not go unhandled (it ended the process).
    const cancel = (q: { cancel: () => unknown }) => Promise.resolve(q.cancel()).catch(() => {});
    const onAbort = () => {
      if (running) cancel(running);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await this.d.sql.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(this.queryTimeoutMs))}`);
        // An abort that came while no statement of the search was running (connecting, BEGIN, SET,
        // between the page and its count) stops the search before its next statement.
        return this.searchOn(tx, kind, query, (make) => {
          if (signal?.aborted) throw new SearchCancelled();
          return (running = make());
        });
      });
    } catch (e) {
      // Whatever a cancelled statement rejected with, the client is gone: 503, nothing to answer.
      if (signal?.aborted) throw e instanceof SearchCancelled ? e : new SearchCancelled();
      // 57014: query_canceled, by the statement timeout.
      if (sqlState(e) === "57014") throw queryTooExpensive(this.queryTimeoutMs);
      throw e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** `start` begins each statement of the search (search() tracks the one running, to cancel it). */
  private async searchOn(run: Runner, kind: ResourceKind, query: SearchQuery, start: (make: () => Statement) => Statement = (make) => make()): Promise<SearchPage> {
    const unsafe = (text: string, params: unknown[]) => start(() => run.unsafe(text, params));
    const t = TABLES[kind];
    const where = query.filter ? compileFilter(kind, query.filter) : undefined;
    const params = where?.params ?? [];
    const count = async () => {
      const [{ n }] = await unsafe(`SELECT count(*)::int AS n FROM ${t.name} r WHERE ${where?.sql ?? "true"}`, params);
      return n as number;
    };
    if (query.limit <= 0) return { total: await count(), resources: [] };
    if (isUniqueKeyLookup(kind, query)) {
      // At most one row (a unique index): no ORDER BY, LIMIT or OFFSET, so that PostgreSQL settles
      // on one generic plan for the statement instead of planning each execution anew (with them it
      // kept re-planning: 0.2-0.4 ms of planning against 0.01 ms of execution, per IdP lookup).
      const rows = (await unsafe(`SELECT ${t.columns} FROM ${t.name} r WHERE ${where!.sql}`, params)) as Row[];
      return { total: rows.length, resources: rows.slice(query.offset, query.offset + query.limit).map(toStored) };
    }
    const order = compileOrder(kind, query.sortBy, query.descending ?? false);
    // startIndex is the client's: far past the end (startIndex=1e300) is an empty page, not an int
    // overflow (a 500); no table holds 2^53 rows, so the offset is clamped there and bound as bigint.
    const page = [...params, query.limit, Math.min(query.offset, Number.MAX_SAFE_INTEGER)];
    // The page's rows are chosen first (seq only), then read: the columns (the document, a User's
    // groups) are computed for the page alone, not for every row OFFSET skips.
    const rows = (await unsafe(
      `SELECT ${t.columns} FROM ${t.name} r
        WHERE r.seq IN (SELECT r.seq FROM ${t.name} r WHERE ${where?.sql ?? "true"} ORDER BY ${order} LIMIT $${params.length + 1}::int OFFSET $${params.length + 2}::bigint)
        ORDER BY ${order}`,
      page,
    )) as Row[];
    // A first page that is not full holds every match: no count query needed (an IdP's lookup by userName).
    const total = query.offset === 0 && rows.length < query.limit ? rows.length : await count();
    return { total, resources: rows.map(toStored) };
  }
}

/**
 * Whether a search is one `eq` on a string against a column with a unique index (id, a User's
 * userName, a Group's displayName): it matches one row at most. externalId is indexed, not unique.
 */
function isUniqueKeyLookup(kind: ResourceKind, query: SearchQuery): boolean {
  const f = query.filter;
  if (!f || !isIndexedLookup(kind, query) || f.kind !== "compare" || typeof f.value !== "string") return false;
  const name = f.target.attr.name;
  return name === "id" || name === (kind === "User" ? "userName" : "displayName");
}

type Statement = SQL.Query<any>;

export type { GroupRef, Tally };
