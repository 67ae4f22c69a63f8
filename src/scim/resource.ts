/**
 * Turns a client's JSON into the canonical resource: canonical attribute names whatever case the
 * client used, nulls dropped (RFC 7643 §2.5: null means unassigned), read-only attributes ignored,
 * values checked against their attribute's type, and the product's own rules checked.
 *
 * `normalizeBody` lets the IdP quirks in force rewrite the body first (quirks.ts, `rewriteBody`);
 * the rest reads RFC-shaped JSON, and consults one quirk by name: ignoreUnknownAttributes (and the
 * name quirks attributes are resolved with).
 */
import { classifyKey, containerOf, findAttr, findSchema, qualifyHint, resolveAttrPath, type ResolvedAttr } from "./attributes";
import { canonicalDateTime } from "./compare-keys";
import { invalidSyntax, invalidValue } from "./errors";
import { isObject, memberValue, typeName } from "./json";
import { rewriteBody, type Quirks } from "./quirks";
import type { AttributeDef, ResourceTypeDef } from "./schema";
import { enforceIdentifiers } from "./username";

export type Resource = Record<string, unknown>;

export interface NormalizeOptions {
  /** The IdP quirks in force (quirks.ts): ALL_QUIRKS, or NO_QUIRKS under --strict. */
  quirks: Quirks;
}

export const MAX_USERNAME_LENGTH = 1024;
export const MAX_STRING_LENGTH = 65536;
export const MAX_MULTI_VALUES = 1000;

/** Coerces one simple value to `a`'s type, or throws 400 invalidValue naming the attribute. */
function coerceSimple(a: AttributeDef, v: unknown, path: string): unknown {
  switch (a.type) {
    case "string":
    case "reference":
    case "binary": {
      if (typeof v !== "string") throw invalidValue(`'${path}' must be a string, got ${typeName(v)}`);
      if (v.length > MAX_STRING_LENGTH) throw invalidValue(`'${path}' is longer than ${MAX_STRING_LENGTH} characters`);
      if (a.type === "binary" && !/^[A-Za-z0-9+/=\s_-]*$/.test(v)) throw invalidValue(`'${path}' must be base64-encoded`);
      return v;
    }
    case "boolean":
      if (typeof v === "boolean") return v;
      throw invalidValue(`'${path}' must be a boolean (true or false), got ${typeName(v)}`);
    case "integer":
      if (typeof v === "number" && Number.isInteger(v)) return v;
      throw invalidValue(`'${path}' must be an integer, got ${typeName(v)}`);
    case "decimal":
      if (typeof v === "number" && Number.isFinite(v)) return v;
      throw invalidValue(`'${path}' must be a number, got ${typeName(v)}`);
    case "dateTime":
      if (typeof v === "string" && canonicalDateTime(v)) return v;
      throw invalidValue(`'${path}' must be an xsd:dateTime string such as "2024-01-31T09:00:00Z"`);
    default:
      throw invalidValue(`'${path}' has an unsupported type`);
  }
}

/**
 * Coerces a complex value: sub-attribute names matched case-insensitively, nulls and read-only
 * sub-attributes dropped. Returns undefined when nothing is left.
 */
function coerceComplex(a: AttributeDef, v: unknown, path: string, opts: NormalizeOptions, keepReadOnly: boolean): Resource | undefined {
  if (!isObject(v)) throw invalidValue(`'${path}' must be an object with sub-attributes (${(a.subAttributes ?? []).map((s) => s.name).join(", ")}), got ${typeName(v)}`);
  // Sub-attributes are written in schema order, so equal values serialise equally.
  const given = new Map<AttributeDef, unknown>();
  for (const [k, raw] of Object.entries(v)) {
    const sub = findAttr(a.subAttributes, k);
    if (!sub) {
      if (!opts.quirks.has("ignoreUnknownAttributes")) throw invalidSyntax(`'${path}' has no sub-attribute '${k}'`);
      continue;
    }
    given.set(sub, raw);
  }
  const out: Resource = {};
  for (const sub of a.subAttributes ?? []) {
    const raw = given.get(sub);
    if (raw === null || raw === undefined) continue;
    if (!keepReadOnly && sub.mutability === "readOnly") continue;
    out[sub.name] = coerceSimple(sub, raw, `${path}.${sub.name}`);
  }
  return Object.keys(out).length ? out : undefined;
}

