/**
 * PATCH through a value filter that matches nothing, over HTTP against a real server and store:
 * RFC 7644 §3.5.2.3 / §3.12 noTarget, and the Entra ID upsert that stays (quirks.ts upsertSeed).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { expectScimError, patchBody, startServer, userBody, type TestServer } from "../helpers";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.close());

let n = 0;
const newUser = async () => {
  const r = await s.req("POST", "/Users", userBody(`pvf${++n}@example.com`));
  expect(r.status).toBe(201);
  return r.body;
};

describe("PATCH value filters that match nothing", () => {
  it("refuses replace of emails[value eq …].value that matches nothing with 400 noTarget, every time, and stores nothing (RFC 7644 §3.5.2.3)", async () => {
    const u = await newUser();
    const before = await s.store.get("User", u.id);
    const op = { op: "replace", path: 'emails[value eq "nomatch@x"].value', value: "o@x" };
    for (let i = 0; i < 2; i++) {
      const r = await s.req("PATCH", `/Users/${u.id}`, patchBody(op));
      expectScimError(r, 400, "noTarget");
      expect(r.body.detail).toContain('[value eq "nomatch@x"]');
    }
    const after = await s.store.get("User", u.id);
    expect(after!.data).toEqual(before!.data);
    expect(after!.version).toBe(before!.version);
    expect((await s.req("GET", `/Users/${u.id}`)).body.emails).toEqual(u.emails);
  });

  it("refuses add through a value filter naming the written sub-attribute with 400 noTarget, as replace (RFC 7644 §3.12)", async () => {
    const u = await newUser();
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "add", path: 'emails[value eq "nomatch@x"].value', value: "o@x" }));
    expectScimError(r, 400, "noTarget");
    expect((await s.req("GET", `/Users/${u.id}`)).body.emails).toEqual(u.emails);
  });

  it("an Entra upsert of emails[type eq \"home\"].value sent twice leaves exactly one home email (retry-safe quirk)", async () => {
    const u = await newUser();
    for (const op of ["Add", "Replace"]) {
      const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op, path: 'emails[type eq "home"].value', value: "home@example.com" }));
      expect(r.status).toBe(200);
    }
    const emails = (await s.req("GET", `/Users/${u.id}`)).body.emails as { type?: string; value: string }[];
    expect(emails.filter((e) => e.type === "home")).toEqual([{ type: "home", value: "home@example.com" }]);
    expect(emails.length).toBe(u.emails.length + 1);
  });

  it("an Entra upsert of roles[primary eq \"True\"].value sent twice leaves exactly one role (retry-safe quirk)", async () => {
    const u = await newUser();
    for (let i = 0; i < 2; i++) {
      const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "Replace", path: 'roles[primary eq "True"].value', value: "approver" }));
      expect(r.status).toBe(200);
    }
    expect((await s.req("GET", `/Users/${u.id}`)).body.roles).toEqual([{ value: "approver", primary: true }]);
  });
});
