/**
 * Filters (RFC 7644 §3.4.2.2): limit → parse (filter-parser.ts) → resolve against the schema, here,
 * into a storage-neutral tree whose comparison values are already normalised the way stored values
 * are (compare-keys.ts). Stores compile the resolved tree; `match.ts` evaluates it in memory.
 *
 * Resolution consults these quirks by name (quirks.ts): unqualifiedExtensionNames (through
 * resolveAttrPath), stringBooleans, complexFilterOnValue and qualifiedNamesInValueFilter.
 */
import type { Filter } from "scim2-parse-filter";
import { findAttr, qualifyHint, resolveAttrPath } from "./attributes";
import { canonicalDateTime, textKey } from "./compare-keys";
import { invalidFilter } from "./errors";
import { parseFilterText } from "./filter-parser";
import type { FilterOptions } from "./filter-syntax";
import { ALL_QUIRKS, type Quirks } from "./quirks";
import type { AttributeDef, ResourceTypeDef } from "./schema";

export type CompareOp = "eq" | "ne" | "co" | "sw" | "ew" | "gt" | "ge" | "lt" | "le";
export type CompareValue = string | number | boolean | null;

/**
 * What a comparison reads. At the top level: an attribute of the resource (`extension` names the
 * extension URN that holds it), optionally one sub-attribute of a singular complex attribute. Inside
 * `any`: `element` is true and `attr` is a sub-attribute of the multi-valued element.
 */
export interface Target {
  extension: string | null;
  attr: AttributeDef;
  sub?: AttributeDef;
  element?: boolean;
}

export type ResolvedFilter =
  | { kind: "and" | "or"; filters: ResolvedFilter[] }
  | { kind: "not"; filter: ResolvedFilter }
  /** `value` is normalised for comparison; `raw` is the literal as written (PATCH builds new values from it). */
  | { kind: "compare"; op: CompareOp; target: Target; value: CompareValue; raw?: CompareValue }
  | { kind: "present"; target: Target }
  /** true when at least one element of the multi-valued `attr` satisfies `filter` (same element). */
  | { kind: "any"; extension: string | null; attr: AttributeDef; filter: ResolvedFilter };

/** The attribute whose type governs a target's values. */
export function leafOf(t: Target): AttributeDef {
  return t.sub ?? t.attr;
}

function describe(t: Target): string {
  return t.sub ? `${t.attr.name}.${t.sub.name}` : t.attr.name;
}

/** Normalises a filter literal for comparison with `leaf`, refusing combinations RFC 7644 §3.4.2.2 rules out. */
function compareLiteral(t: Target, op: CompareOp, raw: CompareValue, quirks: Quirks): CompareValue {
  const a = leafOf(t);
  const name = describe(t);
  if (a.type === "complex") throw invalidFilter(`'${name}' is complex: compare one of its sub-attributes, e.g. '${name}.value'`);
  if (raw === null) {
    if (op === "eq" || op === "ne") return null;
    throw invalidFilter(`'${op}' cannot compare with null`);
  }
  switch (a.type) {
    case "boolean": {
      if (op !== "eq" && op !== "ne") throw invalidFilter(`'${op}' is not defined for boolean attribute '${name}'; use eq or ne`);
      if (typeof raw === "boolean") return raw;
      if (typeof raw === "string" && quirks.has("stringBooleans") && /^(true|false)$/i.test(raw)) return raw.toLowerCase() === "true";
      throw invalidFilter(`'${name}' is boolean: compare it with true or false`);
    }
    case "integer":
    case "decimal": {
      if (op === "co" || op === "sw" || op === "ew") throw invalidFilter(`'${op}' is not defined for numeric attribute '${name}'`);
      if (typeof raw === "number") return raw;
      throw invalidFilter(`'${name}' is numeric: compare it with a number`);
    }
    case "dateTime": {
      if (op === "co" || op === "sw" || op === "ew") throw invalidFilter(`'${op}' is not defined for dateTime attribute '${name}'`);
      const c = typeof raw === "string" ? canonicalDateTime(raw) : undefined;
      if (!c) throw invalidFilter(`'${name}' is a dateTime: compare it with a quoted xsd:dateTime such as "2024-01-31T00:00:00Z"`);
      return c;
    }
    case "binary":
      if (op !== "eq" && op !== "ne" && op !== "co" && op !== "sw" && op !== "ew") throw invalidFilter(`'${op}' is not defined for binary attribute '${name}'`);
      break;
  }
  return textKey(a, typeof raw === "string" ? raw : String(raw));
}

function checkFilterable(t: Target): void {
  const a = leafOf(t);
  if (a.returned === "never" || a.mutability === "writeOnly") throw invalidFilter(`'${describe(t)}' cannot be used in a filter`);
}

/** Parses and resolves a filter for a resource type. */
export function resolveFilter(rt: ResourceTypeDef, text: string, opts: FilterOptions = {}): ResolvedFilter {
  return resolveNode(rt, parseFilterText(text, opts), opts.quirks ?? ALL_QUIRKS);
}

function resolveTop(rt: ResourceTypeDef, path: string, quirks: Quirks): Target {
  const r = resolveAttrPath(rt, path, quirks);
  if (!r) throw invalidFilter(`unknown attribute '${path}' in filter for ${rt.name}${qualifyHint(rt, path, quirks)}`);
  return { extension: r.extension, attr: r.attr, sub: r.sub };
}

