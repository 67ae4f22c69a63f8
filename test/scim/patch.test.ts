import { scimError } from "../helpers";
/**
 * The PATCH engine (RFC 7644 §3.5.2) as a pure function: applyPatch(ctx, current, body).
 * No server, no store.
 */
import { describe, expect, it, test } from "bun:test";
import { applyPatch, type PatchContext, type PatchResult } from "../../src/scim/patch";
import { ALL_QUIRKS, NO_QUIRKS } from "../../src/scim/quirks";
import type { Resource } from "../../src/scim/resource";
import { GROUP_RESOURCE, USER_RESOURCE } from "../../src/scim/schema";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const userCtx: PatchContext = { rt: USER_RESOURCE, quirks: ALL_QUIRKS, id: "u1" };
const groupCtx: PatchContext = { rt: GROUP_RESOURCE, quirks: ALL_QUIRKS, id: "g1" };

/** A stored User as normalizeBody leaves it (no id, no meta). */
function user(): Resource {
  return {
    schemas: [USER, ENT],
    userName: "ada",
    displayName: "Ada Lovelace",
    name: { givenName: "Ada", familyName: "Lovelace" },
    active: true,
    emails: [
      { value: "ada@work.example", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
    ],
    roles: [{ value: "admin", primary: true }, { value: "dev" }],
    [ENT]: { department: "R&D", employeeNumber: "42", manager: { value: "m1" } },
  };
}

function group(): Resource {
  return { schemas: [GROUP], displayName: "Engineers" };
}

type Op = { op: string; path?: string; value?: unknown };
const body = (...ops: Op[]) => ({ schemas: [PATCH_OP], Operations: ops });

function patchUser(...ops: Op[]): PatchResult {
  return applyPatch(userCtx, user(), body(...ops));
}
function strictUser(...ops: Op[]): PatchResult {
  return applyPatch({ ...userCtx, quirks: NO_QUIRKS }, user(), body(...ops));
}
function patchGroup(...ops: Op[]): PatchResult {
  return applyPatch(groupCtx, group(), body(...ops));
}


describe("applyPatch: add and replace without a path (RFC 7644 §3.5.2.1, §3.5.2.3)", () => {
  test.each([
    ["plain keys", { displayName: "Countess", title: "Analyst" }],
    ["dotted keys", { "name.givenName": "Augusta", "name.middleName": "Ada" }],
    ["URN-qualified core keys", { [`${USER}:displayName`]: "Countess", [`${USER}:name.givenName`]: "Augusta" }],
    ["URN-qualified extension keys", { [`${ENT}:employeeNumber`]: "7", [`${ENT}:costCenter`]: "CC1" }],
    ["a nested complex object", { name: { givenName: "Augusta", middleName: "Ada" } }],
    ["the extension URN as a key", { [ENT]: { employeeNumber: "7", costCenter: "CC1" } }],
    ["the core URN as a key", { [USER]: { displayName: "Countess", title: "Analyst" } }],
  ])("%s are read as attributes", (_label, value) => {
    for (const op of ["add", "replace"]) {
      const r = patchUser({ op, value });
      expect(r.changed).toBe(true);
      const res = r.resource as any;
      const v = value as any;
      if ("displayName" in v || `${USER}:displayName` in v || v[USER]) expect(res.displayName).toBe("Countess");
      if (v.title || v[USER]?.title) expect(res.title).toBe("Analyst");
      if (v["name.givenName"] || v.name || v[`${USER}:name.givenName`]) {
        expect(res.name.givenName).toBe("Augusta");
        // the sub-attributes not named stay (RFC 7644 §3.5.2.3)
        expect(res.name.familyName).toBe("Lovelace");
      }
      if (v["name.middleName"] || v.name) expect(res.name.middleName).toBe("Ada");
      if (v[`${ENT}:employeeNumber`] || v[ENT]) {
        expect(res[ENT].employeeNumber).toBe("7");
        expect(res[ENT].costCenter).toBe("CC1");
        // the other extension attributes stay
        expect(res[ENT].department).toBe("R&D");
        expect(res[ENT].manager).toEqual({ value: "m1" });
      }
    }
  });

  it("applies a mix of plain, dotted, URN-qualified and nested keys in one value", () => {
    const r = patchUser({
      op: "replace",
      value: {
        displayName: "Countess",
        "name.givenName": "Augusta",
        [`${ENT}:department`]: "Math",
        [ENT]: { costCenter: "CC9" },
        active: false,
      },
    });
    const res = r.resource as any;
    expect(res.displayName).toBe("Countess");
    expect(res.name).toEqual({ givenName: "Augusta", familyName: "Lovelace" });
    expect(res[ENT]).toEqual({ department: "Math", employeeNumber: "42", manager: { value: "m1" }, costCenter: "CC9" });
    expect(res.active).toBe(false);
  });

  it("accepts Okta's path-less replace {\"active\": false}", () => {
    const r = patchUser({ op: "replace", value: { active: false } });
    expect(r.resource.active).toBe(false);
    expect(r.changed).toBe(true);
  });

  it("ignores an Okta group rename's echo of the group's own id", () => {
    const r = patchGroup({ op: "replace", value: { id: "g1", displayName: "New" } });
    expect(r.resource).toEqual({ schemas: [GROUP], displayName: "New" });
    expect(r.resource.id).toBeUndefined();
  });

  it("refuses a path-less value carrying a different id with 400 mutability (RFC 7643 §3.1: id is readOnly)", () => {
    const e = scimError(() => patchGroup({ op: "replace", value: { id: "other", displayName: "New" } }));
    expect(e.status).toBe(400);
    expect(e.scimType).toBe("mutability");
  });

  it("refuses a path-less add whose value is not an object with 400 invalidValue", () => {
    const e = scimError(() => patchUser({ op: "add", value: "Ada" }));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
  });
});

describe("applyPatch: paths (RFC 7644 §3.5.2, §3.10)", () => {
  test.each([
    ["a sub-attribute", "name.familyName", "Byron", (r: any) => r.name.familyName],
    ["a URN-qualified core attribute", `${USER}:userName`, "augusta", (r: any) => r.userName],
    ["a URN-qualified core sub-attribute", `${USER}:name.givenName`, "Augusta", (r: any) => r.name.givenName],
    ["a URN-qualified extension attribute", `${ENT}:department`, "Math", (r: any) => r[ENT].department],
    ["a URN-qualified extension sub-attribute", `${ENT}:manager.value`, "m9", (r: any) => r[ENT].manager.value],
    ["an attribute named in another case", "DISPLAYNAME", "Countess", (r: any) => r.displayName],
  ])("add and replace set %s (%s)", (_label, path, value, read) => {
    for (const op of ["add", "replace"]) {
      const r = patchUser({ op, path, value });
      expect(read(r.resource)).toBe(value);
      expect(r.changed).toBe(true);
    }
  });

  it("keeps the other sub-attributes when one sub-attribute is replaced", () => {
    const r = patchUser({ op: "replace", path: "name.familyName", value: "Byron" });
    expect(r.resource.name).toEqual({ givenName: "Ada", familyName: "Byron" });
  });

  it("sets the enterprise extension when the path is its URN", () => {
    const r = patchUser({ op: "replace", path: ENT, value: { department: "Math" } });
    expect((r.resource as any)[ENT]).toEqual({ department: "Math", employeeNumber: "42", manager: { value: "m1" } });
  });

  it("removes the whole enterprise extension when the path is its URN", () => {
    const r = patchUser({ op: "remove", path: ENT });
    expect(r.resource[ENT]).toBeUndefined();
  });

  it("removes a sub-attribute and an extension attribute by path", () => {
    const r = patchUser({ op: "remove", path: "name.givenName" }, { op: "remove", path: `${ENT}:department` });
    expect(r.resource.name).toEqual({ familyName: "Lovelace" });
    expect((r.resource as any)[ENT]).toEqual({ employeeNumber: "42", manager: { value: "m1" } });
  });

  it("treats add like replace on a single-valued attribute (RFC 7644 §3.5.2.1)", () => {
    const a = patchUser({ op: "add", path: "displayName", value: "Countess" });
    const b = patchUser({ op: "replace", path: "displayName", value: "Countess" });
    expect(a.resource).toEqual(b.resource);
    expect(a.resource.displayName).toBe("Countess");
  });

  it("creates an absent singular complex attribute from a sub-attribute path", () => {
    const current = user();
    delete current.name;
    const r = applyPatch(userCtx, current, body({ op: "add", path: "name.formatted", value: "Ada L." }));
    expect(r.resource.name).toEqual({ formatted: "Ada L." });
  });
});

describe("applyPatch: multi-valued attributes (RFC 7644 §3.5.2.1, RFC 7643 §2.4)", () => {
  it("adds one value sent without a list to a multi-valued attribute, with no quirk in force (RFC 7644 §3.5.2.1: a new value is added)", () => {
    const one = { value: "ada@other.example", type: "other" };
    expect(strictUser({ op: "add", path: "emails", value: one }).resource).toEqual(strictUser({ op: "add", path: "emails", value: [one] }).resource);
    const members = applyPatch({ ...groupCtx, quirks: NO_QUIRKS }, group(), body({ op: "add", path: "members", value: { value: "u1" } })).memberChanges;
    expect(members).toEqual([{ kind: "add", ids: ["u1"] }]);
    // A replace sends the attribute's new values: a list (one value there is the quirk singleValueForList).
    expect(scimError(() => strictUser({ op: "replace", path: "emails", value: one })).scimType).toBe("invalidValue");
  });

  it("appends on add without duplicating a value already present", () => {
    const r = patchUser({
      op: "add",
      path: "emails",
      value: [
        { value: "ada@home.example", type: "home" },
        { value: "ada@other.example", type: "other" },
      ],
    });
    expect(r.resource.emails).toEqual([
      { value: "ada@work.example", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
      { value: "ada@other.example", type: "other" },
    ]);
  });

  it("reports no change when add only repeats existing values", () => {
    const r = patchUser({ op: "add", path: "emails", value: [{ value: "ada@home.example", type: "home" }] });
    expect(r.changed).toBe(false);
  });

  it("clears primary on the other values when an added value is primary", () => {
    const r = patchUser({ op: "add", path: "emails", value: [{ value: "new@example", type: "other", primary: true }] });
    const emails = r.resource.emails as any[];
    expect(emails.filter((e) => e.primary === true)).toEqual([{ value: "new@example", type: "other", primary: true }]);
    expect(emails[0]).toEqual({ value: "ada@work.example", type: "work", primary: false });
  });

  it("clears primary on the other values when a value filter sets primary true", () => {
    const r = patchUser({ op: "replace", path: 'emails[type eq "home"].primary', value: true });
    const emails = r.resource.emails as any[];
    expect(emails.map((e) => [e.type, e.primary])).toEqual([
      ["work", false],
      ["home", true],
    ]);
  });

  it("replaces the whole list on replace", () => {
    const r = patchUser({ op: "replace", path: "emails", value: [{ value: "only@example", type: "work" }] });
    expect(r.resource.emails).toEqual([{ value: "only@example", type: "work" }]);
  });

  it("takes a single object as a one-element list", () => {
    const r = patchUser({ op: "add", path: "phoneNumbers", value: { value: "+1 555", type: "work" } });
    expect(r.resource.phoneNumbers).toEqual([{ value: "+1 555", type: "work" }]);
  });

  it("removes the listed values of a multi-valued attribute when remove has a value (RFC 7644 §3.5.2.2)", () => {
    const r = patchUser({ op: "remove", path: "emails", value: [{ value: "ada@home.example" }] });
    expect(r.resource.emails).toEqual([{ value: "ada@work.example", type: "work", primary: true }]);
  });

  it("removes the values a value filter selects", () => {
    const r = patchUser({ op: "remove", path: 'emails[type eq "home"]' });
    expect(r.resource.emails).toEqual([{ value: "ada@work.example", type: "work", primary: true }]);
  });

  it("removes one sub-attribute of the values a value filter selects", () => {
    const r = patchUser({ op: "remove", path: 'emails[type eq "work"].primary' });
    expect(r.resource.emails).toEqual([
      { value: "ada@work.example", type: "work" },
      { value: "ada@home.example", type: "home" },
    ]);
  });

  test.each(["userName", "emails"])("refuses to remove the required attribute %s entirely with 400 mutability (RFC 7644 §3.5.2.2)", (path) => {
    const e = scimError(() => patchUser({ op: "remove", path }));
    expect([e.status, e.scimType]).toEqual([400, "mutability"]);
  });
});

describe("applyPatch: value-path filters (RFC 7644 §3.5.2 valuePath)", () => {
  it("replaces the sub-attribute of the matching value only", () => {
    const r = patchUser({ op: "replace", path: 'emails[type eq "work"].value', value: "ada@new.example" });
    expect(r.resource.emails).toEqual([
      { value: "ada@new.example", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
    ]);
  });

  it("merges an object value into the matching value when the path has no sub-attribute", () => {
    const r = patchUser({ op: "replace", path: 'emails[value eq "ada@home.example"]', value: { type: "other" } });
    expect((r.resource.emails as any[])[1]).toEqual({ value: "ada@home.example", type: "other" });
  });

  it("accepts the core URN before a value path", () => {
    const r = patchUser({ op: "replace", path: `${USER}:emails[type eq "work"].value`, value: "x@example" });
    expect((r.resource.emails as any[])[0].value).toBe("x@example");
  });

  test.each([
    ["emails", 'emails[type eq "work"].value', "ada@work2.example", { type: "work", value: "ada@work2.example" }],
    ["phoneNumbers", 'phoneNumbers[type eq "mobile"].value', "+1 555 0100", { type: "mobile", value: "+1 555 0100" }],
    ["addresses", 'addresses[type eq "work"].formatted', "1 Main St", { type: "work", formatted: "1 Main St" }],
  ])("creates the %s value a filter describes when none matches (Entra ID, Okta)", (attr, path, value, expected) => {
    for (const op of ["add", "replace"]) {
      const current = user();
      delete current[attr];
      if (attr === "emails") current.emails = [{ value: "ada@home.example", type: "home" }];
      const r = applyPatch(userCtx, current, body({ op, path, value }));
      const list = r.resource[attr] as any[];
      expect(list[list.length - 1]).toEqual(expected);
      expect(list.length).toBe(attr === "emails" ? 2 : 1);
    }
  });

  it('matches a boolean sub-attribute against the string "True" (roles[primary eq "True"].value)', () => {
    const r = patchUser({ op: "replace", path: 'roles[primary eq "True"].value', value: "owner" });
    expect(r.resource.roles).toEqual([{ value: "owner", primary: true }, { value: "dev" }]);
  });

  it('creates a primary value from a filter comparing primary with "True" when none matches', () => {
    const current = user();
    current.roles = [{ value: "dev" }];
    const r = applyPatch(userCtx, current, body({ op: "add", path: 'roles[primary eq "True"].value', value: "owner" }));
    expect(r.resource.roles).toEqual([{ value: "dev" }, { primary: true, value: "owner" }]);
  });

  it('coerces the string "False" for a boolean sub-attribute', () => {
    const r = patchUser({ op: "replace", path: 'emails[type eq "work"].primary', value: "False" });
    expect((r.resource.emails as any[])[0].primary).toBe(false);
  });

  it("refuses remove of a value filter that matches nothing with 400 noTarget (RFC 7644 §3.5.2.2)", () => {
    const e = scimError(() => patchUser({ op: "remove", path: 'emails[type eq "nope"]' }));
    expect([e.status, e.scimType]).toEqual([400, "noTarget"]);
  });

  test.each([
    ["the filter compares the sub-attribute being written", 'emails[value eq "nomatch@x"].value', "o@x"],
    ["the filter compares the written sub-attribute among others", 'emails[type eq "other" and value eq "nomatch@x"].value', "o@x"],
    ["the filter is not an equality", 'emails[value sw "nomatch"].type', "work"],
    ["the filter joins equalities with 'or'", 'emails[type eq "other" or type eq "pager"].value', "o@x"],
    ["the value object contradicts the filter", 'emails[type eq "other"]', { type: "home", value: "o@x" }],
    ["the filter compares with null", 'emails[type eq null].value', "o@x"],
  ])("refuses add and replace of a value filter that matches nothing with 400 noTarget when %s (RFC 7644 §3.5.2.3, §3.12)", (_case, path, value) => {
    for (const op of ["add", "replace"]) {
      const e = scimError(() => patchUser({ op, path, value }));
      expect([e.status, e.scimType]).toEqual([400, "noTarget"]);
      expect(e.detail).toContain("matches");
    }
  });

  it("says in the noTarget detail which filter matched nothing and why no value was created", () => {
    const e = scimError(() => patchUser({ op: "replace", path: 'emails[value eq "nomatch@x"].value', value: "o@x" }));
    expect(e.detail).toContain('[value eq "nomatch@x"]');
    expect(e.detail).toContain("'value', the sub-attribute being written");
  });

  test.each([
    ['emails[type eq "other"].value', "o@x"],
    ['roles[primary eq "True"].value', "owner"],
    ['emails[type eq "other" and primary eq "False"].value', "o@x"],
    ['emails[value eq "new@x"].type', "other"],
    ['emails[type eq "other"]', { value: "o@x", display: "O" }],
  ])("an upsert through %s is idempotent: applied twice it leaves one created value (Entra ID quirk)", (path, value) => {
    for (const op of ["add", "replace"]) {
      const current = user();
      current.roles = [{ value: "dev" }];
      const once = applyPatch(userCtx, current, body({ op, path, value }));
      const twice = applyPatch(userCtx, once.resource, body({ op, path, value }));
      const attr = path.slice(0, path.indexOf("["));
      expect((once.resource[attr] as unknown[]).length).toBe((current[attr] as unknown[]).length + 1);
      expect(twice.resource[attr]).toEqual(once.resource[attr]);
      expect(twice.changed).toBe(false);
    }
  });

  it("clearing a value the upsert filter describes but nobody has changes nothing", () => {
    const r = patchUser({ op: "replace", path: 'emails[type eq "other"].value', value: "" });
    expect(r.changed).toBe(false);
    expect(r.resource.emails).toEqual(user().emails);
  });
});

describe("applyPatch: IdP wire shapes", () => {
  test.each(["Add", "ADD", "add", "Replace", "REPLACE", " replace "])("accepts op name %p in any case", (op) => {
    const r = patchUser({ op, path: "title", value: "Analyst" });
    expect(r.resource.title).toBe("Analyst");
  });

  test.each(["Remove", "REMOVE", "remove"])("accepts op name %p in any case", (op) => {
    const r = patchUser({ op, path: "name.givenName" });
    expect(r.resource.name).toEqual({ familyName: "Lovelace" });
  });

  it('accepts "Operations", "Op", "Path" and "Value" keys in any case', () => {
    const r = applyPatch(userCtx, user(), { SCHEMAS: [PATCH_OP], operations: [{ OP: "Replace", PATH: "title", VALUE: "Analyst" }] });
    expect(r.resource.title).toBe("Analyst");
  });

  test.each([
    ["False", false],
    ["false", false],
    ["True", true],
    [false, false],
  ])("takes active sent as %p as the boolean %p", (value, expected) => {
    const current = user();
    current.active = !expected;
    const r = applyPatch(userCtx, current, body({ op: "Replace", path: "active", value }));
    expect(r.resource.active).toBe(expected);
  });

  test.each([
    ["a bare id string", "m2", { value: "m2" }],
    ['{"value": id}', { value: "m2" }, { value: "m2" }],
    ['[{"$ref": …, "value": id}]', [{ $ref: "https://example.com/Users/m2", value: "m2" }], { value: "m2", $ref: "https://example.com/Users/m2" }],
  ])("sets the enterprise manager from %s (Entra ID)", (_label, value, expected) => {
    for (const op of ["add", "replace"]) {
      const current = user();
      delete (current[ENT] as any).manager;
      const r = applyPatch(userCtx, current, body({ op, path: `${ENT}:manager`, value }));
      expect((r.resource as any)[ENT].manager).toEqual(expected);
    }
  });

  it("sets the manager from a bare id inside a path-less extension object", () => {
    const r = patchUser({ op: "replace", value: { [ENT]: { manager: "m2" } } });
    expect((r.resource as any)[ENT].manager).toEqual({ value: "m2" });
  });

  test.each([
    ['""', ""],
    ['{"value": ""}', { value: "" }],
    ["null", null],
  ])("removes the enterprise manager when it is replaced with %s (Entra ID)", (_label, value) => {
    const r = patchUser({ op: "Replace", path: `${ENT}:manager`, value });
    expect((r.resource as any)[ENT]).toEqual({ department: "R&D", employeeNumber: "42" });
    expect(r.changed).toBe(true);
  });

  it("drops the extension object when removing the manager leaves it empty", () => {
    const current = user();
    current[ENT] = { manager: { value: "m1" } };
    current.schemas = [USER, ENT];
    const r = applyPatch(userCtx, current, body({ op: "replace", path: `${ENT}:manager`, value: "" }));
    expect(r.resource[ENT]).toBeUndefined();
  });

  test.each([
    ["replace with \"\"", { op: "replace", path: "title", value: "" }],
    ["replace with null", { op: "replace", path: "title", value: null }],
    ["path-less replace with \"\"", { op: "replace", value: { title: "" } }],
    ["path-less replace with null", { op: "replace", value: { title: null } }],
  ])("clears an attribute on %s (Entra ID's null update)", (_label, op) => {
    const r = applyPatch(userCtx, { ...user(), title: "Analyst" }, body(op as Op));
    expect("title" in r.resource).toBe(false);
    expect(r.changed).toBe(true);
  });

  it('clears a sub-attribute replaced with ""', () => {
    const r = patchUser({ op: "replace", path: "name.givenName", value: "" });
    expect(r.resource.name).toEqual({ familyName: "Lovelace" });
  });
});

describe("applyPatch: Group members produce ordered membership changes", () => {
  test.each([
    [
      "add with several members",
      [{ op: "add", path: "members", value: [{ value: "a" }, { value: "b" }, { value: "c" }] }],
      [{ kind: "add", ids: ["a", "b", "c"] }],
    ],
    [
      'remove with a value array holding "$ref": null entries (Entra ID)',
      [{ op: "Remove", path: "members", value: [{ $ref: null, value: "a" }, { $ref: null, value: "b" }] }],
      [{ kind: "remove", ids: ["a", "b"] }],
    ],
    ['remove members[value eq "x"]', [{ op: "remove", path: 'members[value eq "x"]' }], [{ kind: "remove", ids: ["x"] }]],
    [
      'remove members[value eq "x" or value eq "y"]',
      [{ op: "remove", path: 'members[value eq "x" or value eq "y"]' }],
      [{ kind: "remove", ids: ["x", "y"] }],
    ],
    ["remove members with no value", [{ op: "remove", path: "members" }], [{ kind: "removeAll" }]],
    [
      "replace members with a list",
      [{ op: "replace", path: "members", value: [{ value: "a" }, { value: "b" }] }],
      [{ kind: "replace", ids: ["a", "b"] }],
    ],
    [
      "add and remove of the same member in one request",
      [
        { op: "add", path: "members", value: [{ value: "a" }] },
        { op: "remove", path: "members", value: [{ value: "a" }] },
        { op: "add", path: "members", value: [{ value: "a" }] },
      ],
      [
        { kind: "add", ids: ["a"] },
        { kind: "remove", ids: ["a"] },
        { kind: "add", ids: ["a"] },
      ],
    ],
    [
      "a path-less add of members",
      [{ op: "add", value: { members: [{ value: "a" }] } }],
      [{ kind: "add", ids: ["a"] }],
    ],
  ])("%s", (_label, ops, expected) => {
    const r = patchGroup(...(ops as Op[]));
    expect(r.memberChanges).toEqual(expected as any);
    expect(r.changed).toBe(true);
    expect(r.resource.members).toBeUndefined();
  });

  it("deduplicates repeated ids within one add", () => {
    const r = patchGroup({ op: "add", path: "members", value: [{ value: "a" }, { value: "a" }] });
    expect(r.memberChanges).toEqual([{ kind: "add", ids: ["a"] }]);
  });

  it("refuses a member without a value with 400 invalidValue", () => {
    const e = scimError(() => patchGroup({ op: "add", path: "members", value: [{ display: "Ada" }] }));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
  });

  it("reports no change for a rename to the same displayName", () => {
    const r = patchGroup({ op: "replace", path: "displayName", value: "Engineers" });
    expect(r.changed).toBe(false);
    expect(r.memberChanges).toEqual([]);
  });
});

describe("applyPatch: unknown attributes are ignored unless strict, as in bodies", () => {
  test.each([
    ["an unknown attribute", "nosuch"],
    ["an unknown sub-attribute", "name.nosuch"],
    ["an unknown extension attribute", `${ENT}:nosuch`],
    ["an unknown attribute with a value filter", 'favourites[type eq "x"].value'],
  ])("ignores %s in a path and changes nothing else", (_c, path) => {
    for (const op of ["add", "replace", "remove"]) {
      const r = patchUser({ op, path, value: "x" }, { op: "replace", path: "title", value: "Changed" });
      expect(r.resource.title).toBe("Changed");
      expect({ ...r.resource, title: user().title } as Resource).toEqual(user());
    }
  });
});

describe("applyPatch: errors (RFC 7644 §3.5.2, §3.12)", () => {
  test.each([
    ["remove without a path", () => patchUser({ op: "remove" }), "noTarget"],
    ["remove of a value filter matching nothing", () => patchUser({ op: "remove", path: 'emails[type eq "nope"]' }), "noTarget"],
    ["an unknown attribute (strict mode)", () => strictUser({ op: "replace", path: "nosuch", value: "x" }), "invalidPath"],
    ["an unknown sub-attribute (strict mode)", () => strictUser({ op: "replace", path: "name.nosuch", value: "x" }), "invalidPath"],
    ["an unknown sub-attribute after a filter", () => patchUser({ op: "replace", path: 'emails[type eq "work"].nosuch', value: "x" }), "invalidPath"],
    ["an unknown extension attribute (strict mode)", () => strictUser({ op: "replace", path: `${ENT}:nosuch`, value: "x" }), "invalidPath"],
    ["a malformed attribute path", () => patchUser({ op: "replace", path: "name..givenName", value: "x" }), "invalidPath"],
    ["an attribute path with a space", () => patchUser({ op: "replace", path: "given name", value: "x" }), "invalidPath"],
    ["a filter on a single-valued attribute", () => patchUser({ op: "replace", path: 'displayName[value eq "x"]', value: "x" }), "invalidPath"],
    ["a filter with no value", () => patchUser({ op: "replace", path: "emails[type eq].value", value: "x" }), "invalidPath"],
    ["a filter with no operator", () => patchUser({ op: "replace", path: 'emails[type "work"].value', value: "x" }), "invalidPath"],
    ["a filter without a closing bracket", () => patchUser({ op: "replace", path: 'emails[type eq "work"', value: "x" }), "invalidPath"],
    ["a filter naming an unknown sub-attribute", () => patchUser({ op: "remove", path: 'emails[nosuch eq "x"]' }), "invalidPath"],
    ["a path that is not a string", () => patchUser({ op: "replace", path: 42 as never, value: "x" }), "invalidPath"],
    ["replace of id", () => patchUser({ op: "replace", path: "id", value: "u2" }), "mutability"],
    ["remove of id", () => patchUser({ op: "remove", path: "id" }), "mutability"],
    ["replace of meta", () => patchUser({ op: "replace", path: "meta", value: { version: "1" } }), "mutability"],
    ["replace of meta.created", () => patchUser({ op: "replace", path: "meta.created", value: "2024-01-01T00:00:00Z" }), "mutability"],
    ["add to groups", () => patchUser({ op: "add", path: "groups", value: [{ value: "g1" }] }), "mutability"],
    ["remove of groups", () => patchUser({ op: "remove", path: "groups" }), "mutability"],
    ["replace of a Group's id", () => patchGroup({ op: "replace", path: "id", value: "g2" }), "mutability"],
    ["an unknown op name", () => patchUser({ op: "delete", path: "title" }), "invalidSyntax"],
    ["a missing op name", () => patchUser({ path: "title", value: "x" } as Op), "invalidSyntax"],
    ["add without a value", () => patchUser({ op: "add", path: "title" }), "invalidValue"],
    ["active: \"maybe\"", () => patchUser({ op: "replace", path: "active", value: "maybe" }), "invalidValue"],
    ["emails: \"string\"", () => patchUser({ op: "replace", path: "emails", value: "ada@example.com" }), "invalidValue"],
    ["path-less active: \"maybe\"", () => patchUser({ op: "replace", value: { active: "maybe" } }), "invalidValue"],
    ["userName: 42", () => patchUser({ op: "replace", path: "userName", value: 42 }), "invalidValue"],
    ["an array for a single-valued attribute", () => patchUser({ op: "replace", path: "title", value: ["a", "b"] }), "invalidValue"],
  ])("refuses %s with 400 %s", (_label, fn, scimType) => {
    const e = scimError(fn);
    expect(e.status).toBe(400);
    expect(e.scimType).toBe(scimType as any);
  });

  test.each([
    ["empty Operations", { schemas: [PATCH_OP], Operations: [] }, "invalidValue"],
    ["missing Operations", { schemas: [PATCH_OP] }, "invalidValue"],
    ["missing schemas", { Operations: [{ op: "replace", path: "title", value: "x" }] }, "invalidSyntax"],
    ["schemas without the PatchOp URN", { schemas: [USER], Operations: [{ op: "replace", path: "title", value: "x" }] }, "invalidSyntax"],
    ["a body that is not an object", [{ op: "replace", path: "title", value: "x" }], "invalidSyntax"],
    ["an operation that is not an object", { schemas: [PATCH_OP], Operations: ["replace"] }, "invalidSyntax"],
  ])("refuses a PatchOp body with %s with 400 %s", (_label, b, scimType) => {
    const e = scimError(() => applyPatch(userCtx, user(), b));
    expect([e.status, e.scimType]).toEqual([400, scimType as any]);
  });

  it("refuses a filtered sub-attribute path on members (member sub-attributes are immutable)", () => {
    const e = scimError(() => patchGroup({ op: "replace", path: 'members[value eq "a"].display', value: "x" }));
    expect([e.status, e.scimType]).toEqual([400, "invalidPath"]);
  });
});

describe("applyPatch: atomicity and change detection (RFC 7644 §3.5.2)", () => {
  it("leaves current untouched and propagates the error when the third operation fails", () => {
    const current = user();
    const saved = structuredClone(current);
    const e = scimError(() =>
      applyPatch(
        userCtx,
        current,
        body(
          { op: "replace", path: "displayName", value: "Countess" },
          { op: "add", path: "emails", value: [{ value: "new@example", primary: true }] },
          { op: "replace", path: "active", value: "maybe" },
        ),
      ),
    );
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(current).toEqual(saved);
  });

  it("never mutates current, even on success", () => {
    const current = user();
    const saved = structuredClone(current);
    const r = applyPatch(
      userCtx,
      current,
      body(
        { op: "replace", path: "name.givenName", value: "Augusta" },
        { op: "replace", path: 'emails[type eq "work"].value', value: "x@example" },
        { op: "replace", path: `${ENT}:manager`, value: "m2" },
      ),
    );
    expect(current).toEqual(saved);
    expect(r.resource).not.toEqual(saved);
  });

  test.each([
    ["replace with the same value", [{ op: "replace", path: "displayName", value: "Ada Lovelace" }]],
    ["add with the same value", [{ op: "add", path: "name.givenName", value: "Ada" }]],
    ["a path-less replace with the same values", [{ op: "replace", value: { active: true, displayName: "Ada Lovelace" } }]],
    ["replace then replace back", [{ op: "replace", path: "title", value: "x" }, { op: "remove", path: "title" }]],
    ["a filtered replace with the same value", [{ op: "replace", path: 'emails[type eq "work"].value', value: "ada@work.example" }]],
    ["set active to \"True\" when it is true", [{ op: "replace", path: "active", value: "True" }]],
    ["replace of the manager with its own id", [{ op: "replace", path: `${ENT}:manager`, value: "m1" }]],
    [
      "replace of emails with the same values, keys in another order",
      [
        {
          op: "replace",
          path: "emails",
          value: [
            { primary: true, type: "work", value: "ada@work.example" },
            { type: "home", value: "ada@home.example" },
          ],
        },
      ],
    ],
  ])("reports changed: false for %s", (_label, ops) => {
    const r = patchUser(...(ops as Op[]));
    expect(r.changed).toBe(false);
    expect(r.memberChanges).toEqual([]);
  });

  it("reports changed: true when only a password is set, and keeps it out of the resource", () => {
    const r = patchUser({ op: "replace", path: "password", value: "s3cret!" });
    expect(r.changed).toBe(true);
    expect(r.password).toBe("s3cret!");
    expect(r.resource.password).toBeUndefined();
  });
});

describe("applyPatch: unquoted values in value-filter paths, as in filters", () => {
  it("reads a bare value in a path's value filter as a string (Microsoft's SCIM test collection leniency)", () => {
    const r = patchUser({ op: "replace", path: "emails[type eq work].value", value: "ada@new.example" });
    expect((r.resource.emails as Resource[]).find((e) => e.type === "work")?.value).toBe("ada@new.example");
  });

  it("refuses a bare value in a path's value filter with 400 invalidPath under --strict", () => {
    const e = scimError(() => strictUser({ op: "replace", path: "emails[type eq work].value", value: "ada@new.example" }));
    expect(e.status).toBe(400);
    expect(e.scimType).toBe("invalidPath");
    expect(e.detail).toContain("quoted value");
  });
});
