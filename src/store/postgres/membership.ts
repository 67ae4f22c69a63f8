/**
 * Group membership in the PostgreSQL store: (group, member) rows of integer keys as in SQLite, so a
 * member change touches only the rows it names; sets of ids go to the server as one JSON array
 * (`jsonb_array_elements_text`), one statement per change, not one per member.
 */
import { invalidValue } from "../../scim/errors";
import type { MemberChange } from "../../scim/patch";
import type { ResourceKind } from "../../scim/schema";
import type { GroupRef, Member } from "../store";
import type { Runner, Tally, Tx } from "./database";
import { compileMemberFilter } from "./sql-filter";

export const MEMBER_KIND: Record<ResourceKind, number> = { User: 0, Group: 1 };
const KIND_OF: readonly ResourceKind[] = ["User", "Group"];

/** The ids of the members a write added and removed, for its activity entry. */
export interface MemberLog {
  added: string[];
  removed: string[];
}

/** The groups of the User in row `r`, as JSON text of [[id, displayName], …] in group creation order. */
export const GROUPS_COLUMN = `(SELECT coalesce(jsonb_agg(jsonb_build_array(g.id, g.display) ORDER BY g.seq), '[]'::jsonb)::text
       FROM group_members gm JOIN groups g ON g.seq = gm.group_seq WHERE gm.member_kind = 0 AND gm.member_seq = r.seq) AS groups`;

type Ref = { id: string; kind: number; seq: number };

/** Each id in order as (kind, seq): a User's, else a Group's; `seq` null when neither has it. */
async function resolve(tx: Runner, ids: string[]): Promise<{ id: string; kind: number | null; seq: number | null }[]> {
  if (!ids.length) return [];
  const rows = await tx.unsafe(
    `SELECT e.id, CASE WHEN u.seq IS NOT NULL THEN 0 WHEN g.seq IS NOT NULL THEN 1 END AS kind, coalesce(u.seq, g.seq)::float8 AS seq
       FROM jsonb_array_elements_text($1::text::jsonb) WITH ORDINALITY e(id, i)
       LEFT JOIN users u ON u.id = e.id LEFT JOIN groups g ON u.seq IS NULL AND g.id = e.id
      ORDER BY e.i`,
    [JSON.stringify(ids)],
  );
  return rows as { id: string; kind: number | null; seq: number | null }[];
}

/** Resolves each id; refuses unknown ids and a group containing itself. */
async function refs(tx: Tx, groupSeq: number, ids: string[]): Promise<Ref[]> {
  const out: Ref[] = [];
  const missing: string[] = [];
  for (const r of await resolve(tx, ids)) {
    if (r.seq === null || r.kind === null) missing.push(r.id);
    else if (r.kind === MEMBER_KIND.Group && r.seq === groupSeq) throw invalidValue(`a Group cannot be a member of itself ('${r.id}')`);
    else out.push({ id: r.id, kind: r.kind, seq: r.seq });
  }
  if (missing.length)
    throw invalidValue(`members must be existing Users or Groups; unknown id${missing.length > 1 ? "s" : ""}: ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ` and ${missing.length - 10} more` : ""}`);
  return out;
}

const refsJson = (rs: Ref[]) => JSON.stringify(rs.map((r) => [r.kind, r.seq]));
const key = (kind: number, seq: number) => `${kind}:${seq}`;

export class PostgresMembership {
  /** Inserts the members not already there; returns how many rows were added. */
  private async add(tx: Tx, delta: Tally, groupSeq: number, rs: Ref[], log?: MemberLog): Promise<number> {
    if (!rs.length) return 0;
    const rows = (await tx.unsafe(
      `INSERT INTO group_members (group_seq, member_kind, member_seq)
       SELECT $1::bigint, (e.v ->> 0)::smallint, (e.v ->> 1)::bigint FROM jsonb_array_elements($2::text::jsonb) WITH ORDINALITY e(v, i) ORDER BY e.i
       ON CONFLICT DO NOTHING RETURNING member_kind, member_seq::float8 AS seq`,
      [groupSeq, refsJson(rs)],
    )) as { member_kind: number; seq: number }[];
    if (log) {
      const added = new Set(rows.map((r) => key(r.member_kind, r.seq)));
      for (const r of rs) if (added.delete(key(r.kind, r.seq))) log.added.push(r.id);
    }
    delta.memberships += rows.length;
    return rows.length;
  }

  /** Deletes the member rows of the group that `where` (over `m`) selects; notes their ids. */
  private async deleteWhere(tx: Tx, delta: Tally, groupSeq: number, where: string, params: unknown[], log?: MemberLog): Promise<number> {
    const rows = (await tx.unsafe(
      `DELETE FROM group_members m WHERE m.group_seq = $1::bigint${where ? ` AND (${where})` : ""}
       RETURNING m.member_kind, (SELECT coalesce((SELECT u.id FROM users u WHERE m.member_kind = 0 AND u.seq = m.member_seq), (SELECT g.id FROM groups g WHERE m.member_kind = 1 AND g.seq = m.member_seq))) AS id`,
      [groupSeq, ...params],
    )) as { id: string }[];
    if (log) for (const r of rows) log.removed.push(r.id);
    delta.memberships -= rows.length;
    return rows.length;
  }

  async addTo(tx: Tx, delta: Tally, groupSeq: number, ids: string[], log?: MemberLog): Promise<void> {
    await this.add(tx, delta, groupSeq, await refs(tx, groupSeq, ids), log);
  }

