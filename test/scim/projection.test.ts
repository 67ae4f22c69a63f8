import { scimError } from "../helpers";
/**
 * `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): parseAttributeList, projectionFor,
 * project, wants. Pure functions, no server, no store.
 */
import { describe, expect, it, test } from "bun:test";
import { asksForAttributes, parseAttributeList, project, projectionFor, wants, type Projection } from "../../src/scim/projection";
import { ALL_QUIRKS, NO_QUIRKS } from "../../src/scim/quirks";
import type { Resource } from "../../src/scim/resource";
import { GROUP_RESOURCE, USER_RESOURCE, type ResourceTypeDef } from "../../src/scim/schema";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const META = { resourceType: "User", created: "2024-01-01T00:00:00Z", lastModified: "2024-01-02T00:00:00Z", location: "https://x/Users/u1", version: 'W/"3"' };

function fullUser(): Resource {
  return {
    schemas: [USER, ENT],
    id: "u1",
    externalId: "ext-1",
    userName: "ada",
    displayName: "Ada Lovelace",
    name: { givenName: "Ada", familyName: "Lovelace" },
    active: true,
    emails: [
      { value: "ada@work.example", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
    ],
    groups: [{ value: "g1", display: "Engineers", type: "direct" }],
    [ENT]: { department: "R&D", employeeNumber: "42", manager: { value: "m1", displayName: "Boss" } },
    meta: META,
  };
}

function fullGroup(): Resource {
  return {
    schemas: [GROUP],
    id: "g1",
    displayName: "Engineers",
    members: [{ value: "u1", display: "Ada", type: "User" }],
    meta: { ...META, resourceType: "Group" },
  };
}

/** The projection a single-type endpoint (/Users or /Groups) builds. */
function projection(rt: ResourceTypeDef, attributes?: string, excluded?: string, types: ResourceTypeDef[] = [rt]): Projection {
  return projectionFor(rt, parseAttributeList(types, attributes, "attributes"), parseAttributeList(types, excluded, "excludedAttributes"));
}


describe("attributes (RFC 7644 §3.4.2.5, §3.9)", () => {
  it("returns schemas, id and userName only for attributes=userName", () => {
    expect(project(fullUser(), projection(USER_RESOURCE, "userName"))).toEqual({ schemas: [USER, ENT], id: "u1", userName: "ada" });
  });

  test.each([
    ["name.givenName", { name: { givenName: "Ada" } }],
    ["name.givenName,name.familyName", { name: { givenName: "Ada", familyName: "Lovelace" } }],
    ["emails.value", { emails: [{ value: "ada@work.example" }, { value: "ada@home.example" }] }],
    [
      "emails.value,emails.type",
      {
        emails: [
          { value: "ada@work.example", type: "work" },
          { value: "ada@home.example", type: "home" },
        ],
      },
    ],
    ["emails", { emails: fullUser().emails }],
    ["emails,emails.value", { emails: fullUser().emails }],
    ["displayName,active", { displayName: "Ada Lovelace", active: true }],
    ["externalId", { externalId: "ext-1" }],
    ["meta", { meta: META }],
    ["meta.version", { meta: { version: 'W/"3"' } }],
    ["groups", { groups: fullUser().groups }],
  ])("returns only the named (sub-)attributes for attributes=%s", (attributes, expected) => {
    expect(project(fullUser(), projection(USER_RESOURCE, attributes))).toEqual({ schemas: [USER, ENT], id: "u1", ...expected } as Resource);
  });

  it("keeps every element in place when a sub-attribute is missing from some elements", () => {
    const u = fullUser();
    u.emails = [{ value: "a@example" }, { value: "b@example", type: "home" }];
    expect(project(u, projection(USER_RESOURCE, "emails.value,emails.type")).emails).toEqual([
      { value: "a@example" },
      { value: "b@example", type: "home" },
    ]);
  });

  test.each([
    [`${ENT}:department`, { [ENT]: { department: "R&D" } }],
    [`${ENT}:manager.value`, { [ENT]: { manager: { value: "m1" } } }],
    [`${ENT}:department,${ENT}:employeeNumber`, { [ENT]: { department: "R&D", employeeNumber: "42" } }],
    [`${USER}:userName`, { userName: "ada" }],
    [`${USER}:name.familyName`, { name: { familyName: "Lovelace" } }],
  ])("resolves the URN-qualified attribute %s", (attributes, expected) => {
    expect(project(fullUser(), projection(USER_RESOURCE, attributes))).toEqual({ schemas: [USER, ENT], id: "u1", ...expected } as Resource);
  });

  test.each([
    ["USERNAME", { userName: "ada" }],
    ["Name.GivenName", { name: { givenName: "Ada" } }],
    [`${ENT.toUpperCase()}:DEPARTMENT`, { [ENT]: { department: "R&D" } }],
    [" userName , displayName ", { userName: "ada", displayName: "Ada Lovelace" }],
  ])("matches attribute names case-insensitively and ignores blanks around them (%s)", (attributes, expected) => {
    expect(project(fullUser(), projection(USER_RESOURCE, attributes))).toEqual({ schemas: [USER, ENT], id: "u1", ...expected } as Resource);
  });

  it("leaves out an attribute the resource does not have", () => {
    expect(project(fullUser(), projection(USER_RESOURCE, "title,nickName"))).toEqual({ schemas: [USER, ENT], id: "u1" });
  });

  it("answers only id and schemas for a resource type that has none of the attributes (root search, RFC 7644 §3.4.3)", () => {
    const types = [USER_RESOURCE, GROUP_RESOURCE];
    expect(project(fullGroup(), projection(GROUP_RESOURCE, "members", undefined, types))).toEqual({
      schemas: [GROUP],
      id: "g1",
      members: fullGroup().members,
    });
    expect(project(fullUser(), projection(USER_RESOURCE, "members", undefined, types))).toEqual({ schemas: [USER, ENT], id: "u1" });
  });
});

describe("excludedAttributes (RFC 7644 §3.4.2.5)", () => {
  test.each([
    ["displayName", ["displayName"]],
    ["emails,groups,meta", ["emails", "groups", "meta"]],
    ["DISPLAYNAME", ["displayName"]],
  ])("removes the named attributes (%s) and keeps the rest", (excluded, removed) => {
    const out = project(fullUser(), projection(USER_RESOURCE, undefined, excluded));
    const expected = fullUser();
    for (const k of removed) delete expected[k];
    expect(out).toEqual(expected);
  });

  test.each(["id", "id,displayName", `${USER}:id`])("never removes id (returned \"always\"): excludedAttributes=%s", (excluded) => {
    const out = project(fullUser(), projection(USER_RESOURCE, undefined, excluded));
    expect(out.id).toBe("u1");
    expect(out.schemas).toEqual([USER, ENT]);
  });

  it("removes a sub-attribute from a singular complex attribute", () => {
    expect(project(fullUser(), projection(USER_RESOURCE, undefined, "name.givenName")).name).toEqual({ familyName: "Lovelace" });
  });

  it("removes a sub-attribute from every value of a multi-valued attribute", () => {
    expect(project(fullUser(), projection(USER_RESOURCE, undefined, "emails.type,emails.primary")).emails).toEqual([
      { value: "ada@work.example" },
      { value: "ada@home.example" },
    ]);
  });

  it("removes an extension attribute, and the extension object once it is empty", () => {
    const one = project(fullUser(), projection(USER_RESOURCE, undefined, `${ENT}:department`));
    expect(one[ENT]).toEqual({ employeeNumber: "42", manager: { value: "m1", displayName: "Boss" } });
    const all = project(fullUser(), projection(USER_RESOURCE, undefined, `${ENT}:department,${ENT}:employeeNumber,${ENT}:manager`));
    expect(all[ENT]).toBeUndefined();
  });

  it("does not modify the full representation it was given", () => {
    const full = fullUser();
    project(full, projection(USER_RESOURCE, undefined, "emails.type,name,displayName"));
    expect(full).toEqual(fullUser());
  });
});

describe("parseAttributeList", () => {
  test.each([undefined, "", "   "])("returns undefined for an absent or blank list (%p), so the full resource is returned", (text) => {
    expect(parseAttributeList([USER_RESOURCE], text, "attributes")).toBeUndefined();
    const p = projection(USER_RESOURCE, text, text);
    expect(project(fullUser(), p)).toEqual(fullUser());
    expect(asksForAttributes(p)).toBe(false);
  });

  test.each([
    ["nosuch"],
    ["name.nosuch"],
    ["emails.value.extra"],
    ["userName.value"],
    [`${ENT}:nosuch`],
    ["urn:example:unknown:1.0:User:userName"],
    ["userName,nosuch"],
    ["members"],
  ])("refuses the unknown attribute name %p for Users with 400 invalidValue", (text) => {
    for (const param of ["attributes", "excludedAttributes"]) {
      const e = scimError(() => parseAttributeList([USER_RESOURCE], text, param));
      expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
      expect(e.detail).toContain(param);
    }
  });

  it("accepts a name any of several resource types knows (root search)", () => {
    const m = parseAttributeList([USER_RESOURCE, GROUP_RESOURCE], "userName,members", "attributes")!;
    expect(m.get(USER_RESOURCE)!.map((r) => r.path)).toEqual(["userName"]);
    expect(m.get(GROUP_RESOURCE)!.map((r) => r.path)).toEqual(["members"]);
  });

  it("refuses a list longer than 4096 characters with 400 invalidValue", () => {
    const e = scimError(() => parseAttributeList([USER_RESOURCE], "userName,".repeat(600), "attributes"));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
  });

  it("resolves names to canonical paths", () => {
    const m = parseAttributeList([USER_RESOURCE], `username,NAME.givenname,${ENT.toUpperCase()}:Manager.VALUE`, "attributes")!;
    expect(m.get(USER_RESOURCE)!.map((r) => r.path)).toEqual(["userName", "name.givenName", `${ENT}:manager.value`]);
  });
});

describe("wants: whether a response needs members or groups loaded", () => {
  test.each([
    ["no projection", GROUP_RESOURCE, undefined, undefined, "members", true],
    ["attributes=members", GROUP_RESOURCE, "members", undefined, "members", true],
    ["attributes=members.value", GROUP_RESOURCE, "members.value", undefined, "members", true],
    ["attributes=displayName", GROUP_RESOURCE, "displayName", undefined, "members", false],
    ["excludedAttributes=members", GROUP_RESOURCE, undefined, "members", "members", false],
    ["excludedAttributes=members.display", GROUP_RESOURCE, undefined, "members.display", "members", true],
    ["excludedAttributes=displayName", GROUP_RESOURCE, undefined, "displayName", "members", true],
    ["no projection", USER_RESOURCE, undefined, undefined, "groups", true],
    ["attributes=groups", USER_RESOURCE, "groups", undefined, "groups", true],
    ["attributes=groups.display", USER_RESOURCE, "groups.display", undefined, "groups", true],
    ["attributes=userName", USER_RESOURCE, "userName", undefined, "groups", false],
    ["excludedAttributes=groups", USER_RESOURCE, undefined, "groups", "groups", false],
    ["excludedAttributes=GROUPS", USER_RESOURCE, undefined, "GROUPS", "groups", false],
  ].map(([label, rt, attributes, excluded, name, expected]) => [label, (rt as ResourceTypeDef).name, name, expected, rt, attributes, excluded]))("with %s on a %s, wants(%s) is %p", (_label, _rtName, name, expected, rt, attributes, excluded) => {
    const p = projection(rt as ResourceTypeDef, attributes as string | undefined, excluded as string | undefined);
    expect(wants(p, null, name as string)).toBe(expected as boolean);
  });

  it("tells an extension attribute from a core attribute of the same name", () => {
    const p = projection(USER_RESOURCE, `${ENT}:department`);
    expect(wants(p, ENT, "department")).toBe(true);
    expect(wants(p, null, "department")).toBe(false);
  });

  test.each([
    ["attributes=userName", "userName", undefined, true],
    ["excludedAttributes=emails", undefined, "emails", true],
    ["neither", undefined, undefined, false],
  ])("asksForAttributes is true only when a list was given (%s)", (_label, attributes, excluded, expected) => {
    expect(asksForAttributes(projection(USER_RESOURCE, attributes, excluded))).toBe(expected);
  });
});

describe("value filters in attributes and excludedAttributes (Microsoft's SCIM test collection; RFC 7644 §3.5.2 valuePath syntax)", () => {
  function threeEmails(): Resource {
    const u = fullUser();
    u.emails = [
      { value: "ada@work.example", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
      { value: "lovelace@work.example", type: "Work" },
    ];
    return u;
  }

  test.each([
    ['emails[type eq "work"]', { emails: [{ value: "ada@work.example", type: "work", primary: true }, { value: "lovelace@work.example", type: "Work" }] }],
    ['emails[type eq "work"].value', { emails: [{ value: "ada@work.example" }, { value: "lovelace@work.example" }] }],
    ['emails[type eq "work" and primary eq true].value', { emails: [{ value: "ada@work.example" }] }],
    ['emails[type eq "home"].value,emails[primary eq true].type', { emails: [{ type: "work" }, { value: "ada@home.example" }] }],
    ['emails[type eq "home"],emails.type', { emails: [{ type: "work" }, { value: "ada@home.example", type: "home" }, { type: "Work" }] }],
    ['emails,emails[type eq "home"]', { emails: threeEmails().emails }],
    ['userName,EMAILS[TYPE EQ "home"].VALUE', { userName: "ada", emails: [{ value: "ada@home.example" }] }],
    ['emails[value co ","],userName', { userName: "ada" }],
    ['emails[type eq "other"]', {}],
    ['groups[display eq "engineers"].value', { groups: [{ value: "g1" }] }],
  ])("attributes=%s answers the attribute narrowed to the elements the filter matches", (attributes, expected) => {
    expect(project(threeEmails(), projection(USER_RESOURCE, attributes))).toEqual({ schemas: [USER, ENT], id: "u1", ...expected } as Resource);
  });

  it("reads an unquoted value in the filter only with the leniency (off under --strict)", () => {
    const lenient = parseAttributeList([USER_RESOURCE], "emails[type eq home].value", "attributes", { quirks: ALL_QUIRKS });
    expect(project(threeEmails(), projectionFor(USER_RESOURCE, lenient)).emails).toEqual([{ value: "ada@home.example" }]);
    const quoted = new Set([...ALL_QUIRKS].filter((q) => q !== "unquotedFilterValues"));
    const e = scimError(() => parseAttributeList([USER_RESOURCE], "emails[type eq home].value", "attributes", { quirks: quoted }));
    expect([e.status, e.scimType]).toEqual([400, "invalidFilter"]);
    // --strict refuses the value filter itself (valueFiltersInAttributes), before reading it.
    const strict = scimError(() => parseAttributeList([USER_RESOURCE], "emails[type eq home].value", "attributes", { quirks: NO_QUIRKS }));
    expect([strict.status, strict.scimType]).toEqual([400, "invalidValue"]);
  });

  test.each([
    ['emails[type eq "home"]', [{ value: "ada@work.example", type: "work", primary: true }, { value: "lovelace@work.example", type: "Work" }]],
    ['emails[type eq "work"].value', [{ type: "work", primary: true }, { value: "ada@home.example", type: "home" }, { type: "Work" }]],
    ['emails[value pr]', undefined],
  ])("excludedAttributes=%s leaves out the matching elements (or their sub-attribute)", (excluded, emails) => {
    const out = project(threeEmails(), projection(USER_RESOURCE, undefined, excluded));
    expect(out.emails).toEqual(emails);
    expect(out.userName).toBe("ada");
  });

  it("keeps loading a Group's members when excludedAttributes filters them (only some go)", () => {
    expect(wants(projection(GROUP_RESOURCE, undefined, 'members[type eq "Group"]'), null, "members")).toBe(true);
    expect(wants(projection(GROUP_RESOURCE, 'members[type eq "User"]'), null, "members")).toBe(true);
  });

  test.each([
    ['emails[type eqq "work"]', /unknown operator 'eqq' at position 6/],
    ['emails[type eq "work"', /unclosed '\[' at position 7/],
    ['emails[type eq "work"].value,userName', null],
    ['emails[nosuch eq "x"]', /no sub-attribute 'nosuch'/],
    ['emails[type eq "work" and]', /expected an attribute name/],
  ])("answers an invalid filter in %s with 400 invalidFilter that quotes the filter and says where", (attributes, detail) => {
    for (const param of ["attributes", "excludedAttributes"]) {
      if (detail === null) {
        expect(parseAttributeList([USER_RESOURCE], attributes, param)).toBeDefined();
        continue;
      }
      const e = scimError(() => parseAttributeList([USER_RESOURCE], attributes, param));
      expect([e.status, e.scimType]).toEqual([400, "invalidFilter"]);
      expect(e.detail).toMatch(detail);
      expect(e.detail).toContain(param);
    }
  });

  test.each([
    ['userName[value eq "x"]', /multi-valued complex/],
    ['name[givenName eq "Ada"]', /multi-valued complex/],
    ['emails.value[type eq "x"]', /multi-valued complex/],
    ['emails[type eq "work"].nosuch', /not '\.' and a sub-attribute/],
    ['emails[type eq "work"]value', /not '\.' and a sub-attribute/],
    ['nosuch[type eq "work"]', /unknown attribute 'nosuch'/],
  ])("refuses %s with 400 invalidValue", (attributes, detail) => {
    const e = scimError(() => parseAttributeList([USER_RESOURCE], attributes, "attributes"));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toMatch(detail);
  });

  it("applies a filter only to the resource types whose attribute it names (root search)", () => {
    const types = [USER_RESOURCE, GROUP_RESOURCE];
    const m = parseAttributeList(types, 'emails[type eq "home"].value,displayName', "attributes")!;
    expect(project(threeEmails(), projectionFor(USER_RESOURCE, m))).toEqual({ schemas: [USER, ENT], id: "u1", displayName: "Ada Lovelace", emails: [{ value: "ada@home.example" }] });
    expect(project(fullGroup(), projectionFor(GROUP_RESOURCE, m))).toEqual({ schemas: [GROUP], id: "g1", displayName: "Engineers" });
  });
});
