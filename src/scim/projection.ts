/**
 * `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes a response holds.
 * `id` and `schemas` (returned "always") are always there; `password` (returned "never") never is.
 */
import { resolveAttrPath, type ResolvedAttr } from "./attributes";
import { invalidValue } from "./errors";
import type { Resource } from "./resource";
import type { ResourceTypeDef } from "./schema";

export interface Projection {
  include?: ResolvedAttr[];
  exclude?: ResolvedAttr[];
}

export const MAX_ATTRIBUTE_LIST = 4096;

/** Parses a comma-separated attribute list for any of `types`; a name none of them knows is 400 invalidValue. */
export function parseAttributeList(types: ResourceTypeDef[], text: string | undefined, param: string): Map<ResourceTypeDef, ResolvedAttr[]> | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  if (text.length > MAX_ATTRIBUTE_LIST) throw invalidValue(`'${param}' is longer than ${MAX_ATTRIBUTE_LIST} characters`);
  const out = new Map<ResourceTypeDef, ResolvedAttr[]>(types.map((t) => [t, []]));
  for (const raw of text.split(",")) {
    const name = raw.trim();
    // `schemas` is on every resource and always returned (RFC 7643 §3): naming it changes nothing.
    if (!name || name.toLowerCase() === "schemas") continue;
    let known = false;
    for (const t of types) {
      const r = resolveAttrPath(t, name);
      if (r) {
        out.get(t)!.push(r);
        known = true;
      }
    }
    if (!known) throw invalidValue(`'${param}' names an unknown attribute '${name}'`);
  }
  return out;
}

export function projectionFor(rt: ResourceTypeDef, include?: Map<ResourceTypeDef, ResolvedAttr[]>, exclude?: Map<ResourceTypeDef, ResolvedAttr[]>): Projection {
  return { include: include?.get(rt), exclude: exclude?.get(rt) };
}

/** Whether a response under `p` contains (some of) the attribute, so the caller knows whether to load it. */
export function wants(p: Projection, extension: string | null, name: string): boolean {
  const same = (r: ResolvedAttr) => r.extension === extension && r.attr.name === name;
  if (p.include) return p.include.some(same);
  if (p.exclude) return !p.exclude.some((r) => same(r) && !r.sub);
  return true;
}

/** The "no attributes asked for" case of PATCH (RFC 7644 §3.5.2: 204 allowed). */
export function asksForAttributes(p: Projection): boolean {
  return p.include !== undefined || !!p.exclude?.length;
}

const isObject = (v: unknown): v is Resource => typeof v === "object" && v !== null && !Array.isArray(v);

/** The sub-attribute of each element, keeping each element's position ({} where it lacks one). */
function pick(value: unknown, sub: string): unknown {
  if (Array.isArray(value)) return value.filter(isObject).map((e) => (e[sub] === undefined ? {} : { [sub]: e[sub] }));
  if (isObject(value)) return value[sub] === undefined ? undefined : { [sub]: value[sub] };
  return undefined;
}

function merge(a: unknown, b: unknown): unknown {
  if (a === undefined) return b;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => ({ ...(x as Resource), ...(b[i] as Resource) }));
  if (isObject(a) && isObject(b)) return { ...a, ...b };
  return b;
}

/** Applies a projection to a full resource representation. */
export function project(full: Resource, p: Projection): Resource {
  if (p.include === undefined && !p.exclude?.length) return full;
  if (p.include !== undefined) {
    const out: Resource = { schemas: full.schemas, id: full.id };
    for (const r of p.include) {
      const src = r.extension ? (full[r.extension] as Resource | undefined) : full;
      if (!src) continue;
      const v = r.sub ? pick(src[r.attr.name], r.sub.name) : src[r.attr.name];
      if (v === undefined) continue;
      if (r.extension) {
        const ext = (out[r.extension] as Resource | undefined) ?? {};
        ext[r.attr.name] = merge(ext[r.attr.name], v);
        out[r.extension] = ext;
      } else out[r.attr.name] = merge(out[r.attr.name], v);
    }
    // Elements of multi-valued attributes that had none of the asked sub-attributes go.
    for (const [k, v] of Object.entries(out)) if (Array.isArray(v) && k !== "schemas") {
      const kept = v.filter((e) => !isObject(e) || Object.keys(e).length > 0);
      if (kept.length) out[k] = kept;
      else delete out[k];
    }
    return out;
  }
  const out: Resource = structuredClone(full);
  for (const r of p.exclude ?? []) {
    if (r.attr.returned === "always" || r.sub?.returned === "always") continue;
    const container = r.extension ? (out[r.extension] as Resource | undefined) : out;
    if (!container) continue;
    if (!r.sub) delete container[r.attr.name];
    else {
      const v = container[r.attr.name];
      if (Array.isArray(v)) for (const e of v) if (isObject(e)) delete e[r.sub.name];
      if (isObject(v)) delete v[r.sub.name];
    }
    if (r.extension && isObject(out[r.extension]) && Object.keys(out[r.extension] as Resource).length === 0) delete out[r.extension];
  }
  return out;
}
