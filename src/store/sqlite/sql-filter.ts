/**
 * Compiles a resolved SCIM filter to a SQLite WHERE clause over alias `r` (users or groups), with
 * bound parameters only. Attribute names never reach SQL text except through the schema: every
 * target is a schema attribute whose canonical name is quoted into a JSON path. Comparisons read the
 * stored search document (prepared keys: folded strings, canonical dateTimes), or an indexed column.
 * `not` treats an unknown (absent) value as false, so `not (title eq "x")` holds when title is absent.
 */
import { fold } from "../../scim/compare-keys";
import { invalidFilter, invalidValue } from "../../scim/errors";
import type { CompareOp, CompareValue, ResolvedFilter, Target } from "../../scim/filter";
import type { ResourceKind } from "../../scim/schema";

export interface SqlFragment {
  sql: string;
  params: (string | number)[];
}

type Scope = { kind: "resource" } | { kind: "json"; alias: string } | { kind: "members"; alias: string } | { kind: "groups"; alias: string };

const jsonKey = (name: string) => `"${name.replace(/"/g, '""')}"`;

function jsonPath(t: Target): string {
  const parts = [t.extension, t.attr.name, t.sub?.name].filter((x): x is string => !!x);
  return "$." + parts.map(jsonKey).join(".");
}

/** The SQL expression that reads a singular target of the resource in `r`. */
function columnFor(kind: ResourceKind, t: Target): string {
  if (!t.extension) {
    const a = t.attr.name;
    if (a === "id" && !t.sub) return "r.id";
    if (a === "externalId") return "r.external_id";
    if (a === "userName" && kind === "User") return "r.user_name_key";
    if (a === "displayName" && kind === "Group") return "r.display_name_key";
    if (a === "meta") {
      switch (t.sub?.name) {
        case "created":
          return "r.created";
        case "lastModified":
          return "r.last_modified";
        case "resourceType":
          // One constant per table: the resource type's name ("User" or "Group", never client text).
          return `'${kind}'`;
        default:
          throw invalidFilter(`'meta${t.sub ? "." + t.sub.name : ""}' cannot be used in a filter; use meta.created, meta.lastModified or meta.resourceType`);
      }
    }
  }
  return `json_extract(r.search, '${jsonPath(t)}')`;
}

function elementColumn(scope: Scope, t: Target): string {
  const name = t.attr.name;
  switch (scope.kind) {
    case "json":
      return `json_extract(${scope.alias}.value, '$.${jsonKey(name)}')`;
    case "members": {
      // A member row is (member_kind, member_seq): 0 = users.seq, 1 = groups.seq.
      const m = scope.alias;
      if (name === "value") return `(CASE ${m}.member_kind WHEN 0 THEN (SELECT u2.id FROM users u2 WHERE u2.seq = ${m}.member_seq) ELSE (SELECT g2.id FROM groups g2 WHERE g2.seq = ${m}.member_seq) END)`;
      // members.type is not caseExact: compare its folded form.
      if (name === "type") return `(CASE ${m}.member_kind WHEN 0 THEN 'user' ELSE 'group' END)`;
      // The display a Group shows for a member: displayName, else name.formatted (folded keys).
      if (name === "display")
        return `(CASE ${m}.member_kind WHEN 0 THEN (SELECT coalesce(json_extract(u2.search, '$."displayName"'), json_extract(u2.search, '$."name"."formatted"')) FROM users u2 WHERE u2.seq = ${m}.member_seq) ELSE (SELECT g2.display_name_key FROM groups g2 WHERE g2.seq = ${m}.member_seq) END)`;
      break;
    }
    case "groups":
      if (name === "value") return `${scope.alias}.id`;
      if (name === "display") return `${scope.alias}.display_name_key`;
      if (name === "type") return "'direct'";
      break;
  }
  throw invalidFilter(`'${name}' cannot be used in a filter here`);
}

const bind = (v: CompareValue): string | number => (typeof v === "boolean" ? (v ? 1 : 0) : (v as string | number));
const codePoints = (s: string) => [...s].length;

