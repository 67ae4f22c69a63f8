/**
 * The activity log in the SQLite store: one row of the `activity` table (migration 5) per committed
 * change, inserted by resources.ts inside the change's own write unit (its SAVEPOINT in the group
 * commit), so a refused unit leaves no entry and a committed one is never without it; the group
 * commit's one fsync covers both. Queries and pruning read this table only.
 */
import type { ActivityEntry, ActivityOp, ActivityQuery, ActivityVia, AttributeChange, LeftGroup } from "../../scim/activity";
import { fold, userNameKey } from "../../scim/compare-keys";
import type { ResourceKind } from "../../scim/schema";
import type { ActivityCopy, WriteOrigin } from "../store";
import { limitSql, type SqliteDatabase } from "./database";

/** An entry as resources.ts records it, inside a write. */
export interface NewEntry {
  at: string;
  origin: WriteOrigin | undefined;
  op: ActivityOp;
  kind: ResourceKind;
  id: string;
  name: string | undefined;
  /**
   * The name the resource gives up with this change (a rename's old name, a delete's last name): the
   * entry is indexed by it, so the resource stays findable by every name it had once the live tables
   * no longer hold it. Its current name is found through its own table, so a create (or any other
   * write) adds nothing to that index: only renames and deletes pay for it.
   */
  leftName?: string;
  changes: AttributeChange[];
  membersAdded?: string[];
  membersRemoved?: string[];
  leftGroups?: LeftGroup[];
}

type Row = {
  seq: number;
  at: string;
  request_id: string | null;
  token: string | null;
  via: string;
  op: string;
  resource_type: string;
  resource_id: string;
  name: string | null;
  changes: string;
  members_added: string | null;
  members_removed: string | null;
  left_groups: string | null;
};

const ROW_COLUMNS = "seq, at, request_id, token, via, op, resource_type, resource_id, name, changes, members_added, members_removed, left_groups";

