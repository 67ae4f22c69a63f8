/**
 * Deprovisioning must stick, and required attributes cannot be cleared (RFC 7644 §3.5.1, §3.5.2.2),
 * over real HTTP with the real store: a disabled account is re-enabled only by an explicit true
 * (boolean, or Entra's "True"/"true" string); `active` defaults to true only when a User is created
 * without it; a refused PATCH leaves the resource byte-identical with its ETag unchanged.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { expectRefusedUnchanged, patchBody, startServer, USER, userBody, type TestServer } from "../helpers";

let s: TestServer;
let seq = 0;
const uname = (tag = "dep") => `${tag}-${++seq}@example.com`;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

async function disabledUser(extra: Record<string, unknown> = {}): Promise<{ id: string; userName: string }> {
  const r = await s.req("POST", "/Users", userBody(uname(), { active: false, ...extra }));
  expect(r.status).toBe(201);
  expect(r.body.active).toBe(false);
  return r.body;
}

const ACTIVE_URN = `${USER}:active`;

describe("clearing active is refused: a disabled account is never re-enabled by an omission (RFC 7644 §3.5.2.2)", () => {
  test.each<[string, Record<string, unknown>]>([
    ["remove", { op: "remove", path: "active" }],
    ["Remove (Entra's casing)", { op: "Remove", path: "active" }],
    ["REMOVE of ACTIVE", { op: "REMOVE", path: "ACTIVE" }],
    ["remove of the URN-qualified path", { op: "remove", path: ACTIVE_URN }],
    ["replace with null", { op: "replace", path: "active", value: null }],
    ["Replace with null (Entra's casing)", { op: "Replace", path: "active", value: null }],
    ['replace with ""', { op: "replace", path: "active", value: "" }],
    ['Add with ""', { op: "Add", path: "active", value: "" }],
    ["add with null", { op: "add", path: "active", value: null }],
    ["path-less replace {active: null} (Okta's shape)", { op: "replace", value: { active: null } }],
    ['path-less replace {active: ""}', { op: "replace", value: { active: "" } }],
    ["path-less Replace {ACTIVE: null}", { op: "Replace", value: { ACTIVE: null } }],
    ["path-less add {active: null}", { op: "add", value: { active: null } }],
    ["path-less replace with the URN-qualified key", { op: "replace", value: { [ACTIVE_URN]: null } }],
    ["path-less replace inside the core schema object", { op: "replace", value: { [USER]: { active: null } } }],
  ])("refuses PATCH %s on a disabled User with 400 mutability, and the User stays disabled and byte-identical", async (_label, op) => {
    const u = await disabledUser();
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody(op)), ["mutability"], "'active'");
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody(op));
    expect(r.body.detail).toContain("send true or false");
    expect((await s.req("GET", `/Users/${u.id}`)).body.active).toBe(false);
  });

  it("refuses the whole PATCH when a good operation comes before the clearing one: nothing of it is applied", async () => {
    const u = await disabledUser({ title: "Before" });
    await expectRefusedUnchanged(
      s,
      `/Users/${u.id}`,
      () => s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "After" }, { op: "remove", path: "active" })),
      ["mutability"],
      "'active'",
    );
    const g = (await s.req("GET", `/Users/${u.id}`)).body;
    expect([g.title, g.active]).toEqual(["Before", false]);
  });

  it("refuses clearing active on an enabled User too (the rule is about the attribute, not the state)", async () => {
    const r = await s.req("POST", "/Users", userBody(uname()));
    await expectRefusedUnchanged(s, `/Users/${r.body.id}`, () => s.req("PATCH", `/Users/${r.body.id}`, patchBody({ op: "remove", path: "active" })), ["mutability"], "'active'");
  });
});

describe("only an explicit value changes active", () => {
  test.each<[string, Record<string, unknown>, boolean]>([
    ['Entra\'s Replace "False"', { op: "Replace", path: "active", value: "False" }, false],
    ['Entra\'s Add "False"', { op: "Add", path: "active", value: "False" }, false],
    ["replace false", { op: "replace", path: "active", value: false }, false],
    ["Okta's path-less replace {active: false}", { op: "replace", value: { active: false } }, false],
    ['Entra\'s Replace "True"', { op: "Replace", path: "active", value: "True" }, true],
    ['Entra\'s Add "True"', { op: "Add", path: "active", value: "True" }, true],
    ['OneLogin\'s REPLACE "true"', { op: "REPLACE", path: "active", value: "true" }, true],
    ["replace true", { op: "replace", path: "active", value: true }, true],
    ["Okta's path-less replace {active: true}", { op: "replace", value: { active: true } }, true],
  ])("PATCH %s on a disabled User leaves active %p", async (_label, op, expected) => {
    const u = await disabledUser();
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody(op));
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(expected);
    expect((await s.req("GET", `/Users/${u.id}`)).body.active).toBe(expected);
  });

  it("PATCHes that do not name active leave a disabled User disabled", async () => {
    const u = await disabledUser();
    for (const op of [
      { op: "replace", path: "title", value: "Analyst" },
      { op: "remove", path: "title" },
      { op: "replace", value: { displayName: "Renamed", "name.givenName": "R" } },
    ])
      expect((await s.req("PATCH", `/Users/${u.id}`, patchBody(op))).body.active).toBe(false);
  });
});

describe("PUT keeps active as stored unless the body sends it (RFC 7644 §3.5.1; active defaults to true only at creation)", () => {
  it("keeps a disabled User disabled when Okta's app wizard PUTs the whole user back without active (id, meta, groups included)", async () => {
    const u = await disabledUser({ name: { givenName: "Mira", familyName: "Holt" } });
    const current = (await s.req("GET", `/Users/${u.id}`)).body;
    const { active: _active, ...withoutActive } = current;
    const r = await s.req("PUT", `/Users/${u.id}`, { ...withoutActive, name: { givenName: "Mira", familyName: "Holt-Reyes" } });
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
    expect(r.body.name.familyName).toBe("Holt-Reyes");
    expect((await s.req("GET", `/Users/${u.id}`)).body.active).toBe(false);
  });

  it("keeps an enabled User enabled when a PUT leaves active out", async () => {
    const created = (await s.req("POST", "/Users", userBody(uname()))).body;
    const r = await s.req("PUT", `/Users/${created.id}`, userBody(created.userName, { title: "New" }));
    expect(r.body.active).toBe(true);
  });

  it("takes active null in a PUT as left out (RFC 7643 §2.5: null is unassigned), so a disabled User stays disabled", async () => {
    const u = await disabledUser();
    const r = await s.req("PUT", `/Users/${u.id}`, userBody(u.userName, { active: null }));
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
  });

  it("a PUT that leaves active out of an unchanged User changes nothing: same ETag, same lastModified", async () => {
    const u = await disabledUser();
    const before = await s.req("GET", `/Users/${u.id}`);
    const r = await s.req("PUT", `/Users/${u.id}`, userBody(u.userName));
    expect(r.status).toBe(200);
    expect(r.headers.get("etag")).toBe(before.headers.get("etag"));
    expect(r.body.meta.lastModified).toBe(before.body.meta.lastModified);
  });

  test.each<[string, unknown, boolean]>([
    ['"True"', "True", true],
    ['"true"', "true", true],
    ["true", true, true],
    ['"False"', "False", false],
    ["false", false, false],
  ])("a PUT with active %s sets it", async (_label, active, expected) => {
    const u = await disabledUser();
    const r = await s.req("PUT", `/Users/${u.id}`, userBody(u.userName, { active }));
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(expected);
  });

  it('refuses a PUT with active "" with 400 invalidValue and keeps the User disabled', async () => {
    const u = await disabledUser();
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PUT", `/Users/${u.id}`, userBody(u.userName, { active: "" })), ["invalidValue"], "'active'");
  });

  test.each<[string, unknown, boolean]>([
    ["left out", undefined, true],
    ["null", null, true],
    ['"False"', "False", false],
  ])("POST with active %s creates the User with active %p", async (_label, active, expected) => {
    const body = userBody(uname(), active === undefined ? {} : { active });
    const r = await s.req("POST", "/Users", body);
    expect(r.status).toBe(201);
    expect(r.body.active).toBe(expected);
  });
});
