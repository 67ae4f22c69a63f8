import { scimError } from "../helpers";
/**
 * Body normalisation and the product's rules (RFC 7643 §2, §3, §4): normalizeBody, checkProductRules,
 * coerceAttribute. Pure functions, no server, no store.
 */
import { describe, expect, it, test } from "bun:test";
import { ALL_QUIRKS, NO_QUIRKS } from "../../src/scim/quirks";
import { checkProductRules, coerceAttribute, finalizeResource, missingRequired, normalizeBody, type Resource } from "../../src/scim/resource";
import { ENTERPRISE_USER_SCHEMA_DEF, GROUP_RESOURCE, USER_RESOURCE, USER_SCHEMA_DEF, type AttributeDef, type ResourceTypeDef } from "../../src/scim/schema";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const lax = { quirks: ALL_QUIRKS };
const strict = { quirks: NO_QUIRKS };

function minimalUser(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemas: [USER],
    userName: "ada",
    displayName: "Ada Lovelace",
    emails: [{ value: "ada@example.com", type: "work", primary: true }],
    ...extra,
  };
}


const attr = (name: string, defs: AttributeDef[] = USER_SCHEMA_DEF.attributes): AttributeDef => defs.find((a) => a.name === name)!;

describe("normalizeBody: canonical names and values (RFC 7643 §2.1, §2.3, §2.5)", () => {
  it("maps attribute and sub-attribute names in any case to their canonical names", () => {
    const n = normalizeBody(
      USER_RESOURCE,
      {
        SCHEMAS: [USER],
        USERNAME: "ada",
        DisplayName: "Ada",
        NAME: { GIVENNAME: "Ada", familyname: "Lovelace" },
        Emails: [{ VALUE: "ada@example.com", Type: "work", PRIMARY: true }],
        phonenumbers: [{ value: "+1 555", TYPE: "mobile" }],
        [ENT.toUpperCase()]: { EmployeeNumber: "7", MANAGER: { VALUE: "m1" } },
      },
      lax,
    );
    expect(n.resource).toEqual({
      userName: "ada",
      displayName: "Ada",
      name: { givenName: "Ada", familyName: "Lovelace" },
      emails: [{ value: "ada@example.com", type: "work", primary: true }],
      phoneNumbers: [{ value: "+1 555", type: "mobile" }],
      [ENT]: { employeeNumber: "7", manager: { value: "m1" } },
      schemas: [USER, ENT],
    });
  });

  it("reads dotted and URN-qualified keys in a body", () => {
    const n = normalizeBody(
      USER_RESOURCE,
      minimalUser({ "name.givenName": "Ada", [`${ENT}:department`]: "R&D", [`${USER}:title`]: "Analyst" }),
      lax,
    );
    expect(n.resource.name).toEqual({ givenName: "Ada" });
    expect(n.resource.title).toBe("Analyst");
    expect(n.resource[ENT]).toEqual({ department: "R&D" });
    expect(n.resource.schemas).toEqual([USER, ENT]);
  });

  test.each([
    ["True", true],
    ["true", true],
    ["false", false],
    ["FALSE", false],
    [" true ", true],
    [true, true],
    [false, false],
  ])("takes active %p as the boolean %p", (sent, expected) => {
    const n = normalizeBody(USER_RESOURCE, minimalUser({ active: sent }), lax);
    expect(n.resource.active).toBe(expected);
  });

  test.each([
    ["True", true],
    ["false", false],
  ])("takes emails[].primary %p as the boolean %p", (sent, expected) => {
    const n = normalizeBody(USER_RESOURCE, minimalUser({ emails: [{ value: "a@example.com", primary: sent }] }), lax);
    expect((n.resource.emails as Resource[])[0]!.primary).toBe(expected);
  });

  it("drops nulls: attributes, sub-attributes and list elements (RFC 7643 §2.5)", () => {
    const n = normalizeBody(
      USER_RESOURCE,
      minimalUser({
        title: null,
        name: { givenName: null, familyName: "Lovelace" },
        emails: [null, { value: "ada@example.com", type: null }],
        addresses: null,
        [ENT]: null,
      }),
      lax,
    );
    expect(n.resource).toEqual({
      userName: "ada",
      displayName: "Ada Lovelace",
      name: { familyName: "Lovelace" },
      emails: [{ value: "ada@example.com" }],
      schemas: [USER],
    });
  });

  it("drops a complex attribute whose sub-attributes are all null", () => {
    const n = normalizeBody(USER_RESOURCE, minimalUser({ name: { givenName: null } }), lax);
    expect("name" in n.resource).toBe(false);
  });

  test.each([
    ["an unknown attribute", { nickname2: "x" }],
    ["an unknown sub-attribute", { name: { givenName: "Ada", nosuch: "x" } }],
    ["an unknown extension attribute", { [ENT]: { department: "R&D", nosuch: "x" } }],
    ["an unknown email sub-attribute", { emails: [{ value: "a@example.com", label: "x" }] }],
  ])("ignores %s by default and refuses it with 400 invalidSyntax in strict mode", (_label, extra) => {
    const n = normalizeBody(USER_RESOURCE, minimalUser(extra), lax);
    expect(JSON.stringify(n.resource)).not.toContain("nosuch");
    expect(JSON.stringify(n.resource)).not.toContain("nickname2");
    expect(JSON.stringify(n.resource)).not.toContain("label");
    const e = scimError(() => normalizeBody(USER_RESOURCE, minimalUser(extra), strict));
    expect([e.status, e.scimType]).toEqual([400, "invalidSyntax"]);
  });

  it("refuses an unknown member sub-attribute only in strict mode", () => {
    const b = { schemas: [GROUP], displayName: "G", members: [{ value: "u1", nosuch: 1 }] };
    expect(normalizeBody(GROUP_RESOURCE, b, lax).members).toEqual(["u1"]);
    const e = scimError(() => normalizeBody(GROUP_RESOURCE, b, strict));
    expect([e.status, e.scimType]).toEqual([400, "invalidSyntax"]);
  });

  test.each([
    ["by default", lax],
    ["in strict mode", strict],
  ])("ignores the read-only id, meta and groups %s (RFC 7643 §3.1)", (_mode, opts) => {
    const n = normalizeBody(
      USER_RESOURCE,
      minimalUser({
        id: "client-chosen",
        meta: { resourceType: "User", created: "2020-01-01T00:00:00Z", version: 'W/"9"' },
        groups: [{ value: "g1", display: "G" }],
      }),
      opts,
    );
    expect(n.resource.id).toBeUndefined();
    expect(n.resource.meta).toBeUndefined();
    expect(n.resource.groups).toBeUndefined();
    expect(n.resource.userName).toBe("ada");
  });

  it("ignores the read-only displayName of the manager", () => {
    const n = normalizeBody(USER_RESOURCE, minimalUser({ [ENT]: { manager: { value: "m1", displayName: "Boss" } } }), lax);
    expect(n.resource[ENT]).toEqual({ manager: { value: "m1" } });
  });

  test.each([
    ["by default", lax],
    ["in strict mode", strict],
  ])("takes password out of the resource into .password %s (RFC 7643 §4.1.1)", (_mode, opts) => {
    const n = normalizeBody(USER_RESOURCE, minimalUser({ password: "s3cret!" }), opts);
    expect(n.password).toBe("s3cret!");
    expect(n.resource.password).toBeUndefined();
    expect(JSON.stringify(n.resource)).not.toContain("s3cret");
  });

  it("takes a single object for a multi-valued attribute as a one-element list", () => {
    const n = normalizeBody(USER_RESOURCE, minimalUser({ emails: { value: "a@example.com" } }), lax);
    expect(n.resource.emails).toEqual([{ value: "a@example.com" }]);
  });

  it("collects Group member ids in order, deduplicated, outside the resource", () => {
    const n = normalizeBody(
      GROUP_RESOURCE,
      { schemas: [GROUP], displayName: "G", members: [{ value: "b" }, { Value: "a", $ref: null }, { value: "b" }] },
      lax,
    );
    expect(n.members).toEqual(["b", "a"]);
    expect(n.resource).toEqual({ displayName: "G", schemas: [GROUP] });
  });

  test.each([
    ["a member that is a bare string", ["u1"]],
    ["a member without value", [{ display: "Ada" }]],
    ["a member with an empty value", [{ value: "" }]],
  ])("refuses %s with 400 invalidValue", (_label, members) => {
    const e = scimError(() => normalizeBody(GROUP_RESOURCE, { schemas: [GROUP], displayName: "G", members }, lax));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
  });
});