/** Coerces a value for attribute `a` (whole attribute, not a sub-attribute). Returns undefined for "unassigned". */
export function coerceAttribute(a: AttributeDef, v: unknown, path: string, opts: NormalizeOptions, keepReadOnly = false): unknown {
  if (v === null || v === undefined) return undefined;
  if (a.multiValued) {
    if (!Array.isArray(v)) throw invalidValue(`'${path}' is multi-valued: send an array of values, got ${typeName(v)}`);
    const list = v;
    if (list.length > MAX_MULTI_VALUES && a.name !== "members") throw invalidValue(`'${path}' has more than ${MAX_MULTI_VALUES} values`);
    const out: unknown[] = [];
    for (const [i, el] of list.entries()) {
      if (el === null || el === undefined) continue;
      const c = a.type === "complex" ? coerceComplex(a, el, `${path}[${i}]`, opts, keepReadOnly) : coerceSimple(a, el, `${path}[${i}]`);
      if (c !== undefined && !out.some((x) => sameValue(x, c))) out.push(c);
    }
    if (a.type === "complex") keepOnePrimary(out as Resource[]);
    return out.length ? out : undefined;
  }
  if (Array.isArray(v)) throw invalidValue(`'${path}' is single-valued: send one value, not an array`);
  if (a.type === "complex") return coerceComplex(a, v, path, opts, keepReadOnly);
  return coerceSimple(a, v, path);
}

/** Two values of a multi-valued attribute are the same when every assigned sub-attribute is equal. */
export function sameValue(x: unknown, y: unknown): boolean {
  if (!isObject(x) || !isObject(y)) return x === y;
  const kx = Object.keys(x);
  const ky = Object.keys(y);
  if (kx.length !== ky.length) return false;
  return kx.every((k) => x[k] === y[k]);
}

/** RFC 7643 §2.4: `primary: true` appears at most once; the last value marked primary keeps it. */
export function keepOnePrimary(list: Resource[], keep?: Resource): void {
  const winner = keep ?? [...list].reverse().find((e) => e.primary === true);
  if (!winner) return;
  for (const e of list) if (e !== winner && e.primary === true) e.primary = false;
}

/**
 * Writes `value` at a resolved attribute: the whole attribute, or one sub-attribute of a singular
 * complex attribute. `undefined` removes it.
 */
export function assign(resource: Resource, r: ResolvedAttr, value: unknown): void {
  const container = containerOf(resource, r.extension, value !== undefined);
  if (!container) return;
  if (!r.sub) {
    if (value === undefined) delete container[r.attr.name];
    else container[r.attr.name] = value;
  } else {
    const current = isObject(container[r.attr.name]) ? { ...(container[r.attr.name] as Resource) } : {};
    if (value === undefined) delete current[r.sub.name];
    else current[r.sub.name] = value;
    if (Object.keys(current).length) container[r.attr.name] = current;
    else delete container[r.attr.name];
  }
  if (r.extension && isObject(resource[r.extension]) && Object.keys(resource[r.extension] as Resource).length === 0) delete resource[r.extension];
}

/** Coerces a value for a resolved attribute (whole attribute or sub-attribute). */
export function coerceResolved(r: ResolvedAttr, v: unknown, opts: NormalizeOptions): unknown {
  if (!r.sub) return coerceAttribute(r.attr, v, r.path, opts);
  if (v === null || v === undefined) return undefined;
  if (r.attr.multiValued) throw invalidValue(`'${r.path}' addresses every value of '${r.attr.name}': use a value filter such as '${r.attr.name}[type eq "work"].${r.sub.name}'`);
  return coerceSimple(r.sub, v, r.path);
}

/**
 * Reads each key of a body or a path-less PATCH value (classifyKey): plain names, dotted
 * sub-attribute names, URN-qualified names, and extension objects under their URN. Calls `visit`
 * for each attribute found.
 */
