/**
 * IdP quirks: every leniency scimd has for what identity providers and test collections send that
 * RFC 7643/7644 do not allow, in one list (QUIRKS below). Each entry says who sends it, and its doc
 * comment shows the wire JSON it accepts and the RFC shape that becomes.
 *
 * Most entries are rewrites run at the edge, so that the RFC code only ever sees RFC-shaped input:
 *   - "operation" quirks rewrite one PATCH operation into the operations it means;
 *   - "body" quirks rewrite a resource body: a POST or PUT body, or the value of a path-less PATCH
 *     add or replace;
 *   - "value" quirks rewrite the value a body or an operation writes at one attribute.
 * `rewritePatchOperations` (run by `applyPatch` before the engine applies anything) and `rewriteBody`
 * (run by `normalizeBody` before it reads the body) run them by kind, in that order, and within a
 * kind in the order of the list. Each has `applies`, a cheap test asked of every operation, body or
 * value (a value quirk also has `at`, asked once per attribute and request), and `rewrite`, which
 * returns what it was given when on a closer look there is nothing to change; with nothing to
 * rewrite the pass costs a few comparisons per operation or attribute, and never walks a member list.
 *
 * The "consulted" entries cannot be a rewrite of the request: the upsert depends on the stored
 * resource, unquoted filter values live inside the filter scanner, attribute names are resolved
 * where they are read. The code that needs one asks `quirks.has(name)`; the entry says where.
 *
 * A server runs with ALL_QUIRKS. `--strict` is NO_QUIRKS: every request below is then answered as the
 * RFCs say, mostly 400 with a detail naming what to send instead.
 *
 * Not in the list, because they are what the RFCs say (and so hold under --strict too): attribute
 * and message member names in any case (RFC 7643 §2.1), read-only attributes in a POST or PUT body
 * ignored (RFC 7644 §3.5.1), null as unassigned (RFC 7643 §2.5), a dateTime without a zone read as
 * UTC. Outside src/scim, and so outside this list: endpoint and query parameter names in any case
 * (src/http), and the removal of a member that is not in the group succeeding (the store applies
 * member removals as row deletes without reading the group).
 */
import { classifyKey, findAttr, findSchema, resolveAttrPath, splitValuePath } from "./attributes";
import type { ResolvedFilter } from "./filter";
import { isObject, memberKey, memberValue } from "./json";
import type { PatchOperation } from "./patch";
import type { Resource } from "./resource";
import { ENTERPRISE_USER_SCHEMA, type AttributeDef, type ResourceTypeDef } from "./schema";

export type QuirkName =
  | "opNameCase"
  | "filteredPathKeys"
  | "ownIdEcho"
  | "metaEcho"
  | "listForSingleValue"
  | "singleValueForList"
  | "managerShapes"
  | "emptyStringIsNull"
  | "stringBooleans"
  | "legacyCoreSchema"
  | "unknownSchemaUrns"
  | "coreSchemaObject"
  | "ignoreUnknownAttributes"
  | "unqualifiedExtensionNames"
  | "complexFilterOnValue"
  | "qualifiedNamesInValueFilter"
  | "valueFiltersInAttributes"
  | "unquotedFilterValues"
  | "upsertThroughValueFilter";

/** The quirks in force for a request. */
export type Quirks = ReadonlySet<QuirkName>;

/** What a PATCH rewrite knows of the request besides the operation. */
export interface QuirkContext {
  rt: ResourceTypeDef;
  quirks: Quirks;
  /** The id of the resource being patched. */
  id?: string;
}

/**
 * Where a value is written: an attribute (`sub` for one sub-attribute of it), or with `element` one
 * element of the multi-valued `attr` that a value filter selects (`emails[type eq "work"]`, or its
 * `sub`: `emails[type eq "work"].value`).
 */
export interface ValueTarget {
  extension: string | null;
  attr: AttributeDef;
  sub?: AttributeDef;
  element?: boolean;
}

export type Stage = "body" | "patch";

interface About {
  /** Who is known to send it. */
  from: string;
}

export interface OperationQuirk extends About {
  kind: "operation";
  applies(o: PatchOperation, ctx: QuirkContext): boolean;
  /** The operations that replace `o`, in order (`[o]` when nothing changes). */
  rewrite(o: PatchOperation, ctx: QuirkContext): PatchOperation[];
}

export interface ValueQuirk extends About {
  kind: "value";
  /** Whether it can apply to values written at `t` at all. */
  at(t: ValueTarget, stage: Stage): boolean;
  /** Whether it applies to `v`, written at a target `at` accepts. */
  applies(t: ValueTarget, v: unknown): boolean;
  rewrite(t: ValueTarget, v: unknown): unknown;
  /** Where else the quirk is consulted by name, if anywhere. */
  consultedBy?: string;
}