describe("normalizeBody: schemas (RFC 7643 §3)", () => {
  test.each([
    ["the core URN and the enterprise URN", USER_RESOURCE, [USER, ENT]],
    ["the core URN in another case", USER_RESOURCE, [USER.toUpperCase()]],
    ["the legacy SCIM 1.0 core URN alone", USER_RESOURCE, ["urn:scim:schemas:core:1.0"]],
    ["the core URN with the legacy 1.0 URN", USER_RESOURCE, ["urn:scim:schemas:core:1.0", USER]],
    ["the core URN with an unknown extra URN", USER_RESOURCE, [USER, "urn:example:custom:1.0"]],
    ["a Group's core URN with the Microsoft ADSCIM URN", GROUP_RESOURCE, ["http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group", GROUP]],
    ["a Group's legacy SCIM 1.0 core URN", GROUP_RESOURCE, ["urn:scim:schemas:core:1.0"]],
  ])("accepts %s and answers with the canonical schemas", (_label, rt, schemas) => {
    const b = rt === USER_RESOURCE ? { ...minimalUser(), schemas } : { schemas, displayName: "G" };
    const n = normalizeBody(rt, b, lax);
    expect(n.resource.schemas).toEqual([rt.schema.id]);
  });

  it("lists the enterprise URN in schemas only when the resource has enterprise attributes", () => {
    expect(normalizeBody(USER_RESOURCE, minimalUser({ schemas: [USER, ENT] }), lax).resource.schemas).toEqual([USER]);
    expect(normalizeBody(USER_RESOURCE, minimalUser({ [ENT]: { department: "x" } }), lax).resource.schemas).toEqual([USER, ENT]);
  });

  test.each([
    ["missing", undefined, "invalidSyntax"],
    ["empty", [], "invalidSyntax"],
    ["a string", USER, "invalidSyntax"],
    ["holding a number", [USER, 1], "invalidSyntax"],
    ["without the core URN", [ENT], "invalidValue"],
    ["naming the Group schema for a User", [GROUP], "invalidValue"],
    ["only the Microsoft ADSCIM URN", ["http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"], "invalidValue"],
  ])("refuses schemas %s with 400 %s", (_label, schemas, scimType) => {
    const b = minimalUser();
    if (schemas === undefined) delete b.schemas;
    else b.schemas = schemas;
    const rt = (schemas as unknown[] | undefined)?.[0]?.toString().includes("ADSCIM") ? GROUP_RESOURCE : USER_RESOURCE;
    const e = scimError(() => normalizeBody(rt, rt === GROUP_RESOURCE ? { schemas, displayName: "G" } : b, lax));
    expect([e.status, e.scimType]).toEqual([400, scimType as any]);
  });

  test.each([
    ["null", null],
    ["a string", "text"],
    ["a number", 42],
    ["an array", [minimalUser()]],
  ])("refuses a body that is %s, not a JSON object, with 400 invalidSyntax", (_label, b) => {
    const e = scimError(() => normalizeBody(USER_RESOURCE, b, lax));
    expect([e.status, e.scimType]).toEqual([400, "invalidSyntax"]);
  });
});

