/**
 * userName and Group displayName hygiene over HTTP against a real server and store: refused
 * characters on POST, PUT and PATCH, width-mapped userNames found by filter and unique under the
 * same key, and users stored before these rules still writable.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { expectScimError, groupBody, patchBody, startServer, userBody, type TestServer } from "../helpers";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.close());

const filterUsers = async (f: string) => (await s.req("GET", `/Users?filter=${encodeURIComponent(f)}`)).body;
const count = async () => (await s.req("GET", "/Users?count=0")).body.totalResults as number;

describe("userName hygiene (RFC 8265 PRECIS as the model)", () => {
  test.each([
    ["a zero-width space", "ali\u200bce@example.com", "U+200B"],
    ["a right-to-left override", "ali\u202ece@example.com", "U+202E"],
    ["NUL", "ali\u0000ce@example.com", "U+0000"],
    ["an escape character", "\u001balice@example.com", "U+001B"],
    ["a lone surrogate", "ali\ud800ce@example.com", "U+D800"],
    ["a trailing space", "alice@example.com ", "U+0020"],
  ])("refuses POST of a userName with %s with 400 invalidValue naming it, and stores nothing", async (_case, userName, named) => {
    const before = await count();
    const r = await s.req("POST", "/Users", userBody(userName, { emails: [{ value: "x@example.com" }] }));
    expectScimError(r, 400, "invalidValue");
    expect(r.body.detail).toContain(named);
    expect(r.body.detail).toMatch(/at position \d+/);
    expect(await count()).toBe(before);
  });

  it('keeps "ali\\u200bce" from becoming a second "alice": the look-alike is refused, not stored beside it', async () => {
    expect((await s.req("POST", "/Users", userBody("alice"))).status).toBe(201);
    expectScimError(await s.req("POST", "/Users", userBody("ali\u200bce")), 400, "invalidValue");
    expect((await filterUsers('userName sw "ali"')).totalResults).toBe(1);
  });

  it("refuses a PUT and a PATCH that set such a userName with 400 invalidValue and keep the stored user", async () => {
    const u = (await s.req("POST", "/Users", userBody("renamed@example.com"))).body;
    expectScimError(await s.req("PUT", `/Users/${u.id}`, userBody("renamed@example.com\u0000")), 400, "invalidValue");
    expectScimError(await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "userName", value: "\u202erenamed" })), 400, "invalidValue");
    expectScimError(await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", value: { userName: " renamed@example.com" } })), 400, "invalidValue");
    const now = (await s.req("GET", `/Users/${u.id}`)).body;
    expect(now.userName).toBe("renamed@example.com");
    expect(now.meta.version).toBe(u.meta.version);
  });

  it("stores a full-width userName in its ordinary form, finds it by either form, and refuses the other form as a duplicate (RFC 8265 §3.3.1)", async () => {
    const created = await s.req("POST", "/Users", userBody("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", { emails: [{ value: "taro@example.com" }] }));
    expect(created.status).toBe(201);
    expect(created.body.userName).toBe("taro@example.com");
    for (const f of ['userName eq "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ"', 'userName eq "TARO@example.com"', 'userName sw "ｔａｒｏ"', 'userName ew "．ＣＯＭ" and userName co "ｒｏ＠"'])
      expect({ f, ids: (await filterUsers(f)).Resources?.map((r: { id: string }) => r.id) }).toEqual({ f, ids: [created.body.id] });
    expectScimError(await s.req("POST", "/Users", userBody("taro@example.com")), 409, "uniqueness");
    expectScimError(await s.req("POST", "/Users", userBody("ＴＡＲＯ＠example.com")), 409, "uniqueness");
  });

  it("maps a userName set by PUT and by PATCH the same way", async () => {
    const u = (await s.req("POST", "/Users", userBody("hanako@example.com"))).body;
    const put = await s.req("PUT", `/Users/${u.id}`, userBody("ｈａｎａｋｏ2@example.com"));
    expect(put.body.userName).toBe("hanako2@example.com");
    const patch = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "userName", value: "ﾊﾅｺ" }));
    expect(patch.body.userName).toBe("ハナコ");
    expect((await filterUsers('userName eq "ハナコ"')).totalResults).toBe(1);
  });

  it("still updates and deactivates a user stored before these rules whose userName they would refuse, while the userName stays as it is", async () => {
    await s.store.create("User", { id: "legacy-1", data: { ...userBody("legacy@example.com "), active: true } });
    const patch = await s.req("PATCH", "/Users/legacy-1", patchBody({ op: "replace", path: "active", value: false }));
    expect(patch.status).toBe(200);
    expect(patch.body.active).toBe(false);
    const put = await s.req("PUT", "/Users/legacy-1", userBody("legacy@example.com ", { active: false, title: "Gone" }));
    expect(put.status).toBe(200);
    expect(put.body.userName).toBe("legacy@example.com ");
    expectScimError(await s.req("PUT", "/Users/legacy-1", userBody("legacy2@example.com ")), 400, "invalidValue");
  });
});

describe("Group displayName hygiene", () => {
  it("refuses control, format and lone-surrogate characters in a Group displayName with 400 invalidValue, on POST, PUT and PATCH", async () => {
    expectScimError(await s.req("POST", "/Groups", groupBody("Admins\u202e")), 400, "invalidValue");
    const g = await s.req("POST", "/Groups", groupBody("👩‍💻 Developers"));
    expect(g.status).toBe(201);
    expectScimError(await s.req("PUT", `/Groups/${g.body.id}`, groupBody("Dev\u0000")), 400, "invalidValue");
    expectScimError(await s.req("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "replace", path: "displayName", value: "Dev\udc00" })), 400, "invalidValue");
    expect((await s.req("GET", `/Groups/${g.body.id}`)).body.displayName).toBe("👩‍💻 Developers");
  });
});