const INSERT = `INSERT INTO activity (at, request_id, token, via, op, resource_type, resource_id, name, name_key, changes, members_added, members_removed, left_groups)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** The name key of a resource's name, as its table's uniqueness key folds it. */
const nameKey = (kind: ResourceKind, name: string) => (kind === "User" ? userNameKey(name) : fold(name));

const list = (ids: readonly string[] | undefined) => (ids?.length ? JSON.stringify(ids) : null);

function toEntry(r: Row): ActivityEntry {
  const e: ActivityEntry = {
    seq: r.seq,
    at: r.at,
    via: r.via as ActivityVia,
    op: r.op as ActivityOp,
    resourceType: r.resource_type as ResourceKind,
    id: r.resource_id,
    changes: JSON.parse(r.changes) as AttributeChange[],
  };
  if (r.request_id !== null) e.requestId = r.request_id;
  if (r.token !== null) e.token = r.token;
  if (r.name !== null) e.name = r.name;
  if (r.members_added !== null) e.membersAdded = JSON.parse(r.members_added);
  if (r.members_removed !== null) e.membersRemoved = JSON.parse(r.members_removed);
  if (r.left_groups !== null) e.leftGroups = JSON.parse(r.left_groups);
  return e;
}

export class SqliteActivity {
  constructor(
    private readonly d: SqliteDatabase,
    /** False: nothing is recorded (serve --activity-log false); what was recorded stays readable. */
    readonly enabled: boolean,
  ) {}

  /** Inside a write: records one entry (nothing when the log is off). */
  record(e: NewEntry): void {
    if (!this.enabled) return;
    this.d
      .q(INSERT)
      .run(
        e.at,
        e.origin?.requestId ?? null,
        e.origin?.token ?? null,
        e.origin?.via ?? "unknown",
        e.op,
        e.kind,
        e.id,
        e.name ?? null,
        e.leftName === undefined ? null : nameKey(e.kind, e.leftName),
        JSON.stringify(e.changes),
        list(e.membersAdded),
        list(e.membersRemoved),
        e.leftGroups?.length ? JSON.stringify(e.leftGroups) : null,
      );
  }

  /**
   * ActivityStore.listActivity. A --user or --group names a resource by id, by its current name (one
   * lookup in its table's unique name index) or by a name it gave up (the entries of renames and
   * deletes are indexed by the name they left, so a renamed or deleted one is found by an old name
   * while those entries are kept). The entries of a resource are read by scanning the log within the
   * time window, as are the entries that mention it
   * inside their member lists are found by reading those lists within the other filters (the time
   * window bounds that scan).
   */
  list(q: ActivityQuery): ActivityEntry[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.since !== undefined) {
      where.push("a.at >= ?");
      params.push(q.since);
    }
    if (q.until !== undefined) {
      where.push("a.at < ?");
      params.push(q.until);
    }
    if (q.token !== undefined) {
      where.push("a.token = ?");
      params.push(q.token);
    }
    if (q.ops?.length) {
      const ors: string[] = [];
      const ops = q.ops.filter((o) => o !== "member-add" && o !== "member-remove");
      if (ops.length) {
        ors.push(`a.op IN (${ops.map(() => "?").join(", ")})`);
        params.push(...ops);
      }
      if (q.ops.includes("member-add")) ors.push("a.members_added IS NOT NULL");
      if (q.ops.includes("member-remove")) ors.push("a.members_removed IS NOT NULL");
      where.push(`(${ors.join(" OR ")})`);
    }
    // The resources a --user / --group names (by id, or by any name an entry recorded), once each as a CTE.
    const ctes: string[] = [];
    const cteParams: string[] = [];
    const named = (cte: string, kind: ResourceKind, value: string) => {
      const live = kind === "User" ? "SELECT id FROM users WHERE user_name_key = ?" : "SELECT id FROM groups WHERE display_name_key = ?";
      ctes.push(`${cte}(id) AS (SELECT ? UNION ${live} UNION SELECT resource_id FROM activity WHERE resource_type = ? AND name_key = ? AND name_key IS NOT NULL)`);
      const key = nameKey(kind, value);
      cteParams.push(value, key, kind, key);
      return `(SELECT id FROM ${cte})`;
    };
    if (q.user !== undefined) {
      const users = named("named_user", "User", q.user);
      // Which member lists of a Group's entry mention the user: with --op naming only member-add (or
      // only member-remove), that list alone, so an entry that removed the user is not an addition of it.
      const memberOps = q.ops?.filter((o) => o === "member-add" || o === "member-remove") ?? [];
      const onlyMemberOps = q.ops !== undefined && q.ops.length > 0 && memberOps.length === q.ops.length;
      const lists = [
        ...(!onlyMemberOps || memberOps.includes("member-add") ? ["a.members_added"] : []),
        ...(!onlyMemberOps || memberOps.includes("member-remove") ? ["a.members_removed"] : []),
      ];
      const mentions = lists.map((l) => `(${l} IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(${l}) j WHERE j.value IN ${users}))`).join(" OR ");
      where.push(`((a.resource_type = 'User' AND a.resource_id IN ${users}) OR (a.resource_type = 'Group' AND (${mentions})))`);
    }
    if (q.group !== undefined) {
      const groups = named("named_group", "Group", q.group);
      where.push(
        `((a.resource_type = 'Group' AND a.resource_id IN ${groups}) OR (a.left_groups IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(a.left_groups) j WHERE json_extract(j.value, '$.value') IN ${groups})))`,
      );
    }
    const sql = `${ctes.length ? `WITH ${ctes.join(", ")} ` : ""}SELECT a.seq, a.at, a.request_id, a.token, a.via, a.op, a.resource_type, a.resource_id, a.name, a.changes, a.members_added, a.members_removed, a.left_groups
      FROM activity a ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY a.seq DESC ${limitSql(q.limit)}`;
    params.unshift(...cteParams);
    return (this.d.dynamic(sql).all(...params) as Row[]).map(toEntry);
  }

  /**
   * ActivityStore.pruneActivity: one short write of at most `limit` deletions, oldest first (through
   * the time index). Nothing else needs fixing up: a kept resource is found by its current name, a
   * deleted one by its delete entry, the newest of its entries (so the last one pruned).
   */
  async prune(olderThan: string, limit: number): Promise<number> {
    let n = 0;
    await this.d.write(() => {
      n = this.d.dynamic(`DELETE FROM activity WHERE seq IN (SELECT seq FROM activity WHERE at < ? ORDER BY at, seq ${limitSql(limit)})`).run(olderThan).changes;
    });
    return n;
  }

  /** CopyStore.activityCopies: the rows after seq `after`, oldest first, with their name keys. */
  copies(after: number, limit: number): ActivityCopy[] {
    const rows = this.d
      .dynamic(`SELECT ${ROW_COLUMNS}, name_key FROM activity WHERE seq > ? ORDER BY seq ${limitSql(Math.max(1, limit))}`)
      .all(after) as (Row & { name_key: string | null })[];
    return rows.map((r) => (r.name_key === null ? { entry: toEntry(r) } : { entry: toEntry(r), nameKey: r.name_key }));
  }

  /** CopyStore.insertActivityCopies: appended in order in one write unit, whether or not this store records new entries. */
  async insertCopies(entries: readonly ActivityCopy[]): Promise<void> {
    if (!entries.length) return;
    await this.d.write(() => {
      const insert = this.d.q(INSERT);
      for (const { entry: e, nameKey } of entries)
        insert.run(
          e.at,
          e.requestId ?? null,
          e.token ?? null,
          e.via,
          e.op,
          e.resourceType,
          e.id,
          e.name ?? null,
          nameKey ?? null,
          JSON.stringify(e.changes),
          list(e.membersAdded),
          list(e.membersRemoved),
          e.leftGroups?.length ? JSON.stringify(e.leftGroups) : null,
        );
    });
  }
}
