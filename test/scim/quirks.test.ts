/**
 * IdP quirks (src/scim/quirks.ts): each normaliser with a table of the wire shapes it accepts.
 */
import { describe, expect, test } from "bun:test";
import { emptyStringMeansNull, isManager, isOwnIdEcho, normalizeManagerValue, normalizeOpName } from "../../src/scim/quirks";
import { ENTERPRISE_USER_SCHEMA_DEF, GROUP_SCHEMA_DEF, USER_SCHEMA_DEF, type AttributeDef } from "../../src/scim/schema";

const ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const find = (defs: AttributeDef[], name: string) => defs.find((a) => a.name === name)!;

describe("normalizeOpName: op names in any case (Entra ID, OneLogin; RFC 7644 §3.5.2)", () => {
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
  ])("maps %p to %p", (sent, expected) => {
    expect(normalizeOpName(sent)).toBe(expected as "add" | "replace" | "remove");
  });

  test.each([
    ['"delete"', "delete"],
    ['"update"', "update"],
    ['"adds"', "adds"],
    ['""', ""],
    ["null", null],
    ["undefined", undefined],
    ["a number", 1],
    ['["add"]', ["add"]],
    ['{"op": "add"}', { op: "add" }],
  ])("refuses %s", (_label, sent) => {
    expect(normalizeOpName(sent)).toBeUndefined();
  });
});

describe("normalizeManagerValue: Entra ID's shapes of the enterprise manager", () => {
  test.each([
    ["a bare id string", "m1", { value: "m1" }],
    ['{"value": id}', { value: "m1" }, { value: "m1" }],
    ['{"Value": id} (any case, left for coercion)', { Value: "m1" }, { Value: "m1" }],
    ['[{"$ref": …, "value": id}]', [{ $ref: "https://x/Users/m1", value: "m1" }], { $ref: "https://x/Users/m1", value: "m1" }],
    ["a one-element list holding a bare id", ["m1"], { value: "m1" }],
  ])("takes %s as the manager", (_label, sent, expected) => {
    expect(normalizeManagerValue(sent)).toEqual(expected);
  });

  test.each([
    ['""', ""],
    ['"   "', "   "],
    ['{"value": ""}', { value: "" }],
    ['{"VALUE": ""}', { VALUE: "" }],
    ['{"value": null}', { value: null }],
    ["null", null],
    ["undefined", undefined],
    ["[]", []],
    ['[""]', [""]],
    ['[{"value": ""}]', [{ value: "" }]],
  ])("takes %s as removal of the manager (null)", (_label, sent) => {
    expect(normalizeManagerValue(sent)).toBeNull();
  });

  test.each([
    ["a number", 42],
    ["a boolean", true],
  ])("passes %s through unchanged, for coercion to refuse", (_label, sent) => {
    expect(normalizeManagerValue(sent)).toBe(sent);
  });
});

describe("isManager: only the enterprise extension's manager", () => {
  const manager = find(ENTERPRISE_USER_SCHEMA_DEF.attributes, "manager");
  const department = find(ENTERPRISE_USER_SCHEMA_DEF.attributes, "department");
  test.each([
    ["the enterprise manager", ENT, manager, true],
    ["another enterprise attribute", ENT, department, false],
    ["manager outside the extension", null, manager, false],
    ["manager under another extension URN", "urn:example:ext:1.0:User", manager, false],
  ].map(([label, ext, a, expected]) => [label, expected, ext, a]))("%s → %p", (_label, expected, extension, a) => {
    expect(isManager(extension as string | null, a as AttributeDef)).toBe(expected as boolean);
  });
});

describe("emptyStringMeansNull: Entra ID's null update", () => {
  const displayName = find(USER_SCHEMA_DEF.attributes, "displayName");
  const active = find(USER_SCHEMA_DEF.attributes, "active");
  const name = find(USER_SCHEMA_DEF.attributes, "name");
  const emails = find(USER_SCHEMA_DEF.attributes, "emails");
  const givenName = name.subAttributes!.find((s) => s.name === "givenName")!;
  const members = find(GROUP_SCHEMA_DEF.attributes, "members");
  test.each([
    ['"" for a simple string', displayName, "", null],
    ['"" for a sub-attribute', givenName, "", null],
    ['"" for a boolean', active, "", null],
    ['"" for a complex attribute (left for coercion)', name, "", ""],
    ['"" for a multi-valued attribute (left for coercion)', emails, "", ""],
    ['"" for members (left alone)', members, "", ""],
    ['" " (not empty)', displayName, " ", " "],
    ["a non-empty string", displayName, "Ada", "Ada"],
    ["null", displayName, null, null],
    ["false", active, false, false],
    ["0", displayName, 0, 0],
  ].map(([label, a, sent, expected]) => [label, expected, a, sent]))("%s → %p", (_label, expected, a, sent) => {
    expect(emptyStringMeansNull(a as AttributeDef, sent)).toEqual(expected);
  });
});

describe("isOwnIdEcho: Okta's group rename echoes the group's own id", () => {
  test.each([
    ["id equal to the own id", "id", "g1", "g1", true],
    ["ID in another case", "ID", "g1", "g1", true],
    ["Id in another case", "Id", "g1", "g1", true],
    ["a different id", "id", "g2", "g1", false],
    ["an id differing only in case (ids are caseExact)", "id", "G1", "g1", false],
    ["another key with the same value", "externalId", "g1", "g1", false],
    ["no own id known", "id", "g1", undefined, false],
    ["a non-string id", "id", 1, "1", false],
  ].map(([label, key, value, own, expected]) => [label, expected, key, value, own]))("%s → %p", (_label, expected, key, value, own) => {
    expect(isOwnIdEcho(key as string, value, own as string | undefined)).toBe(expected as boolean);
  });
});
