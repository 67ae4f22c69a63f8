/**
 * Compiles a resolved SCIM filter to a PostgreSQL WHERE clause over alias `r` (users or groups), with
 * bound parameters only ($1, $2, … numbered from the `params` it is given). The same rules as the
 * SQLite compiler (src/store/sqlite/sql-filter.ts), so that a filter means the same on both engines:
 * comparisons read the stored search document (jsonb holding the keys of src/scim/compare-keys.ts:
 * folded strings, canonical dateTimes) or an indexed key column; strings compare by code point
 * (COLLATE "C", whatever the database's collation); an absent value is never true under `not`.
 * Value paths are EXISTS over jsonb_array_elements, members and groups EXISTS over group_members.
 */
import { invalidFilter, invalidValue } from "../../scim/errors";
import type { CompareOp, CompareValue, ResolvedFilter, Target } from "../../scim/filter";
import type { AttributeDef, ResourceKind } from "../../scim/schema";

export interface SqlFragment {
  sql: string;
  params: unknown[];
}

type Scope = { kind: "resource" } | { kind: "json"; alias: string } | { kind: "members"; alias: string } | { kind: "groups"; alias: string };

/** A value as SQL reads it: its text (`text`, for strings) and its jsonb (`json`, for numbers and booleans). */
interface Expr {
  text: string;
  json: string;
}

/** A jsonb path literal `'{a,b}'` of schema names (attribute names and extension URNs: no quote or brace in them, checked). */
function pathLiteral(parts: string[]): string {
  for (const p of parts) if (!/^[A-Za-z0-9:._$-]+$/.test(p)) throw invalidFilter(`'${p}' cannot be used in a filter`);
  return `'{${parts.map((p) => `"${p}"`).join(",")}}'`;
}

const pathOf = (t: { extension: string | null; attr: AttributeDef; sub?: AttributeDef }) => [t.extension, t.attr.name, t.sub?.name].filter((x): x is string => !!x);

const column = (c: string): Expr => ({ text: c, json: `to_jsonb(${c})` });
const inDoc = (doc: string, parts: string[]): Expr => {
  const p = pathLiteral(parts);
  return { text: `(${doc} #>> ${p})`, json: `(${doc} #> ${p})` };
};

/** What a singular target of the resource in `r` reads. */
function columnFor(kind: ResourceKind, t: Target): Expr {
  if (!t.extension) {
    const a = t.attr.name;
    if (a === "id" && !t.sub) return column("r.id");
    if (a === "externalId") return column("r.external_id");
    if (a === "userName" && kind === "User") return column("r.user_name_key");
    if (a === "displayName" && kind === "Group") return column("r.display_name_key");
    if (a === "meta") {
      switch (t.sub?.name) {
        case "created":
          return column("r.created");
        case "lastModified":
          return column("r.last_modified");
        case "resourceType":
          // One constant per table (the type's name, never client text).
          return column(`'${kind}'::text`);
        default:
          throw invalidFilter(`'meta${t.sub ? "." + t.sub.name : ""}' cannot be used in a filter; use meta.created, meta.lastModified or meta.resourceType`);
      }
    }
  }
  return inDoc("r.search", pathOf(t));
}

function elementColumn(scope: Scope, t: Target): Expr {
  const name = t.attr.name;
  switch (scope.kind) {
    case "json":
      return inDoc(`${scope.alias}.value`, [name]);
    case "members": {
      const m = scope.alias;
      if (name === "value") return column(`(CASE ${m}.member_kind WHEN 0 THEN (SELECT u2.id FROM users u2 WHERE u2.seq = ${m}.member_seq) ELSE (SELECT g2.id FROM groups g2 WHERE g2.seq = ${m}.member_seq) END)`);
      if (name === "type") return column(`(CASE ${m}.member_kind WHEN 0 THEN 'user' ELSE 'group' END)`);
      if (name === "display")
        return column(
          `(CASE ${m}.member_kind WHEN 0 THEN (SELECT coalesce(u2.search #>> '{displayName}', u2.search #>> '{name,formatted}') FROM users u2 WHERE u2.seq = ${m}.member_seq) ELSE (SELECT g2.display_name_key FROM groups g2 WHERE g2.seq = ${m}.member_seq) END)`,
        );
      break;
    }
    case "groups":
      if (name === "value") return column(`${scope.alias}.id`);
      if (name === "display") return column(`${scope.alias}.display_name_key`);
      if (name === "type") return column("'direct'::text");
      break;
  }
  throw invalidFilter(`'${name}' cannot be used in a filter here`);
}