function comparison(x: string, op: CompareOp, v: CompareValue, params: (string | number)[]): string {
  if (v === null) return op === "eq" ? `(${x} IS NULL)` : `(${x} IS NOT NULL)`;
  switch (op) {
    case "eq":
      params.push(bind(v));
      return `(${x} = ?)`;
    case "ne":
      params.push(bind(v));
      return `(${x} IS NULL OR ${x} <> ?)`;
    case "co":
      params.push(String(v));
      return `(instr(${x}, ?) > 0)`;
    case "sw":
      params.push(codePoints(String(v)), String(v));
      return `(substr(${x}, 1, ?) = ?)`;
    case "ew": {
      const n = codePoints(String(v));
      if (n === 0) return `(${x} IS NOT NULL)`;
      params.push(n, -n, String(v));
      return `(length(${x}) >= ? AND substr(${x}, ?) = ?)`;
    }
    case "gt":
    case "ge":
    case "lt":
    case "le": {
      params.push(bind(v));
      const sym = { gt: ">", ge: ">=", lt: "<", le: "<=" }[op];
      return `(${x} ${sym} ?)`;
    }
  }
}

/** True when `f`, anywhere in it, asks for an element whose `value` equals a literal: the literal. */
function emailValueEq(f: ResolvedFilter): string | undefined {
  if (f.kind === "compare" && f.op === "eq" && f.target.element && f.target.attr.name === "value" && typeof f.value === "string") return f.value;
  if (f.kind === "and") for (const x of f.filters) {
    const v = emailValueEq(x);
    if (v !== undefined) return v;
  }
  return undefined;
}

export function compileFilter(kind: ResourceKind, f: ResolvedFilter): SqlFragment {
  return compile(kind, f, { kind: "resource" });
}

/** Compiles a filter over one `group_members` row aliased `alias` (PATCH `remove members[…]`). */
export function compileMemberFilter(f: ResolvedFilter, alias: string): SqlFragment {
  return compile("Group", f, { kind: "members", alias });
}

/** The operators that also look up a userName key migration 2 left in its old form. */
const LEGACY_KEY_OPS: ReadonlySet<CompareOp> = new Set(["eq", "ne", "co", "sw", "ew"]);

