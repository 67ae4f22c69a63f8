/** The /Groups endpoint over real HTTP (RFC 7643 §4.2, RFC 7644 §3.3, §3.5) and membership. */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { GROUP, groupBody, patchBody, startServer, userBody, type TestServer, expectScimError } from "../helpers";

let s: TestServer;
let seq = 0;
const gname = (tag = "g") => `${tag}-${++seq}`;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

async function createUser(tag = "member") {
  const r = await s.req("POST", "/Users", userBody(`${tag}-${++seq}@example.com`));
  expect(r.status).toBe(201);
  return r.body;
}

async function createGroup(displayName = gname(), members: string[] = []) {
  const r = await s.req("POST", "/Groups", groupBody(displayName, members));
  expect(r.status).toBe(201);
  return r.body;
}

const memberIds = (g: any): string[] => (g.members ?? []).map((m: any) => m.value).sort();


describe("POST /Groups (RFC 7644 §3.3)", () => {
  it("creates a Group with Users and Groups as members, deriving each member's type, $ref and display (RFC 7643 §4.2)", async () => {
    const u = await createUser();
    const inner = await createGroup(gname("inner"));
    const r = await s.req("POST", "/Groups", groupBody(gname("outer"), [u.id, inner.id]));
    expect(r.status).toBe(201);
    expect(r.headers.get("content-type")).toStartWith("application/scim+json");
    expect(r.headers.get("location")).toBe(r.body.meta.location);
    expect(r.headers.get("etag")).toBe(r.body.meta.version);
    expect(r.body.schemas).toEqual([GROUP]);
    expect(r.body.meta.resourceType).toBe("Group");
    expect(r.body.meta.location).toBe(`${s.base}/Groups/${r.body.id}`);
    const byId = Object.fromEntries(r.body.members.map((m: any) => [m.value, m]));
    expect(byId[u.id]).toEqual({ value: u.id, $ref: `${s.base}/Users/${u.id}`, type: "User", display: u.displayName });
    expect(byId[inner.id]).toEqual({ value: inner.id, $ref: `${s.base}/Groups/${inner.id}`, type: "Group", display: inner.displayName });
    const g = await s.req("GET", `/Groups/${r.body.id}`);
    expect(g.body).toEqual(r.body);
  });

  it("ignores a client-sent member type and derives it from the id", async () => {
    const u = await createUser();
    const r = await s.req("POST", "/Groups", { schemas: [GROUP], displayName: gname("typed"), members: [{ value: u.id, type: "Group" }] });
    expect(r.status).toBe(201);
    expect(r.body.members[0].type).toBe("User");
  });

  it("refuses a member id that is neither a User nor a Group with 400 invalidValue and stores nothing", async () => {
    const u = await createUser();
    const name = gname("bad-member");
    const r = await s.req("POST", "/Groups", groupBody(name, [u.id, crypto.randomUUID()]));
    expectScimError(r, 400, "invalidValue");
    const list = await s.req("GET", `/Groups?filter=${encodeURIComponent(`displayName eq "${name}"`)}`);
    expect(list.body.totalResults).toBe(0);
    expect((await s.req("GET", `/Users/${u.id}`)).body.groups).toBeUndefined();
  });

  test.each([
    ["same case", "Engineering", "Engineering"],
    ["different case", "Sales Team", "SALES team"],
    ["composed vs decomposed Unicode (NFC)", "Caf\u00e9", "Cafe\u0301"],
  ])("refuses a second Group with the same displayName (%s) with 409 uniqueness (product rule, /Schemas uniqueness server)", async (_c, first, second) => {
    await createGroup(first);
    expectScimError(await s.req("POST", "/Groups", groupBody(second)), 409, "uniqueness");
  });

  it("refuses a Group without displayName with 400 invalidValue", async () => {
    expectScimError(await s.req("POST", "/Groups", { schemas: [GROUP] }), 400, "invalidValue");
  });
});