const codePoints = (s: string) => [...s].length;

function comparison(x: Expr, op: CompareOp, v: CompareValue, params: unknown[]): string {
  const p = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (v === null) return op === "eq" ? `(${x.json} IS NULL)` : `(${x.json} IS NOT NULL)`;
  if (typeof v !== "string") {
    // Numbers and booleans: jsonb against jsonb (the search document holds them typed).
    const lit = `${p(JSON.stringify(v))}::text::jsonb`;
    switch (op) {
      case "eq":
        return `(${x.json} = ${lit})`;
      case "ne":
        return `(${x.json} IS NULL OR ${x.json} <> ${lit})`;
      case "gt":
      case "ge":
      case "lt":
      case "le":
        // Only against a value of the same JSON type (jsonb orders types before values).
        return `(jsonb_typeof(${x.json}) = jsonb_typeof(${lit}) AND ${x.json} ${{ gt: ">", ge: ">=", lt: "<", le: "<=" }[op]} ${lit})`;
      default:
        throw invalidFilter(`'${op}' compares strings only`);
    }
  }
  const t = `${x.text} COLLATE "C"`;
  switch (op) {
    // Equality means the same under every deterministic collation: without COLLATE, so the key columns' indexes serve it.
    case "eq":
      return `(${x.text} = ${p(v)}::text)`;
    case "ne":
      return `(${x.text} IS NULL OR ${x.text} <> ${p(v)}::text)`;
    case "co":
      return `(strpos(${x.text}, ${p(v)}::text) > 0)`;
    case "sw":
      return `(left(${x.text}, ${p(codePoints(v))}::int) = ${p(v)}::text)`;
    case "ew": {
      const n = codePoints(v);
      if (n === 0) return `(${x.text} IS NOT NULL)`;
      return `(length(${x.text}) >= ${p(n)}::int AND right(${x.text}, ${p(n)}::int) = ${p(v)}::text)`;
    }
    case "gt":
    case "ge":
    case "lt":
    case "le":
      return `(${t} ${{ gt: ">", ge: ">=", lt: "<", le: "<=" }[op]} ${p(v)}::text)`;
  }
}

/** Compiles a filter over users or groups (alias `r`); parameters are numbered after those already in `params`. */
export function compileFilter(kind: ResourceKind, f: ResolvedFilter, params: unknown[] = []): SqlFragment {
  return compile(kind, f, { kind: "resource" }, params);
}

/** Compiles a filter over one `group_members` row aliased `alias` (PATCH `remove members[…]`). */
export function compileMemberFilter(f: ResolvedFilter, alias: string, params: unknown[] = []): SqlFragment {
  return compile("Group", f, { kind: "members", alias }, params);
}

const arrayOrEmpty = (x: string) => `(CASE WHEN jsonb_typeof(${x}) = 'array' THEN ${x} ELSE '[]'::jsonb END)`;

