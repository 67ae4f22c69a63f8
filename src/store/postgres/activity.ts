/**
 * The activity log in the PostgreSQL store: one row of `activity` per committed change, inserted by
 * resources.ts in the change's own transaction (never one without the other). Same columns and
 * reading rules as the SQLite store's log (src/store/sqlite/activity.ts).
 */
import type { ActivityEntry, ActivityOp, ActivityQuery, ActivityVia, AttributeChange, LeftGroup } from "../../scim/activity";
import { fold, userNameKey } from "../../scim/compare-keys";
import type { ResourceKind } from "../../scim/schema";
import type { ActivityCopy, WriteOrigin } from "../store";
import type { PostgresDatabase, Tx } from "./database";

/** An entry as resources.ts records it, inside a write (as in the SQLite store). */
export interface NewEntry {
  at: string;
  origin: WriteOrigin | undefined;
  op: ActivityOp;
  kind: ResourceKind;
  id: string;
  name: string | undefined;
  /** The name the resource gives up with this change (a rename's old name, a delete's last name): indexed. */
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

export class PostgresActivity {
  constructor(
    private readonly d: PostgresDatabase,
    readonly enabled: boolean,
  ) {}

  /** Inside a write: records one entry (nothing when the log is off). */
  async record(tx: Tx, e: NewEntry): Promise<void> {
    if (!this.enabled) return;
    await tx.unsafe(
      `INSERT INTO activity (at, request_id, token, via, op, resource_type, resource_id, name, name_key, changes, members_added, members_removed, left_groups)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
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
      ],
    );
  }

  /** ActivityStore.listActivity, as the SQLite store reads it. */
  async list(q: ActivityQuery): Promise<ActivityEntry[]> {
    const params: unknown[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [];
    if (q.since !== undefined) where.push(`a.at >= ${p(q.since)}`);
    if (q.until !== undefined) where.push(`a.at < ${p(q.until)}`);
    if (q.token !== undefined) where.push(`a.token = ${p(q.token)}`);
    if (q.ops?.length) {
      const ors: string[] = [];
      const ops = q.ops.filter((o) => o !== "member-add" && o !== "member-remove");
      if (ops.length) ors.push(`a.op IN (${ops.map((o) => p(o)).join(", ")})`);
      if (q.ops.includes("member-add")) ors.push("a.members_added IS NOT NULL");
      if (q.ops.includes("member-remove")) ors.push("a.members_removed IS NOT NULL");
      where.push(`(${ors.join(" OR ")})`);
    }
    const named = (kind: ResourceKind, value: string) => {
      const key = nameKey(kind, value);
      const live = kind === "User" ? `SELECT id FROM users WHERE user_name_key = ${p(key)}` : `SELECT id FROM groups WHERE display_name_key = ${p(key)}`;
      return `(SELECT ${p(value)}::text UNION ${live} UNION SELECT resource_id FROM activity WHERE resource_type = ${p(kind)} AND name_key = ${p(key)})`;
    };
    const mentions = (column: string, ids: string) => `(${column} IS NOT NULL AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(${column}::jsonb) j(v) WHERE j.v IN ${ids}))`;
    if (q.user !== undefined) {
      const users = named("User", q.user);
      const memberOps = q.ops?.filter((o) => o === "member-add" || o === "member-remove") ?? [];
      const onlyMemberOps = q.ops !== undefined && q.ops.length > 0 && memberOps.length === q.ops.length;
      const lists = [
        ...(!onlyMemberOps || memberOps.includes("member-add") ? ["a.members_added"] : []),
        ...(!onlyMemberOps || memberOps.includes("member-remove") ? ["a.members_removed"] : []),
      ];
      where.push(`((a.resource_type = 'User' AND a.resource_id IN ${users}) OR (a.resource_type = 'Group' AND (${lists.map((l) => mentions(l, users)).join(" OR ")})))`);
    }
    if (q.group !== undefined) {
      const groups = named("Group", q.group);
      where.push(
        `((a.resource_type = 'Group' AND a.resource_id IN ${groups}) OR (a.left_groups IS NOT NULL AND EXISTS (SELECT 1 FROM jsonb_array_elements(a.left_groups::jsonb) j(v) WHERE (j.v ->> 'value') IN ${groups})))`,
      );
    }
    const rows = (await this.d.sql.unsafe(
      `SELECT a.seq::float8 AS seq, a.at, a.request_id, a.token, a.via, a.op, a.resource_type, a.resource_id, a.name, a.changes, a.members_added, a.members_removed, a.left_groups
         FROM activity a ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY a.seq DESC LIMIT ${p(Math.max(0, q.limit))}::int`,
      params,
    )) as Row[];
    return rows.map(toEntry);
  }

  /** ActivityStore.pruneActivity: one short transaction of at most `limit` deletions, oldest first. */
  async prune(olderThan: string, limit: number): Promise<number> {
    return this.d.write(async (tx) => {
      const r = await tx.unsafe(`DELETE FROM activity WHERE seq IN (SELECT seq FROM activity WHERE at < $1 ORDER BY at, seq LIMIT $2::int)`, [olderThan, Math.max(0, limit)]);
      return r.count as number;
    });
  }

  /** CopyStore.activityCopies: the rows after seq `after`, oldest first, with their name keys. */
  async copies(after: number, limit: number): Promise<ActivityCopy[]> {
    const rows = (await this.d.sql.unsafe(
      `SELECT seq::float8 AS seq, at, request_id, token, via, op, resource_type, resource_id, name, changes, members_added, members_removed, left_groups, name_key
         FROM activity WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int`,
      [after, Math.max(1, limit)],
    )) as (Row & { name_key: string | null })[];
    return rows.map((r) => (r.name_key === null ? { entry: toEntry(r) } : { entry: toEntry(r), nameKey: r.name_key }));
  }

  /** CopyStore.insertActivityCopies: appended in order (multi-row inserts, so seqs follow the order) in one transaction. */
  async insertCopies(entries: readonly ActivityCopy[]): Promise<void> {
    if (!entries.length) return;
    const COLUMNS = 13;
    const CHUNK = 1000;
    await this.d.write(async (tx) => {
      for (let i = 0; i < entries.length; i += CHUNK) {
        const chunk = entries.slice(i, i + CHUNK);
        const params: unknown[] = [];
        const rows = chunk.map(({ entry: e, nameKey }, j) => {
          params.push(
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
          return `(${Array.from({ length: COLUMNS }, (_, k) => `$${j * COLUMNS + k + 1}`).join(", ")})`;
        });
        // One statement's rows get their identity values in the order of its VALUES list.
        await tx.unsafe(
          `INSERT INTO activity (at, request_id, token, via, op, resource_type, resource_id, name, name_key, changes, members_added, members_removed, left_groups) VALUES ${rows.join(", ")}`,
          params,
        );
      }
    });
  }
}
