/**
 * Group membership in the SQLite store: a table of (group, member) rows of integer keys, so a member
 * change touches only the rows it names, and a group's members are read page by page in key order.
 */
import { invalidValue } from "../../scim/errors";
import type { MemberChange } from "../../scim/patch";
import type { ResourceKind } from "../../scim/schema";
import type { GroupRef, Member } from "../store";
import { limitSql, type SqliteDatabase } from "./database";
import { compileMemberFilter } from "./sql-filter";

/** group_members.member_kind of each resource type (a member is (member_kind, member_seq) of that type's table). */
export const MEMBER_KIND: Record<ResourceKind, number> = { User: 0, Group: 1 };
/** The resource type of each group_members.member_kind. */
const KIND_OF: readonly ResourceKind[] = ["User", "Group"];

type MemberRef = { kind: number; seq: number; /** Known when the ref was resolved from an id. */ id?: string };

/** The ids of the members a write added and removed, for its activity entry (collected only when asked). */
export interface MemberLog {
  added: string[];
  removed: string[];
}

/**
 * The groups of the User in row `r`, as a JSON array of [id, displayName], in group creation order
 * (the order of the member index), as a column of the statement that reads the User: one read, not two.
 */
export const GROUPS_COLUMN = `(SELECT json_group_array(json_array(g.id, json_extract(g.data, '$.displayName')))
       FROM group_members gm JOIN groups g ON g.seq = gm.group_seq WHERE gm.member_kind = 0 AND gm.member_seq = r.seq) AS groups`;

export class SqliteMembership {
  constructor(private readonly d: SqliteDatabase) {}

  /** A member id as (kind, seq): a User's, else a Group's; undefined when neither has it. */
  private ref(id: string): MemberRef | undefined {
    const u = this.d.q("SELECT seq FROM users WHERE id = ?").get(id) as { seq: number } | null;
    if (u) return { kind: MEMBER_KIND.User, seq: u.seq };
    const g = this.d.q("SELECT seq FROM groups WHERE id = ?").get(id) as { seq: number } | null;
    return g ? { kind: MEMBER_KIND.Group, seq: g.seq } : undefined;
  }

  /**
   * The member rows of group `groupSeq` that `where` (over `m`) selects, with their ids (one statement,
   * the ids joined in), for the activity log: read before a statement deletes them.
   */
  private rowsWithIds(where: string, params: (string | number)[]): Required<MemberRef>[] {
    return this.d.dynamic(
      `SELECT m.member_kind AS kind, m.member_seq AS seq, coalesce(u.id, g2.id) AS id
         FROM group_members m
         LEFT JOIN users u ON m.member_kind = 0 AND u.seq = m.member_seq
         LEFT JOIN groups g2 ON m.member_kind = 1 AND g2.seq = m.member_seq
        WHERE ${where}`,
    ).all(...params) as Required<MemberRef>[];
  }

  /** Resolves each id; refuses unknown ids and a group containing itself. */
  private refs(groupSeq: number, ids: string[]): MemberRef[] {
    const refs: MemberRef[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      const ref = this.ref(id);
      if (ref) ref.id = id;
      if (!ref) missing.push(id);
      else if (ref.kind === MEMBER_KIND.Group && ref.seq === groupSeq) throw invalidValue(`a Group cannot be a member of itself ('${id}')`);
      else refs.push(ref);
    }
    if (missing.length)
      throw invalidValue(`members must be existing Users or Groups; unknown id${missing.length > 1 ? "s" : ""}: ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ` and ${missing.length - 10} more` : ""}`);
    return refs;
  }

  /** Inserts members not already there; returns how many rows were added. */
  private add(groupSeq: number, refs: MemberRef[], log?: MemberLog): number {
    const ins = this.d.q("INSERT OR IGNORE INTO group_members (group_seq, member_kind, member_seq) VALUES (?, ?, ?)");
    let added = 0;
    for (const r of refs) {
      const n = ins.run(groupSeq, r.kind, r.seq).changes;
      if (n && log) log.added.push(r.id!);
      added += n;
    }
    this.d.tally("memberships", added);
    return added;
  }

