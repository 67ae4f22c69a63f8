/**
 * The PATCH engine (RFC 7644 §3.5.2): a pure function from (resource, PatchOp body) to the new
 * resource plus, for Groups, the ordered membership changes the store applies as row inserts and
 * deletes. It works on a copy, so a failing operation leaves nothing changed.
 *
 * `applyPatch` reads the PatchOp message, lets the IdP quirks in force rewrite its operations
 * (quirks.ts, `rewritePatchOperations`) and applies what they return: the engine reads RFC-shaped
 * operations only. The quirks it consults by name are ignoreUnknownAttributes, the name and filter
 * quirks its paths are resolved with, and upsertThroughValueFilter.
 */
import { containerOf, findAttr, findSchema, qualifyHint, resolveAttrPath, splitValuePath, type ResolvedAttr } from "./attributes";
import { invalidPath, invalidSyntax, invalidValue, mutability, noTarget, ScimError } from "./errors";
import { resolveElementFilterText, type ResolvedFilter } from "./filter";
import { isObject, memberValue } from "./json";
import { matches } from "./match";
import { rewritePatchOperations, upsertSeed, type Quirks } from "./quirks";
import {
  assign,
  coerceAttribute,
  coerceResolved,
  keepOnePrimary,
  memberIds,
  newlyMissing,
  sameValue,
  schemasOf,
  walkAttributes,
  type Resource,
} from "./resource";
import { PATCH_OP_SCHEMA, type AttributeDef, type ResourceTypeDef } from "./schema";

export const MAX_OPERATIONS = 1000;

export type MemberChange =
  | { kind: "add"; ids: string[] }
  | { kind: "remove"; ids: string[] }
  | { kind: "removeAll" }
  | { kind: "replace"; ids: string[] }
  | { kind: "removeWhere"; filter: ResolvedFilter };

export interface PatchResult {
  resource: Resource;
  memberChanges: MemberChange[];
  /** A new cleartext password, when an operation set one; the service hashes it. */
  password?: string;
  /** False when the operations left the resource exactly as it was. */
  changed: boolean;
}

type Op = "add" | "replace" | "remove";

/** One operation of a PatchOp request, its member names read in any case; what the quirks rewrite. */
export interface PatchOperation {
  /** Its position in the request's `Operations`, for messages. */
  index: number;
  op: unknown;
  path: unknown;
  value: unknown;
  /** Whether the operation has a `value` member at all (`"value": null` has one). */
  hasValue: boolean;
}

/**
 * The result while operations are applied. `cleared` holds the elements of a stored multi-valued
 * attribute whose required sub-attribute an operation removed or cleared (`remove` of
 * `emails[type eq "work"].value`, a `replace` of it with null): only those are dropped whole
 * afterwards (dropClearedElements), never an element the client sent or one stored as it is.
 */
interface Work extends PatchResult {
  cleared: Set<Resource>;
}

/** A parsed PATCH path: an attribute (or sub-attribute), or `attr[filter]` with an optional `.sub`. */
type PatchPath =
  | { kind: "attr"; r: ResolvedAttr }
  | { kind: "filtered"; r: ResolvedAttr; filter: ResolvedFilter; sub?: AttributeDef; text: string }
  | { kind: "extension"; urn: string }
  /** A well-formed path naming an attribute scimd does not store. */
  | { kind: "unknown"; path: string };

/** attrPath (RFC 7644 §3.10): optional schema URN, attribute name, optional sub-attribute. */
const ATTR_PATH = /^(urn:[A-Za-z0-9.:_-]+:)?[A-Za-z$][\w$-]*(\.[A-Za-z$][\w$-]*)?$/;

const nonEmpty = (e: Resource) => Object.keys(e).length > 0;