export function walkAttributes(rt: ResourceTypeDef, body: Resource, opts: NormalizeOptions, visit: (r: ResolvedAttr, value: unknown) => void): void {
  for (const [key, value] of Object.entries(body)) {
    const k = classifyKey(rt, key, opts.quirks);
    switch (k.kind) {
      case "schemas":
        continue;
      case "extension": {
        if (value === null) {
          for (const a of k.schema.attributes) visit({ extension: k.urn, attr: a, path: `${k.urn}:${a.name}` }, null);
          continue;
        }
        if (!isObject(value)) throw invalidValue(`'${key}' must be an object holding the extension's attributes, got ${typeName(value)}`);
        for (const [name, v] of Object.entries(value)) {
          const r = resolveAttrPath(rt, `${k.urn}:${name}`, opts.quirks);
          if (!r) {
            if (!opts.quirks.has("ignoreUnknownAttributes")) throw invalidSyntax(`unknown attribute '${name}' in '${k.urn}'`);
            continue;
          }
          visit(r, v);
        }
        continue;
      }
      case "core":
        throw invalidSyntax(`'${key}' is the core schema's URN, not an attribute: send core attributes at the top level, or qualified as '${key}:userName'`);
      case "attribute":
        visit(k.r, value);
        continue;
      case "unknown":
        if (opts.quirks.has("ignoreUnknownAttributes")) continue;
        if (key.includes("[")) throw invalidSyntax(`'${key}' is not an attribute name of ${rt.name}: a value filter belongs in a PATCH operation's 'path'`);
        throw invalidSyntax(`unknown attribute '${key}' for ${rt.name}${qualifyHint(rt, key, opts.quirks)}`);
    }
  }
}

export interface NormalizedBody {
  resource: Resource;
  /** Group member ids in the order sent, when the body had `members`. */
  members?: string[];
  /** The cleartext password, when sent; the service hashes it before anything is stored. */
  password?: string;
}

/** Checks `schemas` (RFC 7643 §3): present, an array of strings, naming the resource's core schema. */
function checkSchemas(rt: ResourceTypeDef, body: Resource): string[] {
  const schemas = memberValue(body, "schemas");
  if (!Array.isArray(schemas) || schemas.length === 0 || !schemas.every((s) => typeof s === "string"))
    throw invalidSyntax(`'schemas' must be a non-empty array of schema URNs including "${rt.schema.id}"`);
  if (!schemas.some((s: string) => findSchema(rt, s)?.extension === null))
    throw invalidValue(`'schemas' must include "${rt.schema.id}" for a ${rt.name}; got ${JSON.stringify(schemas)}`);
  const other = schemas.find((s: string) => !findSchema(rt, s));
  if (other !== undefined)
    throw invalidValue(`'schemas' lists "${other}", which is not a schema of a ${rt.name} (RFC 7643 §3): list only ${[rt.schema.id, ...rt.extensions.map((e) => e.schema.id)].map((s) => `"${s}"`).join(" and ")}`);
  return schemas;
}

/** Normalises a POST or PUT body into the canonical resource (no id, no meta, no read-only parts). */
export function normalizeBody(rt: ResourceTypeDef, body: unknown, opts: NormalizeOptions): NormalizedBody {
  if (!isObject(body)) throw invalidSyntax(`the request body must be a JSON object, got ${typeName(body)}`);
  const sent = rewriteBody(rt, body, opts.quirks);
  checkSchemas(rt, sent);
  const resource: Resource = {};
  const out: NormalizedBody = { resource };
  walkAttributes(rt, sent, opts, (r, value) => {
    if (r.attr.name === "members" && !r.extension && rt.name === "Group" && !r.sub) {
      out.members = memberIds(value, opts);
      return;
    }
    if (r.attr.mutability === "readOnly" || r.sub?.mutability === "readOnly") return;
    const v = coerceResolved(r, value, opts);
    if (r.attr.mutability === "writeOnly") {
      if (v === "") throw invalidValue(`'${r.path}' must not be empty: leave it out or send null for no password`);
      if (typeof v === "string") out.password = v;
      return;
    }
    if (v === undefined && r.sub) {
      assign(resource, r, undefined);
      return;
    }
    assign(resource, r, v);
  });
  resource.schemas = schemasOf(rt, resource);
  return out;
}

/** `schemas` of a canonical resource (RFC 7643 §3): the core schema and each extension holding data. */
export function schemasOf(rt: ResourceTypeDef, resource: Resource): string[] {
  const schemas = [rt.schema.id];
  for (const e of rt.extensions) if (resource[e.schema.id] !== undefined) schemas.push(e.schema.id);
  return schemas;
}

