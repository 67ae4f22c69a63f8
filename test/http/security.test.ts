import { allMembers } from "../helpers";
/**
 * Security properties of the HTTP edge: every SCIM route is behind bearer authentication (derived from
 * the app's own route table, so a new route without auth fails here), failed-auth throttling, no
 * secret in logs or in the database file, the database file's mode, and SQL injection through every
 * parameter that reaches SQL.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { readFileSync, existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { createApp, PROBE_PATHS, SCIM_BASE_PATH } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { hashToken, newToken } from "../../src/tokens";
import { expectScimError, groupBody, itSqlite, openTestStore, patchBody, rawRequest, startServer, tempDir, userBody, type TestResponse, type TestServer } from "../helpers";

/** The stores of the describes below that build their apps at once (of the test engine). */
const routesDb = await openTestStore();
const limitDb = await openTestStore();

const HOST = "http://scimd.test";

function parse(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** An in-process request through app.handle (no network). */
async function handle(app: { handle: (r: Request) => Promise<Response> | Response }, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<TestResponse> {
  const h: Record<string, string> = { ...headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === "string" ? body : JSON.stringify(body);
    h["Content-Type"] ??= "application/scim+json";
  }
  const res = await app.handle(new Request(`${HOST}${path}`, { method, headers: h, body: payload }));
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: parse(text) };
}

function expectUnauthorized(r: TestResponse, what: string) {
  if (r.status !== 401) throw new Error(`${what}: expected 401, got ${r.status} ${r.text.slice(0, 200)}`);
  expectScimError(r, 401);
  expect(r.headers.get("www-authenticate") ?? "").toStartWith("Bearer");
}

function bodyFor(method: string): unknown {
  return method === "POST" || method === "PUT" || method === "PATCH" ? {} : undefined;
}

describe("every SCIM route requires a bearer token (RFC 7644 §2, RFC 6750 §3)", () => {
  const store = routesDb.store;
  const token = newToken();
  const app = createApp({ store, authFailuresPerMinute: 1_000_000, logger: SILENT_LOGGER });
  const routes = app.routes.map((r) => ({ method: r.method, path: r.path })).filter((r) => !(r.method === "GET" && PROBE_PATHS.includes(r.path)));
  const concrete = (path: string) => path.replace(/:[A-Za-z]+/g, () => crypto.randomUUID());

  beforeAll(async () => {
    await store.createToken("routes", hashToken(token));
  });
  afterAll(() => routesDb.cleanup());

  it("reads a non-empty route table holding the core SCIM routes", () => {
    const keys = routes.map((r) => `${r.method} ${r.path}`);
    for (const expected of [
      "GET /api/v1/scim/Users",
      "POST /api/v1/scim/Users",
      "GET /api/v1/scim/Users/:id",
      "PUT /api/v1/scim/Users/:id",
      "PATCH /api/v1/scim/Users/:id",
      "DELETE /api/v1/scim/Users/:id",
      "GET /api/v1/scim/Groups",
      "POST /api/v1/scim/Groups",
      "PATCH /api/v1/scim/Groups/:id",
      "DELETE /api/v1/scim/Groups/:id",
      "POST /api/v1/scim/.search",
      "GET /api/v1/scim/ServiceProviderConfig",
      "GET /api/v1/scim/Schemas",
      "GET /api/v1/scim/ResourceTypes",
    ])
      expect(keys).toContain(expected);
    // Everything but the probes (/healthz, /readyz) lives under the SCIM base path.
    for (const r of routes) expect(r.path.startsWith(SCIM_BASE_PATH)).toBe(true);
  });

  const attempts: [string, (token: string) => { query?: string; headers: Record<string, string> }][] = [
    ["no Authorization header", () => ({ headers: {} })],
    ["a wrong bearer token", () => ({ headers: { Authorization: `Bearer ${newToken()}` } })],
    ["the valid token only in ?access_token=", (t) => ({ query: `access_token=${encodeURIComponent(t)}`, headers: {} })],
    ["the valid token under the Basic scheme", (t) => ({ headers: { Authorization: `Basic ${Buffer.from(`scim:${t}`).toString("base64")}` } })],
    ["the valid token as a bare Authorization value", (t) => ({ headers: { Authorization: t } })],
    ["the valid token under a Token scheme", (t) => ({ headers: { Authorization: `Token ${t}` } })],
  ];

  test.each(attempts)("answers 401 with a SCIM error and WWW-Authenticate: Bearer on every route (except /healthz and /readyz) for %s", async (what, make) => {
    expect(routes.length).toBeGreaterThan(10);
    for (const route of routes) {
      const { query, headers } = make(token);
      const path = concrete(route.path) + (query ? `?${query}` : "");
      const r = await handle(app, route.method, path, headers, bodyFor(route.method));
      expectUnauthorized(r, `${route.method} ${route.path} with ${what}`);
    }
  });

  it("accepts the valid token on every route (so the 401s above come from authentication, not from the route)", async () => {
    for (const route of routes) {
      const r = await handle(app, route.method, concrete(route.path), { Authorization: `Bearer ${token}` }, bodyFor(route.method));
      if (r.status === 401 || r.status === 429) throw new Error(`${route.method} ${route.path}: a valid token got ${r.status}`);
      expect(r.status).not.toBe(500);
    }
  });

  test.each([
    ["GET", "/NoSuchThing"],
    ["GET", "/Users/abc/def"],
    ["POST", "/Users/abc"],
    ["DELETE", "/Users"],
    ["PUT", "/Groups"],
    ["GET", "/"],
    ["GET", ""],
    ["GET", "/.git/config"],
    ["OPTIONS", "/Users"],
    ["TRACE", "/Users"],
    ["GET", "/Users/"],
    ["GET", "//Users"],
    ["GET", "/users"],
    ["GET", "/Us%65rs"],
    ["GET", "/Users/%2e%2e"],
  ])("answers 401 (not 404 or 405) to %s <base>%s without a token: routes cannot be probed", async (method, path) => {
    const r = await handle(app, method, `${SCIM_BASE_PATH}${path}`, {}, bodyFor(method));
    expectUnauthorized(r, `${method} ${path}`);
  });

  test.each([
    ["no Host header (HTTP/1.0)", "HTTP/1.0\r\n"],
    ["a Host shorter than four characters", "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"],
  ])("answers a stranger whose request has %s with 401 or 404 on every route and method, never a 405 naming methods", async (_what, rest) => {
    // Elysia reads the path of such a URL from its 12th character on, so the request may reach no
    // authenticated route at all: the answer must then say no more than any unknown path does.
    const server = createApp({ store, authFailuresPerMinute: 1_000_000, logger: SILENT_LOGGER }).listen({ port: 0, hostname: "127.0.0.1" });
    try {
      for (const route of routes)
        for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"]) {
          const r = await rawRequest(server.server!.port!, `${method} ${concrete(route.path)} ${rest}`);
          expect({ route: route.path, method, status: [401, 404].includes(r.status), allowed: r.body.includes("allowed") }).toEqual({ route: route.path, method, status: true, allowed: false });
        }
    } finally {
      await server.stop(true);
    }
  });

  test.each(["/Users", "/Users/x", "/NoSuchThing"])("answers HEAD <base>%s without a token with 401 and WWW-Authenticate: Bearer (a HEAD has no body)", async (path) => {
    const r = await handle(app, "HEAD", `${SCIM_BASE_PATH}${path}`);
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate") ?? "").toStartWith("Bearer");
  });

  test.each(["bearer", "BEARER", "BeArEr"])("matches the scheme name '%s' case-insensitively (RFC 9110 §11.1)", async (scheme) => {
    const r = await handle(app, "GET", `${SCIM_BASE_PATH}/Users?count=0`, { Authorization: `${scheme} ${token}` });
    expect(r.status).toBe(200);
  });

  test.each([
    ["two spaces after the scheme", (t: string) => `Bearer  ${t}`],
    ["a tab after the scheme", (t: string) => `Bearer\t${t}`],
    ["trailing spaces", (t: string) => `Bearer ${t}   `],
    ["lower case and several spaces", (t: string) => `bearer    ${t}`],
  ])("tolerates extra whitespace in the Authorization header: %s", async (_c, make) => {
    const r = await handle(app, "GET", `${SCIM_BASE_PATH}/Users?count=0`, { Authorization: make(token) });
    expect(r.status).toBe(200);
  });

  test.each([
    ["the token followed by a second word", (t: string) => `Bearer ${t} extra`],
    ["the token with one character changed", (t: string) => `Bearer ${t.slice(0, -1)}${t.endsWith("A") ? "B" : "A"}`],
    ["a prefix of the token", (t: string) => `Bearer ${t.slice(0, 20)}`],
    ["the token's SHA-256 hash", (t: string) => `Bearer ${hashToken(t)}`],
    ["an empty token", () => "Bearer "],
    ["a 100,000-character token", () => `Bearer ${"a".repeat(100_000)}`],
    ["the token twice, comma-separated", (t: string) => `Bearer ${t}, Bearer ${t}`],
    // The plugin cuts the token one character after the scheme, whatever that character is.
    ["the token after 'Bearer:' (no space after the scheme)", (t: string) => `Bearer:${t}`],
    ["the token after 'bearer_' (another scheme that begins like Bearer)", (t: string) => `bearer_${t}`],
    ["the token right after the scheme name", (t: string) => `Bearer${t}`],
  ])("refuses %s with 401", async (_c, make) => {
    const r = await handle(app, "GET", `${SCIM_BASE_PATH}/Users?count=0`, { Authorization: make(token) });
    expectUnauthorized(r, _c);
  });
});

