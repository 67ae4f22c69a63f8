/**
 * Filters (RFC 7644 §3.4.2.2): limit → parse (scim2-parse-filter's parser only) → resolve against the
 * schema into a storage-neutral tree whose comparison values are already normalised the way stored
 * values are (see `compareKey`). Stores compile the resolved tree; `match.ts` evaluates it in memory.
 */
import { parseFilter, Tokens } from "scim2-parse-filter/lib/src/parser";
import type { Filter } from "scim2-parse-filter";
import { findAttr, fold, resolveAttrPath } from "./attributes";
import { invalidFilter } from "./errors";
import { positionOfToken, scanFilter, type FilterOptions, type Token } from "./filter-syntax";
import type { AttributeDef, ResourceTypeDef } from "./schema";
import { isUserNameAttr, userNameKey } from "./username";

export { MAX_FILTER_DEPTH, type FilterOptions } from "./filter-syntax";
export const MAX_FILTER_LENGTH = 4096;

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

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/i;

/** Parses an xsd:dateTime into its canonical UTC form, or undefined. */
export function canonicalDateTime(s: string): string | undefined {
  if (!DATE_TIME.test(s)) return undefined;
  // A dateTime without a zone is read as UTC, never as the server's local time.
  const ms = Date.parse(/(Z|[+-]\d{2}:\d{2})$/i.test(s) ? s : `${s}Z`);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

/**
 * The comparable form of a stored value: folded strings unless caseExact, canonical UTC dateTimes,
 * booleans as booleans. Stored search documents hold exactly these keys, so comparisons need no
 * per-row conversion.
 */
export function compareKey(a: AttributeDef, v: unknown): CompareValue | undefined {
  if (v === null || v === undefined) return undefined;
  switch (a.type) {
    case "string":
    case "reference":
    case "binary":
      if (typeof v !== "string") return undefined;
      return a.caseExact ? v.normalize("NFC") : isUserNameAttr(a) ? userNameKey(v) : fold(v);
    case "dateTime":
      return typeof v === "string" ? (canonicalDateTime(v) ?? v) : undefined;
    case "boolean":
      return typeof v === "boolean" ? v : undefined;
    case "integer":
    case "decimal":
      return typeof v === "number" ? v : undefined;
    default:
      return undefined;
  }
}

function describe(t: Target): string {
  return t.sub ? `${t.attr.name}.${t.sub.name}` : t.attr.name;
}

/** Normalises a filter literal for comparison with `leaf`, refusing combinations RFC 7644 §3.4.2.2 rules out. */
function compareLiteral(t: Target, op: CompareOp, raw: CompareValue): CompareValue {
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
      if (typeof raw === "string" && /^(true|false)$/i.test(raw)) return raw.toLowerCase() === "true";
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
  const s = typeof raw === "string" ? raw : String(raw);
  return a.caseExact ? s.normalize("NFC") : isUserNameAttr(a) ? userNameKey(s) : fold(s);
}

function checkFilterable(t: Target): void {
  const a = leafOf(t);
  if (a.returned === "never" || a.mutability === "writeOnly") throw invalidFilter(`'${describe(t)}' cannot be used in a filter`);
}

/**
 * scim2-parse-filter turns `emails[type eq "work"].value eq "x"` into a loose AND that matches across
 * elements. Rewrite the token stream to `emails[(type eq "work") and value eq "x"]` before parsing, so
 * the condition holds within one element. (`scanFilter` has checked the grammar around '].'.)
 */
function rewriteValuePathSubAttr(tokens: Token[]): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.type === "Bracket" && t.literal === "].") {
      // The scanner has checked that a '[' is open and that 'sub-attribute operator [value]' follows.
      let open = out.length - 1;
      while (!(out[open]!.type === "Bracket" && out[open]!.literal === "[")) open--;
      const inner = out.splice(open + 1);
      const sub = tokens[i + 1]!;
      const op = tokens[i + 2]!;
      const isPresent = op.literal.toLowerCase() === "pr";
      const value = isPresent ? [] : [tokens[i + 3]!];
      out.push({ literal: "(", type: "Bracket", at: t.at }, ...inner, { literal: ")", type: "Bracket", at: t.at }, { literal: "and", type: "Word", at: t.at }, sub, op, ...value, { literal: "]", type: "Bracket", at: t.at });
      i += isPresent ? 2 : 3;
      continue;
    }
    out.push(t);
  }
  return out;
}

