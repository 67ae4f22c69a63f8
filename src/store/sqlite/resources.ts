/**
 * Users and Groups in the SQLite store: one table each, a row holding the canonical JSON (`data`), the
 * search document filters read (`search`), and indexed keys (the case-insensitive name, externalId).
 * Reads return the stored JSON text beside the lazily parsed data; writes go through the group commit.
 */
import { diffResources } from "../../scim/activity";
import { fold, toSearchDoc, userNameKey } from "../../scim/compare-keys";
import { notFound, preconditionFailed, uniqueness, type ScimError } from "../../scim/errors";
import type { Resource } from "../../scim/resource";
import { rtOf, type ResourceKind, type ResourceTypeDef } from "../../scim/schema";
import { isIndexedLookup, type CreateInput, type DeleteOptions, type GroupRef, type ResourceStore, type ScanPage, type SearchPage, type SearchQuery, type StoredResource, type UpdateInput } from "../store";
import { DYNAMIC_STATEMENTS, limitSql, nowIso, type SqliteDatabase } from "./database";
import type { SqliteActivity } from "./activity";
import { GROUPS_COLUMN, type MemberLog, type SqliteMembership } from "./membership";
import type { SqliteReaders } from "./readers";
import { compileFilter, compileOrder, type SqlFragment } from "./sql-filter";

type Row = { seq: number; id: string; created: string; last_modified: string; version: number; data: string; groups?: string };
/** A row as a write reads it before changing it: `key` is its stored uniqueness key. */
type CurrentRow = { seq: number; version: number; created: string; last_modified: string; data: string; key: string };

/** What a write checks against the row it finds: UpdateInput and DeleteOptions both carry them. */
type Conditions = Pick<UpdateInput, "expectedVersion" | "precondition">;

const COLUMNS = "r.seq, r.id, r.created, r.last_modified, r.version, r.data";

/** What differs between the users and the groups table; each statement text is fixed, so it is prepared once. */
interface Table {
  kind: ResourceKind;
  name: "users" | "groups";
  rt: ResourceTypeDef;
  /** The attribute unique among the type's resources, compared through `key`. */
  nameAttr: "userName" | "displayName";
  key: (data: Resource) => string;
  sql: { get: string; keyTaken: string; insert: string; current: string; update: string; delete: string; count: string; scan: (limit: number) => string };
}

type TableSpec = Pick<Table, "kind" | "name" | "nameAttr" | "key"> & { keyColumn: string; /** What `get` reads. */ getColumns: string };

