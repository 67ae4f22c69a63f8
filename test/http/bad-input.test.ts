import { allMembers } from "../helpers";
/**
 * Bad input at the HTTP edge: each is a clear 4xx SCIM error (RFC 7644 §3.12) and leaves the store
 * unchanged — malformed JSON, wrong JSON types per attribute type (RFC 7643 §2.3), bad `schemas`
 * (RFC 7643 §3), bad PatchOp bodies (RFC 7644 §3.5.2), oversized values, and out-of-range paging
 * parameters (RFC 7644 §3.4.2.4); plus a large but legal member PATCH that must succeed.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { createApp } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import { hashToken, newToken } from "../../src/tokens";
import { ENTERPRISE, expectScimError, GROUP, groupBody, LIST, PATCH_OP, patchBody, memoryLogger, openTestStore, rawRequest, readResponse, startServer, USER, userBody, type TestServer } from "../helpers";

/** The stores of the describes below that build their apps at once (of the test engine). */
const cutDb = await openTestStore();
const pctDb = await openTestStore();

let s: TestServer;
let small: TestServer;
const SMALL_MAX = 3;
const SMALL_USERS = 5;
let userId: string;
let groupId: string;

const count = (srv: TestServer, table: "users" | "groups" | "group_members" = "users") => srv.count(table);

beforeAll(async () => {
  s = await startServer();
  small = await startServer({ maxResults: SMALL_MAX });
  const u = await s.req("POST", "/Users", userBody("existing@example.com", { title: "Keeper", [ENTERPRISE]: { department: "Ops" } }));
  expect(u.status).toBe(201);
  userId = u.body.id;
  const g = await s.req("POST", "/Groups", groupBody("existing-group", [userId]));
  expect(g.status).toBe(201);
  groupId = g.body.id;
  for (let i = 0; i < SMALL_USERS; i++) expect((await small.req("POST", "/Users", userBody(`page${i}@example.com`))).status).toBe(201);
});
afterAll(async () => {
  await s.close();
  await small.close();
});

/** Sends a request that must fail with a 4xx SCIM error and change nothing in the store. */
async function expectRefused(method: string, path: string, body: unknown, status = 400, scimType?: string) {
  const users = await count(s);
  const groups = await count(s, "groups");
  const members = await count(s, "group_members");
  const beforeUser = (await s.req("GET", `/Users/${userId}`)).text;
  const beforeGroup = (await s.req("GET", `/Groups/${groupId}`)).text;
  const r = await s.req(method, path, body);
  expectScimError(r, status, scimType);
  expect(r.text).not.toMatch(/\.(ts|js):\d+/);
  expect({ users: await count(s), groups: await count(s, "groups"), members: await count(s, "group_members") }).toEqual({ users, groups, members });
  expect((await s.req("GET", `/Users/${userId}`)).text).toBe(beforeUser);
  expect((await s.req("GET", `/Groups/${groupId}`)).text).toBe(beforeGroup);
  return r;
}

const NOT_JSON: [string, string][] = [
  ["a truncated object", '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": '],
  ["a trailing comma", `{"schemas": ["${USER}"], "userName": "x",}`],
  ["single-quoted strings", "{'userName': 'x'}"],
  ["an unquoted key", `{schemas: ["${USER}"]}`],
  ["a bare word", "undefined"],
  ["NaN", `{"schemas": ["${USER}"], "userName": NaN}`],
];

describe("malformed JSON is 400 invalidSyntax (RFC 7644 §3.12)", () => {
  test.each(NOT_JSON)("refuses %s on POST, PUT and PATCH", async (_c, text) => {
    await expectRefused("POST", "/Users", text, 400, "invalidSyntax");
    await expectRefused("PUT", `/Users/${userId}`, text, 400, "invalidSyntax");
    await expectRefused("PATCH", `/Users/${userId}`, text, 400, "invalidSyntax");
  });
});

