/**
 * Attribute-name resolution, case-insensitive everywhere (RFC 7643 §2.1): plain names, dotted
 * sub-attributes and schema-URN-qualified names, for any resource type.
 */
import {
  COMMON_ATTRIBUTES,
  type AttributeDef,
  type ResourceTypeDef,
  type SchemaDef,
} from "./schema";
import { isObject } from "./json";
import type { Quirks } from "./quirks";

/** A resolved attribute: which schema holds it (`extension` is the URN key for extension attributes). */
export interface ResolvedAttr {
  /** URN of the extension that holds the attribute, or null for core and common attributes. */
  extension: string | null;
  attr: AttributeDef;
  sub?: AttributeDef;
  /** Canonical path for error messages, e.g. `name.givenName` or `urn:…:User:manager.value`. */
  path: string;
}

/** Each attribute list (schema data, never changed at run time) indexed by lower-cased name, built once. */
const byLowerName = new WeakMap<readonly AttributeDef[], Map<string, AttributeDef>>();

export function findAttr(attrs: readonly AttributeDef[] | undefined, name: string): AttributeDef | undefined {
  if (!attrs) return undefined;
  let index = byLowerName.get(attrs);
  if (!index) {
    index = new Map();
    for (const a of attrs) if (!index.has(a.name.toLowerCase())) index.set(a.name.toLowerCase(), a);
    byLowerName.set(attrs, index);
  }
  return index.get(name.toLowerCase());
}

/** A core schema's attributes followed by the common ones (id, externalId, meta), one list per schema. */
const withCommon = new WeakMap<SchemaDef, readonly AttributeDef[]>();
function coreAttributes(schema: SchemaDef): readonly AttributeDef[] {
  let list = withCommon.get(schema);
  if (!list) withCommon.set(schema, (list = [...schema.attributes, ...COMMON_ATTRIBUTES]));
  return list;
}

/** The schema (core or extension) whose URN is `urn`, compared case-insensitively. */
export function findSchema(rt: ResourceTypeDef, urn: string): { schema: SchemaDef; extension: string | null } | undefined {
  const lower = urn.toLowerCase();
  if (lowerId(rt.schema) === lower) return { schema: rt.schema, extension: null };
  for (const e of rt.extensions) if (lowerId(e.schema) === lower) return { schema: e.schema, extension: e.schema.id };
  return undefined;
}

const lowerIds = new WeakMap<SchemaDef, string>();
function lowerId(s: SchemaDef): string {
  let id = lowerIds.get(s);
  if (id === undefined) lowerIds.set(s, (id = s.id.toLowerCase()));
  return id;
}

/** Splits `urn:…:User:name.givenName` into the schema URN and the rest, when a known URN prefixes it. */
function splitUrn(rt: ResourceTypeDef, path: string): { extension: string | null; schema: SchemaDef; rest: string } | undefined {
  const lower = path.toLowerCase();
  const candidates = [{ schema: rt.schema, extension: null as string | null }, ...rt.extensions.map((e) => ({ schema: e.schema, extension: e.schema.id }))];
  for (const c of candidates) {
    const prefix = c.schema.id.toLowerCase() + ":";
    if (lower.startsWith(prefix)) return { ...c, rest: path.slice(prefix.length) };
  }
  return undefined;
}

/**
 * Resolves `attrPath` (RFC 7644 §3.10 ATTRNAME *1subAttr, optionally URN-prefixed) against a resource
 * type. Returns undefined for names the schema does not know. `quirks` (all of them when left out)
 * may hold `unqualifiedExtensionNames` (quirks.ts).
 */
export function resolveAttrPath(rt: ResourceTypeDef, attrPath: string, quirks?: Quirks): ResolvedAttr | undefined {
  const unqualified = quirks === undefined || quirks.has("unqualifiedExtensionNames");
  if (attrPath.length > MAX_CACHED_NAME) return resolveUncached(rt, attrPath, unqualified);
  let caches = resolvedNames.get(rt);
  if (!caches) resolvedNames.set(rt, (caches = [new Map(), new Map()]));
  const cache = caches[unqualified ? 1 : 0];
  const hit = cache.get(attrPath);
  if (hit !== undefined) return hit ?? undefined;
  const r = resolveUncached(rt, attrPath, unqualified);
  if (cache.size >= MAX_CACHED_NAMES) cache.clear();
  cache.set(attrPath, r ?? null);
  return r;
}

/**
 * Resolutions already made, per resource type, without and with unqualified extension names: a
 * request names the same attributes again and again (each PATCH operation, each key, each filter).
 * Bounded, since names come from clients; the results are never changed by their readers.
 */