/** `stage` "body" is a POST or PUT body, "patch" the value of a path-less PATCH add or replace. */
export interface BodyQuirk extends About {
  kind: "body";
  applies(body: Resource, rt: ResourceTypeDef, stage: Stage): boolean;
  rewrite(body: Resource, rt: ResourceTypeDef): Resource;
}

export interface ConsultedQuirk extends About {
  kind: "consulted";
  /** The code that asks for it by name. */
  consultedBy: string;
}

export type Quirk = OperationQuirk | ValueQuirk | BodyQuirk | ConsultedQuirk;

const OP_NAMES = new Set(["add", "replace", "remove"]);
const LEGACY_CORE_SCHEMA = "urn:scim:schemas:core:1.0";
const BOOLEAN_TEXT = /^\s*(true|false)\s*$/i;

/** Path-less as the engine reads it: no path, null, or a blank one (a path starting with a letter is not trimmed to tell). */
const isPathless = (path: unknown) => (typeof path === "string" ? !startsWithLetter(path) && path.trim() === "" : path === undefined || path === null);
const startsWithLetter = (s: string) => {
  const c = s.charCodeAt(0) | 0x20;
  return c >= 0x61 && c <= 0x7a;
};
const isPathlessWrite = (o: PatchOperation) => (o.op === "add" || o.op === "replace") && isPathless(o.path) && isObject(o.value);
const leaf = (t: ValueTarget) => t.sub ?? t.attr;
/** A Group's `members` (no User attribute has that name). */
const isMembers = (t: ValueTarget) => t.extension === null && t.attr.name === "members";
const isEnterpriseManager = (t: ValueTarget) => t.extension === ENTERPRISE_USER_SCHEMA && t.attr.name === "manager" && !t.sub;

/** A value marked for dropping by an `eachAttribute` mapper. */
const DROP = Symbol("drop");