  private remove(groupSeq: number, refs: Iterable<MemberRef>, log?: MemberLog): number {
    const del = this.d.q("DELETE FROM group_members WHERE group_seq = ? AND member_kind = ? AND member_seq = ?");
    let removed = 0;
    for (const r of refs) {
      const n = del.run(groupSeq, r.kind, r.seq).changes;
      if (n && log) log.removed.push(r.id!);
      removed += n;
    }
    return this.removed(removed);
  }

  /** Deletes the member rows of group `groupSeq` that `where` (over `m`, after the group) selects; notes their ids in `log` and counts them. */
  private deleteWhere(groupSeq: number, where: string, params: (string | number)[], log?: MemberLog): number {
    const cond = `m.group_seq = ?${where ? ` AND ${where}` : ""}`;
    if (log) {
      const rows = this.rowsWithIds(cond, [groupSeq, ...params]);
      for (const r of rows) log.removed.push(r.id);
    }
    const sql = where
      ? `DELETE FROM group_members WHERE group_seq = ? AND (member_kind, member_seq) IN (SELECT m.member_kind, m.member_seq FROM group_members m WHERE ${cond})`
      : "DELETE FROM group_members WHERE group_seq = ?";
    return this.removed(this.d.dynamic(sql).run(...(where ? [groupSeq, groupSeq, ...params] : [groupSeq])).changes);
  }

  /** Counts `n` membership rows a statement deleted (StoreStats), and returns it. */
  private removed(n: number): number {
    this.d.tally("memberships", -n);
    return n;
  }

  /** Adds the members of a group just created (inside its write). Throws 400 for an unknown id. */
  addTo(groupSeq: number, ids: string[], log?: MemberLog): void {
    this.add(groupSeq, this.refs(groupSeq, ids), log);
  }

  /** Applies one membership change (inside a write); returns how many membership rows it added or removed. */
  apply(groupSeq: number, c: MemberChange, log?: MemberLog): number {
    switch (c.kind) {
      case "add":
        return this.add(groupSeq, this.refs(groupSeq, c.ids), log);
      case "remove": {
        // Removing an id that is not a member (or does not exist) changes nothing.
        const refs = c.ids.flatMap((id) => {
          const r = this.ref(id);
          return r ? [{ ...r, id }] : [];
        });
        return this.remove(groupSeq, refs, log);
      }
      case "removeAll":
        return this.deleteWhere(groupSeq, "", [], log);
      case "replace": {
        // Touch only the difference: a full push of an unchanged list writes nothing.
        const wanted = this.refs(groupSeq, c.ids);
        const key = (r: MemberRef) => r.kind * 2 ** 52 + r.seq;
        const wantedKeys = new Set(wanted.map(key));
        const current = log
          ? this.rowsWithIds("m.group_seq = ?", [groupSeq])
          : (this.d.q("SELECT member_kind AS kind, member_seq AS seq FROM group_members WHERE group_seq = ?").all(groupSeq) as MemberRef[]);
        const have = new Set(current.map(key));
        const removed = this.remove(groupSeq, current.filter((r) => !wantedKeys.has(key(r))), log);
        return removed + this.add(groupSeq, wanted.filter((r) => !have.has(key(r))), log);
      }
      case "removeWhere": {
        const f = compileMemberFilter(c.filter, "m");
        return this.deleteWhere(groupSeq, `(${f.sql})`, f.params, log);
      }
    }
  }

  /**
   * Before the resource in row `seq` of `kind` is deleted (inside its write): it leaves every group,
   * and those groups change too (a new version); a Group also drops its own members.
   */
  forget(kind: ResourceKind, seq: number, now: string, log?: MemberLog): void {
    const memberKind = MEMBER_KIND[kind];
    this.d.q("UPDATE groups SET version = version + 1, last_modified = ? WHERE seq IN (SELECT group_seq FROM group_members WHERE member_kind = ? AND member_seq = ?)").run(
      now,
      memberKind,
      seq,
    );
    this.removed(this.d.q("DELETE FROM group_members WHERE member_kind = ? AND member_seq = ?").run(memberKind, seq).changes);
    if (kind === "Group") this.deleteWhere(seq, "", [], log);
  }

