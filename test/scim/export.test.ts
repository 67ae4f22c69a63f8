/**
 * The pure side of export and import (src/scim/export.ts): CSV quoting (RFC 4180) and formula
 * neutralisation, the flattened columns, the export record, and an import record's checks.
 */
import { describe, expect, it } from "bun:test";
import {
  csvField,
  csvLine,
  exportRecord,
  GROUP_COLUMNS,
  groupCsvFields,
  importRecord,
  ImportError,
  ImportSet,
  recordKind,
  USER_COLUMNS,
  userCsvFields,
} from "../../src/scim/export";
import { quirksFor } from "../../src/scim/quirks";
import type { StoredResource } from "../../src/store/store";
import { ENTERPRISE, GROUP, USER } from "../helpers";

const NOW = "2024-05-06T07:08:09.000Z";
const quirks = quirksFor(false);

/** The ImportError `f` throws. */
function importErrorOf(f: () => unknown): ImportError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ImportError);
    return e as ImportError;
  }
  throw new Error("expected an ImportError");
}

describe("CSV fields (RFC 4180 §2)", () => {
  const cases: [string, string, string][] = [
    ["a plain value as it is", "alice", "alice"],
    ["an empty value as nothing", "", ""],
    ["a comma quoted", "Doe, Jane", `"Doe, Jane"`],
    ["a quote doubled inside quotes", `say "hi"`, `"say ""hi"""`],
    ["a line break quoted", "a\nb", `"a\nb"`],
    ["a CR quoted", "a\rb", `"a\rb"`],
    ["non-ASCII as it is", "Zoë 東京", "Zoë 東京"],
  ];
  for (const [what, value, field] of cases) it(`writes ${what}`, () => expect(csvField(value)).toBe(field));

  it("ends a record with CRLF", () => expect(csvLine(["a", "b,c", ""])).toBe(`a,"b,c",\r\n`));
});

describe("CSV formula injection (OWASP): a cell a spreadsheet would evaluate gets a leading apostrophe", () => {
  const cases: [string, string][] = [
    ["=HYPERLINK(\"http://x\")", `"'=HYPERLINK(""http://x"")"`],
    ["+49 30 1234", "'+49 30 1234"],
    ["-2+3", "'-2+3"],
    ["@SUM(A1)", "'@SUM(A1)"],
    ["\tx", "'\tx"],
    ["\r=1", `"'\r=1"`],
  ];
  for (const [value, field] of cases) it(`neutralises ${JSON.stringify(value)}`, () => expect(csvField(value)).toBe(field));

  it("leaves a value with such a character later on alone", () => expect(csvField("a=b+c")).toBe("a=b+c"));
});

const stored = (data: Record<string, unknown>, extra: Partial<StoredResource> = {}): StoredResource => ({
  id: "u1",
  data,
  version: 3,
  created: "2020-01-01T00:00:00.000Z",
  lastModified: "2021-01-01T00:00:00.000Z",
  ...extra,
});

describe("exportRecord", () => {
  it("is the API's representation without the password hash, location, $ref or version; a User's groups as direct groups", () => {
    const r = exportRecord("User", stored({ schemas: [USER], externalId: "e1", userName: "bob", password: "$argon2id$secret" }, { groups: [{ value: "g1", display: "Staff" }] }));
    expect(r).toEqual({
      schemas: [USER],
      id: "u1",
      externalId: "e1",
      userName: "bob",
      groups: [{ value: "g1", display: "Staff", type: "direct" }],
      meta: { resourceType: "User", created: "2020-01-01T00:00:00.000Z", lastModified: "2021-01-01T00:00:00.000Z" },
    });
    expect(JSON.stringify(r)).not.toContain("argon2");
  });
});