/**
 * The one-comparison filter an IdP sends before every create (`userName eq "…"`, `externalId eq …`,
 * `id eq …`): recognised without the general parser. Anything else goes through scim2-parse-filter;
 * a test checks that both give the same tree for these shapes.
 */
const SIMPLE_FILTER = /^\s*([A-Za-z][\w-]*(?:\.[A-Za-z][\w-]*)?|urn:[A-Za-z0-9.:_-]+:[A-Za-z][\w-]*(?:\.[A-Za-z][\w-]*)?)\s+(eq|ne|co|sw|ew|gt|ge|lt|le)\s+("(?:[^"\\]|\\.)*"|true|false|null)\s*$/i;

function parseSimple(text: string): Filter | undefined {
  const m = SIMPLE_FILTER.exec(text);
  // Bare literals must be JSON's own lower-case true/false/null, as the general parser requires.
  if (!m || (!m[3]!.startsWith('"') && m[3] !== m[3]!.toLowerCase())) return undefined;
  if (/^(not|and|or)$/i.test(m[1]!)) return undefined; // keywords are the general parser's business
  let compValue: CompareValue;
  try {
    compValue = JSON.parse(m[3]!);
  } catch {
    return undefined; // let the general parser produce its error
  }
  return { op: m[2]!.toLowerCase() as CompareOp, attrPath: m[1]!, compValue } as Filter;
}

/**
 * Parses filter text into scim2-parse-filter's AST, with limits; every failure is 400 invalidFilter
 * in scimd's words. `scanFilter` checks the grammar and reports where it breaks; the library's parser
 * then builds the tree from the checked tokens.
 */
export function parseFilterText(text: string, opts: FilterOptions = {}): Filter {
  if (text.length > MAX_FILTER_LENGTH) throw invalidFilter(`filter is longer than ${MAX_FILTER_LENGTH} characters`);
  if (text.trim() === "") throw invalidFilter("filter is empty");
  const simple = parseSimple(text);
  if (simple) return simple;
  const tokens = rewriteValuePathSubAttr(scanFilter(text, opts));
  const list = new Tokens(tokens as never);
  try {
    const ast = parseFilter(list) as Filter;
    if (list.peek().type !== "EOT") throw new Error("tokens left over");
    return ast;
  } catch {
    // The scanner accepts only what the parser does; should they ever disagree, say where, in our words.
    throw invalidFilter(`filter is not valid RFC 7644 §3.4.2.2 syntax ${positionOfToken(text, tokens, (list as unknown as { i: number }).i)}`);
  }
}

/** Parses and resolves a filter for a resource type. */
export function resolveFilter(rt: ResourceTypeDef, text: string, opts: FilterOptions = {}): ResolvedFilter {
  return resolveNode(rt, parseFilterText(text, opts));
}

function resolveTop(rt: ResourceTypeDef, path: string): Target {
  const r = resolveAttrPath(rt, path);
  if (!r) throw invalidFilter(`unknown attribute '${path}' in filter for ${rt.name}`);
  return { extension: r.extension, attr: r.attr, sub: r.sub };
}

function resolveNode(rt: ResourceTypeDef, f: Filter): ResolvedFilter {
  switch (f.op) {
    case "and":
    case "or":
      return { kind: f.op, filters: (f as { filters: Filter[] }).filters.map((x) => resolveNode(rt, x)) };
    case "not":
      return { kind: "not", filter: resolveNode(rt, (f as { filter: Filter }).filter) };
    case "[]": {
      const vp = f as { attrPath: string; valFilter: Filter };
      const t = resolveTop(rt, vp.attrPath);
      if (t.sub || t.attr.type !== "complex") throw invalidFilter(`'${vp.attrPath}[…]' needs a complex attribute before '['`);
      return valuePath(t, vp.valFilter);
    }
    case "pr": {
      const t = resolveTop(rt, (f as { attrPath: string }).attrPath);
      checkFilterable(t);
      if (t.attr.multiValued && t.sub) return { kind: "any", extension: t.extension, attr: t.attr, filter: { kind: "present", target: { extension: t.extension, attr: t.sub, element: true } } };
      return { kind: "present", target: t };
    }
    default: {
      const c = f as { op: CompareOp; attrPath: string; compValue: CompareValue };
      const t = resolveTop(rt, c.attrPath);
      checkFilterable(t);
      if (t.attr.multiValued) {
        // `emails.value eq x` and `emails eq x` both mean: some element's value matches.
        const sub = t.sub ?? findAttr(t.attr.subAttributes, "value");
        if (!sub) throw invalidFilter(`'${c.attrPath}' has no 'value' sub-attribute to compare`);
        const et: Target = { extension: t.extension, attr: sub, element: true };
        return { kind: "any", extension: t.extension, attr: t.attr, filter: { kind: "compare", op: c.op, target: et, value: compareLiteral(et, c.op, c.compValue), raw: c.compValue } };
      }
      // `manager eq "id"` (Entra ID): a singular complex attribute with a `value` compares that value.
      const ct = t.attr.type === "complex" && !t.sub && findAttr(t.attr.subAttributes, "value") ? { ...t, sub: findAttr(t.attr.subAttributes, "value") } : t;
      return { kind: "compare", op: c.op, target: ct, value: compareLiteral(ct, c.op, c.compValue), raw: c.compValue };
    }
  }
}