/** Parses a PATCH path; `quirks` are those names and value filters are resolved with (quirks.ts). */
export function parsePatchPath(rt: ResourceTypeDef, path: string, quirks?: Quirks): PatchPath {
  const trimmed = path.trim();
  if (trimmed === "") throw invalidPath("'path' is empty");
  if (trimmed.length > 4096) throw invalidPath("'path' is longer than 4096 characters");
  const parts = splitValuePath(trimmed);
  if (!parts) throw invalidPath(`'${path}' has '[' without a closing ']'`);
  if (parts.filter === undefined) {
    const ext = findSchema(rt, trimmed);
    if (ext?.extension) return { kind: "extension", urn: ext.extension };
    const r = resolveAttrPath(rt, trimmed, quirks);
    if (!r) {
      if (ATTR_PATH.test(trimmed)) return { kind: "unknown", path: trimmed };
      throw invalidPath(`'${path}' is not a valid attribute path`);
    }
    return { kind: "attr", r };
  }
  const r = resolveAttrPath(rt, parts.attr, quirks);
  if (!r && ATTR_PATH.test(parts.attr)) return { kind: "unknown", path: trimmed };
  if (!r || r.sub || r.attr.type !== "complex" || !r.attr.multiValued)
    throw invalidPath(`'${parts.attr}' in '${path}' is not a multi-valued complex attribute of ${rt.name}`);
  const after = parts.after!;
  let sub: AttributeDef | undefined;
  if (after !== "") {
    if (!after.startsWith(".")) throw invalidPath(`unexpected '${after}' after ']' in '${path}'`);
    sub = findAttr(r.attr.subAttributes, after.slice(1));
    if (!sub) throw invalidPath(`'${r.attr.name}' has no sub-attribute '${after.slice(1)}'`);
  }
  const text = parts.filter;
  let filter: ResolvedFilter;
  try {
    filter = resolveElementFilterText(r.attr, text, { quirks });
  } catch (e) {
    if (e instanceof ScimError) throw invalidPath(`the value filter in '${path}' is invalid: ${e.detail}`);
    throw e;
  }
  return { kind: "filtered", r, filter, sub, text };
}

export interface PatchContext {
  rt: ResourceTypeDef;
  /** The IdP quirks in force (quirks.ts): ALL_QUIRKS, or NO_QUIRKS under --strict. */
  quirks: Quirks;
  /** The resource's own id (quirk ownIdEcho). */
  id?: string;
}

/** The operations of a PatchOp request body (RFC 7644 §3.5.2), their member names read in any case. */
export function readOperations(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw invalidSyntax("the PATCH body must be a JSON object with 'schemas' and 'Operations'");
  const schemas = memberValue(body, "schemas");
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === "string" && s.toLowerCase() === PATCH_OP_SCHEMA.toLowerCase()))
    throw invalidSyntax(`a PATCH body's 'schemas' must be ["${PATCH_OP_SCHEMA}"]`);
  const ops = memberValue(body, "operations");
  if (!Array.isArray(ops) || ops.length === 0) throw invalidValue("'Operations' must be a non-empty array of {op, path, value}");
  if (ops.length > MAX_OPERATIONS) throw invalidValue(`'Operations' has more than ${MAX_OPERATIONS} operations`);
  return ops.map((raw, index) => {
    if (!isObject(raw)) throw invalidSyntax(`Operations[${index}] must be an object with 'op', 'path' and 'value'`);
    const o: PatchOperation = { index, op: undefined, path: undefined, value: undefined, hasValue: false };
    for (const k of Object.keys(raw)) {
      const name = k.toLowerCase();
      if (name === "op") o.op = raw[k];
      else if (name === "path") o.path = raw[k];
      else if (name === "value") {
        o.value = raw[k];
        o.hasValue = true;
      }
    }
    return o;
  });
}

/** Applies a PatchOp request body to a copy of `current`. Throws ScimError; never mutates `current`. */
export function applyPatch(ctx: PatchContext, current: Resource, body: unknown): PatchResult {
  const operations = rewritePatchOperations(ctx, readOperations(body));
  const resource = structuredClone(current);
  const result: Work = { resource, memberChanges: [], changed: false, cleared: new Set() };
  const before = JSON.stringify(current);
  for (const { index: i, op, path: rawPath, value, hasValue } of operations) {
    if (op !== "add" && op !== "replace" && op !== "remove") throw invalidSyntax(`Operations[${i}].op must be "add", "replace" or "remove", got ${JSON.stringify(op)}`);
    if (rawPath !== undefined && rawPath !== null && typeof rawPath !== "string") throw invalidPath(`Operations[${i}].path must be a string`);
    const path = typeof rawPath === "string" && rawPath.trim() !== "" ? rawPath : undefined;
    if (op !== "remove" && !hasValue) throw invalidValue(`Operations[${i}] (${op}) needs a 'value'`);
    applyOne(ctx, result, op, path, value);
  }
  dropClearedElements(ctx.rt, resource, result.cleared);
  keepPrimaries(ctx.rt, resource);
  resource.schemas = schemasOf(ctx.rt, resource);
  refuseClearing(ctx.rt, current, resource);
  const changed = result.memberChanges.length > 0 || result.password !== undefined || JSON.stringify(resource) !== before;
  return { resource, memberChanges: result.memberChanges, ...(result.password !== undefined ? { password: result.password } : {}), changed };
}