describe("CSV columns", () => {
  const user = exportRecord(
    "User",
    stored(
      {
        schemas: [USER, ENTERPRISE],
        userName: "jane@example.com",
        name: { givenName: "Jane", familyName: "Doe" },
        displayName: "Jane Doe",
        active: false,
        emails: [
          { value: "jane@example.com", type: "work", primary: true },
          { value: "jane@home.example", type: "home" },
          { value: "j2@example.com", type: "work" },
          { value: "odd@example.com", type: "custom" },
        ],
        phoneNumbers: [{ value: "+1 555 0100", type: "mobile", primary: true }],
        roles: [{ value: "admin" }],
        [ENTERPRISE]: { employeeNumber: "42", department: "R&D", manager: { value: "m-1", displayName: "Boss" } },
      },
      { groups: [{ value: "g1", display: "Staff" }, { value: "g2", display: "Admins" }] },
    ),
  );
  const row = Object.fromEntries(USER_COLUMNS.map((c, i) => [c, userCsvFields(user)[i]]));

  it("has one stable header, every column always present", () => {
    expect(userCsvFields(exportRecord("User", stored({ schemas: [USER], userName: "x" })))).toHaveLength(USER_COLUMNS.length);
    expect(USER_COLUMNS.slice(0, 4)).toEqual(["id", "externalId", "userName", "displayName"]);
    expect(new Set(USER_COLUMNS).size).toBe(USER_COLUMNS.length);
  });

  it("flattens name, emails and phones by type and primary, leftovers as JSON, enterprise attributes and groups", () => {
    expect(row).toMatchObject({
      id: "u1",
      userName: "jane@example.com",
      "name.givenName": "Jane",
      "name.familyName": "Doe",
      active: "false",
      "emails.primary": "jane@example.com",
      "emails.work.value": "jane@example.com",
      "emails.home.value": "jane@home.example",
      "emails.other.value": "",
      "phoneNumbers.primary": "+1 555 0100",
      "phoneNumbers.mobile.value": "+1 555 0100",
      "enterprise.employeeNumber": "42",
      "enterprise.department": "R&D",
      "enterprise.manager.value": "m-1",
      "enterprise.manager.displayName": "Boss",
      groups: "Staff; Admins",
      "meta.created": "2020-01-01T00:00:00.000Z",
    });
    expect(JSON.parse(row["emails.more"]!)).toEqual([{ value: "j2@example.com", type: "work" }, { value: "odd@example.com", type: "custom" }]);
    expect(JSON.parse(row.roles!)).toEqual([{ value: "admin" }]);
    // As written: the phone number starting with '+' is neutralised.
    expect(csvLine(userCsvFields(user))).toContain(",'+1 555 0100,");
  });

  it("writes a Group as one row: member ids by spaces, displays by '; '", () => {
    const g = exportRecord("Group", stored({ schemas: [GROUP], displayName: "Staff" }, { id: "g1" }));
    const fields = groupCsvFields(g, [{ value: "u1", type: "User", display: "Jane" }, { value: "g2", type: "Group", display: "Admins" }]);
    expect(Object.fromEntries(GROUP_COLUMNS.map((c, i) => [c, fields[i]]))).toMatchObject({
      id: "g1",
      displayName: "Staff",
      "members.count": "2",
      "members.value": "u1 g2",
      "members.display": "Jane; Admins",
    });
  });
});