/** Every quirk, in the order the rewrites run. */
export const QUIRKS: Readonly<Record<QuirkName, Quirk>> = {
  /**
   * PATCH `op` names in any case, with blanks around them (RFC 7644 §3.5.2 names them in lower case):
   *
   *   {"op": "Replace", "path": "active", "value": false}   (Entra ID: "Add", "Replace", "Remove")
   *   {"op": "ADD", "path": "title", "value": "Chemist"}    (OneLogin)
   *     →  {"op": "replace", …}, {"op": "add", …}
   */
  opNameCase: {
    kind: "operation",
    from: "Entra ID, OneLogin",
    applies: (o) => typeof o.op === "string" && !OP_NAMES.has(o.op) && OP_NAMES.has(o.op.trim().toLowerCase()),
    rewrite: (o) => [{ ...o, op: (o.op as string).trim().toLowerCase() }],
  },

  /**
   * A path-less add or replace whose value has value-filter paths as keys: each such key is an
   * operation of its own, applied before the plain keys, as Entra ID means it:
   *
   *   {"op": "replace", "value": {"emails[type eq \"work\"].value": "a@x", "name.familyName": "Ortiz"}}
   *     →  {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@x"},
   *        {"op": "replace", "value": {"name.familyName": "Ortiz"}}
   */
  filteredPathKeys: {
    kind: "operation",
    from: "Entra ID",
    applies: (o) => isPathlessWrite(o) && Object.keys(o.value as Resource).some((k) => k.includes("[")),
    rewrite: (o) => {
      const out: PatchOperation[] = [];
      const rest: Resource = {};
      for (const [k, v] of Object.entries(o.value as Resource)) {
        if (k.includes("[")) out.push({ ...o, path: k, value: v, hasValue: true });
        else rest[k] = v;
      }
      if (Object.keys(rest).length) out.push({ ...o, value: rest });
      return out;
    },
  },

  /**
   * Okta renames a group with a path-less replace that echoes the group's own (read-only) id; an `id`
   * equal to the resource's own is dropped (any other id is still 400 mutability):
   *
   *   {"op": "replace", "value": {"id": "<this group's id>", "displayName": "Field Engineers EMEA"}}
   *     →  {"op": "replace", "value": {"displayName": "Field Engineers EMEA"}}
   */
  ownIdEcho: {
    kind: "operation",
    from: "Okta",
    applies: (o, ctx) => ctx.id !== undefined && isPathlessWrite(o) && someKey(ctx.rt, o.value as Resource, (k) => k.toLowerCase() === "id"),
    rewrite: (o, ctx) => [withValue(o, eachAttribute(ctx, o.value as Resource, (_t, v, key) => (key.toLowerCase() === "id" && v === ctx.id ? DROP : v)))],
  },

  /**
   * A path-less add or replace carrying the resource's (read-only) `meta`, as a client sends back a
   * resource it read; `meta` and its sub-attributes are dropped:
   *
   *   {"op": "replace", "value": {"displayName": "Ada", "meta": {"resourceType": "User", …}}}
   *     →  {"op": "replace", "value": {"displayName": "Ada"}}
   */
  metaEcho: {
    kind: "operation",
    from: "clients that send back a resource they read",
    applies: (o, ctx) => isPathlessWrite(o) && someKey(ctx.rt, o.value as Resource, (k) => /meta/i.test(k)),
    rewrite: (o, ctx) => [withValue(o, eachAttribute(ctx, o.value as Resource, (t, v) => (t.extension === null && t.attr.name === "meta" ? DROP : v)))],
  },

  /**
   * A one-element list (or an empty one) where one complex value belongs: a single-valued complex
   * attribute, or the element a value filter selects. In bodies and PATCH values:
   *
   *   "urn:…:enterprise:2.0:User": {"manager": [{"$ref": null, "value": "m1"}]}   (Entra ID)
   *     →  {"manager": {"$ref": null, "value": "m1"}}
   *   {"op": "replace", "path": "emails[type eq \"work\"]", "value": [{"value": "a@x"}]}
   *     →  {"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "a@x"}}
   *   "name": []  →  "name": null
   *
   * Not for `members[filter]`: the engine reads its value as the list of members put in place of
   * those the filter matches, so a list belongs there.
   */
  listForSingleValue: {
    kind: "value",
    from: "Entra ID",
    at: (t) => !t.sub && t.attr.type === "complex" && (!t.attr.multiValued || (t.element === true && !isMembers(t))),
    applies: (_t, v) => Array.isArray(v) && v.length <= 1,
    rewrite: (_t, v) => {
      while (Array.isArray(v) && v.length <= 1) v = v.length ? v[0] : null;
      return v;
    },
  },

  /**
   * One value, not in a list, where a multi-valued attribute's array belongs (RFC 7643 §2.4), in
   * bodies and PATCH values:
   *
   *   {"op": "replace", "path": "members", "value": {"value": "<id>"}}
   *     →  {"op": "replace", "path": "members", "value": [{"value": "<id>"}]}
   *   POST {…, "emails": {"value": "ada@example.com"}}  →  {…, "emails": [{"value": "ada@example.com"}]}
   *
   * An `add` of one object at a multi-valued attribute's path is RFC 7644 §3.5.2.1 ("a new value is
   * added to the attribute"): the engine takes it with no quirk in force.
   */
  singleValueForList: {
    kind: "value",
    from: "hand-written clients",
    at: (t) => t.attr.multiValued && !t.sub && !t.element,
    applies: (_t, v) => v !== null && v !== undefined && !Array.isArray(v),
    rewrite: (_t, v) => [v],
  },

  /**
   * The enterprise `manager` (RFC 7643 §4.3, a complex value with `value`) as a bare id, and as
   * removed by an empty one. In bodies and PATCH values:
   *
   *   {"op": "Add", "path": "urn:…:enterprise:2.0:User:manager", "value": "m1"}      (Entra ID)
   *     →  "value": {"value": "m1"}
   *   "value": "", "value": {"value": ""}, "manager": {"value": "", "displayName": " "}
   *     (Entra ID, OneLogin)  →  null: the manager is removed
   */
  managerShapes: {
    kind: "value",
    from: "Entra ID, OneLogin",
    at: isEnterpriseManager,
    applies: (_t, v) => typeof v === "string" || (isObject(v) && (memberValue(v, "value") === "" || memberValue(v, "value") === null)),
    rewrite: (_t, v) => (typeof v === "string" && v.trim() !== "" ? { value: v } : null),
  },

  /**
   * Entra ID's "null update": in a PATCH add or replace, `""` for a single-valued simple attribute or
   * sub-attribute means null (unassign it). In a POST or PUT body only a `password` of `""` is read
   * so (no password); other attributes keep the "" they are sent.
   *
   *   {"op": "Replace", "path": "title", "value": ""}  →  "value": null
   *   {"op": "replace", "path": "emails[type eq \"work\"].value", "value": ""}  →  "value": null
   *     (the work email then goes: an email without an address means nothing)
   *   POST {…, "password": ""}  →  {…, "password": null}
   */
  emptyStringIsNull: {
    kind: "value",
    from: "Entra ID",
    at: (t, stage) => (stage === "patch" ? leaf(t).type !== "complex" && !leaf(t).multiValued : t.attr.mutability === "writeOnly"),
    applies: (_t, v) => v === "",
    rewrite: () => null,
  },

  /**
   * Booleans sent as the strings "True", "False", "true", "false" (any case, blanks around), in
   * bodies and PATCH values, top-level or inside complex values:
   *
   *   {"op": "Replace", "path": "active", "value": "False"}          (Entra ID)  →  "value": false
   *   PUT {"active": "False", "emails": [{"primary": "True", …}]}    (Okta)      →  false, true
   *   POST {"active": "true"}                                        (OneLogin)  →  true
   *
   * and in filters, where filter.ts consults it by name: `roles[primary eq "True"]` (Entra ID)
   * compares with the boolean true.
   */
  stringBooleans: {
    kind: "value",
    from: "Entra ID, Okta, OneLogin",
    consultedBy: "filter.ts (comparison literals)",
    at: (t) => leaf(t).type === "boolean" || (leaf(t).type === "complex" && booleanSubs(leaf(t)).length > 0),
    applies: (t, v) => (leaf(t).type === "boolean" ? typeof v === "string" || Array.isArray(v) : typeof v === "object" && v !== null),
    rewrite: (t, v) => {
      const one = leaf(t).type === "boolean" ? booleanOf : (e: unknown) => elementBooleans(leaf(t), e);
      return Array.isArray(v) ? mapSame(v, one) : one(v);
    },
  },

  /**
   * The SCIM 1.0 core schema URN in `schemas`, for a User or a Group:
   *
   *   POST /Users {"schemas": ["urn:scim:schemas:core:1.0"], "userName": …}      (OneLogin)
   *     →  {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], …}
   */
  legacyCoreSchema: {
    kind: "body",
    from: "OneLogin",
    applies: (body, _rt, stage) => {
      const schemas = stage === "body" ? memberValue(body, "schemas") : undefined;
      return Array.isArray(schemas) && schemas.some(isLegacyCore);
    },
    rewrite: (body, rt) => {
      const key = memberKey(body, "schemas")!;
      return { ...body, [key]: (body[key] as unknown[]).map((s) => (isLegacyCore(s) ? rt.schema.id : s)) };
    },
  },

  /**
   * URNs in `schemas` that are no schema of the resource type, beside its core schema, are dropped
   * (RFC 7643 §3: `schemas` lists the schemas the representation uses):
   *
   *   POST /Groups {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
   *                 "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"], …}  (Entra ID)
   *     →  {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], …}
   *
   * Without it: 400 invalidValue naming the URN. `schemas` without the core URN is 400 either way.
   */
  unknownSchemaUrns: {
    kind: "body",
    from: "Entra ID",
    applies: (body, rt, stage) => {
      const schemas = stage === "body" ? memberValue(body, "schemas") : undefined;
      return Array.isArray(schemas) && schemas.some((s) => isSchemaOf(rt, s) === "core") && schemas.some((s) => typeof s === "string" && !isSchemaOf(rt, s));
    },
    rewrite: (body, rt) => {
      const key = memberKey(body, "schemas")!;
      return { ...body, [key]: (body[key] as unknown[]).filter((s) => typeof s !== "string" || isSchemaOf(rt, s)) };
    },
  },

  /**
   * Core attributes nested under the core schema's URN, as an extension's are under its own, in a
   * body or a path-less PATCH value: they are read as if sent at the top level (a non-object there
   * holds no attribute and is dropped):
   *
   *   {"op": "replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User": {"active": false}}}
   *     →  {"op": "replace", "value": {"active": false}}
   */
  coreSchemaObject: {
    kind: "body",
    from: "clients that treat the core schema like an extension",
    applies: (body, rt) => Object.keys(body).some((k) => isCoreKey(rt, k)),
    rewrite: (body, rt) => flattenCore(rt, body),
  },

  /**
   * Attribute and sub-attribute names the schema does not define are ignored (an IdP's attribute
   * mapping often holds one the server lacks), in bodies, PATCH paths and values, and member values:
   *
   *   POST {…, "prefferedLanguage": "de-DE", "addresses": [{"type": "work", "city": "Raccoon City"}]}
   *     (OneLogin)  →  {…, "addresses": [{"type": "work"}]}
   *   {"op": "replace", "path": "nosuch", "value": "x"}  →  nothing
   *
   * Without it: 400 invalidSyntax (bodies, values) or invalidPath (paths) naming the attribute.
   */
  ignoreUnknownAttributes: {
    kind: "consulted",
    from: "OneLogin, and any IdP mapping an attribute scimd does not have",
    consultedBy: "resource.ts (walkAttributes, coercion, member values) and patch.ts (paths)",
  },

  /**
   * An attribute name without its schema URN that only an extension has, in filters, paths, bodies,
   * `attributes` and `sortBy`:
   *
   *   GET /Users?filter=manager eq "m1"  (Entra ID)
   *     →  filter=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m1"
   */
  unqualifiedExtensionNames: {
    kind: "consulted",
    from: "Entra ID",
    consultedBy: "attributes.ts (resolveAttrPath)",
  },

  /**
   * A filter comparing a single-valued complex attribute that has a `value` sub-attribute compares
   * that value (RFC 7644 §3.4.2.2 defines this only for multi-valued attributes):
   *
   *   filter=manager eq "m1"  (Entra ID)  →  filter=manager.value eq "m1"
   *
   * Without it: 400 invalidFilter ("'manager' is complex: compare one of its sub-attributes").
   */
  complexFilterOnValue: {
    kind: "consulted",
    from: "Entra ID",
    consultedBy: "filter.ts (resolveFilter)",
  },

  /**
   * Inside a value filter, names are the sub-attributes of the attribute before '['; one written
   * qualified with that attribute's name is read as the sub-attribute:
   *
   *   emails[emails.type eq "work"]  →  emails[type eq "work"]
   */
  qualifiedNamesInValueFilter: {
    kind: "consulted",
    from: "hand-written clients",
    consultedBy: "filter.ts (resolveElementFilter)",
  },

  /**
   * `attributes` and `excludedAttributes` items with a value filter (RFC 7644 §3.4.2.5 lists attribute
   * names only), read as in a PATCH path: the attribute narrowed to the elements the filter matches:
   *
   *   GET /Users?attributes=emails[type eq "work"].value  (Microsoft's SCIM validator collection)
   *     →  each User's emails, only the work ones, only their value
   *
   * Without it: 400 invalidValue ("is not an attribute name").
   */
  valueFiltersInAttributes: {
    kind: "consulted",
    from: "Microsoft's SCIM validator collection",
    consultedBy: "projection.ts (parseAttributeList)",
  },

  /**
   * Comparison values without quotes (RFC 7644 §3.4.2.2 values are JSON): a bare value that is not
   * `true`, `false`, `null`, a number or a keyword is read as the string it spells, and as a dateTime
   * where the attribute is one; in filters, PATCH value-filter paths and `attributes` value filters:
   *
   *   filter=userName sw O  (Microsoft's SCIM validator collection)  →  filter=userName sw "O"
   *   meta.created gt 2015-10-10T14:38:21.8617979-07:00  →  … gt "2015-10-10T14:38:21.8617979-07:00"
   *
   * Without it: 400 invalidFilter ("expected a quoted value after 'sw' at position 13"), or
   * invalidPath in a PATCH path.
   */
  unquotedFilterValues: {
    kind: "consulted",
    from: "Microsoft's SCIM validator collection",
    consultedBy: "filter-syntax.ts (scanFilter)",
  },

  /**
   * Entra ID's and Okta's upsert through a value filter: add or replace of a filtered path on a
   * resource with no matching element creates the element the filter describes, where RFC 7644
   * §3.5.2.3 and §3.12 answer 400 noTarget:
   *
   *   {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada@example.com"}
   *     on {"emails": [{"type": "home", …}]}  →  appends {"type": "work", "value": "ada@example.com"}
   *   {"op": "Add", "path": "roles[primary eq \"True\"].value", "value": "approver"}
   *     on a user without roles  →  "roles": [{"primary": true, "value": "approver"}]
   *
   * It depends on the stored resource, so the PATCH engine consults it where a filter matches
   * nothing, and only where a retry stays harmless (see `upsertSeed`).
   */
  upsertThroughValueFilter: {
    kind: "consulted",
    from: "Entra ID, Okta",
    consultedBy: "patch.ts (a value filter that matches nothing)",
  },
};