  /** ResourceStore.memberPage: the cursor is the last member's (kind, seq), the key the rows are ordered by. */
  page(groupId: string, cursor: string | undefined, limit: number): { members: Member[]; next?: string } {
    const [afterKind, afterSeq] = cursor ? cursor.split(":").map(Number) : [-1, -1];
    const rows = this.d.dynamic(
      `SELECT m.member_kind AS kind, m.member_seq AS seq, coalesce(u.id, g2.id) AS value,
              CASE m.member_kind WHEN 0 THEN coalesce(json_extract(u.data, '$.displayName'), json_extract(u.data, '$.name.formatted'))
                                 ELSE json_extract(g2.data, '$.displayName') END AS display
         FROM groups g
         JOIN group_members m ON m.group_seq = g.seq
         LEFT JOIN users u ON m.member_kind = 0 AND u.seq = m.member_seq
         LEFT JOIN groups g2 ON m.member_kind = 1 AND g2.seq = m.member_seq
        WHERE g.id = ? AND (m.member_kind, m.member_seq) > (?, ?)
        ORDER BY m.member_kind, m.member_seq
        ${limitSql(limit)}`,
    ).all(groupId, afterKind ?? -1, afterSeq ?? -1) as { kind: number; seq: number; value: string; display: string | null }[];
    const members = rows.map((r): Member => {
      const type = KIND_OF[r.kind]!;
      return r.display === null ? { value: r.value, type } : { value: r.value, type, display: r.display };
    });
    const last = rows[rows.length - 1];
    return limit > 0 && rows.length === limit && last ? { members, next: `${last.kind}:${last.seq}` } : { members };
  }

  /** ResourceStore.memberCount: walks the group's rows of the primary key and stops after `atMost`. */
  count(groupId: string, atMost: number): number {
    const r = this.d.q("SELECT count(*) AS n FROM (SELECT 1 FROM groups g JOIN group_members m ON m.group_seq = g.seq WHERE g.id = ? LIMIT ?)").get(groupId, Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.floor(atMost)))) as {
      n: number;
    };
    return r.n;
  }

  /** The groups the resource in row `seq` of `kind` is a direct member of (inside a write, before it leaves them). */
  groupsOfRow(kind: ResourceKind, seq: number): GroupRef[] {
    return this.groupsOfRef(MEMBER_KIND[kind], seq);
  }

  /** The groups a User or Group is a direct member of, in group creation order. */
  groupsOf(memberId: string): GroupRef[] {
    const ref = this.ref(memberId);
    return ref ? this.groupsOfRef(ref.kind, ref.seq) : [];
  }

  private groupsOfRef(memberKind: number, seq: number): GroupRef[] {
    return this.d.q(
      "SELECT g.id AS value, json_extract(g.data, '$.displayName') AS display FROM group_members m JOIN groups g ON g.seq = m.group_seq WHERE m.member_kind = ? AND m.member_seq = ? ORDER BY g.seq",
    ).all(memberKind, seq) as GroupRef[];
  }

  /** The groups of each User row in `seqs` (a page of a search), in one statement; every seq gets a list. */
  groupsOfUsers(seqs: number[]): Map<number, GroupRef[]> {
    const bySeq = new Map<number, GroupRef[]>(seqs.map((s) => [s, []]));
    const refs = this.d.q(
      `SELECT gm.member_seq AS member, g.id AS value, json_extract(g.data, '$.displayName') AS display
         FROM group_members gm JOIN groups g ON g.seq = gm.group_seq
        WHERE gm.member_kind = 0 AND gm.member_seq IN (SELECT value FROM json_each(?)) ORDER BY g.seq`,
    ).all(JSON.stringify(seqs)) as { member: number; value: string; display: string }[];
    for (const r of refs) bySeq.get(r.member)!.push({ value: r.value, display: r.display });
    return bySeq;
  }
}