function resolveNode(rt: ResourceTypeDef, f: Filter, quirks: Quirks): ResolvedFilter {
  switch (f.op) {
    case "and":
    case "or":
      return { kind: f.op, filters: (f as { filters: Filter[] }).filters.map((x) => resolveNode(rt, x, quirks)) };
    case "not":
      return { kind: "not", filter: resolveNode(rt, (f as { filter: Filter }).filter, quirks) };
    case "[]": {
      const vp = f as { attrPath: string; valFilter: Filter };
      const t = resolveTop(rt, vp.attrPath, quirks);
      if (t.sub || t.attr.type !== "complex") throw invalidFilter(`'${vp.attrPath}[…]' needs a complex attribute before '['`);
      return valuePath(t, vp.valFilter, quirks);
    }
    case "pr": {
      const t = resolveTop(rt, (f as { attrPath: string }).attrPath, quirks);
      checkFilterable(t);
      if (t.attr.multiValued && t.sub) return { kind: "any", extension: t.extension, attr: t.attr, filter: { kind: "present", target: { extension: t.extension, attr: t.sub, element: true } } };
      return { kind: "present", target: t };
    }
    default: {
      const c = f as { op: CompareOp; attrPath: string; compValue: CompareValue };
      const t = resolveTop(rt, c.attrPath, quirks);
      checkFilterable(t);
      if (t.attr.multiValued) {
        // `emails.value eq x` and `emails eq x` both mean: some element's value matches.
        const sub = t.sub ?? findAttr(t.attr.subAttributes, "value");
        if (!sub) throw invalidFilter(`'${c.attrPath}' has no 'value' sub-attribute to compare`);
        const et: Target = { extension: t.extension, attr: sub, element: true };
        return { kind: "any", extension: t.extension, attr: t.attr, filter: { kind: "compare", op: c.op, target: et, value: compareLiteral(et, c.op, c.compValue, quirks), raw: c.compValue } };
      }
      const value = t.attr.type === "complex" && !t.sub && quirks.has("complexFilterOnValue") ? findAttr(t.attr.subAttributes, "value") : undefined;
      const ct = value ? { ...t, sub: value } : t;
      return { kind: "compare", op: c.op, target: ct, value: compareLiteral(ct, c.op, c.compValue, quirks), raw: c.compValue };
    }
  }
}

/** Resolves the filter inside `attr[…]`: names there are sub-attributes of `attr`. */
function valuePath(t: Target, inner: Filter, quirks: Quirks): ResolvedFilter {
  const resolved = resolveElementFilter(t.attr, inner, quirks);
  if (t.attr.multiValued) return { kind: "any", extension: t.extension, attr: t.attr, filter: resolved };
  // A singular complex attribute: the element is the attribute itself.
  return retarget(resolved, (et) => ({ extension: t.extension, attr: t.attr, sub: et.attr }));
}

function retarget(f: ResolvedFilter, map: (t: Target) => Target): ResolvedFilter {
  switch (f.kind) {
    case "and":
    case "or":
      return { kind: f.kind, filters: f.filters.map((x) => retarget(x, map)) };
    case "not":
      return { kind: "not", filter: retarget(f.filter, map) };
    case "compare":
    case "present":
      return { ...f, target: map(f.target) };
    case "any":
      return f;
  }
}

/** Resolves a filter whose attribute names are sub-attributes of the complex attribute `parent`. */
function resolveElementFilter(parent: AttributeDef, f: Filter, quirks: Quirks): ResolvedFilter {
  switch (f.op) {
    case "and":
    case "or":
      return { kind: f.op, filters: (f as { filters: Filter[] }).filters.map((x) => resolveElementFilter(parent, x, quirks)) };
    case "not":
      return { kind: "not", filter: resolveElementFilter(parent, (f as { filter: Filter }).filter, quirks) };
    case "[]":
      throw invalidFilter(`value filters cannot be nested inside '${parent.name}[…]'`);
    default: {
      const c = f as { op: string; attrPath: string; compValue?: CompareValue };
      let name = c.attrPath;
      if (quirks.has("qualifiedNamesInValueFilter") && name.toLowerCase().startsWith(parent.name.toLowerCase() + ".")) name = name.slice(parent.name.length + 1);
      const sub = findAttr(parent.subAttributes, name);
      if (!sub) throw invalidFilter(`'${parent.name}' has no sub-attribute '${c.attrPath}'`);
      const t: Target = { extension: null, attr: sub, element: true };
      if (c.op === "pr") return { kind: "present", target: t };
      return { kind: "compare", op: c.op as CompareOp, target: t, value: compareLiteral(t, c.op as CompareOp, c.compValue ?? null, quirks), raw: c.compValue ?? null };
    }
  }
}

/** Parses `text` as a filter over the sub-attributes of `parent` (PATCH value paths). */
export function resolveElementFilterText(parent: AttributeDef, text: string, opts: FilterOptions = {}): ResolvedFilter {
  return resolveElementFilter(parent, parseFilterText(text, opts), opts.quirks ?? ALL_QUIRKS);
}