export const ALL_QUIRKS: Quirks = new Set(Object.keys(QUIRKS) as QuirkName[]);
export const NO_QUIRKS: Quirks = new Set();

/** The quirks a server runs with: all of them, none under `--strict`. */
export function quirksFor(strict: boolean): Quirks {
  return strict ? NO_QUIRKS : ALL_QUIRKS;
}

type Named<K extends Quirk["kind"]> = [QuirkName, Extract<Quirk, { kind: K }>];
const ENTRIES = Object.entries(QUIRKS) as [QuirkName, Quirk][];
const OPERATION_QUIRKS = ENTRIES.filter((e): e is Named<"operation"> => e[1].kind === "operation");
const VALUE_QUIRKS = ENTRIES.filter((e): e is Named<"value"> => e[1].kind === "value");
const BODY_QUIRKS = ENTRIES.filter((e): e is Named<"body"> => e[1].kind === "body");

/**
 * The PATCH operations rewritten by the quirks in force, in order: the operation quirks, then the
 * body quirks on the value of a path-less add or replace, then the value quirks on what each
 * operation writes. The engine (patch.ts) applies the result; with no quirk in force, `ops` itself.
 */
export function rewritePatchOperations(ctx: QuirkContext, ops: PatchOperation[]): PatchOperation[] {
  const plan = planOf(ctx.quirks);
  const { opQuirks, bodyQuirks, valueQuirks } = plan;
  if (opQuirks.length === 0 && bodyQuirks.length === 0 && valueQuirks.length === 0) return ops;
  const values = valueQuirks.length ? new ValueRewriter(ctx, plan, "patch") : undefined;
  const out: PatchOperation[] = [];
  for (const o of ops) {
    let list: PatchOperation[] | undefined; // undefined while `o` is all there is
    for (const q of opQuirks) {
      if (list === undefined) {
        if (q.applies(o, ctx)) list = q.rewrite(o, ctx);
        continue;
      }
      const next: PatchOperation[] = [];
      for (const x of list) next.push(...(q.applies(x, ctx) ? q.rewrite(x, ctx) : [x]));
      list = next;
    }
    if (list === undefined) out.push(finish(o));
    else for (const x of list) out.push(finish(x));
  }
  return out;

  /** The body quirks on a path-less value, then the value quirks on what the operation writes. */
  function finish(x: PatchOperation): PatchOperation {
    if (bodyQuirks.length && isPathlessWrite(x)) x = withValue(x, rewriteObject(bodyQuirks, ctx.rt, x.value as Resource, "patch"));
    return values ? withValue(x, operationValue(ctx, values, x)) : x;
  }
}