/**
 * RFC 7644 §3.5.2.2: an attribute that "is removed or becomes unassigned and is defined as a required
 * attribute" is 400 mutability. Checked on the result of all the operations (a request may remove a
 * value and add another), so the request is refused whole and nothing of it is applied. An attribute
 * with a `createDefault` (a User's `active`) is never unassigned once set: removing it, or setting it
 * to null or "", would otherwise bring the default back and re-enable a disabled account.
 */
function refuseClearing(rt: ResourceTypeDef, before: Resource, after: Resource): void {
  for (const a of rt.schema.attributes)
    if (a.createDefault !== undefined && before[a.name] !== undefined && after[a.name] === undefined)
      throw mutability(
        `'${a.name}' cannot be removed or cleared: it takes its default (${JSON.stringify(a.createDefault)}) only when a ${rt.name} is created; send ${a.type === "boolean" ? "true or false" : "a new value"} instead`,
      );
  // A resource stored before a rule existed may already lack something; only what this PATCH removes is a mutability error.
  const missing = newlyMissing(rt, after, before);
  if (missing) {
    const [parent, sub] = missing.path.split(/\.(?=[^.:]+$)/);
    throw mutability(
      sub !== undefined && !missing.path.startsWith("urn:")
        ? `${missing.detail} (RFC 7644 §3.5.2.2): send '${sub}' with every value of '${parent}' this PATCH adds or changes`
        : `${missing.detail}; this PATCH would leave it unassigned (RFC 7644 §3.5.2.2): send a new value instead of removing or clearing it`,
    );
  }
}

/**
 * A stored element whose required sub-attribute this PATCH removed or cleared (`remove` of
 * `emails[type eq "work"].value`, or a `replace` of it with null) is removed whole: an email
 * without an address means nothing, and the client asked for the address to go. If that leaves the
 * attribute without values, refuseClearing refuses the request (emails is required). An element the
 * PATCH itself sends or creates without the sub-attribute is not dropped (it is refused as missing
 * it), and neither is an element stored without it before the rule (it stays as it is). Elements are
 * told apart by identity (`cleared`), not by their values, so an element that merely looks like a
 * cleared one is never taken for it.
 */
function dropClearedElements(rt: ResourceTypeDef, resource: Resource, cleared: Set<Resource>): void {
  if (cleared.size === 0) return;
  for (const a of rt.schema.attributes) {
    const required = a.subAttributes?.filter((sub) => sub.required);
    const list = resource[a.name];
    if (!a.multiValued || !required?.length || !Array.isArray(list)) continue;
    const kept = (list as Resource[]).filter((el) => !(cleared.has(el) && required.some((sub) => el[sub.name] === undefined)));
    if (kept.length !== list.length) assign(resource, { extension: null, attr: a, path: a.name }, kept.length ? kept : undefined);
  }
}

function keepPrimaries(rt: ResourceTypeDef, resource: Resource): void {
  for (const a of rt.schema.attributes) if (a.multiValued && Array.isArray(resource[a.name])) keepOnePrimary(resource[a.name] as Resource[]);
}

function isMembers(ctx: PatchContext, r: ResolvedAttr): boolean {
  return ctx.rt.name === "Group" && !r.extension && r.attr.name === "members";
}

function refuseReadOnly(r: ResolvedAttr): void {
  if (r.attr.mutability === "readOnly" || r.sub?.mutability === "readOnly") throw mutability(`'${r.path}' is read-only and cannot be modified`);
}

function applyOne(ctx: PatchContext, res: Work, op: Op, path: string | undefined, value: unknown): void {
  if (path === undefined) {
    if (op === "remove") throw noTarget("'remove' needs a 'path' naming what to remove");
    if (!isObject(value)) throw invalidValue(`a path-less '${op}' needs an object value naming the attributes to set`);
    walkAttributes(ctx.rt, value, ctx, (r, v) => setAttribute(ctx, res, op, r, v));
    return;
  }
  const p = parsePatchPath(ctx.rt, path, ctx.quirks);
  if (p.kind === "unknown") {
    if (!ctx.quirks.has("ignoreUnknownAttributes")) throw invalidPath(`'${p.path}' is not an attribute of ${ctx.rt.name}${qualifyHint(ctx.rt, p.path, ctx.quirks)}`);
    return;
  }
  if (p.kind === "extension") {
    if (op === "remove") {
      delete res.resource[p.urn];
      return;
    }
    if (!isObject(value)) throw invalidValue(`'${path}' takes an object holding the extension's attributes`);
    walkAttributes(ctx.rt, { [p.urn]: value }, ctx, (r, v) => setAttribute(ctx, res, op, r, v));
    return;
  }
  if (p.kind === "attr") {
    if (op === "remove") removeAttribute(ctx, res, p.r, value);
    // RFC 7644 §3.5.2.1: an add at a multi-valued attribute adds "a new value", a JSON object, or a list of them.
    else setAttribute(ctx, res, op, p.r, op === "add" && p.r.attr.multiValued && !p.r.sub && isObject(value) ? [value] : value);
    return;
  }
  applyFiltered(ctx, res, op, p, value);
}

