/**
 * Required attributes cannot be cleared (RFC 7644 §3.5.2.2), over real HTTP with the real store: a
 * PATCH that would leave one unassigned is 400 mutability naming it, a PUT without one is 400
 * invalidValue naming it, and a refused request leaves the resource byte-identical, ETag included.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { expectRefusedUnchanged, groupBody, patchBody, startServer, USER, userBody, type TestServer } from "../helpers";

let s: TestServer;
let seq = 0;
const uname = (tag = "req") => `${tag}-${++seq}@example.com`;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

describe("required attributes cannot be cleared, by PATCH or by PUT (RFC 7644 §3.5.2.2)", () => {
  const urn = (a: string) => `${USER}:${a}`;
  /** Ways to clear a top-level attribute `a` with PATCH. */
  const clearings = (a: string): [string, Record<string, unknown>][] => [
    ["remove", { op: "remove", path: a }],
    ["Remove of the URN-qualified path", { op: "Remove", path: urn(a) }],
    ["replace with null", { op: "replace", path: a, value: null }],
    ['Replace with ""', { op: "Replace", path: a, value: "" }],
    ["path-less replace with null", { op: "replace", value: { [a]: null } }],
    ['path-less replace with ""', { op: "replace", value: { [a]: "" } }],
    ["path-less add with null", { op: "add", value: { [a.toUpperCase()]: null } }],
  ];

  test.each(["userName", "displayName"].flatMap((a) => clearings(a).map(([label, op]) => [a, label, op] as const)))(
    "refuses clearing a User's %s by PATCH %s with 400 mutability, after a good operation, and changes nothing",
    async (a, _label, op) => {
      const u = (await s.req("POST", "/Users", userBody(uname()))).body;
      await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "x" }, op)), ["mutability"], `'${a}'`);
    },
  );

  test.each(clearings("emails"))("refuses clearing a User's emails by PATCH %s with 400 and changes nothing", async (label, op) => {
    const u = (await s.req("POST", "/Users", userBody(uname()))).body;
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody(op)), label.includes('""') ? ["mutability", "invalidValue"] : ["mutability"], "'emails");
  });

  test.each<[string, Record<string, unknown>[]]>([
    ["removing the only email through a value filter", [{ op: "remove", path: 'emails[type eq "work"]' }]],
    ["replacing emails with an empty list", [{ op: "replace", path: "emails", value: [] }]],
    ["removing every email, one filter at a time", [{ op: "remove", path: 'emails[type eq "work"]' }, { op: "remove", path: 'emails[type eq "home"]' }]],
  ])("refuses %s with 400 mutability naming emails", async (_label, ops) => {
    const u = (await s.req("POST", "/Users", userBody(uname(), { emails: [{ value: `w${++seq}@example.com`, type: "work" }, { value: `h${seq}@example.com`, type: "home" }] }))).body;
    const only = ops.length === 1 && ops[0]!.path === 'emails[type eq "work"]';
    if (only) await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "remove", path: 'emails[type eq "home"]' }));
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody(...ops)), ["mutability"], "'emails'");
  });

  const clearWorkValue: [string, Record<string, unknown>][] = [
    ["remove of emails[type eq \"work\"].value", { op: "remove", path: 'emails[type eq "work"].value' }],
    ["Replace of emails[type eq \"work\"].value with \"\" (Entra's null update)", { op: "Replace", path: 'emails[type eq "work"].value', value: "" }],
    ["replace of emails[type eq \"work\"].value with null", { op: "replace", path: 'emails[type eq "work"].value', value: null }],
  ];

  test.each(clearWorkValue)("removes the work email whole on %s while another email remains (no email is stored without a value)", async (_label, op) => {
    const u = (await s.req("POST", "/Users", userBody(uname(), { emails: [{ value: `w${++seq}@example.com`, type: "work", primary: true }, { value: `h${seq}@example.com`, type: "home" }] }))).body;
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody(op));
    expect(r.status).toBe(200);
    expect(r.body.emails).toEqual([{ value: `h${seq}@example.com`, type: "home" }]);
    expect((await s.req("GET", `/Users/${u.id}`)).body.emails).toEqual([{ value: `h${seq}@example.com`, type: "home" }]);
  });

  test.each(clearWorkValue)("refuses %s on the only email with 400 mutability naming emails, and changes nothing", async (_label, op) => {
    const u = (await s.req("POST", "/Users", userBody(uname()))).body;
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody(op)), ["mutability"], "'emails'");
  });

  it("refuses a PATCH that creates an email without a value (an upsert of emails[type eq \"work\"].primary) with 400 naming emails.value", async () => {
    const u = (await s.req("POST", "/Users", userBody(uname(), { emails: [{ value: `h${++seq}@example.com`, type: "home" }] }))).body;
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "add", path: 'emails[type eq "work"].primary', value: true })), ["mutability"], "'emails.value'");
  });

  test.each<[string, Record<string, unknown>]>([
    ["an add of it to emails", { op: "add", path: "emails", value: [{ type: "work" }] }],
    ["a replace of emails with it and the home email", { op: "replace", path: "emails", value: [{ type: "work" }, { value: "h@example.com", type: "home" }] }],
    ["a path-less replace of emails with it and the home email", { op: "replace", value: { emails: [{ type: "work" }, { value: "h@example.com", type: "home" }] } }],
  ])("refuses an email sent without a value that equals a stored email but for its value, in %s, with 400 naming emails.value (only clearing a stored email's value removes it)", async (_label, op) => {
    const u = (await s.req("POST", "/Users", userBody(uname(), { emails: [{ value: `w${++seq}@example.com`, type: "work" }, { value: `h${seq}@example.com`, type: "home" }] }))).body;
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody(op)), ["mutability"], "'emails.value'");
  });

  it("accepts a PATCH that removes the work email and adds another in the same request (only the result must hold every required attribute)", async () => {
    const u = (await s.req("POST", "/Users", userBody(uname()))).body;
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "remove", path: 'emails[type eq "work"]' }, { op: "add", path: "emails", value: [{ value: "new@example.com", type: "home" }] }));
    expect(r.status).toBe(200);
    expect(r.body.emails).toEqual([{ value: "new@example.com", type: "home" }]);
  });

  it("accepts removing displayName while name.formatted stands in for it, and refuses removing name.formatted then", async () => {
    const u = (await s.req("POST", "/Users", userBody(uname(), { name: { formatted: "Ada Lovelace" } }))).body;
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "remove", path: "displayName" }));
    expect(r.status).toBe(200);
    expect(r.body.displayName).toBeUndefined();
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "name.formatted", value: "" })), ["mutability"], "'displayName'");
  });

  test.each(clearings("displayName"))("refuses clearing a Group's displayName by PATCH %s with 400 mutability and changes nothing", async (_label, op) => {
    const g = (await s.req("POST", "/Groups", groupBody(`dep-group-${++seq}`))).body;
    const groupOp = JSON.parse(JSON.stringify(op).replaceAll(USER, "urn:ietf:params:scim:schemas:core:2.0:Group"));
    await expectRefusedUnchanged(s, `/Groups/${g.id}`, () => s.req("PATCH", `/Groups/${g.id}`, patchBody(groupOp)), ["mutability"], "'displayName'");
  });

  test.each(["userName", "displayName", "emails"])("refuses a PUT of a User without %s with 400 invalidValue naming it and changes nothing", async (a) => {
    const u = (await s.req("POST", "/Users", userBody(uname()))).body;
    const body = userBody(u.userName);
    delete body[a];
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PUT", `/Users/${u.id}`, body), ["invalidValue"], `'${a}'`);
  });

  it("refuses a PUT of a User whose only email has no value with 400 invalidValue naming emails.value", async () => {
    const u = (await s.req("POST", "/Users", userBody(uname()))).body;
    await expectRefusedUnchanged(s, `/Users/${u.id}`, () => s.req("PUT", `/Users/${u.id}`, userBody(u.userName, { emails: [{ type: "work", primary: true }] })), ["invalidValue"], "'emails.value'");
  });

  it("refuses a PUT of a Group without displayName with 400 invalidValue naming it and changes nothing", async () => {
    const g = (await s.req("POST", "/Groups", groupBody(`dep-group-${++seq}`))).body;
    await expectRefusedUnchanged(s, `/Groups/${g.id}`, () => s.req("PUT", `/Groups/${g.id}`, { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"] }), ["invalidValue"], "'displayName'");
  });
});

describe("users stored before the required-attribute rules stay writable", () => {
  // The previous release required only one email with a value: it stored a valueless second email
  // from a POST, and left {"type": "work"} behind when Entra cleared emails[type eq "work"].value.
  test.each<[string, Record<string, unknown>[]]>([
    ["a second email without a value", [{ value: "kept@example.com", type: "work" }, { type: "home" }]],
    ["a valueless email equal to another but for its value", [{ value: "kept@example.com", type: "work" }, { type: "work" }]],
    ["a work email whose value Entra cleared", [{ type: "work", primary: true }, { value: "home@example.com", type: "home" }]],
    ["an email whose value is blank", [{ value: " ", type: "work" }]],
  ])("deactivates, by PATCH, a stored User with %s, and leaves its emails as they were (RFC 7644 §3.5.2)", async (_label, emails) => {
    const id = `legacy-emails-${++seq}`;
    await s.store.create("User", { id, data: { ...userBody(uname("legacy"), { emails }), active: true } });
    for (const op of [{ op: "Replace", path: "active", value: "False" }, { op: "replace", value: { active: false, title: "Left" } }]) {
      const r = await s.req("PATCH", `/Users/${id}`, patchBody(op));
      expect({ status: r.status, detail: r.body?.detail }).toEqual({ status: 200, detail: undefined });
      expect(r.body.active).toBe(false);
      expect(r.body.emails).toEqual(emails);
    }
  });

  it("still refuses a PATCH on such a User that removes what it has left: its last email", async () => {
    const id = `legacy-emails-${++seq}`;
    await s.store.create("User", { id, data: { ...userBody(uname("legacy"), { emails: [{ value: "only@example.com", type: "work" }, { type: "home" }] }), active: true } });
    await expectRefusedUnchanged(s, `/Users/${id}`, () => s.req("PATCH", `/Users/${id}`, patchBody({ op: "remove", path: "emails" })), ["mutability"], "'emails'");
  });

  test.each<[string, Record<string, unknown>, Record<string, unknown>, string]>([
    ["without a displayName (the previous release let a PATCH remove it), a PATCH removing its emails", { displayName: undefined }, { op: "remove", path: "emails" }, "'emails'"],
    ["with a valueless email, a PATCH removing its only email with an address", { emails: [{ value: "only@example.com", type: "work" }, { type: "home" }] }, { op: "remove", path: 'emails[type eq "work"]' }, "'emails'"],
    ["with a valueless email, a PATCH adding another email without a value", { emails: [{ value: "only@example.com", type: "work" }, { type: "home" }] }, { op: "add", path: "emails", value: [{ type: "other" }] }, "'emails.value'"],
  ])("still refuses, on a stored User %s, with 400 mutability: only the gaps it already has are let stand (RFC 7644 §3.5.2.2)", async (_label, stored, op, named) => {
    const id = `legacy-gaps-${++seq}`;
    await s.store.create("User", { id, data: JSON.parse(JSON.stringify({ ...userBody(uname("legacy")), active: true, ...stored })) });
    await expectRefusedUnchanged(s, `/Users/${id}`, () => s.req("PATCH", `/Users/${id}`, patchBody(op)), ["mutability"], named);
  });

  it("accepts a PATCH that gives a displayName to a stored User that lacks one and also has a valueless email", async () => {
    const id = `legacy-gaps-${++seq}`;
    await s.store.create("User", { id, data: { ...userBody(uname("legacy"), { emails: [{ value: "kept@example.com", type: "work" }, { type: "home" }] }), displayName: undefined, active: true } });
    const r = await s.req("PATCH", `/Users/${id}`, patchBody({ op: "add", path: "displayName", value: "Now Named" }));
    expect({ status: r.status, detail: r.body?.detail }).toEqual({ status: 200, detail: undefined });
    expect(r.body.displayName).toBe("Now Named");
  });
});
