/**
 * The shipped binary behaves like the tested source (issue 9): `bun build --minify --compile` once
 * turned ten 401s into 500s that no app.handle test could see. Here the compiled dist/scimd runs as a
 * process on 127.0.0.1 and gets the authentication walk over every route of the app (the route table
 * comes from createApp(...).routes, so a new route is walked without editing this file) and a slice of
 * the HTTP suite: CRUD of Users and Groups, .search, discovery, and every kind of request body. Where
 * the answer does not depend on stored data, the same request also goes to the source through
 * app.handle, with the same token, and both must answer alike.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp, PROBE_PATHS, SCIM_BASE_PATH } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { hashToken, newToken } from "../../src/tokens";
import { ENTERPRISE, ERROR, GROUP, groupBody, LIST, patchBody, rawRequest, readResponse, USER, userBody, type TestResponse } from "../helpers";
import { buildBinaryInto, cleanEnv, startServe, stopAll, type Served } from "./harness";

const SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/** Methods a request to an `ALL` route (such as /Me) is sent with. */
const ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"];

let tmp = "";
let bin = "";
let server: Served;
let token = "";
let source: ReturnType<typeof createApp>;
let sourceStore: SqliteStore;
const started = new Set<Bun.Subprocess>();

interface Sent {
  method: string;
  /** Path below the host, with the query string: `/api/v1/scim/Users?count=1`. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/** Sends a request to the binary over HTTP. */
async function toBinary(r: Sent): Promise<TestResponse> {
  return readResponse(await fetch(`${server.url}${r.path}`, { method: r.method, headers: r.headers, body: r.body }));
}

/** Sends the same request to the source app in-process. */
async function toSource(r: Sent): Promise<TestResponse> {
  return readResponse(await source.handle(new Request(`http://scimd.test${r.path}`, { method: r.method, headers: r.headers, body: r.body })));
}

/** A SCIM API call to the binary with the valid token. */
async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
  return toBinary({
    method,
    path: `${SCIM_BASE_PATH}${path}`,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/scim+json" } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

function expectScimErrorBody(r: TestResponse, status: number, what: string): void {
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${r.text.slice(0, 300)}`);
  expect(r.headers.get("content-type") ?? "").toStartWith("application/scim+json");
  expect(r.body?.schemas).toEqual([ERROR]);
  expect(r.body?.status).toBe(String(status));
}

const routeStore = new SqliteStore(":memory:");
/** Every route of the app but the probes (/healthz, /readyz), one entry per method (an `ALL` route once per method). */
const ROUTES = createApp({ store: routeStore, logger: SILENT_LOGGER })
  .routes.filter((r) => !PROBE_PATHS.includes(r.path))
  .flatMap((r) => (r.method === "ALL" ? ANY_METHOD : [r.method]).map((method) => ({ method, path: r.path })));
routeStore.close();
/** A path to send for a route: a fresh id for each parameter, a name for a wildcard. */
const concrete = (path: string) => path.replace(/:[A-Za-z]+/g, () => crypto.randomUUID()).replace(/\*$/, "no-such-endpoint");
const takesBody = (method: string) => method === "POST" || method === "PUT" || method === "PATCH";

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-http-"));
  bin = buildBinaryInto(tmp);
  const db = join(tmp, "data", "scimd.db");
  // The walk sends hundreds of failing requests from one address: throttling is tested elsewhere.
  server = await startServe(bin, tmp, ["--db", db, "--auth-failures-per-minute", "1000000"], started);
  if (server.exited !== undefined) throw new Error(`scimd serve exited with ${server.exited}:\n${server.log()}`);
  const g = Bun.spawnSync([bin, "generate-token", "--name", "e2e-http", "--db", db], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  if (g.exitCode !== 0) throw new Error(`generate-token failed (${g.exitCode}):\n${g.stderr.toString()}`);
  token = g.stdout.toString().trim();
  sourceStore = new SqliteStore(join(tmp, "source.db"));
  await sourceStore.createToken("e2e-http", hashToken(token));
  source = createApp({ store: sourceStore, authFailuresPerMinute: 1_000_000, logger: SILENT_LOGGER });
}, 60_000);

afterAll(async () => {
  sourceStore?.close();
  await stopAll(started, tmp);
});

describe("the binary's authentication on every route of the app (RFC 7644 §2, RFC 6750 §2.1)", () => {
  it("walks a route table that holds every core SCIM endpoint", () => {
    const keys = new Set(ROUTES.map((r) => `${r.method} ${r.path.slice(SCIM_BASE_PATH.length)}`));
    for (const k of [
      "GET /Users",
      "POST /Users",
      "GET /Users/:id",
      "PUT /Users/:id",
      "PATCH /Users/:id",
      "DELETE /Users/:id",
      "POST /Users/.search",
      "GET /Groups",
      "POST /Groups",
      "GET /Groups/:id",
      "PUT /Groups/:id",
      "PATCH /Groups/:id",
      "DELETE /Groups/:id",
      "POST /Groups/.search",
      "POST /.search",
      "GET /ServiceProviderConfig",
      "GET /Schemas",
      "GET /Schemas/:id",
      "GET /ResourceTypes",
      "GET /ResourceTypes/:id",
    ])
      expect(keys).toContain(k);
    for (const r of ROUTES) expect(r.path.startsWith(SCIM_BASE_PATH)).toBe(true);
  });

  const refused: [string, () => { query?: string; headers: Record<string, string> }][] = [
    ["no Authorization header", () => ({ headers: {} })],
    ["a wrong bearer token", () => ({ headers: { Authorization: `Bearer ${newToken()}` } })],
    ["the valid token under the Basic scheme", () => ({ headers: { Authorization: `Basic ${Buffer.from(`scim:${token}`).toString("base64")}` } })],
    ["the valid token only in ?access_token= (RFC 6750 §2.3 is not supported)", () => ({ query: `access_token=${encodeURIComponent(token)}`, headers: {} })],
    ["the valid token after 'Bearer:' (no space after the scheme)", () => ({ headers: { Authorization: `Bearer:${token}` } })],
  ];
  test.each(refused)("answers 401 with a SCIM error and WWW-Authenticate: Bearer on every route for %s, never 500", async (_what, make) => {
    const wrong: string[] = [];
    for (const route of ROUTES) {
      const { query, headers } = make();
      const r = await toBinary({
        method: route.method,
        path: concrete(route.path) + (query ? `?${query}` : ""),
        headers: takesBody(route.method) ? { ...headers, "Content-Type": "application/scim+json" } : headers,
        body: takesBody(route.method) ? "{}" : undefined,
      });
      const ok = r.status === 401 && r.body?.schemas?.[0] === ERROR && (r.headers.get("www-authenticate") ?? "").startsWith("Bearer");
      if (!ok) wrong.push(`${route.method} ${route.path}: ${r.status}`);
    }
    expect(wrong).toEqual([]);
  });

  test.each(["Bearer", "bearer", "BEARER"])(
    "accepts the valid token with the scheme written '%s' on every route, as the source does (RFC 9110 §11.1: the scheme is case-insensitive)",
    async (scheme) => {
      const wrong: string[] = [];
      for (const route of ROUTES) {
        const sent: Sent = {
          method: route.method,
          path: concrete(route.path),
          headers: { Authorization: `${scheme} ${token}`, ...(takesBody(route.method) ? { "Content-Type": "application/scim+json" } : {}) },
          body: takesBody(route.method) ? "{}" : undefined,
        };
        const [b, s] = [await toBinary(sent), await toSource(sent)];
        // 501 is an answer (Bulk, /Me); any other 5xx is a failure.
        if (b.status === 401 || b.status === 429 || (b.status >= 500 && b.status !== 501) || b.status !== s.status || b.body?.scimType !== s.body?.scimType)
          wrong.push(`${route.method} ${route.path}: the binary answered ${b.status} ${b.body?.scimType ?? ""}, the source ${s.status} ${s.body?.scimType ?? ""}`);
      }
      expect(wrong).toEqual([]);
    },
  );
});

describe("the binary reads the Authorization header and routes like the source", () => {
  test.each([
    ["two spaces after the scheme", (t: string) => `Bearer  ${t}`],
    ["a tab after the lower-case scheme", (t: string) => `bearer\t${t}`],
  ])("accepts the valid token with %s on every route, as the source does (RFC 9110 §11.4)", async (_what, make) => {
    const wrong: string[] = [];
    for (const route of ROUTES) {
      const sent: Sent = {
        method: route.method,
        path: concrete(route.path),
        headers: { Authorization: make(token), ...(takesBody(route.method) ? { "Content-Type": "application/scim+json" } : {}) },
        body: takesBody(route.method) ? "{}" : undefined,
      };
      const [b, s] = [await toBinary(sent), await toSource(sent)];
      if (b.status === 401 || b.status === 429 || b.status !== s.status || b.body?.scimType !== s.body?.scimType) wrong.push(`${route.method} ${route.path}: the binary answered ${b.status}, the source ${s.status}`);
    }
    expect(wrong).toEqual([]);
  });

  test.each([
    ["DELETE", "/Users"],
    ["PUT", "/Groups"],
    ["POST", "/ServiceProviderConfig"],
    ["DELETE", "/users"],
    ["POST", "/Users/no-such-id"],
  ])("answers %s <base>%s with the 405 the source gives, naming the methods its route table serves", async (method, path) => {
    const sent: Sent = { method, path: `${SCIM_BASE_PATH}${path}`, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" }, body: method === "DELETE" ? undefined : "{}" };
    const [b, s] = [await toBinary(sent), await toSource(sent)];
    expectScimErrorBody(b, 405, `${method} ${path}`);
    expect(b.body.detail).toBe(s.body.detail);
  });

  it("answers a stranger's request without a Host header on a known path with 404 or 401, never a 405 naming methods", async () => {
    const port = Number(new URL(server.url).port);
    for (const [method, path] of [["PUT", "/Users"], ["DELETE", "/Groups"], ["POST", "/Users/x"], ["GET", "/Users"]]) {
      const r = await rawRequest(port, `${method} ${SCIM_BASE_PATH}${path} HTTP/1.0\r\n`);
      expect({ method, path, status: [401, 404].includes(r.status), allowed: r.body.includes("allowed") }).toEqual({ method, path, status: true, allowed: false });
    }
  });
});

describe("the binary provisions Users and Groups like the HTTP suite says (RFC 7644 §3)", () => {
  let aliceId = "";
  let bobId = "";
  let groupId = "";
  let groupEtag = "";

  it("creates a User from application/scim+json with 201, its Location and an ETag equal to meta.version (RFC 7644 §3.3)", async () => {
    const r = await api("POST", "/Users", userBody("alice@example.com", { externalId: "ext-alice", active: true }));
    expect(r.status).toBe(201);
    aliceId = r.body.id;
    expect(r.headers.get("content-type") ?? "").toStartWith("application/scim+json");
    expect(r.headers.get("location")).toBe(`${server.base}/Users/${aliceId}`);
    expect(r.headers.get("etag")).toBe(r.body.meta.version);
    expect(r.body.schemas).toContain(USER);
    expect(r.body.meta.resourceType).toBe("User");
  });

  it("creates a User from application/json with 201 (RFC 7644 §3.1 allows both media types)", async () => {
    const r = await api("POST", "/Users", userBody("bob@example.com", { active: true }), { "Content-Type": "application/json" });
    expect(r.status).toBe(201);
    bobId = r.body.id;
  });

  it("refuses a second User with the same userName in another case with 409 uniqueness (RFC 7644 §3.3)", async () => {
    const r = await api("POST", "/Users", userBody("ALICE@example.com"));
    expectScimErrorBody(r, 409, "duplicate userName");
    expect(r.body.scimType).toBe("uniqueness");
  });

  it("reads a User by id with 200, and a stale id with 404 (RFC 7644 §3.4.1)", async () => {
    const r = await api("GET", `/Users/${aliceId}`);
    expect(r.status).toBe(200);
    expect(r.body.userName).toBe("alice@example.com");
    expect(r.body.externalId).toBe("ext-alice");
    expectScimErrorBody(await api("GET", `/Users/${crypto.randomUUID()}`), 404, "unknown id");
  });

  it("lists and filters Users: userName eq matches case-insensitively, attributes narrows the answer (RFC 7644 §3.4.2)", async () => {
    const all = await api("GET", "/Users?startIndex=1&count=10");
    expect(all.status).toBe(200);
    expect(all.body.schemas).toEqual([LIST]);
    expect(all.body.totalResults).toBe(2);
    const found = await api("GET", `/Users?filter=${encodeURIComponent('userName eq "Alice@Example.COM"')}&attributes=userName`);
    expect(found.status).toBe(200);
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].id).toBe(aliceId);
    expect(found.body.Resources[0].emails).toBeUndefined();
    expectScimErrorBody(await api("GET", `/Users?filter=${encodeURIComponent("userName eq")}`), 400, "broken filter");
  });

  it("replaces a User with PUT, 200 with the new state (RFC 7644 §3.5.1)", async () => {
    const r = await api("PUT", `/Users/${bobId}`, userBody("bob@example.com", { displayName: "Robert", active: true }));
    expect(r.status).toBe(200);
    expect(r.body.displayName).toBe("Robert");
    expect((await api("GET", `/Users/${bobId}`)).body.displayName).toBe("Robert");
  });

  it("PATCHes a User, 200 with the user; a stale If-Match is 412 and changes nothing (RFC 7644 §3.5.2, §3.14)", async () => {
    const r = await api("PATCH", `/Users/${aliceId}`, patchBody({ op: "replace", path: "title", value: "Engineer" }, { op: "add", path: `${ENTERPRISE}:department`, value: "R&D" }));
    expect(r.status).toBe(200);
    expect(r.body.title).toBe("Engineer");
    expect(r.body[ENTERPRISE].department).toBe("R&D");
    const stale = await api("PATCH", `/Users/${aliceId}`, patchBody({ op: "replace", path: "title", value: "Other" }), { "If-Match": 'W/"stale"' });
    expectScimErrorBody(stale, 412, "stale If-Match");
    expect((await api("GET", `/Users/${aliceId}`)).body.title).toBe("Engineer");
  });

  it("creates a Group with a member (201), reads it (200) and finds it by displayName (RFC 7644 §3.3, §3.4)", async () => {
    const r = await api("POST", "/Groups", groupBody("Engineering", [aliceId]));
    expect(r.status).toBe(201);
    groupId = r.body.id;
    expect(r.body.schemas).toContain(GROUP);
    expect(r.headers.get("location")).toBe(`${server.base}/Groups/${groupId}`);
    const got = await api("GET", `/Groups/${groupId}`);
    expect(got.status).toBe(200);
    expect(got.body.members.map((m: { value: string }) => m.value)).toEqual([aliceId]);
    groupEtag = got.headers.get("etag") ?? "";
    const found = await api("GET", `/Groups?filter=${encodeURIComponent('displayName eq "engineering"')}&excludedAttributes=members`);
    expect(found.status).toBe(200);
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].members).toBeUndefined();
    expect((await api("GET", `/Users/${aliceId}`)).body.groups.map((g: { value: string }) => g.value)).toEqual([groupId]);
  });

  it("PATCHes a Group's members with 204 and replaces the Group with PUT, 200 (RFC 7644 §3.5.1, §3.5.2)", async () => {
    const add = await api("PATCH", `/Groups/${groupId}`, patchBody({ op: "add", path: "members", value: [{ value: bobId }] }), { "If-Match": groupEtag });
    expect(add.status).toBe(204);
    expect(add.text).toBe("");
    const both = await api("GET", `/Groups/${groupId}`);
    expect(both.body.members.map((m: { value: string }) => m.value).sort()).toEqual([aliceId, bobId].sort());
    const put = await api("PUT", `/Groups/${groupId}`, groupBody("Engineering Team", [bobId]));
    expect(put.status).toBe(200);
    expect(put.body.displayName).toBe("Engineering Team");
    expect(put.body.members.map((m: { value: string }) => m.value)).toEqual([bobId]);
  });

  test.each([
    ["/Users/.search", "User", 2],
    ["/Groups/.search", "Group", 1],
    ["/.search", undefined, 3],
  ])("answers POST %s with a ListResponse of what the SearchRequest selects (RFC 7644 §3.4.3)", async (path, resourceType, total) => {
    const r = await api("POST", path, { schemas: [SEARCH_REQUEST], startIndex: 1, count: 10 });
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.totalResults).toBe(total);
    if (resourceType) for (const x of r.body.Resources) expect(x.meta.resourceType).toBe(resourceType);
    const one = await api("POST", path, { schemas: [SEARCH_REQUEST], filter: `id eq "${aliceId}"`, attributes: ["id"] });
    expect(one.status).toBe(200);
    expect(one.body.totalResults).toBe(resourceType === "Group" ? 0 : 1);
  });

  it("serves the discovery documents, each with 200 and as the source serves them (RFC 7644 §4)", async () => {
    const spc = await api("GET", "/ServiceProviderConfig");
    expect(spc.status).toBe(200);
    expect(spc.body.patch.supported).toBe(true);
    const types = await api("GET", "/ResourceTypes");
    expect(types.status).toBe(200);
    const schemas = await api("GET", "/Schemas");
    expect(schemas.status).toBe(200);
    const paths = [
      "/ServiceProviderConfig",
      "/ResourceTypes",
      "/Schemas",
      ...types.body.Resources.map((t: { id: string }) => `/ResourceTypes/${t.id}`),
      ...schemas.body.Resources.map((s: { id: string }) => `/Schemas/${s.id}`),
    ];
    expect(paths.length).toBeGreaterThanOrEqual(7);
    for (const p of paths) {
      const sent: Sent = { method: "GET", path: `${SCIM_BASE_PATH}${p}`, headers: { Authorization: `Bearer ${token}` } };
      const [b, s] = [await toBinary(sent), await toSource(sent)];
      expect(b.status).toBe(200);
      // The source is addressed as http://scimd.test: links differ only in their origin.
      expect(b.text.replaceAll(server.url, "")).toBe(s.text.replaceAll("http://scimd.test", ""));
    }
  });

  it("deletes a User and a Group with 204, after which both are 404 (RFC 7644 §3.6)", async () => {
    expect((await api("DELETE", `/Users/${bobId}`)).status).toBe(204);
    expectScimErrorBody(await api("GET", `/Users/${bobId}`), 404, "deleted user");
    expect((await api("GET", `/Groups/${groupId}`)).body.members ?? []).toEqual([]);
    expect((await api("DELETE", `/Groups/${groupId}`)).status).toBe(204);
    expectScimErrorBody(await api("GET", `/Groups/${groupId}`), 404, "deleted group");
    expectScimErrorBody(await api("DELETE", `/Groups/${groupId}`), 404, "deleted twice");
  });
});

describe("the binary applies the first-contact rules like the source (issue 9)", () => {
  const json = { "Content-Type": "application/scim+json" };
  const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p))));
  const cases: [string, number, () => Sent][] = [
    ["a userName with a zero-width space (400 invalidValue)", 400, () => ({ method: "POST", path: "/Users", headers: json, body: JSON.stringify(userBody("ali\u200bce@example.com")) })],
    ["a userName with a lone surrogate (400 invalidValue)", 400, () => ({ method: "POST", path: "/Users", headers: json, body: JSON.stringify(userBody("bob\ud800@example.com")) })],
    ["a body that is not UTF-8 (400 invalidSyntax)", 400, () => ({ method: "POST", path: "/Users", headers: json, body: bytes('{"schemas":["', USER, '"],"userName":"caf', [0xe9], '@example.com"}') })],
    ["a User with a UTF-8 byte order mark (201)", 201, () => ({ method: "POST", path: "/Users", headers: json, body: bytes([0xef, 0xbb, 0xbf], JSON.stringify(userBody(`bom-${crypto.randomUUID()}@example.com`))) })],
    ["a User without displayName but with name.formatted (201)", 201, () => ({ method: "POST", path: "/Users", headers: json, body: JSON.stringify({ schemas: [USER], userName: `nf-${crypto.randomUUID()}@example.com`, name: { formatted: "N F" }, emails: [{ value: "nf@example.com" }] }) })],
    ["a User without emails (400 invalidValue)", 400, () => ({ method: "POST", path: "/Users", headers: json, body: JSON.stringify({ schemas: [USER], userName: "noemail@example.com", displayName: "No Email" }) })],
    ["/users in lower case (200)", 200, () => ({ method: "GET", path: "/users?count=0" })],
    ["/SERVICEPROVIDERCONFIG in upper case (200)", 200, () => ({ method: "GET", path: "/SERVICEPROVIDERCONFIG" })],
    ["a query on the service root (200)", 200, () => ({ method: "GET", path: `/?filter=${encodeURIComponent('userName eq "nobody@example.com"')}` })],
    ["an unquoted filter value (200)", 200, () => ({ method: "GET", path: `/Users?count=0&filter=${encodeURIComponent("userName sw nobody")}` })],
    ["an unknown filter operator (400 invalidFilter with a position)", 400, () => ({ method: "GET", path: `/Users?filter=${encodeURIComponent('userName eqq "x"')}` })],
    ["a repeated count (400 invalidValue)", 400, () => ({ method: "GET", path: "/Users?count=1&count=2" })],
    ["repeated attributes, joined (200)", 200, () => ({ method: "GET", path: "/Users?count=0&attributes=userName&attributes=emails" })],
    ["attributes with a value filter (200)", 200, () => ({ method: "GET", path: `/Users?count=0&attributes=${encodeURIComponent('emails[type eq "work"].value')}` })],
  ];

  test.each(cases)("answers %s, as the source does, with Cache-Control: no-store", async (_what, status, make) => {
    const r = make();
    const sent: Sent = { ...r, path: `${SCIM_BASE_PATH}${r.path}`, headers: { Authorization: `Bearer ${token}`, ...r.headers } };
    const [b, s] = [await toBinary(sent), await toSource(sent)];
    expect(b.status).toBe(status);
    expect({ status: b.status, scimType: b.body?.scimType, detail: b.body?.detail }).toEqual({ status: s.status, scimType: s.body?.scimType, detail: s.body?.detail });
    expect(b.headers.get("cache-control")).toBe("no-store");
  });

  it("keeps a deactivated User deactivated: PATCH remove of active is 400, a PUT without active keeps false", async () => {
    const created = await api("POST", "/Users", userBody(`off-${crypto.randomUUID()}@example.com`, { active: false }));
    expect(created.status).toBe(201);
    const id = created.body.id;
    const removed = await api("PATCH", `/Users/${id}`, patchBody({ op: "Remove", path: "active" }));
    expectScimErrorBody(removed, 400, "remove active");
    expect(removed.body.scimType).toBe("mutability");
    const { active: _active, ...withoutActive } = userBody(created.body.userName, { title: "Left" });
    const put = await api("PUT", `/Users/${id}`, withoutActive);
    expect(put.status).toBe(200);
    expect(put.body.active).toBe(false);
    expect((await api("GET", `/Users/${id}`)).body.active).toBe(false);
  });
});

describe("the binary reads every kind of request body like the source (RFC 7644 §3.1, §3.12)", () => {
  const oversize = JSON.stringify({ schemas: [USER], userName: "big@example.com", title: "x".repeat(1024 * 1024) });
  const kinds: [string, Record<string, string>, (good: string) => string | undefined, number | undefined][] = [
    ["a valid body as application/scim+json", { "Content-Type": "application/scim+json" }, (good) => good, 201],
    ["a valid body as application/json; charset=utf-8", { "Content-Type": "application/json; charset=utf-8" }, (good) => good, 201],
    ["an empty body", { "Content-Type": "application/scim+json" }, () => "", 400],
    ["no body and no Content-Type", {}, () => undefined, 400],
    ["invalid JSON", { "Content-Type": "application/scim+json" }, () => '{"schemas": [', 400],
    ["JSON sent as text/plain", { "Content-Type": "text/plain" }, (good) => good, 415],
    ["JSON sent as application/x-www-form-urlencoded", { "Content-Type": "application/x-www-form-urlencoded" }, (good) => good, 415],
    ["a body over the 1 MiB limit", { "Content-Type": "application/scim+json" }, () => oversize, 413],
    ["a JSON array instead of an object", { "Content-Type": "application/scim+json" }, () => "[]", 400],
  ];

  test.each(kinds)("answers POST /Users with %s with the right status, never 500", async (_what, headers, body, status) => {
    const good = JSON.stringify(userBody(`body-${crypto.randomUUID()}@example.com`));
    const r = await toBinary({ method: "POST", path: `${SCIM_BASE_PATH}/Users`, headers: { Authorization: `Bearer ${token}`, ...headers }, body: body(good) });
    if (status === 201) expect(r.status).toBe(201);
    else expectScimErrorBody(r, status!, `POST /Users with ${_what}`);
  });

  test.each(kinds)("answers %s on every route that takes a body with a non-500 status, the same as the source", async (_what, headers, body) => {
    const wrong: string[] = [];
    for (const route of ROUTES.filter((r) => takesBody(r.method))) {
      const sent: Sent = {
        method: route.method,
        // A fresh id: no write can land, so the binary and the source start from the same state.
        path: concrete(route.path),
        headers: { Authorization: `Bearer ${token}`, ...headers },
        body: body(route.path.endsWith("/Groups") ? JSON.stringify(groupBody(`g-${crypto.randomUUID()}`)) : JSON.stringify(userBody(`u-${crypto.randomUUID()}@example.com`))),
      };
      const [b, s] = [await toBinary(sent), await toSource(sent)];
      if ((b.status >= 500 && b.status !== 501) || b.status !== s.status || b.body?.scimType !== s.body?.scimType)
        wrong.push(`${route.method} ${route.path}: the binary answered ${b.status} ${b.body?.scimType ?? ""}, the source ${s.status} ${s.body?.scimType ?? ""}`);
    }
    expect(wrong).toEqual([]);
  });

  it("logged no unexpected failure while serving everything above", () => {
    expect(server.records().filter((r) => r.level === "error")).toEqual([]);
  });
});

describe("the binary answers a request without a Host header with a SCIM error (RFC 7644 §3.12)", () => {
  it("is 404 or 401 as SCIM JSON, never a 500 or Bun's HTML error page with the stack and source", async () => {
    const port = Number(new URL(server.url).port);
    for (const path of ["/nothing", `${SCIM_BASE_PATH}/nothing`, `${SCIM_BASE_PATH}/users`])
      for (const auth of ["", `Authorization: Bearer ${token}\r\n`]) {
        const r = await rawRequest(port, `GET ${path} HTTP/1.0\r\n${auth}`);
        // A miscased endpoint is an endpoint, also without Host (the edge makes such a URL routable).
        if (auth && path === `${SCIM_BASE_PATH}/users`) {
          expect([r.status, JSON.parse(r.body).schemas]).toEqual([200, [LIST]]);
          continue;
        }
        if ((r.status !== 404 && r.status !== 401) || !r.type.startsWith("application/scim+json"))
          throw new Error(`GET ${path} HTTP/1.0 without Host${auth ? ", with the token" : ""}: ${r.status} ${r.type} ${r.body.slice(0, 200)}`);
        expect(JSON.parse(r.body).schemas).toEqual([ERROR]);
      }
    expect(server.log()).not.toMatch(/Invalid URL/);
    expect(server.records().filter((r) => r.level === "error")).toEqual([]);
  });
});