describe("failed-authentication throttling", () => {
  const store = limitDb.store;
  const token = newToken();
  const LIMIT = 5;
  // The client address comes from a test header so one app can play several clients.
  const app = createApp({ store, authFailuresPerMinute: LIMIT, addressOf: (r) => r.headers.get("x-test-addr") ?? "203.0.113.9", logger: SILENT_LOGGER });
  const fixed = createApp({ store, authFailuresPerMinute: LIMIT, addressOf: () => "203.0.113.9", logger: SILENT_LOGGER });

  beforeAll(async () => {
    await store.createToken("limit", hashToken(token));
  });
  afterAll(() => limitDb.cleanup());

  const users = `${SCIM_BASE_PATH}/Users?count=0`;

  it(`answers 401 to the first ${LIMIT} failures from one address, then 429 with Retry-After and a SCIM error`, async () => {
    for (let i = 0; i < LIMIT; i++) expectUnauthorized(await handle(fixed, "GET", users, { Authorization: "Bearer wrong" }), `failure ${i + 1}`);
    const r = await handle(fixed, "GET", users, { Authorization: "Bearer wrong" });
    expectScimError(r, 429);
    const retry = r.headers.get("retry-after");
    expect(retry).toMatch(/^\d+$/);
    expect(Number(retry)).toBeGreaterThanOrEqual(1);
    expect(Number(retry)).toBeLessThanOrEqual(60);
    // Still throttled without any token at all, and on an unknown path.
    expectScimError(await handle(fixed, "GET", users), 429);
    expectScimError(await handle(fixed, "GET", `${SCIM_BASE_PATH}/Nope`), 429);
  });

  it("never locks out a request with a valid token from a throttled address", async () => {
    const r = await handle(fixed, "GET", users, { Authorization: `Bearer ${token}` });
    expect(r.status).toBe(200);
    const created = await handle(fixed, "POST", `${SCIM_BASE_PATH}/Users`, { Authorization: `Bearer ${token}` }, userBody("throttled-but-valid@example.com"));
    expect(created.status).toBe(201);
    // …and the address is still throttled for bad tokens afterwards.
    expectScimError(await handle(fixed, "GET", users, { Authorization: "Bearer wrong" }), 429);
  });

  it("counts failures per address: another address is not throttled by the first one's failures", async () => {
    for (let i = 0; i < LIMIT; i++) expectUnauthorized(await handle(app, "GET", users, { Authorization: "Bearer wrong", "x-test-addr": "198.51.100.1" }), `a ${i}`);
    expectScimError(await handle(app, "GET", users, { Authorization: "Bearer wrong", "x-test-addr": "198.51.100.1" }), 429);
    expectUnauthorized(await handle(app, "GET", users, { Authorization: "Bearer wrong", "x-test-addr": "198.51.100.2" }), "other address");
    // A separate app instance has its own limiter.
    const other = createApp({ store, authFailuresPerMinute: LIMIT, addressOf: () => "198.51.100.1", logger: SILENT_LOGGER });
    expectUnauthorized(await handle(other, "GET", users, { Authorization: "Bearer wrong" }), "second app");
  });

  it("counts IPv6 clients by their /64 network and an IPv4-mapped address as its IPv4 address", async () => {
    const bad = (addr: string) => handle(app, "GET", users, { Authorization: "Bearer wrong", "x-test-addr": addr });
    // A new address inside the same /64 for every attempt does not escape the limit.
    for (let i = 0; i < LIMIT; i++) expectUnauthorized(await bad(`2001:db8:1:2::${(i + 1).toString(16)}`), `v6 ${i}`);
    expectScimError(await bad("2001:db8:1:2:ffff:eeee:dddd:cccc"), 429);
    expectUnauthorized(await bad("2001:db8:1:3::1"), "the next /64");
    for (let i = 0; i < LIMIT; i++) expectUnauthorized(await bad("192.0.2.77"), `v4 ${i}`);
    expectScimError(await bad("::ffff:192.0.2.77"), 429);
  });
});