describe("a body that ends before it is complete is 400, not a server failure (RFC 9112 §6.3)", () => {
  // A client that closes the connection (or whose stream breaks) before all of its body arrived sent
  // an incomplete message: its fault, so no 500 and no "error:" line for the operator to chase.
  const store = cutDb.store;
  const token = newToken();
  const { logger, lines: logs } = memoryLogger();
  const app = createApp({ store, logger });
  beforeAll(async () => void (await store.createToken("cut", hashToken(token))));
  afterAll(() => cutDb.cleanup());
  const routes: [string, string][] = [
    ["POST", "/Users"],
    ["PUT", "/Users/x"],
    ["PATCH", "/Groups/x"],
    ["POST", "/.search"],
  ];

  test.each(routes)("answers %s %s whose body stream fails mid-way with 400 invalidSyntax, logs nothing and stores nothing", async (method, path) => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"schemas":'));
        c.error(new DOMException("The connection was closed.", "AbortError"));
      },
    });
    const before = logs.length;
    const r = await readResponse(
      await app.handle(new Request(`http://scimd.test/api/v1/scim${path}`, { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" }, body })),
    );
    expectScimError(r, 400, "invalidSyntax");
    expect(r.body.detail).toContain("body");
    expect(logs.slice(before)).toEqual([]);
    expect((await store.search("User", { offset: 0, limit: 0 })).total).toBe(0);
  });

  it("leaves no 'error:' line in the log when a client closes the connection mid-body, served", async () => {
    const server = createApp({ store, logger }).listen({ port: 0, hostname: "127.0.0.1" });
    try {
      const before = logs.length;
      for (const [method, path] of routes)
        await rawRequest(
          server.server!.port!,
          `${method} /api/v1/scim${path} HTTP/1.1\r\nHost: scimd.test\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/scim+json\r\nContent-Length: 500\r\n\r\n{"schemas":`,
        );
      expect(logs.slice(before)).toEqual([]);
    } finally {
      await server.stop(true);
    }
  });
});