/** The member ids of a `members` value (an array of objects with `value`), deduplicated, in order. */
export function memberIds(value: unknown, opts: NormalizeOptions): string[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw invalidValue(`'members' is multi-valued: send an array like [{"value": "<id>"}], got ${typeName(value)}`);
  const list = value;
  const refuseUnknown = !opts.quirks.has("ignoreUnknownAttributes");
  const seen = new Set<string>();
  const ids: string[] = [];
  for (const [i, el] of list.entries()) {
    if (el === null) continue;
    if (!isObject(el)) throw invalidValue(`'members[${i}]' must be an object like {"value": "<id>"}, got ${typeName(el)}`);
    const id = memberValue(el, "value");
    if (typeof id !== "string" || id === "") throw invalidValue(`'members[${i}].value' must be the id of a User or Group`);
    if (refuseUnknown)
      for (const k of Object.keys(el)) if (!["value", "$ref", "type", "display"].includes(k.toLowerCase())) throw invalidSyntax(`'members[${i}]' has no sub-attribute '${k}'`);
    if (!seen.has(id)) {
      seen.add(id);
      ids.push(id);
    }
  }
  return ids;
}

/** A value counts as given when it holds something: a string that is not blank, a non-empty list or object. */
function given(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "string") return v.trim() !== "";
  if (Array.isArray(v)) return v.length > 0;
  if (isObject(v)) return Object.keys(v).length > 0;
  return true;
}

/** The value at `a` or `a.b` inside one schema's container. */
function valueAtPath(container: Resource, path: string): unknown {
  const [head, sub] = path.split(".");
  const v = container[head!];
  return sub === undefined ? v : isObject(v) ? v[sub] : undefined;
}

/** A required attribute (or required sub-attribute) a resource lacks. */
export interface MissingRequired {
  /** Canonical path, e.g. `userName`, `emails.value`, `urn:…:User:employeeNumber`. */
  path: string;
  detail: string;
  /** Tells this gap from another of the same path: for a sub-attribute, the value that lacks it. */
  key: string;
}

/** Every gap of `container` in schema order; for a required sub-attribute, one per value that lacks it. */
function* missingIn(attrs: readonly AttributeDef[], container: Resource, what: string, prefix: string): Generator<MissingRequired> {
  for (const a of attrs) {
    const v = container[a.name];
    const path = prefix + a.name;
    if (a.required && !given(v)) {
      if (a.alternative === undefined)
        yield { path, key: path, detail: a.multiValued ? `'${path}' is required: a ${what} needs at least one value of it` : `'${path}' is required: a ${what} needs a non-empty value of it` };
      else if (!given(valueAtPath(container, a.alternative)))
        yield { path, key: path, detail: `'${path}' is required (or '${prefix}${a.alternative}' in its place): a ${what} needs one of them, and neither was given` };
    }
    // RFC 7643 §2.4, §7: a required sub-attribute must be in every value of its parent, whenever the parent has values.
    if (a.type !== "complex" || !given(v)) continue;
    const subs = (a.subAttributes ?? []).filter((sub) => sub.required);
    if (!subs.length) continue;
    const values = a.multiValued && Array.isArray(v) ? (v as unknown[]) : [v];
    for (const sub of subs)
      for (const [i, el] of values.entries())
        if (!isObject(el) || !given(el[sub.name]))
          yield {
            path: `${path}.${sub.name}`,
            key: `${path}.${sub.name} ${JSON.stringify(el)}`,
            detail: `'${path}.${sub.name}' is required in every value of '${path}', and ${a.multiValued ? `${path}[${i}]` : `'${path}'`} lacks it`,
          };
    // A required attribute whose values all lack a required sub-attribute (emails without any address) has no value at all.
    if (a.required && !values.some((el) => isObject(el) && subs.every((sub) => given(el[sub.name]))))
      yield { path, key: path, detail: `'${path}' is required: a ${what} needs at least one value of it with ${subs.map((sub) => `'${sub.name}'`).join(" and ")}` };
  }
}