/** A POST or PUT body rewritten by the quirks in force; the body itself when none applies. */
export function rewriteBody(rt: ResourceTypeDef, body: Resource, quirks: Quirks): Resource {
  const plan = planOf(quirks);
  const b = rewriteObject(plan.bodyQuirks, rt, body, "body");
  return plan.valueQuirks.length === 0 ? b : eachAttribute({ rt, quirks }, b, new ValueRewriter({ rt, quirks }, plan, "body").rewrite);
}

/**
 * The quirks of a set by kind, in the list's order, and the value quirks that can apply at each
 * attribute (per stage), found once per set: a server uses two sets.
 */
interface Plan {
  opQuirks: OperationQuirk[];
  bodyQuirks: BodyQuirk[];
  valueQuirks: ValueQuirk[];
  valueAt: WeakMap<AttributeDef, { body?: ValueQuirk[]; patch?: ValueQuirk[] }>;
}
const plans = new WeakMap<Quirks, Plan>();
function planOf(quirks: Quirks): Plan {
  let plan = plans.get(quirks);
  if (!plan)
    plans.set(quirks, (plan = { opQuirks: inForce(OPERATION_QUIRKS, quirks), bodyQuirks: inForce(BODY_QUIRKS, quirks), valueQuirks: inForce(VALUE_QUIRKS, quirks), valueAt: new WeakMap() }));
  return plan;
}

