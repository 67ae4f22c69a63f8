/**
 * `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes a response holds.
 * `id` and `schemas` (returned "always") are always there; `password` (returned "never") never is.
 *
 * With the quirk valueFiltersInAttributes (quirks.ts), an item may carry a value filter on a
 * multi-valued complex attribute, as Microsoft's SCIM test collection sends:
 * `attributes=emails[type eq "work"]` returns `emails` with only the elements the filter matches,
 * `emails[type eq "work"].value` only their `value`. RFC 7644 defines attribute names only here;
 * scimd reads the filter as in a PATCH path (RFC 7644 §3.5.2). In `excludedAttributes` the same item
 * leaves out the matching elements (or their sub-attribute).
 */
import { containerOf, findAttr, qualifyHint, resolveAttrPath, type ResolvedAttr } from "./attributes";
import { invalidFilter, invalidValue, ScimError } from "./errors";
import { resolveElementFilterText, type ResolvedFilter } from "./filter";
import type { FilterOptions } from "./filter-syntax";
import { isObject } from "./json";
import { matches } from "./match";
import type { Resource } from "./resource";
import type { ResourceTypeDef } from "./schema";

/** An attribute a projection names, optionally narrowed to the elements `filter` matches. */
export interface ProjectedAttr extends ResolvedAttr {
  filter?: ResolvedFilter;
}

export interface Projection {
  include?: ProjectedAttr[];
  exclude?: ProjectedAttr[];
}

export const MAX_ATTRIBUTE_LIST = 4096;

/** Splits an attribute list on the commas outside a value filter's brackets and quoted strings. */
function splitList(text: string): string[] {
  if (!text.includes("[")) return text.split(",");
  const items: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth <= 0) {
      items.push(text.slice(start, i));
      start = i + 1;
    }
  }
  items.push(text.slice(start));
  return items;
}

/** Resolves `attr[filter]` or `attr[filter].sub` for one type; undefined when the type lacks `attr`. */
function resolveFiltered(t: ResourceTypeDef, item: string, param: string, opts: FilterOptions): ProjectedAttr | undefined {
  const open = item.indexOf("[");
  const close = item.lastIndexOf("]");
  if (close < open) throw invalidFilter(`the value filter in '${param}' item '${item}' is invalid: unclosed '[' at position ${open + 1}: add ']'`);
  const r = resolveAttrPath(t, item.slice(0, open).trim(), opts.quirks);
  if (!r) return undefined;
  if (r.sub || r.attr.type !== "complex" || !r.attr.multiValued) throw invalidValue(`'${param}' item '${item}': a value filter '[…]' needs a multi-valued complex attribute such as emails, not '${r.path}'`);
  const tail = item.slice(close + 1).trim();
  let sub: ResolvedAttr["sub"];
  if (tail !== "") {
    sub = tail.startsWith(".") ? findAttr(r.attr.subAttributes, tail.slice(1)) : undefined;
    if (!sub) throw invalidValue(`'${param}' item '${item}': '${tail}' after ']' is not '.' and a sub-attribute of '${r.attr.name}'`);
  }
  const text = item.slice(open + 1, close);
  let filter: ResolvedFilter;
  try {
    filter = resolveElementFilterText(r.attr, text, opts);
  } catch (e) {
    if (e instanceof ScimError) throw invalidFilter(`the value filter '${text}' in '${param}' is invalid: ${e.detail}`);
    throw e;
  }
  return { ...r, sub, path: `${r.path}[${text}]${sub ? `.${sub.name}` : ""}`, filter };
}

/**
 * Parses a comma-separated attribute list for any of `types`; a name none of them knows is 400
 * invalidValue, an invalid value filter 400 invalidFilter.
 */
export function parseAttributeList(types: ResourceTypeDef[], text: string | undefined, param: string, opts: FilterOptions = {}): Map<ResourceTypeDef, ProjectedAttr[]> | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  if (text.length > MAX_ATTRIBUTE_LIST) throw invalidValue(`'${param}' is longer than ${MAX_ATTRIBUTE_LIST} characters`);
  const out = new Map<ResourceTypeDef, ProjectedAttr[]>(types.map((t) => [t, []]));
  for (const raw of splitList(text)) {
    const name = raw.trim();
    // `schemas` is on every resource and always returned (RFC 7643 §3): naming it changes nothing.
    if (!name || name.toLowerCase() === "schemas") continue;
    if (name.includes("[") && opts.quirks !== undefined && !opts.quirks.has("valueFiltersInAttributes"))
      throw invalidValue(`'${param}' item '${name}' is not an attribute name (RFC 7644 §3.4.2.5): name the attribute, '${name.slice(0, name.indexOf("["))}'`);
    let known = false;
    for (const t of types) {
      const r = name.includes("[") ? resolveFiltered(t, name, param, opts) : resolveAttrPath(t, name, opts.quirks);
      if (r) {
        out.get(t)!.push(r);
        known = true;
      }
    }
    if (!known) {
      const unknown = name.includes("[") ? name.slice(0, name.indexOf("[")) : name;
      throw invalidValue(`'${param}' names an unknown attribute '${unknown}'${types.map((t) => qualifyHint(t, unknown, opts.quirks)).find(Boolean) ?? ""}`);
    }
  }
  return out;
}