describe("normalizeBody: JSON types (RFC 7643 §2.3)", () => {
  test.each([
    ["a string where a complex value is expected", { name: "Ada Lovelace" }, "name"],
    ["a string where a multi-valued complex value is expected", { emails: "ada@example.com" }, "emails"],
    ["an array where a single value is expected", { displayName: ["Ada", "Lovelace"] }, "displayName"],
    ["an array for userName", { userName: ["ada"] }, "userName"],
    ["a number for userName", { userName: 42 }, "userName"],
    ["an object for active", { active: { value: true } }, "active"],
    ["a word that is not a boolean for active", { active: "maybe" }, "active"],
    ["a number for a sub-attribute", { name: { givenName: 7 } }, "name.givenName"],
    ["a boolean for an email value", { emails: [{ value: true }] }, "emails[0].value"],
    ["a string for the enterprise extension", { [ENT]: "R&D" }, ENT],
    ["an array of two managers", { [ENT]: { manager: [{ value: "a" }, { value: "b" }] } }, "manager"],
  ])("refuses %s with 400 invalidValue and a detail naming the attribute", (_label, extra, named) => {
    const e = scimError(() => normalizeBody(USER_RESOURCE, minimalUser(extra), lax));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toContain(named);
  });

  it("refuses an array for a Group's displayName naming the attribute", () => {
    const e = scimError(() => normalizeBody(GROUP_RESOURCE, { schemas: [GROUP], displayName: ["G"] }, lax));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toContain("displayName");
  });
});