describe("importRecord: the API's checks, keeping id and timestamps", () => {
  const exported = {
    schemas: [USER],
    id: "abc-1",
    userName: "bob@example.com",
    displayName: "Bob",
    emails: [{ value: "bob@example.com" }],
    groups: [{ value: "g1", display: "Staff", type: "direct" }],
    meta: { resourceType: "User", created: "2020-02-03T04:05:06Z", lastModified: "2021-02-03T04:05:06.5+01:00", location: "https://old/Users/abc-1", version: 'W/"7"' },
  };

  it("keeps id and meta (as the store writes times) and drops read-only parts", () => {
    const r = importRecord("User", exported, "line 1", quirks, NOW);
    expect(r.id).toBe("abc-1");
    expect(r.meta).toEqual({ created: "2020-02-03T04:05:06.000Z", lastModified: "2021-02-03T03:05:06.500Z" });
    expect(r.data).toEqual({ schemas: [USER], userName: "bob@example.com", displayName: "Bob", active: true, emails: [{ value: "bob@example.com" }] });
  });

  it("gives a record without id a new one and without meta the time of the import", () => {
    const { id: _id, meta: _meta, ...bare } = exported;
    const r = importRecord("User", bare, "line 1", quirks, NOW);
    expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.meta).toEqual({ created: NOW, lastModified: NOW });
  });

  it("reads a Group's member ids", () => {
    const r = importRecord("Group", { schemas: [GROUP], id: "g1", displayName: "Staff", members: [{ value: "u1", type: "User", display: "x" }] }, "Groups[0]", quirks, NOW);
    expect(r.members).toEqual(["u1"]);
  });

  const refusals: [string, unknown, RegExp][] = [
    ["a record that is not an object", [1], /must be a JSON object/],
    ["a User without userName", { ...exported, userName: undefined }, /'userName' is required/],
    ["a User without an email", { ...exported, emails: [] }, /'emails' is required/],
    ["a wrongly typed attribute", { ...exported, active: "maybe" }, /'active' must be a boolean/],
    ["an unusable id", { ...exported, id: "a/b" }, /'id' "a\/b" cannot be kept/],
    ["a bad meta.created", { ...exported, meta: { created: "yesterday" } }, /'meta.created' must be an xsd:dateTime/],
    ["lastModified before created", { ...exported, meta: { created: "2022-01-01T00:00:00Z", lastModified: "2021-01-01T00:00:00Z" } }, /before 'meta.created'/],
    ["a Group where a User is expected", { ...exported, meta: { resourceType: "Group" } }, /a Group where a User is expected/],
  ];
  for (const [what, raw, message] of refusals)
    it(`refuses ${what}, naming where it is`, () => {
      const e = importErrorOf(() => importRecord("User", raw, "line 7", quirks, NOW));
      expect(e.where).toBe("line 7");
      expect(e.problem).toMatch(message);
    });

  it("tells a record's type by meta.resourceType, else by its core schema", () => {
    expect(recordKind({ meta: { resourceType: "group" } })).toBe("Group");
    expect(recordKind({ schemas: [USER] })).toBe("User");
    expect(recordKind({ schemas: ["urn:x"] })).toBeUndefined();
  });
});

describe("ImportSet: the file as a whole", () => {
  const u = (id: string, userName: string, where: string) =>
    importRecord("User", { schemas: [USER], id, userName, displayName: userName, emails: [{ value: `${userName}@x.org` }] }, where, quirks, NOW);
  const g = (id: string, displayName: string, members: string[], where: string) =>
    importRecord("Group", { schemas: [GROUP], id, displayName, members: members.map((value) => ({ value })) }, where, quirks, NOW);

  it("refuses a userName twice (case-insensitively), naming both places", () => {
    const set = new ImportSet();
    set.add(u("1", "Bob", "line 1"));
    const e = importErrorOf(() => set.add(u("2", "bob", "line 9")));
    expect(e.message).toBe(`line 9: userName "bob" is already the userName of the User at line 1 (userName is compared case-insensitively)`);
  });

  it("refuses an id twice, also across Users and Groups", () => {
    const set = new ImportSet();
    set.add(u("same", "a", "line 1"));
    expect(importErrorOf(() => set.add(g("same", "G", [], "line 2"))).problem).toMatch(/id 'same' is already the id of the User at line 1/);
  });

  it("refuses a member the file does not hold", () => {
    const set = new ImportSet();
    set.add(u("1", "a", "line 1"));
    set.add(g("g", "G", ["1", "ghost"], "line 2"));
    expect(importErrorOf(() => set.groupOrder()).message).toMatch(/^line 2: member 'ghost' is neither a User nor a Group in the file/);
  });

  it("orders Groups so that member Groups come first, and refuses a cycle", () => {
    const set = new ImportSet();
    set.add(g("outer", "Outer", ["mid"], "line 1"));
    set.add(g("mid", "Mid", ["inner"], "line 2"));
    set.add(g("inner", "Inner", [], "line 3"));
    set.add(g("alone", "Alone", [], "line 4"));
    expect(set.groupOrder()).toEqual(["inner", "mid", "outer", "alone"]);
    const cyclic = new ImportSet();
    cyclic.add(g("a", "A", ["b"], "line 1"));
    cyclic.add(g("b", "B", ["a"], "line 2"));
    expect(importErrorOf(() => cyclic.groupOrder()).problem).toMatch(/members of each other/);
  });
});