/** Resolves the filter inside `attr[…]`: names there are sub-attributes of `attr`. */
function valuePath(t: Target, inner: Filter): ResolvedFilter {
  const resolved = resolveElementFilter(t.attr, inner);
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
export function resolveElementFilter(parent: AttributeDef, f: Filter): ResolvedFilter {
  switch (f.op) {
    case "and":
    case "or":
      return { kind: f.op, filters: (f as { filters: Filter[] }).filters.map((x) => resolveElementFilter(parent, x)) };
    case "not":
      return { kind: "not", filter: resolveElementFilter(parent, (f as { filter: Filter }).filter) };
    case "[]":
      throw invalidFilter(`value filters cannot be nested inside '${parent.name}[…]'`);
    default: {
      const c = f as { op: string; attrPath: string; compValue?: CompareValue };
      let name = c.attrPath;
      // Tolerate a qualified name inside the brackets: `emails[emails.type eq "work"]`.
      if (name.toLowerCase().startsWith(parent.name.toLowerCase() + ".")) name = name.slice(parent.name.length + 1);
      const sub = findAttr(parent.subAttributes, name);
      if (!sub) throw invalidFilter(`'${parent.name}' has no sub-attribute '${c.attrPath}'`);
      const t: Target = { extension: null, attr: sub, element: true };
      if (c.op === "pr") return { kind: "present", target: t };
      return { kind: "compare", op: c.op as CompareOp, target: t, value: compareLiteral(t, c.op as CompareOp, c.compValue ?? null), raw: c.compValue ?? null };
    }
  }
}

/** Parses `text` as a filter over the sub-attributes of `parent` (PATCH value paths). */
export function resolveElementFilterText(parent: AttributeDef, text: string, opts: FilterOptions = {}): ResolvedFilter {
  return resolveElementFilter(parent, parseFilterText(text, opts));
}

/**
 * The search document of a resource: the same shape, every value replaced by its `compareKey`, and
 * write-only attributes left out. Stores keep it beside the resource so that filters and sorting
 * compare prepared keys instead of converting each row.
 */
export function toSearchDoc(rt: ResourceTypeDef, resource: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const walk = (attrs: readonly AttributeDef[], src: Record<string, unknown>, dst: Record<string, unknown>) => {
    for (const a of attrs) {
      const v = src[a.name];
      if (v === undefined || v === null || a.mutability === "writeOnly") continue;
      if (a.type === "complex") {
        const one = (el: unknown) => {
          if (!el || typeof el !== "object") return undefined;
          const o: Record<string, unknown> = {};
          for (const s of a.subAttributes ?? []) {
            const k = compareKey(s, (el as Record<string, unknown>)[s.name]);
            if (k !== undefined) o[s.name] = k;
          }
          return o;
        };
        dst[a.name] = Array.isArray(v) ? v.map(one).filter(Boolean) : one(v);
      } else {
        const k = Array.isArray(v) ? v.map((x) => compareKey(a, x)) : compareKey(a, v);
        if (k !== undefined) dst[a.name] = k;
      }
    }
  };
  walk(rt.schema.attributes, resource, out);
  for (const e of rt.extensions) {
    const v = resource[e.schema.id];
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      walk(e.schema.attributes, v as Record<string, unknown>, o);
      out[e.schema.id] = o;
    }
  }
  return out;
}