function table({ kind, name, nameAttr, key, keyColumn, getColumns }: TableSpec): Table {
  return {
    kind,
    name,
    rt: rtOf(kind),
    nameAttr,
    key,
    sql: {
      get: `SELECT ${getColumns} FROM ${name} r WHERE r.id = ?`,
      keyTaken: `SELECT 1 FROM ${name} WHERE ${keyColumn} = ?`,
      insert: `INSERT INTO ${name} (id, ${keyColumn}, external_id, created, last_modified, version, data, search) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
      current: `SELECT seq, version, created, last_modified, data, ${keyColumn} AS key FROM ${name} WHERE id = ?`,
      update: `UPDATE ${name} SET ${keyColumn} = ?, external_id = ?, last_modified = ?, version = version + 1, data = ?, search = ? WHERE seq = ?`,
      delete: `DELETE FROM ${name} WHERE seq = ?`,
      count: `SELECT count(*) AS n FROM ${name}`,
      // Through the primary key from the cursor on: each page costs the same wherever it starts.
      scan: (limit) => `SELECT ${getColumns} FROM ${name} r WHERE r.seq > ? ORDER BY r.seq ${limitSql(limit)}`,
    },
  };
}

const TABLES: Record<ResourceKind, Table> = {
  // A User is read with its groups (GROUPS_COLUMN): one read, not two.
  User: table({ kind: "User", name: "users", nameAttr: "userName", key: (d) => userNameKey(String(d.userName)), keyColumn: "user_name_key", getColumns: `${COLUMNS}, ${GROUPS_COLUMN}` }),
  Group: table({ kind: "Group", name: "groups", nameAttr: "displayName", key: (d) => fold(String(d.displayName)), keyColumn: "display_name_key", getColumns: COLUMNS }),
};

/** The name an activity entry records: userName or displayName, when it is a string. */
const nameOf = (t: Table, data: Resource): string | undefined => (typeof data[t.nameAttr] === "string" ? (data[t.nameAttr] as string) : undefined);

const memberLog = (): MemberLog => ({ added: [], removed: [] });

const uniquenessOf = (t: Table, data: Resource): ScimError =>
  uniqueness(`a ${t.kind} with ${t.nameAttr} "${String(data[t.nameAttr])}" already exists (${t.nameAttr} is compared case-insensitively)`);

const isUniqueViolation = (e: unknown): boolean => e instanceof Error && /UNIQUE constraint failed/.test(e.message);

/** externalId is caseExact: its key is the NFC form, as filters normalise their literal. */
const externalIdKey = (data: Resource) => (typeof data.externalId === "string" ? data.externalId.normalize("NFC") : null);

function emailKeys(data: Resource): string[] {
  const emails = data.emails;
  if (!Array.isArray(emails)) return [];
  const keys = new Set<string>();
  for (const e of emails) if (e && typeof e === "object" && typeof (e as Resource).value === "string") keys.add(fold((e as Resource).value as string));
  return [...keys];
}

/** A stored row as a StoredResource whose `data` is parsed only when read; `json` keeps the text. */
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
  if (row.groups !== undefined) s.groups = (JSON.parse(row.groups) as [string, string][]).map(([value, display]) => ({ value, display }));
  return s;
}

export class SqliteResources implements Omit<ResourceStore, "memberPage" | "memberCount" | "groupsOf"> {
  private readonly sortPlans = new Map<string, boolean>();
  private readonly scanPlans = new Map<string, boolean>();

  constructor(
    private readonly d: SqliteDatabase,
    private readonly members: SqliteMembership,
    private readonly activity: SqliteActivity,
    /** Where the searches that scan a table run (absent: on this connection, e.g. for `:memory:`). */
    private readonly readers?: SqliteReaders,
  ) {}

  async get(kind: ResourceKind, id: string): Promise<StoredResource | undefined> {
    const row = this.d.q(TABLES[kind].sql.get).get(id) as Row | null;
    return row ? toStored(row) : undefined;
  }

  /** One create inside a write unit: the row, its emails, its members, its activity entry. */
  private insert(kind: ResourceKind, input: CreateInput, now: string): StoredResource {
    const t = TABLES[kind];
    const { created, lastModified } = input.meta ?? { created: now, lastModified: now };
    const version = input.meta?.version ?? 1;
    const data = JSON.stringify(input.data);
    const search = JSON.stringify(toSearchDoc(t.rt, input.data));
    const key = this.claimKey(t, input.data);
    let row: { seq: number };
    try {
      row = this.d.q(t.sql.insert).get(input.id, key, externalIdKey(input.data), created, lastModified, version, data, search) as { seq: number };
    } catch (e) {
      // claimKey checked the name in the same transaction, so what is left to clash is the id the caller chose: a 409 too, never SQLite's text.
      throw isUniqueViolation(e) ? uniquenessOf(t, input.data) : e;
    }
    this.d.tally(t.name, 1);
    if (kind === "User") this.writeEmails(row.seq, input.data, false);
    const log = this.activity.enabled ? memberLog() : undefined;
    if (kind === "Group" && input.members?.length) this.members.addTo(row.seq, input.members, log);
    if (this.activity.enabled)
      this.activity.record({
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
    let stored: StoredResource | undefined;
    try {
      await this.d.write(() => {
        stored = this.insert(kind, input, now);
      });
    } catch (e) {
      throw isUniqueViolation(e) ? uniquenessOf(TABLES[kind], input.data) : e;
    }
    return stored!;
  }

  /** CopyStore.createCopies: the creates in one write unit, one after another, so their creation order (seq) is the order given. */
  async createCopies(kind: ResourceKind, inputs: readonly CreateInput[]): Promise<void> {
    if (!inputs.length) return;
    const now = nowIso();
    await this.d.write(() => {
      for (const input of inputs) this.insert(kind, input, now);
    });
  }

  /** CopyStore.insertMemberCopies: member rows added to a Group as they are (its version, lastModified and the log untouched). */
  async insertMemberCopies(groupId: string, memberIds: string[]): Promise<void> {
    if (!memberIds.length) return;
    await this.d.write(() => {
      const g = this.d.q("SELECT seq FROM groups WHERE id = ?").get(groupId) as { seq: number } | null;
      if (!g) throw notFound(`Group ${groupId} not found`);
      this.members.addTo(g.seq, memberIds);
    });
  }

  async update(kind: ResourceKind, id: string, input: UpdateInput): Promise<StoredResource> {
    const t = TABLES[kind];
    const now = nowIso();
    const data = JSON.stringify(input.data);
    let result: StoredResource | undefined;
    await this.d.write(() => {
      const cur = this.current(t, id, input);
      // The key claimKey returns is free (or the row's own) in this transaction, so the UPDATE below cannot violate its UNIQUE index.
      const key = this.claimKey(t, input.data, cur);
      let memberRows = 0;
      const log = this.activity.enabled && kind === "Group" ? memberLog() : undefined;
      if (kind === "Group") {
        if (input.members) memberRows += this.members.apply(cur.seq, { kind: "replace", ids: input.members }, log);
        for (const c of input.memberChanges ?? []) memberRows += this.members.apply(cur.seq, c, log);
      }
      if (data === cur.data && memberRows === 0) {
        // Nothing changed (an IdP re-sending what is stored): the version stays, so If-Match stays valid.
        result = { id, data: input.data, version: cur.version, created: cur.created, lastModified: cur.last_modified };
        if (kind === "User") result.groups = this.members.groupsOf(id);
        return;
      }
      this.d.q(t.sql.update).run(key, externalIdKey(input.data), now, data, JSON.stringify(toSearchDoc(t.rt, input.data)), cur.seq);
      if (kind === "User") this.writeEmails(cur.seq, input.data, true);
      if (this.activity.enabled) {
        // A member added, then removed in one PATCH, was neither: the entry lists what changed.
        const added = new Set(log?.added), removed = new Set(log?.removed);
        for (const id of added) if (removed.has(id)) (added.delete(id), removed.delete(id));
        const before = input.before !== undefined && input.expectedVersion === cur.version ? input.before : (JSON.parse(cur.data) as Resource);
        const name = nameOf(t, input.data), oldName = nameOf(t, before);
        const changes = data === cur.data ? [] : diffResources(t.rt, before, input.data);
        // Members added and removed again in one request, nothing else: no change to record.
        if (changes.length || added.size || removed.size) this.activity.record({
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
      result = { id, data: input.data, version: cur.version + 1, created: cur.created, lastModified: now };
      if (kind === "User") result.groups = this.members.groupsOf(id);
    });
    return result!;
  }

  async delete(kind: ResourceKind, id: string, opts: DeleteOptions = {}): Promise<void> {
    const t = TABLES[kind];
    const now = nowIso();
    await this.d.write(() => {
      const cur = this.current(t, id, opts);
      const log = this.activity.enabled ? memberLog() : undefined;
      const left = log ? this.members.groupsOfRow(kind, cur.seq) : undefined;
      const name = this.activity.enabled ? nameOf(t, JSON.parse(cur.data) as Resource) : undefined;
      this.members.forget(kind, cur.seq, now, log);
      if (this.activity.enabled)
        this.activity.record({
          at: now,
          origin: opts.origin,
          op: "delete",
          kind,
          id,
          name,
          leftName: name,
          changes: [],
          membersRemoved: log?.removed,
          leftGroups: left?.map((g) => (g.display === null || g.display === undefined ? { value: g.value } : { value: g.value, display: g.display })),
        });
      if (kind === "User") this.d.q("DELETE FROM user_emails WHERE user_seq = ?").run(cur.seq);
      this.d.q(t.sql.delete).run(cur.seq);
      this.d.tally(t.name, -1);
    });
  }

  /**
   * The row a write is about to change, read inside the write: 404 when absent, 412 when
   * `expectedVersion` is stale, and whatever the `precondition` throws, checked against the resource
   * as it is at that moment (a User with its groups).
   */
  private current(t: Table, id: string, conditions: Conditions): CurrentRow {
    const cur = this.d.q(t.sql.current).get(id) as CurrentRow | null;
    if (!cur) throw notFound(`${t.kind} ${id} not found`);
    if (conditions.expectedVersion !== undefined && cur.version !== conditions.expectedVersion)
      throw preconditionFailed(`${t.kind} ${id} has changed (version W/"${cur.version}", expected W/"${conditions.expectedVersion}"); read it again and retry`);
    if (conditions.precondition) {
      const s: StoredResource = { id, data: JSON.parse(cur.data), version: cur.version, created: cur.created, lastModified: cur.last_modified };
      if (t.kind === "User") s.groups = this.members.groupsOf(id);
      conditions.precondition(s);
    }
    return cur;
  }

  /**
   * The uniqueness key to store for `data` (inside the write): throws 409 uniqueness when another
   * resource of the type holds it. For an update (`cur`), the row's own key is no clash, and a
   * User that migration 2 could not re-key (another user holds its new key) keeps its old key while its
   * userName stays as stored.
   */
  private claimKey(t: Table, data: Resource, cur?: CurrentRow): string {
    const key = t.key(data);
    if (key === cur?.key) return key;
    if (!this.d.q(t.sql.keyTaken).get(key)) return key;
    if (cur && (JSON.parse(cur.data) as Resource)[t.nameAttr] === data[t.nameAttr]) return cur.key;
    throw uniquenessOf(t, data);
  }

  private writeEmails(seq: number, data: Resource, replace: boolean): void {
    if (replace) this.d.q("DELETE FROM user_emails WHERE user_seq = ?").run(seq);
    for (const k of emailKeys(data)) this.d.q("INSERT OR IGNORE INTO user_emails (user_seq, value_key) VALUES (?, ?)").run(seq, k);
  }

  /** ResourceStore.scan: the cursor is the last row's seq (the creation order). */
  async scan(kind: ResourceKind, after: string | undefined, limit: number): Promise<ScanPage> {
    if (after !== undefined && !/^\d{1,16}$/.test(after)) throw new RangeError(`'${after}' is not a cursor that scan returned`);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`scan needs a page size of at least 1, got ${limit}`);
    const rows = this.d.dynamic(TABLES[kind].sql.scan(limit)).all(after === undefined ? 0 : Number(after)) as Row[];
    const last = rows[rows.length - 1];
    const resources = rows.map(toStored);
    return rows.length === limit && last ? { resources, next: String(last.seq) } : { resources };
  }

  async search(kind: ResourceKind, query: SearchQuery): Promise<SearchPage> {
    const t = TABLES[kind];
    const where = query.filter ? compileFilter(kind, query.filter) : undefined;
    // An IdP's lookup (userName eq, id eq) is answered by an index: it skips even the plan's cache.
    if (this.readers && (where || query.sortBy) && (this.readers.opts.always || !isIndexedLookup(kind, query))) {
      const order = compileOrder(kind, query.sortBy, query.descending ?? false);
      if (this.readers.opts.always || this.scans(t, where, order)) return this.searchInReader(t, where, order, query);
    }
    const count = () =>
      where
        ? (this.d.dynamic(`SELECT count(*) AS n FROM ${t.name} r WHERE ${where.sql}`).get(...where.params) as { n: number }).n
        : (this.d.q(t.sql.count).get() as { n: number }).n;
    if (query.limit <= 0) return { total: count(), resources: [] };
    const [tail, params] =
      !where && !query.sortBy
        ? // Unfiltered pages in creation order skip through the narrow seq index, not the wide rows.
          [`FROM ${t.name} r WHERE r.seq >= (SELECT seq FROM ${t.name} ORDER BY seq LIMIT 1 OFFSET ?) ORDER BY r.seq ${limitSql(query.limit)}`, [query.offset]]
        : [
            `FROM ${t.name} r WHERE ${where?.sql ?? "1"} ORDER BY ${compileOrder(kind, query.sortBy, query.descending ?? false)} ${limitSql(query.limit)} OFFSET ?`,
            [...(where?.params ?? []), query.offset],
          ];
    // A User's groups: as a column of the page query when SQLite reads the rows in the page's order
    // (creation order, a lookup by a unique key), since the column is then computed for the page's
    // rows only; when the query must sort every match first, the column would be computed for every
    // match, so the page's groups come from a second statement instead.
    const folded = kind === "User" && !this.sortsEveryMatch(tail);
    const rows = this.d.dynamic(`SELECT ${COLUMNS}${folded ? `, ${GROUPS_COLUMN}` : ""} ${tail}`).all(...params) as Row[];
    // A first page that is not full holds every match: no count query needed (an IdP's lookup by userName).
    const total = query.offset === 0 && rows.length < query.limit ? rows.length : count();
    const resources = rows.map(toStored);
    if (kind === "User" && !folded && resources.length) {
      const bySeq: Map<number, GroupRef[]> = this.members.groupsOfUsers(rows.map((r) => r.seq));
      rows.forEach((row, i) => (resources[i]!.groups = bySeq.get(row.seq)!));
    }
    return { total, resources };
  }

  /**
   * Whether SQLite answers the search by reading every row of the table (its plan says `SCAN r`),
   * rather than through an index (`SEARCH r USING …`): asked once per distinct filter shape and order.
   */
  private scans(t: Table, where: SqlFragment | undefined, order: string): boolean {
    const sql = `SELECT r.seq FROM ${t.name} r WHERE ${where?.sql ?? "1"} ORDER BY ${order}`;
    let scans = this.scanPlans.get(sql);
    if (scans === undefined) {
      const explain = this.d.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      try {
        scans = (explain.all() as { detail: string }[]).some((p) => /^SCAN r\b/.test(p.detail));
      } finally {
        explain.finalize();
      }
      if (this.scanPlans.size >= DYNAMIC_STATEMENTS) this.scanPlans.clear();
      this.scanPlans.set(sql, scans);
    }
    return scans;
  }

  /**
   * A search that scans, run by a reader (readers.ts) off the event loop, under the query timeout:
   * the matches are found chunk by chunk in creation order, then the page is taken in the order asked
   * (ORDER BY the same expression, ending in the seq, as on the main thread) and its rows are read,
   * a User's with its groups.
   */
  private async searchInReader(t: Table, where: SqlFragment | undefined, order: string, query: SearchQuery): Promise<SearchPage> {
    const w = where ?? { sql: "1", params: [] };
    const { total, rows } = await this.readers!.run(
      {
        maxSql: `SELECT max(seq) AS m FROM ${t.name}`,
        scanSql: `SELECT r.seq FROM ${t.name} r WHERE r.seq > ? AND r.seq <= ? AND (${w.sql}) ORDER BY r.seq`,
        params: w.params,
        pageSql: order === "r.seq" ? undefined : `SELECT r.seq FROM ${t.name} r WHERE r.seq IN (SELECT value FROM json_each(?)) ORDER BY ${order} ${limitSql(Math.max(0, query.limit))} OFFSET ?`,
        rowsSql: `SELECT ${COLUMNS}${t.kind === "User" ? `, ${GROUPS_COLUMN}` : ""} FROM ${t.name} r WHERE r.seq IN (SELECT value FROM json_each(?))`,
        offset: query.offset,
        limit: query.limit,
      },
      query.signal,
    );
    return { total, resources: (rows as Row[]).map(toStored) };
  }

  /**
   * Whether SQLite's plan for the page query `SELECT … <tail>` sorts every match before taking the
   * page (asked once per distinct tail).
   */
  private sortsEveryMatch(tail: string): boolean {
    let sorts = this.sortPlans.get(tail);
    if (sorts === undefined) {
      const explain = this.d.db.prepare(`EXPLAIN QUERY PLAN SELECT ${COLUMNS} ${tail}`);
      let plan: { detail: string }[];
      try {
        plan = explain.all() as { detail: string }[];
      } finally {
        explain.finalize();
      }
      sorts = plan.some((p) => /\bTEMP B-TREE\b/.test(p.detail));
      if (this.sortPlans.size >= DYNAMIC_STATEMENTS) this.sortPlans.clear();
      this.sortPlans.set(tail, sorts);
    }
    return sorts;
  }
}