describe("no secret in logs or in the database file", () => {
  let s: TestServer;
  let logs: string[] = [];
  let otherToken: string;

  beforeAll(async () => {
    s = await startServer({ authFailuresPerMinute: 1000 });
    logs = s.logLines;
    otherToken = newToken();
    await s.store.createToken("second", hashToken(otherToken));
  });
  afterAll(async () => {
    await s.close();
  });

  it("logs no token, no Authorization header and no 'Bearer scimd_' while serving good, bad and failing requests", async () => {
    const wrong = newToken();
    const u = await s.req("POST", "/Users", userBody("logs@example.com"));
    expect(u.status).toBe(201);
    const g = await s.req("POST", "/Groups", groupBody("log-group", [u.body.id]));
    expect(g.status).toBe(201);
    // Good requests with either token, bad tokens, the token in the URL, errors of many kinds.
    await s.req("GET", `/Users/${u.body.id}`, undefined, { Authorization: `Bearer ${otherToken}` });
    await s.req("GET", "/Users", undefined, { Authorization: `Bearer ${wrong}` });
    await s.req("GET", `/Users?access_token=${s.token}`, undefined, { Authorization: "" });
    await s.req("GET", "/Users", undefined, { Authorization: `Basic ${Buffer.from(`x:${s.token}`).toString("base64")}` });
    await s.req("GET", `/Users?filter=${encodeURIComponent('userName eq "' + s.token + '"')}`);
    await s.req("GET", `/Users?filter=${encodeURIComponent("bogus((")}`);
    await s.req("POST", "/Users", "{not json");
    await s.req("POST", "/Users", userBody("logs@example.com"));
    await s.req("PATCH", `/Users/${u.body.id}`, patchBody({ op: "frobnicate", path: "title", value: s.token }));
    await s.req("DELETE", "/Users/does-not-exist");
    // A logged operator event: removing every member of a group.
    await s.req("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "remove", path: "members" }));
    // An unexpected failure (500): a table the store needs to create a User is gone.
    const gone = s.sqlite ? "user_emails" : "activity";
    await s.sql(`DROP TABLE ${gone}`);
    const boom = await s.req("POST", "/Users", userBody("boom@example.com"), { Authorization: `Bearer ${s.token}`, "X-Debug": `Bearer ${s.token}` });
    expectScimError(boom, 500);
    expect(boom.text).not.toContain(gone);

    expect(s.logs.some((l) => l.event === "unexpected error")).toBe(true); // the 500 was logged, so the check below is not vacuous
    for (const line of logs) {
      for (const secret of [s.token, otherToken, wrong]) expect(line).not.toContain(secret);
      expect(line.toLowerCase()).not.toContain("authorization");
      expect(line).not.toContain("Bearer scimd_");
      expect(line).not.toContain("scimd_");
    }
  });

  it("stores only token hashes: the database file (and its -wal) holds no plaintext token (on PostgreSQL: no row of any table)", async () => {
    let text: string;
    if (s.sqlite) {
      const files = [s.db, `${s.db}-wal`].filter(existsSync);
      text = Buffer.concat(files.map((f) => readFileSync(f))).toString("latin1");
    } else {
      const tables = await s.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()");
      text = JSON.stringify(await Promise.all(tables.map((t) => s.sql(`SELECT * FROM ${t.tablename}`))));
    }
    for (const t of [s.token, otherToken]) {
      expect(text).not.toContain(t);
      expect(text).not.toContain(t.slice("scimd_".length));
    }
    // The hash is there, so we are looking at the right bytes.
    expect(text).toContain(hashToken(otherToken));
  });
});

describe("database file permissions", () => {
  itSqlite("PostgreSQL keeps no file of scimd's")("creates the database file with mode 0600, and its -wal/-shm files too", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, "sub", "perm.db");
      const store = new SqliteStore(path);
      await store.createToken("t", hashToken(newToken()));
      await store.create("User", { id: crypto.randomUUID(), data: { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "perm" } });
      expect(statSync(path).mode & 0o777).toBe(0o600);
      for (const f of [`${path}-wal`, `${path}-shm`]) if (existsSync(f)) expect({ f, mode: statSync(f).mode & 0o777 }).toEqual({ f, mode: 0o600 });
      store.close();
    } finally {
      cleanup();
    }
  });
});