const resolvedNames = new WeakMap<ResourceTypeDef, [Map<string, ResolvedAttr | null>, Map<string, ResolvedAttr | null>]>();
const MAX_CACHED_NAMES = 1024;
const MAX_CACHED_NAME = 200;

function resolveUncached(rt: ResourceTypeDef, attrPath: string, unqualified: boolean): ResolvedAttr | undefined {
  let extension: string | null = null;
  let schemaAttrs: readonly AttributeDef[] = coreAttributes(rt.schema);
  let rest = attrPath;
  if (/^urn:/i.test(attrPath)) {
    const split = splitUrn(rt, attrPath);
    if (!split) return undefined;
    extension = split.extension;
    schemaAttrs = extension ? split.schema.attributes : coreAttributes(split.schema);
    rest = split.rest;
  }
  const dot = rest.indexOf(".");
  const head = dot < 0 ? rest : rest.slice(0, dot);
  const tail = dot < 0 ? undefined : rest.slice(dot + 1);
  let attr = findAttr(schemaAttrs, head);
  if (!attr && extension === null && unqualified && !/^urn:/i.test(attrPath)) {
    for (const e of rt.extensions) {
      attr = findAttr(e.schema.attributes, head);
      if (attr) {
        extension = e.schema.id;
        break;
      }
    }
  }
  if (!attr) return undefined;
  const prefix = extension ? `${extension}:` : "";
  if (tail === undefined) return { extension, attr, path: prefix + attr.name };
  if (attr.type !== "complex" || tail.includes(".")) return undefined;
  const sub = findAttr(attr.subAttributes, tail);
  if (!sub) return undefined;
  return { extension, attr, sub, path: `${prefix}${attr.name}.${sub.name}` };
}

/**
 * For a 400 about a name `quirks` do not resolve: when it names an extension's attribute without
 * that extension's URN (the quirk unqualifiedExtensionNames is off), what to write instead; else "".
 */
export function qualifyHint(rt: ResourceTypeDef, name: string, quirks?: Quirks): string {
  if (quirks === undefined || quirks.has("unqualifiedExtensionNames") || /^urn:/i.test(name)) return "";
  const r = resolveAttrPath(rt, name);
  return r?.extension ? `: it is an attribute of ${r.extension}, named with that URN: '${r.extension}:${name}' (RFC 7644 §3.10)` : "";
}

/** What one key of a resource body or of a path-less PATCH value names (RFC 7643 §3, names in any case). */
export type BodyKey =
  | { kind: "schemas" }
  /** An extension's URN: its value is an object holding the extension's attributes. */
  | { kind: "extension"; urn: string; schema: SchemaDef }
  /** The core schema's URN: its value is an object holding core attributes. */
  | { kind: "core" }
  /** A plain, dotted (`name.givenName`) or URN-qualified attribute name. */
  | { kind: "attribute"; r: ResolvedAttr }
  | { kind: "unknown" };

const SCHEMAS_KEY: BodyKey = { kind: "schemas" };
const CORE_KEY: BodyKey = { kind: "core" };
const UNKNOWN_KEY: BodyKey = { kind: "unknown" };

export function classifyKey(rt: ResourceTypeDef, key: string, quirks?: Quirks): BodyKey {
  if (key.toLowerCase() === "schemas") return SCHEMAS_KEY;
  const schema = /^urn:/i.test(key) ? findSchema(rt, key) : undefined;
  if (schema) return schema.extension ? { kind: "extension", urn: schema.extension, schema: schema.schema } : CORE_KEY;
  const r = resolveAttrPath(rt, key, quirks);
  return r ? { kind: "attribute", r } : UNKNOWN_KEY;
}

/**
 * A PATCH path cut at its value filter (RFC 7644 §3.5.2: `attrPath` or `attrPath "[" valFilter "]"
 * ["." subAttr]`): the attribute path, the filter's text and what follows ']'. Undefined when a '['
 * has no ']' after it. Nothing is resolved or checked here.
 */
export function splitValuePath(path: string): { attr: string; filter?: string; after?: string } | undefined {
  const open = path.indexOf("[");
  if (open < 0) return { attr: path };
  const close = path.lastIndexOf("]");
  if (close < open) return undefined;
  return { attr: path.slice(0, open), filter: path.slice(open + 1, close), after: path.slice(close + 1) };
}

/** Reads the container object (the resource itself, or its extension object) of a resolved attribute. */
export function containerOf(resource: Record<string, unknown>, extension: string | null, create: boolean): Record<string, unknown> | undefined {
  if (!extension) return resource;
  const existing = resource[extension];
  if (isObject(existing)) return existing;
  if (!create) return undefined;
  const obj: Record<string, unknown> = {};
  resource[extension] = obj;
  return obj;
}