function compile(kind: ResourceKind, root: ResolvedFilter, rootScope: Scope): SqlFragment {
  const params: (string | number)[] = [];
  let n = 0;
  const walk = (f: ResolvedFilter, scope: Scope): string => {
    switch (f.kind) {
      case "and":
      case "or":
        return "(" + f.filters.map((x) => walk(x, scope)).join(f.kind === "and" ? " AND " : " OR ") + ")";
      case "not":
        return `(NOT coalesce(${walk(f.filter, scope)}, 0))`;
      case "present": {
        const t = f.target;
        if (scope.kind !== "resource") {
          const x = elementColumn(scope, t);
          return `(${x} IS NOT NULL AND ${x} <> '')`;
        }
        if (t.attr.multiValued && !t.sub) return presentMulti(kind, t);
        const x = columnFor(kind, t);
        return t.attr.type === "complex" && !t.sub ? `(${x} IS NOT NULL)` : `(${x} IS NOT NULL AND ${x} <> '')`;
      }
      case "compare": {
        if (scope.kind === "members" && f.target.attr.name === "value" && f.op === "eq" && typeof f.value === "string") {
          // members.value eq "<id>": find the member's key through the id indexes, not row by row.
          params.push(f.value, f.value);
          return `((${scope.alias}.member_kind, ${scope.alias}.member_seq) IN (SELECT 0, seq FROM users WHERE id = ? UNION ALL SELECT 1, seq FROM groups WHERE id = ?))`;
        }
        if (scope.kind === "resource" && kind === "User" && LEGACY_KEY_OPS.has(f.op) && !f.target.extension && !f.target.sub && f.target.attr.name === "userName" && typeof f.raw === "string" && typeof f.value === "string") {
          // Migration 2 leaves a user whose width-mapped key another user already held ("ｂｏｂ" beside
          // "bob") on its old key (NFC + lower case). A lookup written in full-width form looks that key
          // up too, so it finds both users (a conflict an IdP reports) instead of the other one alone;
          // `ne`, `co`, `sw` and `ew` read it the same way, so `ne` stays the negation of `eq`. Only such a
          // literal can reach an old key: every other key is width-mapped.
          const legacy = fold(f.raw);
          if (legacy !== f.value) {
            const both = [comparison("r.user_name_key", f.op, f.value, params), comparison("r.user_name_key", f.op, legacy, params)];
            return `(${both.join(f.op === "ne" ? " AND " : " OR ")})`;
          }
        }
        const x = scope.kind === "resource" ? columnFor(kind, f.target) : elementColumn(scope, f.target);
        return comparison(x, f.op, f.value, params);
      }
      case "any": {
        if (scope.kind !== "resource") throw invalidFilter("value filters cannot be nested");
        const alias = `e${n++}`;
        if (kind === "Group" && !f.extension && f.attr.name === "members") {
          const inner = walk(f.filter, { kind: "members", alias });
          return `EXISTS (SELECT 1 FROM group_members ${alias} WHERE ${alias}.group_seq = r.seq AND ${inner})`;
        }
        if (kind === "User" && !f.extension && f.attr.name === "groups") {
          const m = `m${n++}`;
          const inner = walk(f.filter, { kind: "groups", alias });
          return `EXISTS (SELECT 1 FROM group_members ${m} JOIN groups ${alias} ON ${alias}.seq = ${m}.group_seq WHERE ${m}.member_kind = 0 AND ${m}.member_seq = r.seq AND ${inner})`;
        }
        // Index hint: an email value compared with eq narrows through user_emails first.
        let hint = "";
        if (kind === "User" && !f.extension && f.attr.name === "emails") {
          const v = emailValueEq(f.filter);
          if (v !== undefined) {
            params.push(v);
            hint = `r.seq IN (SELECT user_seq FROM user_emails WHERE value_key = ?) AND `;
          }
        }
        const inner = walk(f.filter, { kind: "json", alias });
        return `(${hint}EXISTS (SELECT 1 FROM json_each(r.search, '${jsonPath({ extension: f.extension, attr: f.attr })}') ${alias} WHERE ${inner}))`;
      }
    }
  };
  const sql = walk(root, rootScope);
  return { sql, params };
}

function presentMulti(kind: ResourceKind, t: Target): string {
  if (kind === "Group" && t.attr.name === "members" && !t.extension) return "EXISTS (SELECT 1 FROM group_members pm WHERE pm.group_seq = r.seq)";
  if (kind === "User" && t.attr.name === "groups" && !t.extension) return "EXISTS (SELECT 1 FROM group_members pg WHERE pg.member_kind = 0 AND pg.member_seq = r.seq)";
  return `(coalesce(json_array_length(r.search, '${jsonPath(t)}'), 0) > 0)`;
}

/** ORDER BY for sortBy (RFC 7644 §3.4.2.3): unassigned values last when ascending, first when descending; ties by creation. */
export function compileOrder(kind: ResourceKind, sortBy: Target | undefined, descending: boolean): string {
  if (!sortBy) return "r.seq";
  let x: string;
  if (sortBy.attr.multiValued) {
    if ((kind === "Group" && sortBy.attr.name === "members") || (kind === "User" && sortBy.attr.name === "groups"))
      throw invalidValue(`cannot sort by '${sortBy.attr.name}'`);
    const sub = sortBy.sub?.name ?? "value";
    x = `(SELECT json_extract(s.value, '$.${jsonKey(sub)}') FROM json_each(r.search, '${jsonPath({ extension: sortBy.extension, attr: sortBy.attr })}') s ORDER BY json_extract(s.value, '$.primary') DESC, s.key LIMIT 1)`;
  } else if (sortBy.attr.type === "complex" && !sortBy.sub) {
    throw invalidValue(`cannot sort by complex attribute '${sortBy.attr.name}'; name a sub-attribute`);
  } else {
    x = columnFor(kind, sortBy);
    // meta.resourceType is one constant per list: sorting by it is creation order.
    if (x.startsWith("'")) return "r.seq";
  }
  const dir = descending ? "DESC" : "ASC";
  return `(${x} IS NULL) ${dir}, ${x} ${dir}, r.seq ${dir}`;
}