describe("PATCH /Groups/{id} membership (RFC 7644 §3.5.2)", () => {
  it("adds members with 204 and GET shows them (RFC 7644 §3.5.2.1)", async () => {
    const [a, b] = [await createUser(), await createUser()];
    const g = await createGroup();
    const r = await s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "add", path: "members", value: [{ value: a.id }, { value: b.id }] }));
    expect(r.status).toBe(204);
    expect(r.text).toBe("");
    const after = await s.req("GET", `/Groups/${g.id}`);
    expect(memberIds(after.body)).toEqual([a.id, b.id].sort());
    expect(r.headers.get("etag")).toBe(after.body.meta.version);
    expect(after.body.meta.version).not.toBe(g.meta.version);
  });

  const cases: [string, (ids: string[]) => Record<string, unknown>[], (ids: string[]) => string[]][] = [
    ["remove by value filter", (ids) => [{ op: "remove", path: `members[value eq "${ids[0]}"]` }], (ids) => [ids[1]!, ids[2]!]],
    ["remove with a value list", (ids) => [{ op: "remove", path: "members", value: [{ value: ids[1] }] }], (ids) => [ids[0]!, ids[2]!]],
    ["remove all members", () => [{ op: "remove", path: "members" }], () => []],
    ["replace all members", (ids) => [{ op: "replace", path: "members", value: [{ value: ids[2] }] }], (ids) => [ids[2]!]],
    ["add an existing member (no duplicate)", (ids) => [{ op: "add", path: "members", value: [{ value: ids[0] }] }], (ids) => ids],
    ["Entra-style Remove with capitalised op", (ids) => [{ op: "Remove", path: "members", value: [{ value: ids[0] }, { value: ids[1] }] }], (ids) => [ids[2]!]],
  ];
  test.each(cases)("%s answers 204 and GET shows the resulting membership", async (_c, ops, expected) => {
    const users = [await createUser(), await createUser(), await createUser()];
    const ids = users.map((u) => u.id);
    const g = await createGroup(gname(), ids);
    const r = await s.req("PATCH", `/Groups/${g.id}`, patchBody(...ops(ids)));
    expect(r.status).toBe(204);
    const after = await s.req("GET", `/Groups/${g.id}`);
    expect(memberIds(after.body)).toEqual(expected(ids).sort());
  });

  it("refuses a PATCH adding an unknown member id with 400 invalidValue and changes nothing", async () => {
    const u = await createUser();
    const g = await createGroup(gname(), [u.id]);
    const r = await s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "add", path: "members", value: [{ value: crypto.randomUUID() }] }));
    expectScimError(r, 400, "invalidValue");
    const after = await s.req("GET", `/Groups/${g.id}`);
    expect(after.body).toEqual(g);
  });

  it("answers 200 with only the asked-for attributes when PATCH has ?attributes=displayName (RFC 7644 §3.5.2)", async () => {
    const u = await createUser();
    const g = await createGroup();
    const newName = gname("renamed");
    const r = await s.req(
      "PATCH",
      `/Groups/${g.id}?attributes=displayName`,
      patchBody({ op: "replace", path: "displayName", value: newName }, { op: "add", path: "members", value: [{ value: u.id }] }),
    );
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(g.id);
    expect(r.body.displayName).toBe(newName);
    expect(Object.keys(r.body).sort()).toEqual(["displayName", "id", "schemas"]);
    expect(memberIds((await s.req("GET", `/Groups/${g.id}`)).body)).toEqual([u.id]);
  });

  it("keeps every member when 20 PATCHes add different members to one Group concurrently (no lost update)", async () => {
    const users = await Promise.all(Array.from({ length: 20 }, () => createUser("conc")));
    const g = await createGroup(gname("concurrent"));
    const results = await Promise.all(users.map((u) => s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "add", path: "members", value: [{ value: u.id }] }))));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(204));
    const after = await s.req("GET", `/Groups/${g.id}`);
    expect(memberIds(after.body)).toEqual(users.map((u) => u.id).sort());
  });

  it("keeps every rename-and-add when 10 PATCHes change both attributes and members concurrently", async () => {
    const users = await Promise.all(Array.from({ length: 10 }, () => createUser("conc2")));
    const g = await createGroup(gname("concurrent2"));
    const results = await Promise.all(
      users.map((u, i) =>
        s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "replace", path: "displayName", value: `${g.displayName}-v${i}` }, { op: "add", path: "members", value: [{ value: u.id }] })),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(204));
    const after = await s.req("GET", `/Groups/${g.id}`);
    expect(memberIds(after.body)).toEqual(users.map((u) => u.id).sort());
    expect(after.body.meta.version).toBe('W/"11"');
  });
});