describe("SQL injection through every parameter that reaches SQL", () => {
  let s: TestServer;
  let ids: string[] = [];
  let groupId: string;
  let snapshot: string;
  const N = 6;

  const counts = async () => ({
    users: await s.count("users"),
    groups: await s.count("groups"),
    members: await s.count("group_members"),
    tokens: await s.count("tokens"),
  });
  const allUsers = async () => {
    const r = await s.req("GET", "/Users?sortBy=userName");
    expect(r.status).toBe(200);
    return JSON.stringify(r.body.Resources);
  };

  beforeAll(async () => {
    s = await startServer({ authFailuresPerMinute: 1000 });
    for (let i = 0; i < N; i++) {
      const r = await s.req("POST", "/Users", userBody(`inj${i}@example.com`, { title: `t${i}` }));
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
    const g = await s.req("POST", "/Groups", groupBody("inj-group", ids.slice(0, 4)));
    expect(g.status).toBe(201);
    groupId = g.body.id;
    snapshot = await allUsers();
  });
  afterAll(async () => {
    await s.close();
  });

  async function expectIntact() {
    expect(await counts()).toEqual({ users: N, groups: 1, members: 4, tokens: 1 });
    expect(await allUsers()).toBe(snapshot);
  }

  const filters: [string, string][] = [
    ["a quote and or 1=1 inside the value", 'userName eq "x\\" or 1=1 --"'],
    ["an SQL string break in the value", `userName eq "' OR '1'='1"`],
    ["a DROP TABLE in the value", `userName eq "'; DROP TABLE users; --"`],
    ["a LIKE wildcard with co", `userName co "%"`],
    ["a LIKE wildcard with sw", `userName sw "_"`],
    ["a JSON path break in an element filter value", `emails[value eq "') OR 1=1 --"]`],
    ["an injection in a sub-attribute value", `name.givenName eq "x' OR 1=1) --"`],
    ["an injection in an extension attribute value", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x') OR ('1'='1"`],
  ];
  test.each(filters)("matches nothing for a filter with %s (values are bound parameters)", async (_c, filter) => {
    const r = await s.req("GET", `/Users?filter=${encodeURIComponent(filter)}`);
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(0);
    expect(r.body.Resources).toEqual([]);
    await expectIntact();
  });

  const badNames: [string, string][] = [
    ["a quote and or 1=1 in the attribute name", 'userName" or 1=1 --  eq "x"'],
    ["a single quote in the attribute name", `user'Name eq "x"`],
    ["a semicolon in the attribute name", `userName;DROP eq "x"`],
    ["a quoted attribute name", `"userName" eq "x"`],
    ["a JSON-path break in a sub-attribute name", `name.given'Name eq "x"`],
    ["a JSON-path break in an element filter's attribute", `emails[val"ue eq "x"]`],
    ["a quote in an extension attribute name", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:depart'ment eq "x"`],
    ["a bare SQL expression", `1=1`],
    ["an SQL comment", `userName eq "x" -- `],
  ];
  test.each(badNames)("refuses a filter with %s with 400 invalidFilter", async (_c, filter) => {
    const r = await s.req("GET", `/Users?filter=${encodeURIComponent(filter)}`);
    expectScimError(r, 400, "invalidFilter");
    await expectIntact();
  });

  it("refuses injections through POST /.search and /Users/.search the same way", async () => {
    for (const path of ["/.search", "/Users/.search"]) {
      const ok = await s.req("POST", path, { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: `userName eq "' OR '1'='1"` });
      expect(ok.status).toBe(200);
      expect(ok.body.totalResults).toBe(0);
      const bad = await s.req("POST", path, { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: 'userName" or 1=1 -- eq "x"' });
      expect(bad.status).toBeGreaterThanOrEqual(400);
      expect(bad.status).toBeLessThan(500);
      const sort = await s.req("POST", path, { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], sortBy: "userName; DROP TABLE users" });
      expectScimError(sort, 400);
    }
    await expectIntact();
  });

  test.each([
    ["sortBy", "userName; DROP TABLE users"],
    ["sortBy", 'userName" DESC, (SELECT 1) --'],
    ["sortBy", "name.given'Name"],
    ["sortBy", "1"],
    ["attributes", 'userName"'],
    ["attributes", "userName,'; DROP TABLE users; --"],
    ["excludedAttributes", "title' OR '1'='1"],
    ["excludedAttributes", 'emails"."value'],
  ])("refuses %s=%s with 400 and leaves the tables intact", async (param, value) => {
    const r = await s.req("GET", `/Users?${param}=${encodeURIComponent(value)}`);
    expectScimError(r, 400);
    await expectIntact();
  });

  test.each(["' OR '1'='1", "x' OR 1=1 --", "1; DROP TABLE users", '"; DELETE FROM users; --', "%' OR id LIKE '%"])(
    "answers 404 for the resource id %j in the path of GET, PUT, PATCH and DELETE",
    async (id) => {
      const path = `/Users/${encodeURIComponent(id)}`;
      expectScimError(await s.req("GET", path), 404);
      expectScimError(await s.req("PUT", path, userBody("put-inj@example.com")), 404);
      expectScimError(await s.req("PATCH", path, patchBody({ op: "replace", path: "title", value: "x" })), 404);
      expectScimError(await s.req("DELETE", path), 404);
      expectScimError(await s.req("DELETE", `/Groups/${encodeURIComponent(id)}`), 404);
      await expectIntact();
    },
  );

  test.each([
    ['userName" or 1=1 --', "replace", "x"],
    ["title'; DROP TABLE users; --", "replace", "x"],
    [`emails[value eq "' OR '1'='1"]`, "remove", undefined],
    [`emails[type eq "x') OR 1=1 --"].value`, "remove", undefined],
    [`emails[va'lue eq "x"]`, "remove", undefined],
  ])("answers PATCH path %j (%s) with 4xx and changes nothing", async (path, op, value) => {
    const r = await s.req("PATCH", `/Users/${ids[5]}`, patchBody({ op, path, ...(value === undefined ? {} : { value }) }));
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expectScimError(r, r.status);
    await expectIntact();
  });

  test.each([
    `members[value eq "' OR '1'='1"]`,
    `members[value eq "x') OR 1=1 --"]`,
    `members[display eq "x' OR 1=1 --"]`,
    `members[type eq "User' OR '1'='1"]`,
  ])("removes no member for PATCH remove %s on a Group (the member filter binds its values)", async (path) => {
    const r = await s.req("PATCH", `/Groups/${groupId}`, patchBody({ op: "remove", path }));
    expect(r.status === 204 || r.status === 200 || (r.status >= 400 && r.status < 500)).toBe(true);
    expect((await allMembers(s.store, groupId)).length).toBe(4);
    await expectIntact();
  });

  it("refuses a member id carrying SQL in a Group PATCH add with 400 and adds nothing", async () => {
    const r = await s.req("PATCH", `/Groups/${groupId}`, patchBody({ op: "add", path: "members", value: [{ value: "x' OR '1'='1" }] }));
    expectScimError(r, 400);
    await expectIntact();
  });
});