  /** Applies one membership change (inside a write); returns how many rows it added or removed. */
  async apply(tx: Tx, delta: Tally, groupSeq: number, c: MemberChange, log?: MemberLog): Promise<number> {
    switch (c.kind) {
      case "add":
        return this.add(tx, delta, groupSeq, await refs(tx, groupSeq, c.ids), log);
      case "remove": {
        // Removing an id that is not a member (or does not exist) changes nothing.
        const known = (await resolve(tx, c.ids)).filter((r): r is Ref => r.seq !== null && r.kind !== null);
        if (!known.length) return 0;
        return this.deleteWhere(tx, delta, groupSeq, "(m.member_kind, m.member_seq) IN (SELECT (e.v ->> 0)::smallint, (e.v ->> 1)::bigint FROM jsonb_array_elements($2::text::jsonb) e(v))", [refsJson(known)], log);
      }
      case "removeAll":
        return this.deleteWhere(tx, delta, groupSeq, "", [], log);
      case "replace": {
        // Touch only the difference: a full push of an unchanged list writes nothing.
        const wanted = await refs(tx, groupSeq, c.ids);
        const removed = await this.deleteWhere(
          tx,
          delta,
          groupSeq,
          "(m.member_kind, m.member_seq) NOT IN (SELECT (e.v ->> 0)::smallint, (e.v ->> 1)::bigint FROM jsonb_array_elements($2::text::jsonb) e(v))",
          [refsJson(wanted)],
          log,
        );
        return removed + (await this.add(tx, delta, groupSeq, wanted, log));
      }
      case "removeWhere": {
        const f = compileMemberFilter(c.filter, "m", [groupSeq]);
        return this.deleteWhere(tx, delta, groupSeq, f.sql, f.params.slice(1), log);
      }
    }
  }

  /** Before a resource is deleted (inside its write): it leaves every group (each gets a new version); a Group drops its members. */
  async forget(tx: Tx, delta: Tally, kind: ResourceKind, seq: number, now: string, log?: MemberLog): Promise<void> {
    const k = MEMBER_KIND[kind];
    await tx`UPDATE groups SET version = version + 1, last_modified = ${now} WHERE seq IN (SELECT group_seq FROM group_members WHERE member_kind = ${k} AND member_seq = ${seq})`;
    const gone = await tx`DELETE FROM group_members WHERE member_kind = ${k} AND member_seq = ${seq}`;
    delta.memberships -= gone.count;
    if (kind === "Group") await this.deleteWhere(tx, delta, seq, "", [], log);
  }

  /** ResourceStore.memberPage: the cursor is the last member's (kind, seq). */
  async page(sql: Runner, groupId: string, cursor: string | undefined, limit: number): Promise<{ members: Member[]; next?: string }> {
    if (cursor !== undefined && !/^[01]:\d{1,16}$/.test(cursor)) throw new RangeError(`'${cursor}' is not a cursor that memberPage returned`);
    const [afterKind, afterSeq] = cursor ? cursor.split(":").map(Number) : [-1, -1];
    const rows = (await sql.unsafe(
      `SELECT m.member_kind AS kind, m.member_seq::float8 AS seq, coalesce(u.id, g2.id) AS value, coalesce(u.display, g2.display) AS display
         FROM group_members m
         LEFT JOIN users u ON m.member_kind = 0 AND u.seq = m.member_seq
         LEFT JOIN groups g2 ON m.member_kind = 1 AND g2.seq = m.member_seq
        WHERE m.group_seq = (SELECT g.seq FROM groups g WHERE g.id = $1) AND (m.member_kind, m.member_seq) > ($2::smallint, $3::bigint)
        ORDER BY m.group_seq, m.member_kind, m.member_seq
        LIMIT $4::int`,
      [groupId, afterKind, afterSeq, Math.max(0, limit)],
    )) as { kind: number; seq: number; value: string; display: string | null }[];
    const members = rows.map((r): Member => {
      const type = KIND_OF[r.kind]!;
      return r.display === null ? { value: r.value, type } : { value: r.value, type, display: r.display };
    });
    const last = rows[rows.length - 1];
    return limit > 0 && rows.length === limit && last ? { members, next: `${last.kind}:${last.seq}` } : { members };
  }

  /** ResourceStore.memberCount: reads the group's member rows through the primary key and stops after `atMost`. */
  async count(sql: Runner, groupId: string, atMost: number): Promise<number> {
    const limit = Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.floor(atMost)));
    const rows = (await sql.unsafe(
      `SELECT count(*)::float8 AS n FROM (SELECT 1 FROM groups g JOIN group_members m ON m.group_seq = g.seq WHERE g.id = $1 LIMIT $2::bigint) t`,
      [groupId, limit],
    )) as { n: number }[];
    return rows[0]!.n;
  }

  /** The groups a User or Group (by kind and seq) is a direct member of, in group creation order. */
  async groupsOfRow(sql: Runner, kind: ResourceKind, seq: number): Promise<GroupRef[]> {
    const rows = await sql`SELECT g.id AS value, g.display FROM group_members m JOIN groups g ON g.seq = m.group_seq WHERE m.member_kind = ${MEMBER_KIND[kind]} AND m.member_seq = ${seq} ORDER BY g.seq`;
    return (rows as { value: string; display: string | null }[]).map((r) => (r.display === null ? { value: r.value } : { value: r.value, display: r.display }));
  }

  async groupsOf(sql: Runner, memberId: string): Promise<GroupRef[]> {
    const [r] = await resolve(sql, [memberId]);
    return r && r.seq !== null && r.kind !== null ? this.groupsOfRow(sql, KIND_OF[r.kind]!, r.seq) : [];
  }
}
