/**
 * IdP quirks (src/scim/quirks.ts), table-driven: each quirk's wire shape is accepted by a server
 * (ALL_QUIRKS) with the result of the RFC-shaped request, refused with a clear SCIM 400 under
 * --strict (NO_QUIRKS), and refused with every quirk but that one on; each rewrite's output is the
 * RFC shape, which the engine accepts with no quirk at all. Then the tables of the single rewrites,
 * the registry itself, and the cost of the pass when nothing applies.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ScimError, type ScimType } from "../../src/scim/errors";
import { resolveFilter, type ResolvedFilter } from "../../src/scim/filter";
import { applyPatch, readOperations, type PatchContext, type PatchOperation } from "../../src/scim/patch";
import { parseAttributeList } from "../../src/scim/projection";
import {
  ALL_QUIRKS,
  NO_QUIRKS,
  QUIRKS,
  quirksFor,
  rewriteBody,
  rewritePatchOperations,
  type QuirkName,
  type Quirks,
  type Stage,
  type ValueQuirk,
  type ValueTarget,
} from "../../src/scim/quirks";
import { normalizeBody, type Resource } from "../../src/scim/resource";
import { ENTERPRISE_USER_SCHEMA_DEF, GROUP_RESOURCE, GROUP_SCHEMA_DEF, USER_RESOURCE, USER_SCHEMA_DEF, type AttributeDef } from "../../src/scim/schema";
import { startServer, userBody, type TestServer } from "../helpers";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const NAMES = Object.keys(QUIRKS) as QuirkName[];

const without = (name: QuirkName): Quirks => new Set(NAMES.filter((n) => n !== name));

/** A stored User with a work and a home email, no roles. */
function user(): Resource {
  return {
    schemas: [USER, ENT],
    userName: "ada",
    displayName: "Ada Lovelace",
    active: true,
    emails: [
      { value: "ada@work.example", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
    ],
    [ENT]: { department: "R&D", manager: { value: "m1" } },
  };
}

const group = (): Resource => ({ schemas: [GROUP], displayName: "Engineers" });

type Op = Record<string, unknown>;
const patchBody = (...ops: Op[]) => ({ schemas: [PATCH_OP], Operations: ops });
const userCtx = (quirks: Quirks): PatchContext => ({ rt: USER_RESOURCE, quirks, id: "u1" });
const groupCtx = (quirks: Quirks): PatchContext => ({ rt: GROUP_RESOURCE, quirks, id: "g1" });

const patchUser = (...ops: Op[]) => (quirks: Quirks) => applyPatch(userCtx(quirks), user(), patchBody(...ops)).resource;
const patchGroup = (...ops: Op[]) => (quirks: Quirks) => applyPatch(groupCtx(quirks), group(), patchBody(...ops)).resource;
const postUser = (extra: Resource) => (quirks: Quirks) =>
  normalizeBody(USER_RESOURCE, { schemas: [USER], userName: "ada", displayName: "Ada", emails: [{ value: "ada@x.example" }], ...extra }, { quirks });
/** A resolved filter without the literals as written (`raw`): what it compares, not how it was spelt. */
const groupMembers = (...ops: Op[]) => (quirks: Quirks) => applyPatch(groupCtx(quirks), group(), patchBody(...ops)).memberChanges;
const attributeList = (text: string) => (quirks: Quirks) => parseAttributeList([USER_RESOURCE], text, "attributes", { quirks })?.get(USER_RESOURCE)?.map((r) => r.path);
const filterUsers = (text: string) => (quirks: Quirks) => JSON.parse(JSON.stringify(resolveFilter(USER_RESOURCE, text, { quirks }), (k, v) => (k === "raw" ? undefined : v)));

interface Case {
  quirk: QuirkName;
  /** The wire shape, as the IdP sends it. */
  shape: string;
  /** The request, run with the given quirks. */
  run: (quirks: Quirks) => unknown;
  /** The same request in RFC shape: run with no quirks, it gives what `run` gives with all of them. */
  rfc: (quirks: Quirks) => unknown;
  /** What --strict answers the wire shape with. */
  strict: ScimType;
  detail: RegExp;
}

const CASES: Case[] = [
  {
    quirk: "opNameCase",
    shape: '{"op": "Replace", "path": "title", …} (Entra ID)',
    run: patchUser({ op: "Replace", path: "title", value: "Countess" }),
    rfc: patchUser({ op: "replace", path: "title", value: "Countess" }),
    strict: "invalidSyntax",
    detail: /Operations\[0\]\.op must be "add", "replace" or "remove", got "Replace"/,
  },
  {
    quirk: "opNameCase",
    shape: '{"op": "ADD", …} (OneLogin)',
    run: patchUser({ op: "ADD", path: "title", value: "Chemist" }),
    rfc: patchUser({ op: "add", path: "title", value: "Chemist" }),
    strict: "invalidSyntax",
    detail: /got "ADD"/,
  },
  {
    quirk: "filteredPathKeys",
    shape: 'a path-less value keyed "emails[type eq \\"work\\"].value" (Entra ID)',
    run: patchUser({ op: "replace", value: { 'emails[type eq "work"].value': "ada@new.example", displayName: "Ada L." } }),
    rfc: patchUser({ op: "replace", path: 'emails[type eq "work"].value', value: "ada@new.example" }, { op: "replace", value: { displayName: "Ada L." } }),
    strict: "invalidSyntax",
    detail: /'emails\[type eq "work"\]\.value' is not an attribute name of User: a value filter belongs in a PATCH operation's 'path'/,
  },
  {
    quirk: "ownIdEcho",
    shape: 'a path-less replace echoing the group\'s own id (Okta)',
    run: patchGroup({ op: "replace", value: { id: "g1", displayName: "Field Engineers EMEA" } }),
    rfc: patchGroup({ op: "replace", value: { displayName: "Field Engineers EMEA" } }),
    strict: "mutability",
    detail: /'id' is read-only/,
  },
  {
    quirk: "metaEcho",
    shape: "a path-less replace carrying meta",
    run: patchUser({ op: "replace", value: { displayName: "Ada L.", meta: { resourceType: "User" } } }),
    rfc: patchUser({ op: "replace", value: { displayName: "Ada L." } }),
    strict: "mutability",
    detail: /'meta' is read-only/,
  },
  {
    quirk: "listForSingleValue",
    shape: 'manager as [{"$ref": null, "value": id}] (Entra ID)',
    run: patchUser({ op: "replace", path: `${ENT}:manager`, value: [{ $ref: null, value: "m2" }] }),
    rfc: patchUser({ op: "replace", path: `${ENT}:manager`, value: { value: "m2" } }),
    strict: "invalidValue",
    detail: /manager' is single-valued: send one value, not an array/,
  },
  {
    quirk: "listForSingleValue",
    shape: "a one-element list for a value-filtered element",
    run: patchUser({ op: "replace", path: 'emails[type eq "home"]', value: [{ value: "lovelace@home.example" }] }),
    rfc: patchUser({ op: "replace", path: 'emails[type eq "home"]', value: { value: "lovelace@home.example" } }),
    strict: "invalidValue",
    detail: /'emails\[type eq "home"\]' is single-valued: send one value, not an array/,
  },
  {
    quirk: "listForSingleValue",
    shape: 'a POST with "name": [{…}]',
    run: postUser({ name: [{ givenName: "Ada" }] }),
    rfc: postUser({ name: { givenName: "Ada" } }),
    strict: "invalidValue",
    detail: /'name' is single-valued/,
  },
  {
    quirk: "singleValueForList",
    shape: "a replace of phoneNumbers with one object, not in a list",
    run: patchUser({ op: "replace", path: "phoneNumbers", value: { value: "+1 555", type: "work" } }),
    rfc: patchUser({ op: "replace", path: "phoneNumbers", value: [{ value: "+1 555", type: "work" }] }),
    strict: "invalidValue",
    detail: /'phoneNumbers' is multi-valued: send an array of values, got an object/,
  },
  {
    quirk: "singleValueForList",
    shape: "a replace of members with one object, not in a list",
    run: groupMembers({ op: "replace", path: "members", value: { value: "u1" } }),
    rfc: groupMembers({ op: "replace", path: "members", value: [{ value: "u1" }] }),
    strict: "invalidValue",
    detail: /'members' is multi-valued: send an array like \[\{"value": "<id>"\}\], got an object/,
  },
  {
    quirk: "singleValueForList",
    shape: "a POST with one email object",
    run: postUser({ emails: { value: "ada@x.example" } }),
    rfc: postUser({ emails: [{ value: "ada@x.example" }] }),
    strict: "invalidValue",
    detail: /'emails' is multi-valued/,
  },
  {
    quirk: "managerShapes",
    shape: "manager as a bare id (Entra ID)",
    run: patchUser({ op: "add", path: `${ENT}:manager`, value: "m2" }),
    rfc: patchUser({ op: "add", path: `${ENT}:manager`, value: { value: "m2" } }),
    strict: "invalidValue",
    detail: /manager' must be an object with sub-attributes/,
  },
  {
    quirk: "managerShapes",
    shape: 'manager removed with "" (Entra ID)',
    run: patchUser({ op: "replace", path: `${ENT}:manager`, value: "" }),
    rfc: patchUser({ op: "remove", path: `${ENT}:manager` }),
    strict: "invalidValue",
    detail: /manager' must be an object/,
  },
  {
    quirk: "managerShapes",
    shape: "a POST with manager as a bare id inside the extension",
    run: postUser({ [ENT]: { manager: "m1" } }),
    rfc: postUser({ [ENT]: { manager: { value: "m1" } } }),
    strict: "invalidValue",
    detail: /manager' must be an object/,
  },
  {
    quirk: "emptyStringIsNull",
    shape: 'replace of emails[type eq "work"].value with "" (Entra ID)',
    run: patchUser({ op: "replace", path: 'emails[type eq "work"].value', value: "" }),
    rfc: patchUser({ op: "remove", path: 'emails[type eq "work"]' }),
    strict: "mutability",
    detail: /'emails\.value' is required in every value of 'emails'/,
  },
  {
    quirk: "emptyStringIsNull",
    shape: 'replace of password with ""',
    run: (q) => applyPatch(userCtx(q), { ...user(), password: "hash" }, patchBody({ op: "replace", path: "password", value: "" })).resource,
    rfc: (q) => applyPatch(userCtx(q), { ...user(), password: "hash" }, patchBody({ op: "remove", path: "password" })).resource,
    strict: "invalidValue",
    detail: /'password' must not be empty/,
  },
  {
    quirk: "emptyStringIsNull",
    shape: 'a POST with "password": ""',
    run: postUser({ password: "" }),
    rfc: postUser({}),
    strict: "invalidValue",
    detail: /'password' must not be empty/,
  },
  {
    quirk: "stringBooleans",
    shape: '{"op": "replace", "path": "active", "value": "False"} (Entra ID)',
    run: patchUser({ op: "replace", path: "active", value: "False" }),
    rfc: patchUser({ op: "replace", path: "active", value: false }),
    strict: "invalidValue",
    detail: /'active' must be a boolean \(true or false\), got a string/,
  },
  {
    quirk: "stringBooleans",
    shape: 'a PUT with "active": "False" and "primary": "True" (Okta)',
    run: postUser({ active: "False", emails: [{ value: "ada@x.example", primary: "True" }] }),
    rfc: postUser({ active: false, emails: [{ value: "ada@x.example", primary: true }] }),
    strict: "invalidValue",
    detail: /must be a boolean \(true or false\), got a string/,
  },
  {
    quirk: "stringBooleans",
    shape: 'the filter roles[primary eq "True"] (Entra ID)',
    run: filterUsers('roles[primary eq "True"]'),
    rfc: filterUsers("roles[primary eq true]"),
    strict: "invalidFilter",
    detail: /'primary' is boolean: compare it with true or false/,
  },
  {
    quirk: "legacyCoreSchema",
    shape: '"schemas": ["urn:scim:schemas:core:1.0"] (OneLogin)',
    run: (q) => normalizeBody(USER_RESOURCE, { schemas: ["urn:scim:schemas:core:1.0"], userName: "kai", displayName: "Kai" }, { quirks: q }),
    rfc: (q) => normalizeBody(USER_RESOURCE, { schemas: [USER], userName: "kai", displayName: "Kai" }, { quirks: q }),
    strict: "invalidValue",
    detail: /'schemas' must include "urn:ietf:params:scim:schemas:core:2\.0:User" for a User/,
  },
  {
    quirk: "unknownSchemaUrns",
    shape: "a Group with Entra ID's ADSCIM URN in schemas",
    run: (q) => normalizeBody(GROUP_RESOURCE, { schemas: [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"], displayName: "Treasury" }, { quirks: q }),
    rfc: (q) => normalizeBody(GROUP_RESOURCE, { schemas: [GROUP], displayName: "Treasury" }, { quirks: q }),
    strict: "invalidValue",
    detail: /'schemas' lists "http:\/\/schemas\.microsoft\.com\/2006\/11\/ResourceManagement\/ADSCIM\/2\.0\/Group", which is not a schema of a Group/,
  },
  {
    quirk: "coreSchemaObject",
    shape: "a path-less replace inside the core schema's object",
    run: patchUser({ op: "replace", value: { [USER]: { active: false, title: "Countess" } } }),
    rfc: patchUser({ op: "replace", value: { active: false, title: "Countess" } }),
    strict: "invalidSyntax",
    detail: /'urn:ietf:params:scim:schemas:core:2\.0:User' is the core schema's URN, not an attribute/,
  },
  {
    quirk: "coreSchemaObject",
    shape: "a POST with core attributes under the core schema's URN",
    run: postUser({ [USER]: { title: "Countess" } }),
    rfc: postUser({ title: "Countess" }),
    strict: "invalidSyntax",
    detail: /is the core schema's URN/,
  },
  {
    quirk: "ignoreUnknownAttributes",
    shape: 'a POST with a misspelt "prefferedLanguage" and addresses[].city (OneLogin)',
    run: postUser({ prefferedLanguage: "de-DE", addresses: [{ type: "work", city: "Raccoon City" }] }),
    rfc: postUser({ addresses: [{ type: "work" }] }),
    strict: "invalidSyntax",
    detail: /unknown attribute 'prefferedLanguage' for User/,
  },
  {
    quirk: "ignoreUnknownAttributes",
    shape: "a PATCH path naming an attribute scimd does not have",
    run: patchUser({ op: "replace", path: "nosuch", value: "x" }, { op: "replace", path: "title", value: "T" }),
    rfc: patchUser({ op: "replace", path: "title", value: "T" }),
    strict: "invalidPath",
    detail: /'nosuch' is not an attribute of User/,
  },
  {
    quirk: "unqualifiedExtensionNames",
    shape: 'the filter department eq "R&D"',
    run: filterUsers('department eq "R&D"'),
    rfc: filterUsers(`${ENT}:department eq "R&D"`),
    strict: "invalidFilter",
    detail: /'department' in filter for User: it is an attribute of urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User, named with that URN: 'urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User:department'/,
  },
  {
    quirk: "unqualifiedExtensionNames",
    shape: "attributes=department",
    run: attributeList("department"),
    rfc: attributeList(`${ENT}:department`),
    strict: "invalidValue",
    detail: /'attributes' names an unknown attribute 'department': it is an attribute of urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User, named with that URN: 'urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User:department'/,
  },
  {
    quirk: "unqualifiedExtensionNames",
    shape: "a PATCH path manager.value (Entra ID)",
    run: patchUser({ op: "replace", path: "manager.value", value: "m2" }),
    rfc: patchUser({ op: "replace", path: `${ENT}:manager.value`, value: "m2" }),
    strict: "invalidPath",
    detail: /'manager\.value' is not an attribute of User: it is an attribute of urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User, named with that URN: 'urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User:manager\.value'/,
  },
  {
    quirk: "unqualifiedExtensionNames",
    shape: 'a POST with "department" at the top level',
    run: postUser({ department: "R&D" }),
    rfc: postUser({ [ENT]: { department: "R&D" } }),
    strict: "invalidSyntax",
    detail: /unknown attribute 'department' for User: it is an attribute of urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User, named with that URN: 'urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User:department'/,
  },
  {
    quirk: "complexFilterOnValue",
    shape: 'the filter urn:…:manager eq "m1" (Entra ID)',
    run: filterUsers(`${ENT}:manager eq "m1"`),
    rfc: filterUsers(`${ENT}:manager.value eq "m1"`),
    strict: "invalidFilter",
    detail: /'manager' is complex: compare one of its sub-attributes, e.g. 'manager\.value'/,
  },
  {
    quirk: "qualifiedNamesInValueFilter",
    shape: 'the filter emails[emails.type eq "work"]',
    run: filterUsers('emails[emails.type eq "work"]'),
    rfc: filterUsers('emails[type eq "work"]'),
    strict: "invalidFilter",
    detail: /'emails' has no sub-attribute 'emails\.type'/,
  },
  {
    quirk: "valueFiltersInAttributes",
    shape: 'attributes=emails[type eq "work"].value (Microsoft\'s SCIM validator collection)',
    run: (q) => parseAttributeList([USER_RESOURCE], 'emails[type eq "work"].value', "attributes", { quirks: q })?.get(USER_RESOURCE)?.map((r) => [r.path, !!r.filter]),
    rfc: () => [['emails[type eq "work"].value', true]],
    strict: "invalidValue",
    detail: /'attributes' item 'emails\[type eq "work"\]\.value' is not an attribute name \(RFC 7644 §3\.4\.2\.5\): name the attribute, 'emails'/,
  },
  {
    quirk: "unquotedFilterValues",
    shape: "the filter userName sw O (Microsoft's SCIM validator collection)",
    run: filterUsers("userName sw O"),
    rfc: filterUsers('userName sw "O"'),
    strict: "invalidFilter",
    detail: /expected a quoted value after 'sw' at position 13/,
  },
  {
    quirk: "unquotedFilterValues",
    shape: "a PATCH value-filter path emails[type eq home].value",
    run: patchUser({ op: "replace", path: "emails[type eq home].value", value: "lovelace@home.example" }),
    rfc: patchUser({ op: "replace", path: 'emails[type eq "home"].value', value: "lovelace@home.example" }),
    strict: "invalidPath",
    detail: /the value filter in 'emails\[type eq home\]\.value' is invalid: expected a quoted value/,
  },
  {
    quirk: "upsertThroughValueFilter",
    shape: 'add of emails[type eq "other"].value on a user without one (Entra ID)',
    run: patchUser({ op: "add", path: 'emails[type eq "other"].value', value: "ada@other.example" }),
    rfc: patchUser({ op: "add", path: "emails", value: [{ type: "other", value: "ada@other.example" }] }),
    strict: "noTarget",
    detail: /no value of 'emails' matches \[type eq "other"\], so 'add' has nothing to change \(RFC 7644 §3\.5\.2\.3\)/,
  },
];

function thrown(fn: () => unknown): ScimError | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof ScimError) return e;
    throw e;
  }
  return undefined;
}

describe("each quirk: accepted by a server, refused under --strict, and only because of that quirk", () => {
  test.each(CASES.map((c) => [c.quirk, c.shape, c] as const))("%s: %s is accepted as the RFC-shaped request is", (_q, _s, c) => {
    expect(c.run(ALL_QUIRKS)).toEqual(c.rfc(NO_QUIRKS) as never);
  });

  test.each(CASES.map((c) => [c.quirk, c.shape, c.strict, c] as const))("%s: %s is refused under --strict with 400 %s and a detail saying what to send", (_q, _s, scimType, c) => {
    const e = thrown(() => c.run(NO_QUIRKS));
    expect(e?.status).toBe(400);
    expect(e?.scimType).toBe(scimType);
    expect(e?.detail).toMatch(c.detail);
  });

  test.each(CASES.map((c) => [c.quirk, c.shape, c] as const))("%s: %s is refused, or read otherwise, with every quirk but that one", (quirk, _s, c) => {
    let result: unknown;
    const e = thrown(() => (result = c.run(without(quirk))));
    if (e) expect(e.status).toBe(400);
    else expect(result).not.toEqual(c.rfc(NO_QUIRKS) as never);
  });

  it("has a case for every quirk in the list", () => {
    expect([...new Set(CASES.map((c) => c.quirk))].sort()).toEqual([...NAMES].sort());
  });
});

describe("the rewrites turn the wire shapes into RFC-shaped input, which the engine takes with no quirk at all", () => {
  const ops = (ctx: PatchContext, ...list: Op[]) => rewritePatchOperations(ctx, readOperations(patchBody(...list))).map(({ index: _i, ...o }) => o);
  const u = userCtx(ALL_QUIRKS);

  test.each<[string, Op[], Omit<PatchOperation, "index">[]]>([
    ["op names in any case (opNameCase)", [{ op: " Remove ", path: "title" }, { op: "ADD", path: "title", value: "T" }], [
      { op: "remove", path: "title", value: undefined, hasValue: false },
      { op: "add", path: "title", value: "T", hasValue: true },
    ]],
    ["filtered paths as path-less keys (filteredPathKeys), before the plain keys", [{ op: "Replace", value: { displayName: "D", 'emails[type eq "work"].value': "w@x", 'emails[type eq "home"].value': "h@x" } }], [
      { op: "replace", path: 'emails[type eq "work"].value', value: "w@x", hasValue: true },
      { op: "replace", path: 'emails[type eq "home"].value', value: "h@x", hasValue: true },
      { op: "replace", value: { displayName: "D" }, hasValue: true, path: undefined },
    ]],
    ["meta, and an id equal to the resource's own, dropped from a path-less value (metaEcho, ownIdEcho)", [{ op: "replace", value: { id: "u1", meta: { version: "W/\"1\"" }, "meta.created": "x", title: "T" } }], [
      { op: "replace", path: undefined, value: { title: "T" }, hasValue: true },
    ]],
    ["manager shapes and a one-element list (managerShapes, listForSingleValue)", [
      { op: "add", path: `${ENT}:manager`, value: "m2" },
      { op: "replace", path: `${ENT}:manager`, value: [{ $ref: null, value: "m3" }] },
      { op: "replace", path: `${ENT}:manager`, value: { value: "" } },
      { op: "replace", value: { [ENT]: { manager: "m4" } } },
      { op: "replace", path: ENT, value: { manager: "" } },
      { op: "add", path: ENT, value: { manager: "m5" } },
    ], [
      { op: "add", path: `${ENT}:manager`, value: { value: "m2" }, hasValue: true },
      { op: "replace", path: `${ENT}:manager`, value: { $ref: null, value: "m3" }, hasValue: true },
      { op: "replace", path: `${ENT}:manager`, value: null, hasValue: true },
      { op: "replace", path: undefined, value: { [ENT]: { manager: { value: "m4" } } }, hasValue: true },
      { op: "replace", path: ENT, value: { manager: null }, hasValue: true },
      { op: "add", path: ENT, value: { manager: { value: "m5" } }, hasValue: true },
    ]],
    ['"" as null and string booleans (emptyStringIsNull, stringBooleans)', [
      { op: "replace", path: "title", value: "" },
      { op: "replace", path: 'emails[type eq "work"].value', value: "" },
      { op: "replace", value: { active: "False", "name.givenName": "", emails: [{ value: "a@x", primary: "TRUE" }] } },
      { op: "add", path: 'addresses[type eq "work"].primary', value: " true " },
    ], [
      { op: "replace", path: "title", value: null, hasValue: true },
      { op: "replace", path: 'emails[type eq "work"].value', value: null, hasValue: true },
      { op: "replace", path: undefined, value: { active: false, "name.givenName": null, emails: [{ value: "a@x", primary: true }] }, hasValue: true },
      { op: "add", path: 'addresses[type eq "work"].primary', value: true, hasValue: true },
    ]],
  ])("%s", (_label, sent, expected) => {
    const out = ops(u, ...sent);
    expect(out).toEqual(expected as never);
    // RFC-shaped: the engine without any quirk applies the output as it is.
    expect(() => applyPatch(userCtx(NO_QUIRKS), { ...user(), addresses: [{ type: "work", locality: "X" }] }, patchBody(...(out as Op[])))).not.toThrow();
  });

  test.each<[string, Resource, Resource]>([
    ["the SCIM 1.0 core URN (legacyCoreSchema)", { schemas: ["urn:scim:schemas:core:1.0"], userName: "kai" }, { schemas: [USER], userName: "kai" }],
    ["Schemas written in another case, with the 1.0 URN beside the 2.0 one", { Schemas: ["urn:scim:schemas:core:1.0", USER], userName: "kai" }, { Schemas: [USER, USER], userName: "kai" }],
    ['string booleans, a one-element manager list and a "" password', { schemas: [USER], active: "true", password: "", [ENT]: { manager: [{ value: "m1" }] } }, { schemas: [USER], active: true, password: null, [ENT]: { manager: { value: "m1" } } }],
    ["an empty manager inside the extension object (OneLogin)", { schemas: [USER], [ENT]: { department: "R&D", manager: { value: "", displayName: " " } } }, { schemas: [USER], [ENT]: { department: "R&D", manager: null } }],
    ["core attributes under the core schema's URN (coreSchemaObject)", { schemas: [USER], title: "T", [USER]: { active: "False", title: "U" } }, { schemas: [USER], title: "U", active: false }],
    ["Entra ID's ADSCIM URN beside the core one (unknownSchemaUrns)", { schemas: [USER, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User", ENT], userName: "a" }, { schemas: [USER, ENT], userName: "a" }],
    ["an unknown URN without the core one (left for the normaliser to refuse)", { schemas: ["urn:example:other"], userName: "a" }, { schemas: ["urn:example:other"], userName: "a" }],
    ["one email object, not in a list (singleValueForList)", { schemas: [USER], emails: { value: "a@x" } }, { schemas: [USER], emails: [{ value: "a@x" }] }],
  ])("a body with %s", (_label, sent, expected) => {
    expect(rewriteBody(USER_RESOURCE, sent, ALL_QUIRKS)).toEqual(expected);
  });

  it("reads core attributes under the core schema's URN as they were read in place: a 'schemas' in there is no attribute, and a later key wins (coreSchemaObject)", () => {
    const post = (body: Resource) => normalizeBody(USER_RESOURCE, { userName: "ada", displayName: "Ada", emails: [{ value: "a@x" }], ...body }, { quirks: ALL_QUIRKS }).resource;
    // The body's own `schemas` is the one checked (RFC 7643 §3); the nested object holds only attributes.
    expect(post({ schemas: [USER], [USER]: { schemas: ["urn:example:other"], title: "U" } })).toMatchObject({ schemas: [USER], title: "U" });
    // Read in order: the nested title, the top-level one, then the second nested one.
    expect(post({ schemas: [USER], [USER]: { title: "B" }, Title: "A", [USER.toUpperCase()]: { title: "C" } }).title).toBe("C");
  });

  it("rewrites a Group body's SCIM 1.0 core URN to the Group's own", () => {
    expect(rewriteBody(GROUP_RESOURCE, { schemas: ["urn:scim:schemas:core:1.0"], displayName: "G" }, ALL_QUIRKS)).toEqual({ schemas: [GROUP], displayName: "G" });
  });

  it("reads a path of blanks as the engine does, as no path (a no-break space included)", () => {
    expect(ops(u, { op: "replace", path: "\u00a0 ", value: { active: "False" } })).toEqual([{ op: "replace", path: "\u00a0 ", value: { active: false }, hasValue: true }]);
    expect(applyPatch(u, user(), patchBody({ op: "replace", path: "\u00a0", value: { active: "False" } })).resource.active).toBe(false);
  });

  it("never changes the request it was given", () => {
    const sent = { schemas: [PATCH_OP], Operations: [{ op: "Replace", value: { active: "False", id: "u1", 'emails[type eq "work"].value': "" } }] };
    const copy = structuredClone(sent);
    rewritePatchOperations(u, readOperations(sent));
    expect(sent).toEqual(copy);
    const post = { schemas: ["urn:scim:schemas:core:1.0"], active: "true", [ENT]: { manager: "m1" } };
    const postCopy = structuredClone(post);
    rewriteBody(USER_RESOURCE, post, ALL_QUIRKS);
    expect(post).toEqual(postCopy);
  });
});

describe("the value quirks, one attribute at a time", () => {
  const find = (defs: AttributeDef[], name: string) => defs.find((a) => a.name === name)!;
  const manager = find(ENTERPRISE_USER_SCHEMA_DEF.attributes, "manager");
  const department = find(ENTERPRISE_USER_SCHEMA_DEF.attributes, "department");
  const managerTarget: ValueTarget = { extension: ENT, attr: manager };
  /** The value quirks `names`, in the list's order, as a server runs them at one attribute. */
  const rewriteWith = (names: QuirkName[]) => (t: ValueTarget, v: unknown, stage: Stage = "patch") => {
    for (const [name, q] of Object.entries(QUIRKS)) if (q.kind === "value" && names.includes(name as QuirkName) && q.at(t, stage) && q.applies(t, v)) v = q.rewrite(t, v);
    return v;
  };
  /** What normalizeManagerValue did before the quirks moved to the edge: two quirks now. */
  const managerValue = rewriteWith(["listForSingleValue", "managerShapes"]);

  test.each([
    ["a bare id string", "m1", { value: "m1" }],
    ['{"value": id}', { value: "m1" }, { value: "m1" }],
    ['{"Value": id} (any case, left for coercion)', { Value: "m1" }, { Value: "m1" }],
    ['[{"$ref": …, "value": id}]', [{ $ref: "https://x/Users/m1", value: "m1" }], { $ref: "https://x/Users/m1", value: "m1" }],
    ["a one-element list holding a bare id", ["m1"], { value: "m1" }],
  ])("takes %s as the manager", (_label, sent, expected) => {
    expect(managerValue(managerTarget, sent)).toEqual(expected);
  });

  test.each([
    ['""', ""],
    ['"   "', "   "],
    ['{"value": ""}', { value: "" }],
    ['{"VALUE": ""}', { VALUE: "" }],
    ['{"value": null}', { value: null }],
    ["null", null],
    ["[]", []],
    ['[""]', [""]],
    ['[{"value": ""}]', [{ value: "" }]],
  ])("takes %s as removal of the manager (null)", (_label, sent) => {
    expect(managerValue(managerTarget, sent)).toBeNull();
  });

  test.each([
    ["a number", 42],
    ["a boolean", true],
    ["two managers", [{ value: "a" }, { value: "b" }]],
  ])("passes %s through unchanged, for coercion to refuse", (_label, sent) => {
    expect(managerValue(managerTarget, sent)).toBe(sent);
  });

  test.each<[string, ValueTarget, boolean]>([
    ["the enterprise manager", managerTarget, true],
    ["another enterprise attribute", { extension: ENT, attr: department }, false],
    ["manager outside the extension", { extension: null, attr: manager }, false],
    ["manager under another extension URN", { extension: "urn:example:ext:1.0:User", attr: manager }, false],
    ["a sub-attribute of the manager", { extension: ENT, attr: manager, sub: manager.subAttributes![0]! }, false],
  ])("managerShapes applies at %s: %p", (_label, t, expected) => {
    expect((QUIRKS.managerShapes as ValueQuirk).at(t, "patch")).toBe(expected);
  });

  const displayName = find(USER_SCHEMA_DEF.attributes, "displayName");
  const active = find(USER_SCHEMA_DEF.attributes, "active");
  const name = find(USER_SCHEMA_DEF.attributes, "name");
  const emails = find(USER_SCHEMA_DEF.attributes, "emails");
  const password = find(USER_SCHEMA_DEF.attributes, "password");
  const givenName = name.subAttributes!.find((s) => s.name === "givenName")!;
  const members = find(GROUP_SCHEMA_DEF.attributes, "members");
  const core = (attr: AttributeDef, sub?: AttributeDef): ValueTarget => ({ extension: null, attr, ...(sub ? { sub } : {}) });

  test.each<[string, ValueTarget, unknown, unknown]>([
    ['"" for a simple string', core(displayName), "", null],
    ['"" for a sub-attribute', core(name, givenName), "", null],
    ['"" for a boolean', core(active), "", null],
    ['"" for a complex attribute (left for coercion)', core(name), "", ""],
    ['"" for a multi-valued attribute (left for coercion)', core(emails), "", ""],
    ['"" for the value of the element a filter selects', { extension: null, attr: emails, sub: emails.subAttributes![0]!, element: true }, "", null],
    ['"" for members (left alone)', core(members), "", ""],
    ['" " (not empty)', core(displayName), " ", " "],
    ["a non-empty string", core(displayName), "Ada", "Ada"],
    ["null", core(displayName), null, null],
    ["false", core(active), false, false],
    ["0", core(displayName), 0, 0],
  ])("in a PATCH, %s → %p", (_label, t, sent, expected) => {
    expect(rewriteWith(["emptyStringIsNull"])(t, sent)).toEqual(expected);
  });

  test.each<[string, ValueTarget, unknown, unknown]>([
    ['"" for the password', core(password), "", null],
    ['"" for a simple string (kept: a body stores "" as sent)', core(displayName), "", ""],
    ['"" for a sub-attribute (kept)', core(name, givenName), "", ""],
  ])("in a POST or PUT body, %s → %p", (_label, t, sent, expected) => {
    expect(rewriteWith(["emptyStringIsNull"])(t, sent, "body")).toEqual(expected);
  });

  test.each<[string, ValueTarget, unknown, unknown]>([
    ['"True"', core(active), "True", true],
    ['"FALSE"', core(active), "FALSE", false],
    ['" false "', core(active), " false ", false],
    ['"yes" (left for coercion to refuse)', core(active), "yes", "yes"],
    ["a boolean", core(active), true, true],
    ['"true" for a string attribute (a string)', core(displayName), "true", "true"],
    ["primary inside a list of emails, in any case of the key", core(emails), [{ value: "a", PRIMARY: "True" }, { value: "b" }], [{ value: "a", PRIMARY: true }, { value: "b" }]],
    ["primary inside one email object", core(emails), { value: "a", primary: "false" }, { value: "a", primary: false }],
    ["members (no boolean sub-attribute)", core(members), [{ value: "True" }], [{ value: "True" }]],
  ])("stringBooleans: %s → %p", (_label, t, sent, expected) => {
    expect(rewriteWith(["stringBooleans"])(t, sent)).toEqual(expected);
  });

  test.each<[string, ValueTarget, unknown, unknown]>([
    ["one email object", core(emails), { value: "a" }, [{ value: "a" }]],
    ["one member object", core(members), { value: "u1" }, [{ value: "u1" }]],
    ['"" (for coercion to refuse as a value)', core(emails), "", [""]],
    ["a list", core(emails), [{ value: "a" }], [{ value: "a" }]],
    ["null (unassigned)", core(emails), null, null],
    ["one object for a single-valued attribute (left alone)", core(name), { givenName: "A" }, { givenName: "A" }],
  ])("singleValueForList: %s → %p", (_label, t, sent, expected) => {
    expect(rewriteWith(["singleValueForList"])(t, sent)).toEqual(expected);
  });

  it("listForSingleValue leaves the value of members[filter] alone: a list belongs there (the members put in place of those matched), so a nested list is refused and removes no one", () => {
    expect((QUIRKS.listForSingleValue as ValueQuirk).at({ extension: null, attr: members, element: true }, "patch")).toBe(false);
    for (const value of [[[]], [[null]], [[{ value: "u2" }]]]) {
      const e = thrown(() => applyPatch(groupCtx(ALL_QUIRKS), group(), patchBody({ op: "add", path: 'members[value eq "u1"]', value })));
      expect(e?.scimType).toBe("invalidValue");
    }
    expect(groupMembers({ op: "replace", path: 'members[value eq "u1"]', value: [{ value: "u2" }] })(ALL_QUIRKS)).toEqual([{ kind: "remove", ids: ["u1"] }, { kind: "add", ids: ["u2"] }]);
  });
});

describe("the operation quirks, one operation at a time", () => {
  const op = (ctx: PatchContext, o: Op): PatchOperation[] => rewritePatchOperations(ctx, readOperations(patchBody(o)));

  test.each([
    ["add", "add"],
    ["Add", "add"],
    ["ADD", "add"],
    ["replace", "replace"],
    ["Replace", "replace"],
    ["REPLACE", "replace"],
    ["remove", "remove"],
    ["Remove", "remove"],
    ["REMOVE", "remove"],
    [" replace ", "replace"],
  ])("opNameCase maps %p to %p", (sent, expected) => {
    expect(op(userCtx(ALL_QUIRKS), { op: sent, path: "title", value: "x" })[0]!.op).toBe(expected);
  });

  test.each([
    ['"delete"', "delete"],
    ['"update"', "update"],
    ['"adds"', "adds"],
    ['""', ""],
    ["null", null],
    ["a number", 1],
    ['["add"]', ["add"]],
    ['{"op": "add"}', { op: "add" }],
  ])("opNameCase leaves %s as it is, for the engine to refuse with 400 invalidSyntax", (_label, sent) => {
    expect(op(userCtx(ALL_QUIRKS), { op: sent, path: "title", value: "x" })[0]!.op).toEqual(sent);
    const e = thrown(() => applyPatch(userCtx(ALL_QUIRKS), user(), patchBody({ op: sent, path: "title", value: "x" })));
    expect([e?.status, e?.scimType]).toEqual([400, "invalidSyntax"]);
  });

  test.each<[string, string, unknown, string | undefined, boolean]>([
    ["id equal to the own id", "id", "g1", "g1", true],
    ["ID in another case", "ID", "g1", "g1", true],
    ["Id in another case", "Id", "g1", "g1", true],
    ["a different id", "id", "g2", "g1", false],
    ["an id differing only in case (ids are caseExact)", "id", "G1", "g1", false],
    ["another key with the same value", "externalId", "g1", "g1", false],
    ["no own id known", "id", "g1", undefined, false],
    ["a non-string id", "id", 1, "1", false],
  ])("ownIdEcho: %s → dropped: %p", (_label, key, value, own, dropped) => {
    const ctx: PatchContext = { rt: GROUP_RESOURCE, quirks: ALL_QUIRKS, ...(own !== undefined ? { id: own } : {}) };
    const out = op(ctx, { op: "replace", value: { [key]: value, displayName: "G" } });
    expect(key in (out[0]!.value as Resource)).toBe(!dropped);
  });

  it("filteredPathKeys leaves a path-less remove alone, for the engine to refuse with 400 noTarget", () => {
    const sent = { op: "remove", value: { 'emails[type eq "work"].value': "x" } };
    expect(op(userCtx(ALL_QUIRKS), sent)).toHaveLength(1);
    expect(thrown(() => applyPatch(userCtx(ALL_QUIRKS), user(), patchBody(sent)))?.scimType).toBe("noTarget");
  });
});

describe("the quirk list", () => {
  it("names every quirk once, with who sends it; a server has all of them and --strict none", () => {
    expect(NAMES.length).toBeGreaterThan(10);
    for (const name of NAMES) expect(QUIRKS[name].from.length).toBeGreaterThan(0);
    expect([...ALL_QUIRKS].sort()).toEqual([...NAMES].sort());
    expect(NO_QUIRKS.size).toBe(0);
    expect(quirksFor(false)).toBe(ALL_QUIRKS);
    expect(quirksFor(true)).toBe(NO_QUIRKS);
  });

  it("is the one place a leniency is declared: the rest of src/scim asks only for the consulted quirks, by name, and each is asked for", () => {
    const dir = join(import.meta.dir, "..", "..", "src", "scim");
    const asked = new Map<string, string[]>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts") && f !== "quirks.ts")) {
      for (const m of readFileSync(join(dir, file), "utf8").matchAll(/\.has\("(\w+)"\)/g)) asked.set(m[1]!, [...(asked.get(m[1]!) ?? []), file]);
    }
    const consulted = NAMES.filter((n) => (QUIRKS[n] as { consultedBy?: string }).consultedBy !== undefined);
    for (const [name, files] of asked) {
      expect(NAMES as string[], `${files.join(", ")} asks for '${name}'`).toContain(name);
      const entry = QUIRKS[name as QuirkName] as { consultedBy?: string };
      expect(entry.consultedBy, `'${name}' is asked for by ${files.join(", ")} but its entry does not say so`).toBeDefined();
      for (const f of files) expect(entry.consultedBy).toContain(f);
    }
    expect([...asked.keys()].sort()).toEqual([...consulted].sort());
  });

  it("returns the very operations when no quirk applies, and never reads a member list", () => {
    let reads = 0;
    const list = Array.from({ length: 5000 }, (_, i) => ({ value: `u${i}` }));
    const watched = new Proxy(list, {
      get(target, key, receiver) {
        if (typeof key === "string" && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver);
      },
    });
    const ops = readOperations(patchBody({ op: "add", path: "members", value: watched }, { op: "replace", value: { members: watched, displayName: "G" } }, { op: "remove", path: 'members[value eq "u1"]' }));
    const out = rewritePatchOperations(groupCtx(ALL_QUIRKS), ops);
    expect(out).toHaveLength(3);
    out.forEach((o, i) => expect(o).toBe(ops[i]!));
    const post = { schemas: [GROUP], displayName: "G", members: watched };
    expect(rewriteBody(GROUP_RESOURCE, post, ALL_QUIRKS)).toBe(post);
    expect(reads).toBe(0);
  });

  it("returns the operations themselves under --strict", () => {
    const ops = readOperations(patchBody({ op: "Replace", path: "active", value: "False" }));
    expect(rewritePatchOperations(userCtx(NO_QUIRKS), ops)).toBe(ops);
  });
});

// A filter resolved with a quirk equals the RFC-shaped one resolved without; make that visible for one more shape.
it("resolves Entra ID's `manager eq \"m1\"` (two quirks: unqualifiedExtensionNames, complexFilterOnValue) as the qualified value comparison", () => {
  const lenient: ResolvedFilter = resolveFilter(USER_RESOURCE, 'manager eq "m1"', { quirks: ALL_QUIRKS });
  expect(lenient).toEqual(resolveFilter(USER_RESOURCE, `${ENT}:manager.value eq "m1"`, { quirks: NO_QUIRKS }));
});

describe("a server accepts the quirks' wire shapes; a --strict server (no quirks) answers them as the RFCs say", () => {
  let lenient: TestServer;
  let strict: TestServer;
  const ids = new Map<TestServer, { user: string; group: string }>();
  beforeAll(async () => {
    [lenient, strict] = await Promise.all([startServer(), startServer({ strict: true })]);
    for (const s of [lenient, strict]) {
      const u = await s.req("POST", "/Users", userBody("ada@example.com"));
      const g = await s.req("POST", "/Groups", { schemas: [GROUP], displayName: "Engineers" });
      ids.set(s, { user: u.body.id, group: g.body.id });
    }
  });
  afterAll(async () => {
    await Promise.all([lenient?.close(), strict?.close()]);
  });

  test.each<[string, (id: { user: string; group: string }) => [string, string, unknown?], number, ScimType]>([
    ['PATCH {"op": "Replace"} (opNameCase)', ({ user }) => ["PATCH", `/Users/${user}`, patchBody({ op: "Replace", path: "active", value: false })], 200, "invalidSyntax"],
    ['PATCH "active": "False" (stringBooleans)', ({ user }) => ["PATCH", `/Users/${user}`, patchBody({ op: "replace", path: "active", value: "False" })], 200, "invalidValue"],
    ["PATCH a path-less value echoing the group's id (ownIdEcho)", ({ group }) => ["PATCH", `/Groups/${group}`, patchBody({ op: "replace", value: { id: group, displayName: "Engineers EMEA" } })], 204, "mutability"],
    ['PATCH add emails[type eq "other"].value on a user without one (upsertThroughValueFilter)', ({ user }) => ["PATCH", `/Users/${user}`, patchBody({ op: "add", path: 'emails[type eq "other"].value', value: "ada@other.example" })], 200, "noTarget"],
    ["POST the SCIM 1.0 core URN (legacyCoreSchema)", () => ["POST", "/Users", { ...userBody("kai@example.com"), schemas: ["urn:scim:schemas:core:1.0"] }], 201, "invalidValue"],
    ["POST a misspelt attribute (ignoreUnknownAttributes)", () => ["POST", "/Users", userBody("lena@example.com", { prefferedLanguage: "de-DE" })], 201, "invalidSyntax"],
    ["GET filter=userName sw O (unquotedFilterValues)", () => ["GET", `/Users?filter=${encodeURIComponent("userName sw O")}`], 200, "invalidFilter"],
    ['GET filter=manager eq "m1" (unqualifiedExtensionNames, complexFilterOnValue)', () => ["GET", `/Users?filter=${encodeURIComponent('manager eq "m1"')}`], 200, "invalidFilter"],
    ["GET sortBy=department (unqualifiedExtensionNames)", () => ["GET", "/Users?sortBy=department"], 200, "invalidValue"],
    ['GET attributes=emails[type eq "work"] (valueFiltersInAttributes)', () => ["GET", `/Users?attributes=${encodeURIComponent('emails[type eq "work"]')}`], 200, "invalidValue"],
    ["POST a Group with the ADSCIM URN (unknownSchemaUrns)", () => ["POST", "/Groups", { schemas: [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"], displayName: "Treasury" }], 201, "invalidValue"],
  ])("%s", async (_label, request, status, scimType) => {
    const [method, path, body] = request(ids.get(lenient)!);
    expect((await lenient.req(method, path, body)).status).toBe(status);
    const [m2, p2, b2] = request(ids.get(strict)!);
    const r = await strict.req(m2, p2, b2);
    expect([r.status, r.body.scimType]).toEqual([400, scimType]);
  });

  it("names the qualified attribute when --strict refuses an extension attribute without its URN, in sortBy and filters alike (RFC 7644 §3.10)", async () => {
    const sort = await strict.req("GET", "/Users?sortBy=department");
    expect(sort.body.detail).toContain(`'sortBy' names an unknown attribute 'department': it is an attribute of ${ENT}, named with that URN: '${ENT}:department'`);
    const filter = await strict.req("GET", `/Users?filter=${encodeURIComponent('manager.value eq "m1"')}`);
    expect(filter.body.detail).toContain(`'${ENT}:manager.value'`);
  });
});