/** add/replace of a whole attribute or a sub-attribute of a singular complex one. */
function setAttribute(ctx: PatchContext, res: PatchResult, op: Op, r: ResolvedAttr, value: unknown): void {
  if (isMembers(ctx, r) && !r.sub) {
    const ids = memberIds(value, ctx);
    res.memberChanges.push(op === "add" ? { kind: "add", ids } : { kind: "replace", ids });
    return;
  }
  refuseReadOnly(r);
  if (r.attr.mutability === "writeOnly") {
    if (value === null || value === undefined) {
      assign(res.resource, r, undefined); // clears the stored hash
      return;
    }
    if (typeof value !== "string") throw invalidValue(`'${r.path}' must be a string`);
    if (value === "") throw invalidValue(`'${r.path}' must not be empty: send null to remove it`);
    res.password = value;
    return;
  }
  const existing = containerOf(res.resource, r.extension, false)?.[r.attr.name];
  const coerced = r.sub || r.attr.type !== "complex" ? coerceResolved(r, value, ctx) : coerceAttribute(r.attr, value, r.path, ctx);
  if (coerced === undefined) {
    // Clearing a required attribute is refused once all operations are applied (refuseClearing).
    assign(res.resource, r, undefined);
    return;
  }
  if (r.sub || r.attr.type !== "complex") {
    assign(res.resource, r, coerced);
    return;
  }
  if (r.attr.multiValued) {
    const incoming = coerced as Resource[];
    if (op === "replace" || !Array.isArray(existing)) {
      assign(res.resource, r, incoming);
      return;
    }
    // add: append values not already present; a new primary clears the others.
    const list = [...(existing as Resource[])];
    for (const v of incoming) {
      if (list.some((x) => sameValue(x, v))) continue;
      list.push(v);
      if (v.primary === true) keepOnePrimary(list, v);
    }
    assign(res.resource, r, list);
    return;
  }
  // Singular complex: the given sub-attributes replace or add, the others stay (RFC 7644 §3.5.2.1, §3.5.2.3).
  assign(res.resource, r, { ...(isObject(existing) ? existing : {}), ...(coerced as Resource) });
}

function removeAttribute(ctx: PatchContext, res: PatchResult, r: ResolvedAttr, value: unknown): void {
  if (isMembers(ctx, r) && !r.sub) {
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) res.memberChanges.push({ kind: "removeAll" });
    else res.memberChanges.push({ kind: "remove", ids: memberIds(value, ctx) });
    return;
  }
  refuseReadOnly(r);
  if (r.attr.multiValued && !r.sub && value !== undefined && value !== null) {
    // Remove exactly the listed values (matched on their `value` sub-attribute when they have one).
    const existing = containerOf(res.resource, r.extension, false)?.[r.attr.name];
    if (!Array.isArray(existing)) return;
    const targets = coerceAttribute(r.attr, value, r.path, ctx, true) as Resource[] | undefined;
    if (!targets) return;
    const remaining = (existing as Resource[]).filter(
      (e) => !targets.some((t) => (t.value !== undefined ? t.value === e.value : sameValue(t, e))),
    );
    assign(res.resource, r, remaining.length ? remaining : undefined);
    return;
  }
  // Removing a required attribute is refused once all operations are applied (refuseClearing).
  if (r.sub && r.attr.multiValued) throw invalidPath(`'${r.path}' addresses every value of '${r.attr.name}': use a value filter such as '${r.attr.name}[type eq "work"].${r.sub.name}'`);
  assign(res.resource, r, undefined);
}