/**
 * The value quirks in force for one request and stage. What a PATCH path writes, and the quirks that
 * can apply there, are found once per path shape (a PATCH of 1,000 member operations resolves
 * `members` once, whatever their filters).
 */
class ValueRewriter {
  private readonly quirks: ValueQuirk[];
  private byPath?: Map<string, { t: ValueTarget; quirks: ValueQuirk[] } | { urn: string } | undefined>;

  constructor(
    readonly ctx: Pick<QuirkContext, "rt" | "quirks">,
    private readonly plan: Plan,
    private readonly stage: Stage,
  ) {
    this.quirks = plan.valueQuirks;
  }

  /** `v` rewritten for target `t` (an attribute as resolveAttrPath resolves it) by the quirks that apply. */
  readonly rewrite = (t: ValueTarget, v: unknown): unknown => {
    for (const q of this.at(t)) if (q.applies(t, v)) v = q.rewrite(t, v);
    return v;
  };

  /**
   * The quirks that can apply at `t`. Whether one can depends on the attribute (or, for a
   * sub-attribute, on the sub-attribute alone: no quirk of a whole attribute applies to one), so
   * the answer is kept per attribute definition, quirk set and stage.
   */
  private at(t: ValueTarget): ValueQuirk[] {
    if (t.element) return this.quirks.filter((q) => q.at(t, this.stage));
    const key = t.sub ?? t.attr;
    let known = this.plan.valueAt.get(key);
    if (!known) this.plan.valueAt.set(key, (known = {}));
    return (known[this.stage] ??= this.quirks.filter((q) => q.at(t, this.stage)));
  }