describe("PUT /Groups/{id} (RFC 7644 §3.5.1)", () => {
  it("replaces the membership with the members in the body", async () => {
    const [a, b, c] = [await createUser(), await createUser(), await createUser()];
    const g = await createGroup(gname(), [a.id, b.id]);
    const r = await s.req("PUT", `/Groups/${g.id}`, groupBody(g.displayName, [b.id, c.id]));
    expect(r.status).toBe(200);
    expect(memberIds(r.body)).toEqual([b.id, c.id].sort());
    expect(memberIds((await s.req("GET", `/Groups/${g.id}`)).body)).toEqual([b.id, c.id].sort());
    expect((await s.req("GET", `/Users/${a.id}`)).body.groups).toBeUndefined();
    expect((await s.req("GET", `/Users/${c.id}`)).body.groups.map((x: any) => x.value)).toEqual([g.id]);
  });

  it("refuses a PUT with an unknown member id with 400 invalidValue and keeps the old membership", async () => {
    const a = await createUser();
    const g = await createGroup(gname(), [a.id]);
    const r = await s.req("PUT", `/Groups/${g.id}`, groupBody(g.displayName, [crypto.randomUUID()]));
    expectScimError(r, 400, "invalidValue");
    expect((await s.req("GET", `/Groups/${g.id}`)).body).toEqual(g);
  });

  it("refuses a PUT renaming a Group to another Group's displayName with 409 uniqueness", async () => {
    const a = await createGroup(gname("taken"));
    const b = await createGroup(gname("renamer"));
    expectScimError(await s.req("PUT", `/Groups/${b.id}`, groupBody(a.displayName.toUpperCase())), 409, "uniqueness");
  });
});

describe("deleting members", () => {
  it("removes a deleted User from every Group and bumps each Group's meta.version", async () => {
    const u = await createUser();
    const other = await createUser();
    const g1 = await createGroup(gname(), [u.id, other.id]);
    const g2 = await createGroup(gname(), [u.id]);
    const untouched = await createGroup(gname(), [other.id]);
    expect((await s.req("DELETE", `/Users/${u.id}`)).status).toBe(204);
    const a1 = (await s.req("GET", `/Groups/${g1.id}`)).body;
    const a2 = (await s.req("GET", `/Groups/${g2.id}`)).body;
    const a3 = (await s.req("GET", `/Groups/${untouched.id}`)).body;
    expect(memberIds(a1)).toEqual([other.id]);
    expect(a2.members).toBeUndefined();
    expect(a1.meta.version).not.toBe(g1.meta.version);
    expect(a2.meta.version).not.toBe(g2.meta.version);
    expect(a3.meta.version).toBe(untouched.meta.version);
    // a filter on the deleted member finds nothing
    const list = await s.req("GET", `/Groups?filter=${encodeURIComponent(`members[value eq "${u.id}"]`)}`);
    expect(list.body.totalResults).toBe(0);
  });

  it("removes a deleted Group from the Groups it was a member of", async () => {
    const inner = await createGroup(gname("inner"));
    const outer = await createGroup(gname("outer"), [inner.id]);
    expect((await s.req("DELETE", `/Groups/${inner.id}`)).status).toBe(204);
    const after = (await s.req("GET", `/Groups/${outer.id}`)).body;
    expect(after.members).toBeUndefined();
    expect(after.meta.version).not.toBe(outer.meta.version);
  });
});

describe("projection of members (RFC 7644 §3.4.2.5)", () => {
  it("omits members with excludedAttributes=members on GET and on list", async () => {
    const u = await createUser();
    const g = await createGroup(gname("proj"), [u.id]);
    const one = await s.req("GET", `/Groups/${g.id}?excludedAttributes=members`);
    expect(one.status).toBe(200);
    expect(one.body.members).toBeUndefined();
    expect(one.body.displayName).toBe(g.displayName);
    const list = await s.req("GET", `/Groups?excludedAttributes=members&filter=${encodeURIComponent(`id eq "${g.id}"`)}`);
    expect(list.body.totalResults).toBe(1);
    expect(list.body.Resources[0].members).toBeUndefined();
    expect(list.body.Resources[0].displayName).toBe(g.displayName);
  });

  it("returns only member values with attributes=members.value", async () => {
    const u = await createUser();
    const g = await createGroup(gname("proj2"), [u.id]);
    const r = await s.req("GET", `/Groups/${g.id}?attributes=members.value`);
    expect(r.status).toBe(200);
    expect(r.body.members).toEqual([{ value: u.id }]);
    expect(r.body.displayName).toBeUndefined();
  });
});