export function projectionFor(rt: ResourceTypeDef, include?: Map<ResourceTypeDef, ProjectedAttr[]>, exclude?: Map<ResourceTypeDef, ProjectedAttr[]>): Projection {
  return { include: include?.get(rt), exclude: exclude?.get(rt) };
}

/** Whether a response under `p` contains (some of) the attribute, so the caller knows whether to load it. */
export function wants(p: Projection, extension: string | null, name: string): boolean {
  const same = (r: ProjectedAttr) => r.extension === extension && r.attr.name === name;
  if (p.include) return p.include.some(same);
  if (p.exclude) return !p.exclude.some((r) => same(r) && !r.sub && !r.filter);
  return true;
}

/** The "no attributes asked for" case of PATCH (RFC 7644 §3.5.2: 204 allowed). */
export function asksForAttributes(p: Projection): boolean {
  return p.include !== undefined || !!p.exclude?.length;
}

/** What an include list asks of one attribute: all of it, or per element some sub-attributes. */
interface Wanted {
  extension: string | null;
  name: string;
  whole: boolean;
  parts: { filter?: ResolvedFilter; sub?: string }[];
}

/**
 * The part of `value` (an attribute's value) that `w` asks for: elements of a multi-valued attribute
 * in their order, each whole when an unfiltered or matching item names the attribute itself, else
 * with the sub-attributes the items that match it name; elements left with nothing go.
 */
function selectValue(value: unknown, w: Wanted): unknown {
  if (w.whole) return value;
  const subsOf = (e: Resource): Set<string> | "all" => {
    const subs = new Set<string>();
    for (const part of w.parts) {
      if (part.filter && !matches(part.filter, e)) continue;
      if (part.sub === undefined) return "all";
      subs.add(part.sub);
    }
    return subs;
  };
  const pickFrom = (e: Resource): Resource | undefined => {
    const subs = subsOf(e);
    if (subs === "all") return e;
    const o: Resource = {};
    for (const k of subs) if (e[k] !== undefined) o[k] = e[k];
    return Object.keys(o).length ? o : undefined;
  };
  if (Array.isArray(value)) return value.filter(isObject).map(pickFrom).filter((e) => e !== undefined);
  if (isObject(value)) return pickFrom(value);
  return undefined;
}

/** Applies a projection to a full resource representation. */
export function project(full: Resource, p: Projection): Resource {
  if (p.include === undefined && !p.exclude?.length) return full;
  if (p.include !== undefined) {
    const out: Resource = { schemas: full.schemas, id: full.id };
    const wanted = new Map<string, Wanted>();
    for (const r of p.include) {
      const key = `${r.extension ?? ""}\u0000${r.attr.name}`;
      let w = wanted.get(key);
      if (!w) wanted.set(key, (w = { extension: r.extension, name: r.attr.name, whole: false, parts: [] }));
      if (!r.sub && !r.filter) w.whole = true;
      else w.parts.push({ filter: r.filter, sub: r.sub?.name });
    }
    for (const w of wanted.values()) {
      const src = containerOf(full, w.extension, false);
      if (!src) continue;
      let v = selectValue(src[w.name], w);
      // Elements of multi-valued attributes that hold nothing asked for go, and so does an empty list.
      if (Array.isArray(v)) v = v.filter((e) => !isObject(e) || Object.keys(e).length > 0);
      if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
      containerOf(out, w.extension, true)![w.name] = v;
    }
    return out;
  }
  const out: Resource = structuredClone(full);
  for (const r of p.exclude ?? []) {
    if (r.attr.returned === "always" || r.sub?.returned === "always") continue;
    const container = containerOf(out, r.extension, false);
    if (!container) continue;
    if (r.filter) {
      // Leave out the matching elements, or their sub-attribute.
      const v = container[r.attr.name];
      if (!Array.isArray(v)) continue;
      const hit = (e: unknown) => isObject(e) && matches(r.filter!, e);
      if (!r.sub) {
        const kept = v.filter((e) => !hit(e));
        if (kept.length) container[r.attr.name] = kept;
        else delete container[r.attr.name];
      } else for (const e of v) if (hit(e)) delete (e as Resource)[r.sub.name];
    } else if (!r.sub) delete container[r.attr.name];
    else {
      const v = container[r.attr.name];
      if (Array.isArray(v)) for (const e of v) if (isObject(e)) delete e[r.sub.name];
      if (isObject(v)) delete v[r.sub.name];
    }
    if (r.extension && isObject(out[r.extension]) && Object.keys(out[r.extension] as Resource).length === 0) delete out[r.extension];
  }
  return out;
}