describe("checkProductRules: the product's own rules", () => {
  const normalized = (b: Record<string, unknown>) => normalizeBody(USER_RESOURCE, b, lax).resource;

  it("accepts a minimal User and defaults active to true when it is created", () => {
    const r = normalized(minimalUser());
    checkProductRules(USER_RESOURCE, r);
    expect(finalizeResource(USER_RESOURCE, r).active).toBe(true);
  });

  it("keeps active false when the client sends it", () => {
    const r = normalized(minimalUser({ active: "False" }));
    expect(finalizeResource(USER_RESOURCE, r).active).toBe(false);
  });

  it("keeps the stored active when a replacement leaves it out, and never changes the body it is given", () => {
    const r = normalized(minimalUser());
    expect(finalizeResource(USER_RESOURCE, r, { ...r, active: false }).active).toBe(false);
    expect(finalizeResource(USER_RESOURCE, r, { ...r, active: true }).active).toBe(true);
    expect(r.active).toBeUndefined();
  });

  it("accepts name.formatted in place of displayName", () => {
    const b = minimalUser({ name: { formatted: "Ada Lovelace" } });
    delete b.displayName;
    expect(() => checkProductRules(USER_RESOURCE, normalized(b))).not.toThrow();
  });

  test.each([
    ["userName missing", (b: Record<string, unknown>) => delete b.userName, ["userName"]],
    ["userName blank", (b: Record<string, unknown>) => (b.userName = "   "), ["userName"]],
    ["userName longer than 1024 characters", (b: Record<string, unknown>) => (b.userName = "a".repeat(1025)), ["userName"]],
    ["neither displayName nor name.formatted", (b: Record<string, unknown>) => delete b.displayName, ["displayName", "name.formatted"]],
    [
      "a blank displayName and a blank name.formatted",
      (b: Record<string, unknown>) => {
        b.displayName = " ";
        b.name = { formatted: " ", givenName: "Ada" };
      },
      ["displayName", "name.formatted"],
    ],
    ["no emails", (b: Record<string, unknown>) => delete b.emails, ["emails"]],
    ["only null emails", (b: Record<string, unknown>) => (b.emails = [null]), ["emails"]],
    ["an email without a value", (b: Record<string, unknown>) => (b.emails = [{ type: "work" }]), ["emails"]],
  ])("refuses a User with %s with 400 invalidValue", (_label, edit, named) => {
    const b = minimalUser();
    edit(b);
    const e = scimError(() => checkProductRules(USER_RESOURCE, normalized(b)));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    for (const n of named) expect(e.detail).toContain(n);
  });

  test.each([
    ["missing", undefined],
    ["blank", "  "],
  ])("refuses a Group whose displayName is %s with 400 invalidValue", (_label, displayName) => {
    const r = normalizeBody(GROUP_RESOURCE, { schemas: [GROUP], displayName }, lax).resource;
    const e = scimError(() => checkProductRules(GROUP_RESOURCE, r));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toContain("displayName");
  });

  it("accepts a Group with a displayName and adds no active", () => {
    const r = normalizeBody(GROUP_RESOURCE, { schemas: [GROUP], displayName: "Engineers" }, lax).resource;
    checkProductRules(GROUP_RESOURCE, r);
    expect(r).toEqual({ displayName: "Engineers", schemas: [GROUP] });
  });

  it("keeps exactly one primary email when two are sent primary (RFC 7643 §2.4), the last one", () => {
    const r = normalized(
      minimalUser({
        emails: [
          { value: "a@example.com", primary: true },
          { value: "b@example.com", primary: "True" },
          { value: "c@example.com" },
        ],
      }),
    );
    checkProductRules(USER_RESOURCE, r);
    const emails = r.emails as Resource[];
    expect(emails.filter((e) => e.primary === true)).toEqual([{ value: "b@example.com", primary: true }]);
    expect(emails).toHaveLength(3);
  });
});