function applyFiltered(ctx: PatchContext, res: Work, op: Op, p: Extract<PatchPath, { kind: "filtered" }>, value: unknown): void {
  const { r, filter, sub } = p;
  if (isMembers(ctx, r)) {
    if (sub) throw invalidPath(`member sub-attributes cannot be modified; remove and add the member instead`);
    const ids = memberValueIds(filter);
    if (op === "remove") {
      res.memberChanges.push(ids ? { kind: "remove", ids } : { kind: "removeWhere", filter });
      return;
    }
    // add/replace on members[filter]: the matching members are replaced by the given one, or ones.
    res.memberChanges.push(ids ? { kind: "remove", ids } : { kind: "removeWhere", filter });
    res.memberChanges.push({ kind: "add", ids: memberIds(value === null || value === undefined || Array.isArray(value) ? value : [value], ctx) });
    return;
  }
  refuseReadOnly(sub ? { ...r, sub } : r);
  const stored = containerOf(res.resource, r.extension, false)?.[r.attr.name];
  const list = Array.isArray(stored) ? [...(stored as Resource[])] : [];
  const hits = list.filter((e) => matches(filter, e));

  if (op === "remove") {
    if (hits.length === 0) throw noTarget(`no value of '${r.attr.name}' matches [${p.text}]`);
    const remaining = sub
      ? list.map((e) => {
          if (!hits.includes(e)) return e;
          const copy = { ...e };
          delete copy[sub.name];
          if (sub.required || res.cleared.has(e)) res.cleared.add(copy);
          return copy;
        })
      : list.filter((e) => !hits.includes(e));
    const kept = remaining.filter(nonEmpty);
    assign(res.resource, r, kept.length ? kept : undefined);
    return;
  }

  let patchValue: Resource | undefined;
  if (sub) {
    const coerced = coerceResolved({ extension: r.extension, attr: { ...r.attr, multiValued: false }, sub, path: `${r.path}.${sub.name}` }, value, ctx);
    patchValue = { [sub.name]: coerced };
  } else {
    const coerced = coerceAttribute({ ...r.attr, multiValued: false }, value, `${r.path}[${p.text}]`, ctx);
    if (coerced !== undefined && !isObject(coerced)) throw invalidValue(`'${p.text}' selects values of '${r.attr.name}': the value must be an object`);
    patchValue = (coerced as Resource | undefined) ?? {};
  }

  const apply = (e: Resource): Resource => {
    const merged: Resource = { ...e };
    for (const [k, v] of Object.entries(patchValue!)) {
      if (v === undefined) delete merged[k];
      else merged[k] = v;
    }
    return merged;
  };

  if (hits.length === 0) {
    // RFC 7644 §3.5.2.3: a value filter that matches nothing is 400 noTarget.
    if (!ctx.quirks.has("upsertThroughValueFilter")) throw noTarget(`no value of '${r.attr.name}' matches [${p.text}], so '${op}' has nothing to change (RFC 7644 §3.5.2.3)`);
    const upsert = upsertSeed(filter, sub);
    if ("refused" in upsert) throw noTarget(`no value of '${r.attr.name}' matches [${p.text}], so '${op}' has nothing to change; ${upsert.refused}`);
    // The new element's values come from the filter literals: they must have the sub-attributes' types.
    const seed = coerceAttribute({ ...r.attr, multiValued: false }, upsert.seed, `${r.path}[${p.text}]`, ctx) as Resource;
    if (Object.values(patchValue).every((v) => v === undefined)) return; // clearing a value that does not exist: nothing to do
    const created = apply(seed);
    if (!matches(filter, created))
      throw noTarget(`no value of '${r.attr.name}' matches [${p.text}], and the value '${op}' would create does not match it either, so a retry would add another copy`);
    list.push(created);
    if (created.primary === true) keepOnePrimary(list, created);
    assign(res.resource, r, list);
    return;
  }
  const mapped = list.map((e) => {
    if (!hits.includes(e)) return e;
    const merged = apply(e);
    // Clearing a required sub-attribute of a stored element (null for emails[…].value) marks it for dropClearedElements.
    if (res.cleared.has(e) || Object.entries(patchValue!).some(([k, v]) => v === undefined && r.attr.subAttributes?.some((s) => s.name === k && s.required))) res.cleared.add(merged);
    return merged;
  });
  if (patchValue.primary === true) keepOnePrimary(mapped, mapped[list.indexOf(hits[hits.length - 1]!)]);
  const updated = mapped.filter(nonEmpty);
  assign(res.resource, r, updated.length ? updated : undefined);
}

/** `members[value eq "a"]` or `members[value eq "a" or value eq "b"]`: the ids, else undefined. */
function memberValueIds(f: ResolvedFilter): string[] | undefined {
  if (f.kind === "compare" && f.op === "eq" && f.target.attr.name === "value" && typeof f.raw === "string") return [f.raw];
  if (f.kind === "or") {
    const parts = f.filters.map(memberValueIds);
    if (parts.some((p) => !p)) return undefined;
    return parts.flat() as string[];
  }
  return undefined;
}