describe("an id whose percent-encoding is malformed is a 4xx, never 500 or an id of null (RFC 3986 §2.1)", () => {
  // Served, Bun's router decodes such a segment to U+FFFD (an id that matches nothing: 404); through
  // app.handle, Elysia's router gives it as null, which the routes' params schema refuses with 400.
  const store = pctDb.store;
  const token = newToken();
  const app = createApp({ store, logger: SILENT_LOGGER });
  beforeAll(async () => void (await store.createToken("pct", hashToken(token))));
  afterAll(() => pctDb.cleanup());

  test.each(["/Users/%E0", "/Groups/%", "/Schemas/%E0%A4", "/ResourceTypes/%ZZ"])("answers every method on %s served and through app.handle with a 4xx", async (path) => {
    const users = await count(s);
    for (const method of ["GET", "PUT", "PATCH", "DELETE"]) {
      const body = method === "PUT" || method === "PATCH" ? {} : undefined;
      const served = await s.req(method, path, body);
      const handled = await readResponse(
        await app.handle(new Request(`http://scimd.test/api/v1/scim${path}`, { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" }, body: body && "{}" })),
      );
      for (const [how, r] of [["served", served], ["app.handle", handled]] as const) {
        expect({ how, method, path, status: r.status >= 400 && r.status < 500 }).toEqual({ how, method, path, status: true });
        expectScimError(r, r.status);
        expect(r.body.detail).not.toMatch(/ null not found/);
      }
    }
    expect(await count(s)).toBe(users);
  });
});

describe("bodies that are not a JSON object are 400", () => {
  test.each([
    ["JSON null", "null"],
    ["a top-level array", JSON.stringify([userBody("arr@example.com")])],
    ["an empty array", "[]"],
    ["a string", '"hello"'],
    ["a number", "42"],
    ["true", "true"],
  ])("refuses %s as a POST, PUT or PATCH body", async (_c, text) => {
    await expectRefused("POST", "/Users", text, 400);
    await expectRefused("POST", "/Groups", text, 400);
    await expectRefused("PUT", `/Users/${userId}`, text, 400);
    await expectRefused("PATCH", `/Users/${userId}`, text, 400);
    await expectRefused("PATCH", `/Groups/${groupId}`, text, 400);
  });
});

describe("`schemas` must be an array naming the core schema (RFC 7643 §3)", () => {
  const without = (b: Record<string, unknown>) => {
    const { schemas: _s, ...rest } = b;
    return rest;
  };
  test.each<[string, (b: Record<string, unknown>) => unknown]>([
    ["missing", without],
    ["a string, not an array", (b) => ({ ...b, schemas: USER })],
    ["an empty array", (b) => ({ ...b, schemas: [] })],
    ["an array of non-strings", (b) => ({ ...b, schemas: [1, 2] })],
    ["an object", (b) => ({ ...b, schemas: { [USER]: true } })],
    ["null", (b) => ({ ...b, schemas: null })],
    ["only the enterprise extension URN", (b) => ({ ...b, schemas: [ENTERPRISE] })],
    ["the Group URN on a User", (b) => ({ ...b, schemas: [GROUP] })],
  ])("refuses a User whose schemas is %s with 400, on POST and PUT", async (_c, mutate) => {
    await expectRefused("POST", "/Users", mutate(userBody("schemas@example.com")), 400);
    await expectRefused("PUT", `/Users/${userId}`, mutate(userBody("existing@example.com")), 400);
  });

  it("refuses a Group whose schemas names only the User URN with 400", async () => {
    await expectRefused("POST", "/Groups", { ...groupBody("bad-schemas"), schemas: [USER] }, 400);
  });
});

describe("wrong JSON types per attribute type are 400 invalidValue (RFC 7643 §2.3)", () => {
  const cases: [string, Record<string, unknown>][] = [
    // string
    ["userName as a number", { userName: 123 }],
    ["userName as a boolean", { userName: true }],
    ["userName as an object", { userName: { value: "x" } }],
    ["userName as an array of strings", { userName: ["a", "b"] }],
    ["userName as null (it is required)", { userName: null }],
    ["displayName as a number", { displayName: 5 }],
    ["title as an array of one string (single-valued)", { title: ["Boss"] }],
    ["title as an array of two strings", { title: ["Boss", "Chief"] }],
    ["title as an object", { title: { value: "Boss" } }],
    // boolean
    ["active as the string 'yes'", { active: "yes" }],
    ["active as the number 1", { active: 1 }],
    ["active as an object", { active: { value: true } }],
    ["active as an array", { active: [true] }],
    // complex (singular)
    ["name as a string", { name: "Ada Lovelace" }],
    ["name as two objects", { name: [{ givenName: "Ada" }, { givenName: "Bea" }] }],
    ["name.givenName as a number", { name: { givenName: 7 } }],
    ["name.givenName as an object", { name: { givenName: { first: "Ada" } } }],
    // multi-valued complex
    ["emails as a string", { emails: "ada@example.com" }],
    ["emails as an array of strings", { emails: ["ada@example.com"] }],
    ["emails[].value as a number", { emails: [{ value: 5, type: "work" }] }],
    ["emails[].primary as 'maybe'", { emails: [{ value: "p@example.com", primary: "maybe" }] }],
    ["emails as a number", { emails: 42 }],
    ["phoneNumbers as a string", { phoneNumbers: "+1 555" }],
    ["addresses[].primary as a number", { addresses: [{ locality: "X", primary: 2 }] }],
    // reference
    ["profileUrl as a number", { profileUrl: 5 }],
    ["profileUrl as an object", { profileUrl: { href: "https://example.com" } }],
    ["photos[].value as a boolean", { photos: [{ value: true }] }],
    // binary
    ["x509Certificates[].value that is not base64", { x509Certificates: [{ value: "not base64!!" }] }],
    // writeOnly string
    ["password as a number", { password: 1234 }],
    // extension object and its complex attribute
    ["the enterprise extension as a string", { [ENTERPRISE]: "Ops" }],
    ["the enterprise extension as an array", { [ENTERPRISE]: [{ department: "Ops" }] }],
    ["enterprise department as a number", { [ENTERPRISE]: { department: 12 } }],
    ["enterprise manager as a number", { [ENTERPRISE]: { manager: 5 } }],
    ["enterprise manager as two managers", { [ENTERPRISE]: { manager: [{ value: "a" }, { value: "b" }] } }],
    ["externalId as a number", { externalId: 99 }],
  ];
  test.each(cases)("refuses a User with %s on POST and PUT", async (_c, extra) => {
    await expectRefused("POST", "/Users", userBody("types@example.com", extra), 400);
    await expectRefused("PUT", `/Users/${userId}`, userBody("existing@example.com", extra), 400);
  });

  test.each<[string, Record<string, unknown>]>([
    ["displayName as a number", { schemas: [GROUP], displayName: 5 }],
    ["members as a string", { schemas: [GROUP], displayName: "g-str", members: "abc" }],
    ["members as an array of strings", { schemas: [GROUP], displayName: "g-arr", members: ["abc"] }],
    ["a member value as a number", { schemas: [GROUP], displayName: "g-num", members: [{ value: 5 }] }],
    ["a member that does not exist", { schemas: [GROUP], displayName: "g-none", members: [{ value: "no-such-id" }] }],
  ])("refuses a Group with %s on POST and PUT", async (_c, body) => {
    await expectRefused("POST", "/Groups", body, 400);
    await expectRefused("PUT", `/Groups/${groupId}`, { ...body, displayName: typeof body.displayName === "string" ? "existing-group" : body.displayName }, 400);
  });

  it("answers 400, not 500, for a 100,000-character userName", async () => {
    await expectRefused("POST", "/Users", userBody("u".repeat(100_000)), 400);
    await expectRefused("PUT", `/Users/${userId}`, userBody("u".repeat(100_000)), 400);
    await expectRefused("PATCH", `/Users/${userId}`, patchBody({ op: "replace", path: "userName", value: "u".repeat(100_000) }), 400);
  });
});

describe("bad PatchOp bodies are 400 and change nothing (RFC 7644 §3.5.2)", () => {
  const target = () => `/Users/${userId}`;
  test.each<[string, unknown, string]>([
    ["schemas missing", { Operations: [{ op: "replace", path: "title", value: "x" }] }, "invalidSyntax"],
    ["schemas naming the User URN", { schemas: [USER], Operations: [{ op: "replace", path: "title", value: "x" }] }, "invalidSyntax"],
    ["schemas as a string", { schemas: PATCH_OP, Operations: [{ op: "replace", path: "title", value: "x" }] }, "invalidSyntax"],
    ["Operations missing", { schemas: [PATCH_OP] }, "invalidValue"],
    ["empty Operations", { schemas: [PATCH_OP], Operations: [] }, "invalidValue"],
    ["Operations as an object", { schemas: [PATCH_OP], Operations: { op: "replace", path: "title", value: "x" } }, "invalidValue"],
    ["Operations as a string", { schemas: [PATCH_OP], Operations: "replace title" }, "invalidValue"],
    ["Operations as null", { schemas: [PATCH_OP], Operations: null }, "invalidValue"],
    ["an operation that is a string", patchBody("replace" as unknown as Record<string, unknown>), "invalidSyntax"],
    ["an operation without op", patchBody({ path: "title", value: "x" }), "invalidSyntax"],
    ["an unknown op", patchBody({ op: "delete", path: "title" }), "invalidSyntax"],
    ["op as a number", patchBody({ op: 1, path: "title", value: "x" }), "invalidSyntax"],
    ["add without a value", patchBody({ op: "add", path: "title" }), "invalidValue"],
    ["path as a number", patchBody({ op: "replace", path: 5, value: "x" }), "invalidPath"],
    ["a malformed attribute path", patchBody({ op: "replace", path: "shoe size", value: "x" }), "invalidPath"],
    ["a 5,000-character path", patchBody({ op: "replace", path: "a".repeat(5000), value: "x" }), "invalidPath"],
    ["a 5,000-character value filter in the path", patchBody({ op: "replace", path: `emails[value eq "${"a".repeat(5000)}"].type`, value: "x" }), "invalidPath"],
    ["active as 'yes'", patchBody({ op: "replace", path: "active", value: "yes" }), "invalidValue"],
    ["name as a string", patchBody({ op: "replace", path: "name", value: "Ada" }), "invalidValue"],
    ["emails as a string", patchBody({ op: "add", path: "emails", value: "x@example.com" }), "invalidValue"],
    ["title as an array", patchBody({ op: "replace", path: "title", value: ["a", "b"] }), "invalidValue"],
    ["a path-less replace with a string value", patchBody({ op: "replace", value: "x" }), "invalidValue"],
    ["a path-less replace with an array value", patchBody({ op: "replace", value: [{ title: "x" }] }), "invalidValue"],
    ["remove without a path", patchBody({ op: "remove" }), "noTarget"],
    ["a good operation followed by a bad one", patchBody({ op: "replace", path: "title", value: "Changed" }, { op: "replace", path: "active", value: "nope" }), "invalidValue"],
  ])("refuses %s with 400", async (_c, body, scimType) => {
    await expectRefused("PATCH", target(), body, 400, scimType);
  });

  test.each<[string, unknown]>([
    ["members as a string", patchBody({ op: "add", path: "members", value: "abc" })],
    ["a member value as a number", patchBody({ op: "add", path: "members", value: [{ value: 5 }] })],
    ["an unknown member id", patchBody({ op: "add", path: "members", value: [{ value: "no-such-user" }] })],
    ["a member sub-attribute path", patchBody({ op: "replace", path: `members[value eq "${"x"}"].display`, value: "y" })],
    ["displayName as a number", patchBody({ op: "replace", path: "displayName", value: 5 })],
    ["empty Operations", { schemas: [PATCH_OP], Operations: [] }],
  ])("refuses a Group PATCH with %s with 400", async (_c, body) => {
    await expectRefused("PATCH", `/Groups/${groupId}`, body, 400);
  });
});

describe("list parameters out of range (RFC 7644 §3.4.2.4)", () => {
  const list = (q: string) => small.req("GET", `/Users?${q}`);

  it(`caps count=1000000000 at maxResults (${SMALL_MAX}) with 200`, async () => {
    const r = await list("count=1000000000");
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.totalResults).toBe(SMALL_USERS);
    expect(r.body.Resources.length).toBe(SMALL_MAX);
    expect(r.body.itemsPerPage).toBe(SMALL_MAX);
  });

  test.each(["-5", "0", "-1000000000"])("treats count=%s as 0: totalResults only, no Resources", async (c) => {
    const r = await list(`count=${c}`);
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(SMALL_USERS);
    expect(r.body.itemsPerPage).toBe(0);
    expect(r.body.Resources ?? []).toEqual([]);
  });

  test.each(["0", "-3", "-1000000000"])("treats startIndex=%s as 1", async (i) => {
    const first = await list("startIndex=1&count=2&sortBy=userName");
    const r = await list(`startIndex=${i}&count=2&sortBy=userName`);
    expect(r.status).toBe(200);
    expect(r.body.startIndex).toBe(1);
    expect(r.body.Resources.map((x: any) => x.id)).toEqual(first.body.Resources.map((x: any) => x.id));
  });

  it("answers a startIndex past the end with 200 and no Resources", async () => {
    const r = await list("startIndex=1000000");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(SMALL_USERS);
    expect(r.body.Resources ?? []).toEqual([]);
  });

  test.each([
    ["startIndex", "abc"],
    ["startIndex", "1.5"],
    ["startIndex", "1e400"],
    ["count", "1.5"],
    ["count", "abc"],
    ["count", "ten"],
  ])("refuses %s=%s with 400 invalidValue", async (param, value) => {
    expectScimError(await list(`${param}=${encodeURIComponent(value)}`), 400, "invalidValue");
  });

  it("refuses non-integer paging values in a POST .search body with 400 invalidValue", async () => {
    for (const body of [{ count: 1.5 }, { count: "abc" }, { startIndex: "abc" }, { startIndex: 2.5 }])
      expectScimError(await small.req("POST", "/Users/.search", { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], ...body }), 400, "invalidValue");
  });

  test.each([
    ["sortBy", "shoeSize"],
    ["sortBy", "name.shoeSize"],
    ["sortBy", "urn:example:nope:attr"],
    ["attributes", "shoeSize"],
    ["attributes", "userName,shoeSize"],
    ["excludedAttributes", "shoeSize"],
    ["excludedAttributes", "emails.shoeSize"],
    ["sortOrder", "sideways"],
  ])("refuses %s naming something unknown (%s) with 400", async (param, value) => {
    expectScimError(await list(`${param}=${encodeURIComponent(value)}`), 400);
  });

  it("refuses attributes naming an unknown attribute on GET /Users/{id} with 400", async () => {
    const id = (await list("count=1")).body.Resources[0].id;
    expectScimError(await small.req("GET", `/Users/${id}?attributes=shoeSize`), 400);
  });

  it("refuses a 10,000-character filter with 400 invalidFilter (GET and POST .search)", async () => {
    const filter = `userName eq "${"a".repeat(10_000)}"`;
    expectScimError(await list(`filter=${encodeURIComponent(filter)}`), 400, "invalidFilter");
    expectScimError(await small.req("POST", "/.search", { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter }), 400, "invalidFilter");
    const chain = Array.from({ length: 700 }, (_, i) => `userName eq "u${i}"`).join(" or ");
    expect(chain.length).toBeGreaterThan(10_000);
    expectScimError(await small.req("POST", "/Users/.search", { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: chain }), 400, "invalidFilter");
  });
});

describe("a large but legal PATCH (RFC 7644 §3.5.2.1)", () => {
  let bigGroup: string;
  let ids: string[] = [];

  beforeAll(async () => {
    // 1,000 Users straight through the store, all at once: group commit stores them in one transaction.
    ids = Array.from({ length: 1000 }, () => crypto.randomUUID());
    await Promise.all(
      ids.map((id, i) =>
        s.store.create("User", { id, data: { schemas: [USER], userName: `bulk${i}@example.com`, displayName: `Bulk ${i}`, emails: [{ value: `bulk${i}@example.com` }], active: true } }),
      ),
    );
    const g = await s.req("POST", "/Groups", groupBody("thousand"));
    expect(g.status).toBe(201);
    bigGroup = g.body.id;
  });

  it("adds 1,000 members in one operation, within the default 1 MiB body limit", async () => {
    const body = patchBody({ op: "add", path: "members", value: ids.map((value) => ({ value, $ref: `${s.base}/Users/${value}`, type: "User" })) });
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(1024 * 1024);
    const r = await s.req("PATCH", `/Groups/${bigGroup}`, body);
    expect(r.status).toBe(204);
    expect((await allMembers(s.store, bigGroup)).length).toBe(1000);
  });

  it("removes the 1,000 members with 1,000 operations in one body (the advertised maxOperations)", async () => {
    const body = patchBody(...ids.map((value) => ({ op: "remove", path: `members[value eq "${value}"]` })));
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(1024 * 1024);
    const r = await s.req("PATCH", `/Groups/${bigGroup}`, body);
    expect(r.status).toBe(204);
    expect((await allMembers(s.store, bigGroup)).length).toBe(0);
  });

  it("refuses 1,001 operations with 400 and applies none of them", async () => {
    const body = patchBody(...[...ids, ids[0]!].map((value) => ({ op: "add", path: "members", value: [{ value }] })));
    const before = await count(s, "group_members");
    const r = await s.req("PATCH", `/Groups/${bigGroup}`, body);
    expectScimError(r, 400);
    expect(await count(s, "group_members")).toBe(before);
  });

  it("refuses a member list naming one unknown id among 1,000 with 400 and adds none", async () => {
    const value = [...ids.slice(0, 999), "no-such-user"].map((v) => ({ value: v }));
    const before = await count(s, "group_members");
    const r = await s.req("PATCH", `/Groups/${bigGroup}`, patchBody({ op: "add", path: "members", value }));
    expectScimError(r, 400, "invalidValue");
    expect(await count(s, "group_members")).toBe(before);
  });
});