  /** `v` rewritten for what PATCH path `path` (trimmed) writes. */
  rewriteAtPath(path: string, v: unknown): unknown {
    const open = path.indexOf("[");
    const close = path.lastIndexOf("]");
    // The filter's text does not change what a path writes: `members[value eq "a"]` is `members[]`.
    const shape = open < 0 || close < open ? path : `${path.slice(0, open)}[]${path.slice(close + 1)}`;
    const byPath = (this.byPath ??= new Map());
    let entry = byPath.get(shape);
    if (entry === undefined && !byPath.has(shape)) {
      const t = pathTarget(this.ctx, shape);
      entry = typeof t === "string" ? { urn: t } : t && { t, quirks: this.quirks.filter((q) => q.at(t, this.stage)) };
      byPath.set(shape, entry);
    }
    if (entry === undefined) return v;
    if ("urn" in entry) return isObject(v) ? eachExtensionAttribute(this.ctx, entry.urn, v, this.rewrite) : v;
    for (const q of entry.quirks) if (q.applies(entry.t, v)) v = q.rewrite(entry.t, v);
    return v;
  }
}

function inForce<Q>(entries: [QuirkName, Q][], quirks: Quirks): Q[] {
  const out: Q[] = [];
  for (const [name, q] of entries) if (quirks.has(name)) out.push(q);
  return out;
}

function rewriteObject(quirks: BodyQuirk[], rt: ResourceTypeDef, body: Resource, stage: Stage): Resource {
  for (const q of quirks) if (q.applies(body, rt, stage)) body = q.rewrite(body, rt);
  return body;
}

function withValue(o: PatchOperation, value: unknown): PatchOperation {
  return value === o.value ? o : { ...o, value };
}

/** The value of one operation with the value quirks applied where it writes. */
function operationValue(ctx: QuirkContext, values: ValueRewriter, o: PatchOperation): unknown {
  if (!o.hasValue) return o.value;
  if (isPathless(o.path)) return isObject(o.value) ? eachAttribute(ctx, o.value, values.rewrite) : o.value;
  if (typeof o.path !== "string") return o.value;
  return values.rewriteAtPath(o.path.trim(), o.value);
}

/**
 * What a PATCH path writes, read as the engine reads it (parsePatchPath) but without parsing the
 * filter: an extension's URN (its value holds the extension's attributes), a target, or undefined
 * for a path the engine refuses or ignores.
 */
function pathTarget(ctx: QuirkContext, path: string): ValueTarget | string | undefined {
  const parts = splitValuePath(path);
  if (!parts) return undefined;
  if (parts.filter === undefined) {
    const ext = findSchema(ctx.rt, path);
    if (ext?.extension) return ext.extension;
    return resolveAttrPath(ctx.rt, path, ctx.quirks);
  }
  const r = resolveAttrPath(ctx.rt, parts.attr, ctx.quirks);
  if (!r || r.sub || r.attr.type !== "complex" || !r.attr.multiValued) return undefined;
  if (!parts.after) return { extension: r.extension, attr: r.attr, element: true };
  const sub = parts.after.startsWith(".") ? findAttr(r.attr.subAttributes, parts.after.slice(1)) : undefined;
  return sub && { extension: r.extension, attr: r.attr, sub, element: true };
}

type Mapper = (t: ValueTarget, v: unknown, key: string) => unknown;

/**
 * `obj` (a body or a path-less PATCH value) with `fn` applied to the value of each attribute it
 * names, its keys read as the normaliser reads them (classifyKey): plain, dotted and URN-qualified
 * names, extension objects, the core schema's object. A new object only where something changed.
 */
function eachAttribute(ctx: Pick<QuirkContext, "rt" | "quirks">, obj: Resource, fn: Mapper): Resource {
  let out: Resource | undefined;
  for (const [key, value] of Object.entries(obj)) {
    const k = classifyKey(ctx.rt, key, ctx.quirks);
    let next = value;
    if (k.kind === "attribute") next = fn(k.r, value, key);
    else if (k.kind === "extension" && isObject(value)) next = eachExtensionAttribute(ctx, k.urn, value, fn);
    else if (k.kind === "core" && isObject(value)) next = eachAttribute(ctx, value, fn);
    if (next === value) continue;
    out ??= { ...obj };
    if (next === DROP) delete out[key];
    else out[key] = next;
  }
  return out ?? obj;
}

/** `obj`, the object of extension `urn`, with `fn` applied to each attribute of that extension it holds. */
function eachExtensionAttribute(ctx: Pick<QuirkContext, "rt" | "quirks">, urn: string, obj: Resource, fn: Mapper): Resource {
  let out: Resource | undefined;
  for (const [key, value] of Object.entries(obj)) {
    const r = resolveAttrPath(ctx.rt, `${urn}:${key}`, ctx.quirks);
    if (!r) continue;
    const next = fn(r, value, `${urn}:${key}`);
    if (next === value) continue;
    out ??= { ...obj };
    if (next === DROP) delete out[key];
    else out[key] = next;
  }
  return out ?? obj;
}