function* allMissing(rt: ResourceTypeDef, r: Resource): Generator<MissingRequired> {
  yield* missingIn(rt.schema.attributes, r, rt.name, "");
  for (const e of rt.extensions) {
    const ext = r[e.schema.id];
    if (!isObject(ext)) {
      if (e.required) yield { path: e.schema.id, key: e.schema.id, detail: `the extension '${e.schema.id}' is required for a ${rt.name}` };
      continue;
    }
    yield* missingIn(e.schema.attributes, ext, rt.name, `${e.schema.id}:`);
  }
}

/**
 * The first attribute `/Schemas` calls required that `r` lacks: walks the schema definitions (core
 * schema, then each extension the resource carries or the resource type requires), so that what is
 * validated is exactly what discovery publishes.
 */
export function missingRequired(rt: ResourceTypeDef, r: Resource): MissingRequired | undefined {
  for (const m of allMissing(rt, r)) return m;
  return undefined;
}

/**
 * The first gap `r` has that `before` did not have: a resource stored before a rule existed keeps what
 * it already lacks (every gap of it, not only the first), and anything else it lacks is new. A value
 * lacking a required sub-attribute is new unless `before` held that same value.
 */
export function newlyMissing(rt: ResourceTypeDef, r: Resource, before: Resource): MissingRequired | undefined {
  let old: Set<string> | undefined;
  for (const m of allMissing(rt, r)) {
    old ??= new Set([...allMissing(rt, before)].map((b) => b.key));
    if (!old.has(m.key)) return m;
  }
  return undefined;
}

/**
 * The product's own rules, checked on every write's final state: the required attributes, then lengths.
 * With `stored` (the resource a PATCH changes), a required attribute that `stored` already lacked is
 * let stand: a resource written before a rule existed (the previous release stored emails without a
 * value) can still be updated and deactivated, and what the PATCH itself removes is refused by
 * patch.ts (refuseClearing) with 400 mutability. A PUT sends the whole resource: the service checks
 * its body without `stored` first.
 */
export function checkProductRules(rt: ResourceTypeDef, r: Resource, stored?: Resource): void {
  const missing = stored === undefined ? missingRequired(rt, r) : newlyMissing(rt, r, stored);
  if (missing) throw invalidValue(missing.detail);
  if (rt.name === "User") {
    const userName = r.userName;
    if (typeof userName !== "string") throw invalidValue("'userName' must be a string");
    if (userName.length > MAX_USERNAME_LENGTH) throw invalidValue(`'userName' is longer than ${MAX_USERNAME_LENGTH} characters`);
  } else {
    const dn = r.displayName;
    if (typeof dn !== "string") throw invalidValue("'displayName' must be a string");
    if (dn.length > MAX_USERNAME_LENGTH) throw invalidValue(`'displayName' is longer than ${MAX_USERNAME_LENGTH} characters`);
  }
}

/**
 * The product's rules, then the resource in canonical key order (schemas, externalId, the core
 * attributes in schema order, the extensions, the password hash), so that the same content always
 * serialises to the same text and a PUT or PATCH that changes nothing is recognised as such.
 *
 * `stored` is the resource a PUT or PATCH replaces: an attribute with a `createDefault` (a User's
 * `active`) that `r` leaves out keeps its stored value; only at creation (no `stored`) does it take
 * the default. The identifier rules (username.ts) run first: a userName is width-mapped in `r`, and
 * one unchanged from `stored` is not checked again (users stored before the rules stay writable).
 */
export function finalizeResource(rt: ResourceTypeDef, r: Resource, stored?: Resource): Resource {
  enforceIdentifiers(rt, r, stored);
  checkProductRules(rt, r, stored);
  const out: Resource = { schemas: schemasOf(rt, r) };
  if (r.externalId !== undefined) out.externalId = r.externalId;
  for (const a of rt.schema.attributes) {
    if (a.mutability === "writeOnly") continue;
    let v = r[a.name];
    if (v === undefined && a.createDefault !== undefined) v = stored ? stored[a.name] : a.createDefault;
    if (v !== undefined) out[a.name] = v;
  }
  for (const e of rt.extensions) {
    const ext = r[e.schema.id] as Resource | undefined;
    if (!ext) continue;
    const o: Resource = {};
    for (const a of e.schema.attributes) if (ext[a.name] !== undefined) o[a.name] = ext[a.name];
    out[e.schema.id] = o;
  }
  if (r.password !== undefined) out.password = r.password;
  return out;
}