describe("coerceAttribute", () => {
  const emails = attr("emails");
  const manager = attr("manager", ENTERPRISE_USER_SCHEMA_DEF.attributes);
  const active = attr("active");
  const title = attr("title");

  test.each([
    ["a list with duplicate values", emails, [{ value: "a@x" }, { value: "a@x" }], [{ value: "a@x" }]],
    ["a list of nulls", emails, [null, null], undefined],
    ["null", title, null, undefined],
    ["sub-attribute names in another case", emails, [{ VALUE: "a@x", TYPE: "work" }], [{ value: "a@x", type: "work" }]],
  ])("coerces %s", (_label, a, v, expected) => {
    expect(coerceAttribute(a, v, a.name, lax)).toEqual(expected as any);
  });

  test.each([
    ["a two-element list for a singular complex attribute", manager, [{ value: "a" }, { value: "b" }]],
    ["a list for a simple single-valued attribute", title, ["x"]],
    ["a number for a string", title, 1],
    ["a string for a complex value", manager, "m1"],
    // The quirks listForSingleValue, singleValueForList and stringBooleans rewrite these before coercion (quirks.test.ts).
    ["a single object for a multi-valued attribute", emails, { value: "a@x" }],
    ["a one-element list for a singular complex attribute (Entra's manager)", manager, [{ value: "m1" }]],
    ["an empty list for a singular complex attribute", manager, []],
    ["a string boolean", active, "TRUE"],
  ])("refuses %s with 400 invalidValue", (_label, a, v) => {
    const e = scimError(() => coerceAttribute(a, v, a.name, lax));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toContain(a.name);
  });

  it("keeps read-only sub-attributes only when asked to", () => {
    expect(coerceAttribute(manager, { value: "m1", displayName: "Boss" }, "manager", lax)).toEqual({ value: "m1" });
    expect(coerceAttribute(manager, { value: "m1", displayName: "Boss" }, "manager", lax, true)).toEqual({ value: "m1", displayName: "Boss" });
  });
});

describe("missingRequired: the validator walks the schema definitions, not hand-written rules (RFC 7643 §2.2, §7)", () => {
  // A resource type made up for the test: whatever the definitions say is what gets enforced.
  const s = (name: string, o: Partial<AttributeDef> = {}): AttributeDef => ({
    name,
    type: "string",
    multiValued: false,
    description: name,
    required: false,
    caseExact: false,
    mutability: "readWrite",
    returned: "default",
    uniqueness: "none",
    ...o,
  });
  const EXT = "urn:example:params:scim:schemas:extension:test:2.0:Device";
  const rt: ResourceTypeDef = {
    name: "User",
    endpoint: "/Devices",
    description: "Device",
    schema: {
      id: "urn:example:params:scim:schemas:core:2.0:Device",
      name: "Device",
      description: "Device",
      attributes: [
        s("serial", { required: true }),
        s("label", { required: true, alternative: "owner.name" }),
        s("owner", { type: "complex", subAttributes: [s("name"), s("id", { required: true })] }),
        s("ports", { type: "complex", multiValued: true, subAttributes: [s("number", { required: true }), s("kind")] }),
      ],
    },
    extensions: [{ schema: { id: EXT, name: "Ext", description: "Ext", attributes: [s("site", { required: true })] }, required: false }],
  };
  const ok = { serial: "1", label: "L" };

  test.each<[string, Resource, string | undefined]>([
    ["a resource with every required attribute", ok, undefined],
    ["a blank required string", { ...ok, serial: "  " }, "serial"],
    ["a missing required attribute", { label: "L" }, "serial"],
    ["the alternative standing in for a required attribute", { serial: "1", owner: { name: "Ada", id: "7" } }, undefined],
    ["neither a required attribute nor its alternative", { serial: "1", owner: { id: "7" } }, "label"],
    ["a present singular complex attribute without its required sub-attribute", { ...ok, owner: { name: "Ada" } }, "owner.id"],
    ["a non-required multi-valued attribute whose second value lacks a required sub-attribute", { ...ok, ports: [{ number: "1" }, { kind: "usb" }] }, "ports.number"],
    ["a non-required multi-valued attribute left out (its sub-attributes apply only to values given)", ok, undefined],
    ["an optional extension left out", ok, undefined],
    ["an optional extension given without its required attribute", { ...ok, [EXT]: { other: "x" } }, `${EXT}:site`],
  ])("%s", (_label, r, path) => {
    expect(missingRequired(rt, r)?.path).toBe(path);
    if (path) expect(missingRequired(rt, r)!.detail).toContain(`'${path}'`);
  });

  it("requires an extension the resource type marks required", () => {
    expect(missingRequired({ ...rt, extensions: [{ ...rt.extensions[0]!, required: true }] }, ok)?.path).toBe(EXT);
  });
});