function compile(kind: ResourceKind, root: ResolvedFilter, rootScope: Scope, params: unknown[]): SqlFragment {
  let n = 0;
  const walk = (f: ResolvedFilter, scope: Scope): string => {
    switch (f.kind) {
      case "and":
      case "or":
        return "(" + f.filters.map((x) => walk(x, scope)).join(f.kind === "and" ? " AND " : " OR ") + ")";
      case "not":
        return `(NOT coalesce(${walk(f.filter, scope)}, false))`;
      case "present": {
        const t = f.target;
        if (scope.kind !== "resource") {
          const x = elementColumn(scope, t);
          return `(${x.json} IS NOT NULL AND ${x.json} <> 'null'::jsonb AND ${x.json} <> '""'::jsonb)`;
        }
        if (t.attr.multiValued && !t.sub) return presentMulti(kind, t);
        const x = columnFor(kind, t);
        return t.attr.type === "complex" && !t.sub ? `(${x.json} IS NOT NULL)` : `(${x.json} IS NOT NULL AND ${x.json} <> '""'::jsonb)`;
      }
      case "compare": {
        if (scope.kind === "members" && f.target.attr.name === "value" && f.op === "eq" && typeof f.value === "string") {
          params.push(f.value);
          const p = `$${params.length}`;
          return `((${scope.alias}.member_kind, ${scope.alias}.member_seq) IN (SELECT 0::smallint, seq FROM users WHERE id = ${p}::text UNION ALL SELECT 1::smallint, seq FROM groups WHERE id = ${p}::text))`;
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
        const inner = walk(f.filter, { kind: "json", alias });
        const arr = inDoc("r.search", pathOf({ extension: f.extension, attr: f.attr })).json;
        return `EXISTS (SELECT 1 FROM jsonb_array_elements(${arrayOrEmpty(arr)}) ${alias} WHERE ${inner})`;
      }
    }
  };
  return { sql: walk(root, rootScope), params };
}

function presentMulti(kind: ResourceKind, t: Target): string {
  if (kind === "Group" && t.attr.name === "members" && !t.extension) return "EXISTS (SELECT 1 FROM group_members pm WHERE pm.group_seq = r.seq)";
  if (kind === "User" && t.attr.name === "groups" && !t.extension) return "EXISTS (SELECT 1 FROM group_members pg WHERE pg.member_kind = 0 AND pg.member_seq = r.seq)";
  const x = inDoc("r.search", pathOf(t)).json;
  return `(jsonb_typeof(${x}) = 'array' AND jsonb_array_length(${x}) > 0)`;
}

/** Whether an attribute's keys are compared as text (strings, dateTimes, references, binaries). */
const isText = (a: AttributeDef) => a.type !== "boolean" && a.type !== "integer" && a.type !== "decimal";

/** ORDER BY for sortBy (RFC 7644 §3.4.2.3): unassigned values last when ascending, first when descending; ties by creation. */
export function compileOrder(kind: ResourceKind, sortBy: Target | undefined, descending: boolean): string {
  if (!sortBy) return "r.seq";
  let x: string;
  if (sortBy.attr.multiValued) {
    if ((kind === "Group" && sortBy.attr.name === "members") || (kind === "User" && sortBy.attr.name === "groups")) throw invalidValue(`cannot sort by '${sortBy.attr.name}'`);
    const subName = sortBy.sub?.name ?? "value";
    const sub = sortBy.attr.subAttributes?.find((s) => s.name === subName);
    const arr = inDoc("r.search", pathOf({ extension: sortBy.extension, attr: sortBy.attr })).json;
    const el = inDoc("s.value", [subName]);
    // The primary element's value, else the first one's.
    x = `(SELECT ${sub && !isText(sub) ? el.json : `${el.text} COLLATE "C"`} FROM jsonb_array_elements(${arrayOrEmpty(arr)}) WITH ORDINALITY s(value, i) ORDER BY (s.value -> 'primary') = 'true'::jsonb DESC NULLS LAST, s.i LIMIT 1)`;
  } else if (sortBy.attr.type === "complex" && !sortBy.sub) {
    throw invalidValue(`cannot sort by complex attribute '${sortBy.attr.name}'; name a sub-attribute`);
  } else {
    const e = columnFor(kind, sortBy);
    // meta.resourceType is one constant per list: sorting by it is creation order.
    if (e.text.startsWith("'")) return "r.seq";
    x = isText(sortBy.sub ?? sortBy.attr) ? `${e.text} COLLATE "C"` : e.json;
  }
  const dir = descending ? "DESC" : "ASC";
  return `(${x} IS NULL) ${dir}, ${x} ${dir}, r.seq ${dir}`;
}
