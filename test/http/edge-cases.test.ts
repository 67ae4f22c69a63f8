import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ENTERPRISE, expectScimError, patchBody, startServer, userBody, type TestServer } from "../helpers";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.close());

let n = 0;
const newUser = async (extra: Record<string, unknown> = {}) => {
  const r = await s.req("POST", "/Users", userBody(`edge${++n}@example.com`, extra));
  expect(r.status).toBe(201);
  return r.body;
};

describe("edge cases found in review", () => {
  it("a value filter that creates an element refuses literals of the wrong type with 400 invalidValue", async () => {
    const u = await newUser();
    for (const path of ["emails[type eq 5].value", "phoneNumbers[value eq 42].type"]) {
      const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "add", path, value: "work" }));
      expectScimError(r, 400, "invalidValue");
    }
    expect((await s.req("GET", `/Users/${u.id}`)).body.emails).toEqual(u.emails);
  });

  it("an empty password is no password: 201, nothing stored, never a 500", async () => {
    const u = await newUser({ password: "" });
    expect(u.password).toBeUndefined();
    const put = await s.req("PUT", `/Users/${u.id}`, userBody(u.userName, { password: "" }));
    expect(put.status).toBe(200);
  });

  it("PATCH remove of password clears the stored hash", async () => {
    const u = await newUser({ password: "correct horse battery staple" });
    const stored = async () => (await s.store.get("User", u.id))!.data.password;
    expect(String(await stored())).toStartWith("$argon2");
    expect((await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "remove", path: "password" }))).status).toBe(200);
    expect(await stored()).toBeUndefined();
  });

  it("a SearchRequest whose attributes are not names answers 400 invalidValue, and null means absent", async () => {
    for (const body of [{ attributes: 5 }, { excludedAttributes: {} }, { attributes: [1, 2] }]) {
      expectScimError(await s.req("POST", "/Users/.search", body), 400, "invalidValue");
    }
    expect((await s.req("POST", "/.search", { attributes: null })).status).toBe(200);
  });

  it("sortBy=meta.resourceType is accepted and keeps creation order", async () => {
    await newUser();
    const r = await s.req("GET", "/Users?sortBy=meta.resourceType");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBeGreaterThan(0);
  });

  it("schemas follows the data after PATCH: adding an extension attribute adds its URN, removing the extension drops it (RFC 7643 §3)", async () => {
    const u = await newUser();
    expect(u.schemas).not.toContain(ENTERPRISE);
    const added = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "add", path: `${ENTERPRISE}:department`, value: "R&D" }));
    expect(added.body.schemas).toContain(ENTERPRISE);
    const removed = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "remove", path: ENTERPRISE }));
    expect(removed.body.schemas).not.toContain(ENTERPRISE);
    expect(removed.body[ENTERPRISE]).toBeUndefined();
  });

  it("a very long id without a token is 401, not a validation error", async () => {
    const r = await fetch(`${s.base}/Users/${"a".repeat(300)}`);
    expect(r.status).toBe(401);
  });

  it("/Me answers 501 to every method", async () => {
    for (const m of ["GET", "POST", "PUT", "PATCH", "DELETE"]) expectScimError(await s.req(m, "/Me", m === "GET" || m === "DELETE" ? undefined : {}), 501);
  });

  it("a dateTime literal without a zone is read as UTC, whatever the server's zone", async () => {
    const u = await newUser();
    const created = u.meta.created as string; // e.g. 2026-11-30T16:40:00.123Z
    const noZone = created.replace("Z", "");
    const r = await s.req("GET", `/Users?filter=${encodeURIComponent(`id eq "${u.id}" and meta.created eq "${noZone}"`)}`);
    expect(r.body.totalResults).toBe(1);
  });
});