function isLegacyCore(s: unknown): boolean {
  return typeof s === "string" && s.toLowerCase() === LEGACY_CORE_SCHEMA;
}

/**
 * Whether a key of `body` (or of a core-schema object in it, read as its attributes) satisfies `test`:
 * a cheap look at the keys before an operation quirk resolves them.
 */
function someKey(rt: ResourceTypeDef, body: Resource, test: (key: string) => boolean): boolean {
  for (const k in body) if (test(k) || (isCoreKey(rt, k) && isObject(body[k]) && someKey(rt, body[k] as Resource, test))) return true;
  return false;
}

/** "core" or "extension" when `s` is the URN of one of `rt`'s schemas (any case), else undefined. */
function isSchemaOf(rt: ResourceTypeDef, s: unknown): "core" | "extension" | undefined {
  if (typeof s !== "string") return undefined;
  const found = findSchema(rt, s);
  return found ? (found.extension ? "extension" : "core") : undefined;
}

const isCoreKey = (rt: ResourceTypeDef, key: string) => /^urn:/i.test(key) && isSchemaOf(rt, key) === "core";

/**
 * `body` with each core-schema object replaced by its attributes, in place and in order, read as
 * the normaliser reads a body: a key met again moves to where it was met last (a later key wins),
 * and a `schemas` inside a core-schema object is no attribute, so it is dropped rather than
 * replacing the body's own.
 */
function flattenCore(rt: ResourceTypeDef, body: Resource, nested = false): Resource {
  const out: Resource = {};
  const put = (k: string, v: unknown) => {
    delete out[k];
    out[k] = v;
  };
  for (const [k, v] of Object.entries(body)) {
    if (!isCoreKey(rt, k)) {
      if (!nested || k.toLowerCase() !== "schemas") put(k, v);
    } else if (isObject(v)) for (const [ik, iv] of Object.entries(flattenCore(rt, v, true))) put(ik, iv);
  }
  return out;
}

function booleanOf(v: unknown): unknown {
  return typeof v === "string" && BOOLEAN_TEXT.test(v) ? v.trim().toLowerCase() === "true" : v;
}

/** The boolean sub-attributes of a complex attribute (emails' `primary`, …), found once per attribute. */
const booleanSubsOf = new WeakMap<AttributeDef, AttributeDef[]>();
function booleanSubs(a: AttributeDef): AttributeDef[] {
  let subs = booleanSubsOf.get(a);
  if (!subs) booleanSubsOf.set(a, (subs = (a.subAttributes ?? []).filter((s) => s.type === "boolean")));
  return subs;
}

/** One complex value with its boolean sub-attributes sent as strings made booleans. */
function elementBooleans(a: AttributeDef, e: unknown): unknown {
  if (!isObject(e)) return e;
  let out: Resource | undefined;
  for (const k in e) {
    if (findAttr(a.subAttributes, k)?.type !== "boolean") continue;
    const v = e[k];
    const b = booleanOf(v);
    if (b !== v) (out ??= { ...e })[k] = b;
  }
  return out ?? e;
}

/** `list` mapped by `fn`, or `list` itself when `fn` changed nothing. */
function mapSame(list: unknown[], fn: (e: unknown) => unknown): unknown[] {
  let out: unknown[] | undefined;
  for (const [i, e] of list.entries()) {
    const next = fn(e);
    if (next !== e) (out ??= [...list])[i] = next;
  }
  return out ?? list;
}

/**
 * The element `upsertThroughValueFilter` creates when a value filter matches nothing, or why the
 * filter does not qualify. It qualifies only where the request stays idempotent: the filter is one
 * equality, or equalities joined by `and`, on sub-attributes other than the one being written, so the
 * created element matches the filter and a retried request finds and updates it instead of appending
 * another copy. The seed holds the filter's literals (booleans as the filter resolved them).
 */
export function upsertSeed(f: ResolvedFilter, written: AttributeDef | undefined): { seed: Record<string, unknown> } | { refused: string } {
  const seed: Record<string, unknown> = {};
  const walk = (x: ResolvedFilter): string | undefined => {
    if (x.kind === "and") {
      for (const part of x.filters) {
        const why = walk(part);
        if (why) return why;
      }
      return undefined;
    }
    if (x.kind !== "compare" || x.op !== "eq" || !x.target.element || x.raw === null || x.raw === undefined)
      return "only equalities joined by 'and' describe a value to create";
    const a = x.target.attr;
    if (written && a.name === written.name) return `the filter compares '${a.name}', the sub-attribute being written, so the new value would not match it`;
    if (a.name in seed) return `the filter compares '${a.name}' more than once`;
    seed[a.name] = a.type === "boolean" ? x.value : x.raw;
    return undefined;
  };
  const why = walk(f);
  return why ? { refused: why } : { seed };
}
