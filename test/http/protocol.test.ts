/**
 * The HTTP protocol around SCIM (RFC 7644 §3.1, §3.12, §3.14, §4, §7): authentication, routing,
 * media types, body limits, error bodies, ETags and the discovery endpoints.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { ENTERPRISE, ERROR, GROUP, groupBody, LIST, patchBody, startServer, USER, userBody, type TestResponse, type TestServer, expectScimError, readResponse } from "../helpers";

const SMALL_BODY = 2048;
let s: TestServer;
let small: TestServer;
let seq = 0;
const uname = (tag = "p") => `${tag}-${++seq}@example.com`;

beforeAll(async () => {
  s = await startServer();
  small = await startServer({ maxBodyBytes: SMALL_BODY });
});
afterAll(async () => {
  await s.close();
  await small.close();
});

/** A fetch with no Authorization header unless given. */
async function raw(url: string, init: RequestInit = {}): Promise<TestResponse> {
  return readResponse(await fetch(url, init));
}


/** No stack frames or source paths in what a client sees. */
function expectNoInternals(r: TestResponse) {
  expect(r.text).not.toMatch(/\n\s+at /);
  expect(r.text).not.toMatch(/\bat [^\s]+ \(/);
  expect(r.text).not.toMatch(/\.(ts|js):\d+/);
  expect(r.text).not.toContain("/work/");
  expect(r.text).not.toContain("node_modules");
}

async function createUser(extra: Record<string, unknown> = {}) {
  const r = await s.req("POST", "/Users", userBody(uname(), extra));
  expect(r.status).toBe(201);
  return r.body;
}

describe("authentication (RFC 7644 §2, RFC 6750)", () => {
  test.each<[string, Record<string, string>, string]>([
    ["no Authorization header", {}, ""],
    ["a wrong bearer token", { Authorization: "Bearer not-a-real-token" }, ""],
    ["a Basic scheme", { Authorization: "Basic dXNlcjpwYXNz" }, ""],
    ["an empty bearer token", { Authorization: "Bearer " }, ""],
  ])("answers 401 with WWW-Authenticate: Bearer and a SCIM error whose status is the string \"401\" for %s", async (_c, headers) => {
    const r = await raw(`${s.base}/Users`, { headers });
    expectScimError(r, 401);
    expect(r.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
    expect(r.text).toContain('"status":"401"');
    expectNoInternals(r);
  });

  it("does not authenticate with ?access_token=<valid token> in the URL (tokens belong in the header)", async () => {
    const r = await raw(`${s.base}/Users?access_token=${encodeURIComponent(s.token)}`);
    expectScimError(r, 401);
    expect(r.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
  });

  test.each(["Bearer", "bearer", "BEARER", "BeArEr"])("accepts the scheme name in any case: '%s <token>' (RFC 9110 §11.1)", async (scheme) => {
    const r = await raw(`${s.base}/Users?count=0`, { headers: { Authorization: `${scheme} ${s.token}` } });
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
  });

  it("answers 401 before anything else for an unknown SCIM path without a token (no probing of routes)", async () => {
    const r = await raw(`${s.base}/NoSuchThing`);
    expectScimError(r, 401);
  });

  it("serves /healthz without authentication", async () => {
    const r = await raw(`${s.url}/healthz`);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe("ok");
  });
});

describe("routing (RFC 7644 §3.12)", () => {
  test.each([
    ["an unknown SCIM path", "GET", "/NoSuchThing"],
    ["an unknown nested path", "GET", "/Users/abc/def"],
    ["/Schemas/ with an unknown URN", "GET", "/Schemas/urn:example:nope"],
    ["/ResourceTypes/ with an unknown name", "GET", "/ResourceTypes/Device"],
  ])("answers 404 with a SCIM error for %s", async (_c, method, path) => {
    const r = await s.req(method, path);
    expectScimError(r, 404);
    expectNoInternals(r);
  });

  it("answers 404 with a SCIM error for a path outside the SCIM base", async () => {
    const r = await raw(`${s.url}/definitely/not/here`);
    expectScimError(r, 404);
  });

  test.each([
    ["PUT", "/Users"],
    ["DELETE", "/Users"],
    ["PATCH", "/Groups"],
    ["POST", "/ServiceProviderConfig"],
    ["DELETE", "/Schemas"],
  ])("answers 405 with a SCIM error for %s %s", async (method, path) => {
    const r = await s.req(method, path, method === "DELETE" ? undefined : {});
    expectScimError(r, 405);
    expectNoInternals(r);
  });

  it("answers POST /Bulk with 501 and a SCIM error (bulk is not supported)", async () => {
    const r = await s.req("POST", "/Bulk", { schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], Operations: [] });
    expectScimError(r, 501);
  });
});

describe("request bodies (RFC 7644 §3.1, §3.8)", () => {
  it("refuses a body sent as text/plain with 415", async () => {
    const r = await s.req("POST", "/Users", JSON.stringify(userBody(uname())), { "Content-Type": "text/plain" });
    expectScimError(r, 415);
  });

  test.each(["application/json", "application/scim+json", "application/scim+json; charset=utf-8", "Application/SCIM+JSON;charset=UTF-8", "application/json; charset=utf-8"])(
    "accepts a body sent as %s",
    async (type) => {
      const r = await s.req("POST", "/Users", userBody(uname("ct")), { "Content-Type": type });
      expect(r.status).toBe(201);
    },
  );

  test.each([
    ["a truncated object", '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": '],
    ["a trailing comma", '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],}'],
    ["single quotes", "{'userName': 'x'}"],
    ["bare text", "hello"],
  ])("refuses malformed JSON (%s) with 400 invalidSyntax", async (_c, body) => {
    const r = await s.req("POST", "/Users", body);
    expectScimError(r, 400, "invalidSyntax");
    expectNoInternals(r);
  });

  it("refuses a JSON body that is not an object with 400", async () => {
    expectScimError(await s.req("POST", "/Users", "[1,2,3]"), 400);
  });

  it("refuses a body over the size limit with 413 (and a body under it is fine)", async () => {
    const ok = await small.req("POST", "/Users", userBody(uname("small")));
    expect(ok.status).toBe(201);
    const big = userBody(uname("big"), { title: "x".repeat(SMALL_BODY) });
    const r = await small.req("POST", "/Users", big);
    expectScimError(r, 413);
    const list = await small.req("GET", `/Users?filter=${encodeURIComponent(`userName eq "${big.userName}"`)}`);
    expect(list.body.totalResults).toBe(0);
  });

  it("refuses an oversized body sent without Content-Length (chunked) with 413", async () => {
    const payload = new TextEncoder().encode(JSON.stringify(userBody(uname("chunked"), { title: "y".repeat(SMALL_BODY * 2) })));
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < payload.length; i += 512) c.enqueue(payload.slice(i, i + 512));
        c.close();
      },
    });
    const r = await raw(`${small.base}/Users`, {
      method: "POST",
      headers: { Authorization: `Bearer ${small.token}`, "Content-Type": "application/scim+json" },
      body: stream,
      duplex: "half",
    });
    expectScimError(r, 413);
  });

  it("refuses deeply nested JSON with 400 without crashing", async () => {
    const depth = 5000;
    const nested = "[".repeat(depth) + "]".repeat(depth);
    const body = `{"schemas":["${USER}"],"userName":"${uname("deep")}","displayName":"D","emails":[{"value":"d@example.com"}],"title":${nested}}`;
    const r = await s.req("POST", "/Users", body);
    expectScimError(r, 400);
    expectNoInternals(r);
    // the server is still up
    expect((await s.req("GET", "/Users?count=0")).status).toBe(200);
  });

  it("answers DELETE with a Content-Type header and no body with 204", async () => {
    const u = await createUser();
    const r = await s.req("DELETE", `/Users/${u.id}`, undefined, { "Content-Type": "application/scim+json" });
    expect(r.status).toBe(204);
    expect((await s.req("GET", `/Users/${u.id}`)).status).toBe(404);
  });
});

describe("every response is application/scim+json and never leaks internals (RFC 7644 §3.1, §3.12)", () => {
  it("uses application/scim+json for successes and errors alike, and no body contains a stack trace", async () => {
    const u = await createUser();
    const g = await s.req("POST", "/Groups", groupBody(`ct-group-${++seq}`));
    const responses: [string, TestResponse][] = [
      ["GET /Users", await s.req("GET", "/Users")],
      ["GET /Users/{id}", await s.req("GET", `/Users/${u.id}`)],
      ["POST /Users", await s.req("POST", "/Users", userBody(uname()))],
      ["PUT /Users/{id}", await s.req("PUT", `/Users/${u.id}`, userBody(u.userName))],
      ["PATCH /Users/{id}", await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "x" }))],
      ["POST /Groups", g],
      ["POST /.search", await s.req("POST", "/.search", { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], count: 1 })],
      ["GET /ServiceProviderConfig", await s.req("GET", "/ServiceProviderConfig")],
      ["GET /ResourceTypes", await s.req("GET", "/ResourceTypes")],
      ["GET /Schemas", await s.req("GET", "/Schemas")],
      ["400 invalid filter", await s.req("GET", "/Users?filter=%28%28%28")],
      ["400 bad PATCH", await s.req("PATCH", `/Users/${u.id}`, { Operations: "nope" })],
      ["400 bad value type", await s.req("POST", "/Users", userBody(uname(), { active: { nested: true } }))],
      ["400 wrong schemas", await s.req("POST", "/Users", { ...userBody(uname()), schemas: [GROUP] })],
      ["400 bad startIndex", await s.req("GET", "/Users?startIndex=abc")],
      ["401", await raw(`${s.base}/Users`, { headers: { Authorization: "Bearer nope" } })],
      ["404", await s.req("GET", `/Users/${crypto.randomUUID()}`)],
      ["405", await s.req("PUT", "/Groups", {})],
      ["409", await s.req("POST", "/Users", userBody(u.userName))],
      ["412", await s.req("PUT", `/Users/${u.id}`, userBody(u.userName), { "If-Match": 'W/"999"' })],
      ["415", await s.req("POST", "/Users", "{}", { "Content-Type": "text/xml" })],
      ["501", await s.req("POST", "/Bulk", {})],
      ["413", await small.req("POST", "/Users", userBody(uname(), { title: "z".repeat(SMALL_BODY) }))],
      ["400 very long id", await s.req("GET", `/Users/${"x".repeat(300)}`)],
    ];
    for (const [name, r] of responses) {
      expect({ name, type: r.headers.get("content-type") }).toEqual({ name, type: expect.stringMatching(/^application\/scim\+json/) });
      expect(r.body).toBeDefined();
      if (r.status >= 400) {
        expect({ name, schemas: r.body.schemas, status: r.body.status }).toEqual({ name, schemas: [ERROR], status: String(r.status) });
      }
      expectNoInternals(r);
    }
  });
});

describe("ETags (RFC 7644 §3.14, RFC 9110 §13.1)", () => {
  it("answers GET with If-None-Match equal to the current version with 304 and no body", async () => {
    const u = await createUser();
    const r = await s.req("GET", `/Users/${u.id}`, undefined, { "If-None-Match": u.meta.version });
    expect(r.status).toBe(304);
    expect(r.text).toBe("");
  });

  it("sends the ETag with a 304 (RFC 9110 §15.4.5: a 304 MUST carry the ETag a 200 would have)", async () => {
    const u = await createUser();
    const r = await s.req("GET", `/Users/${u.id}`, undefined, { "If-None-Match": u.meta.version });
    expect(r.status).toBe(304);
    expect(r.headers.get("etag")).toBe(u.meta.version);
  });

  it("answers GET with a stale If-None-Match with 200 and the current version", async () => {
    const u = await createUser();
    const p = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "new" }));
    const r = await s.req("GET", `/Users/${u.id}`, undefined, { "If-None-Match": u.meta.version });
    expect(r.status).toBe(200);
    expect(r.headers.get("etag")).toBe(p.body.meta.version);
  });

  const writes: [string, (u: any) => [string, string, unknown]][] = [
    ["PUT", (u) => ["PUT", `/Users/${u.id}`, userBody(u.userName, { title: "changed" })]],
    ["PATCH", (u) => ["PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "changed" })]],
    ["DELETE", (u) => ["DELETE", `/Users/${u.id}`, undefined]],
  ];

  test.each(writes)("refuses %s with a stale If-Match with 412 and changes nothing", async (_m, make) => {
    const u = await createUser({ title: "original" });
    // make the version the client holds stale
    const bumped = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "nickName", value: "n" }));
    expect(bumped.status).toBe(200);
    const [method, path, body] = make(u);
    const r = await s.req(method, path, body, { "If-Match": u.meta.version });
    expectScimError(r, 412);
    const after = await s.req("GET", `/Users/${u.id}`);
    expect(after.status).toBe(200);
    expect(after.body).toEqual(bumped.body);
  });

  test.each(writes)("performs %s with the current If-Match", async (method, make) => {
    const u = await createUser({ title: "original" });
    const [m, path, body] = make(u);
    const r = await s.req(m, path, body, { "If-Match": u.meta.version });
    if (method === "DELETE") {
      expect(r.status).toBe(204);
      expect((await s.req("GET", `/Users/${u.id}`)).status).toBe(404);
    } else {
      expect(r.status).toBe(200);
      expect(r.body.title).toBe("changed");
      expect(r.headers.get("etag")).not.toBe(u.meta.version);
    }
  });

  it("accepts If-Match: * for an existing resource", async () => {
    const u = await createUser();
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "star" }), { "If-Match": "*" });
    expect(r.status).toBe(200);
  });

  it("refuses a PATCH of a Group with a stale If-Match with 412 and keeps its members", async () => {
    const u = await createUser();
    const g = await s.req("POST", "/Groups", groupBody(`etag-group-${++seq}`));
    await s.req("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "replace", path: "displayName", value: `etag-group-renamed-${seq}` }));
    const r = await s.req("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "add", path: "members", value: [{ value: u.id }] }), { "If-Match": g.body.meta.version });
    expectScimError(r, 412);
    expect((await s.req("GET", `/Groups/${g.body.id}`)).body.members).toBeUndefined();
  });
});

describe("discovery (RFC 7644 §4, RFC 7643 §5–§7)", () => {
  it("GET /ServiceProviderConfig advertises what is implemented", async () => {
    const r = await s.req("GET", "/ServiceProviderConfig");
    expect(r.status).toBe(200);
    const c = r.body;
    expect(c.schemas).toEqual(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]);
    expect(c.patch.supported).toBe(true);
    expect(c.filter.supported).toBe(true);
    expect(c.filter.maxResults).toBe(1000);
    expect(c.sort.supported).toBe(true);
    expect(c.etag.supported).toBe(true);
    expect(c.bulk.supported).toBe(false);
    expect(c.changePassword.supported).toBe(true); // password is writable with PUT and PATCH
    expect(c.authenticationSchemes.map((a: any) => a.type)).toContain("oauthbearertoken");
    for (const a of c.authenticationSchemes) {
      expect(typeof a.name).toBe("string");
      expect(typeof a.description).toBe("string");
    }
  });

  it("GET /ServiceProviderConfig reports the configured maxResults", async () => {
    const other = await startServer({ maxResults: 7 });
    try {
      expect((await other.req("GET", "/ServiceProviderConfig")).body.filter.maxResults).toBe(7);
    } finally {
      await other.close();
    }
  });

  it("GET /ResourceTypes lists User and Group, and /ResourceTypes/User describes the User endpoint", async () => {
    const list = await s.req("GET", "/ResourceTypes");
    expect(list.status).toBe(200);
    expect(list.body.schemas).toEqual([LIST]);
    expect(list.body.totalResults).toBe(2);
    expect(list.body.Resources.map((x: any) => x.id).sort()).toEqual(["Group", "User"]);
    const u = await s.req("GET", "/ResourceTypes/User");
    expect(u.status).toBe(200);
    expect(u.body.schemas).toEqual(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]);
    expect(u.body.endpoint).toBe("/Users");
    expect(u.body.schema).toBe(USER);
    expect(u.body.schemaExtensions).toEqual([{ schema: ENTERPRISE, required: false }]);
    expect(u.body.meta.location).toBe(`${s.base}/ResourceTypes/User`);
  });

  it("GET /Schemas lists User, EnterpriseUser and Group, and /Schemas/<urn> returns one", async () => {
    const list = await s.req("GET", "/Schemas");
    expect(list.status).toBe(200);
    expect(list.body.Resources.map((x: any) => x.id).sort()).toEqual([ENTERPRISE, GROUP, USER].sort());
    for (const urn of [USER, ENTERPRISE, GROUP]) {
      const one = await s.req("GET", `/Schemas/${urn}`);
      expect(one.status).toBe(200);
      expect(one.body.id).toBe(urn);
      expect(one.body).toEqual(list.body.Resources.find((x: any) => x.id === urn));
    }
  });

  it("answers 404 for an unknown schema", async () => {
    expectScimError(await s.req("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Device"), 404);
  });

  const attrOf = async (urn: string, name: string) => {
    const r = await s.req("GET", `/Schemas/${urn}`);
    const a = r.body.attributes.find((x: any) => x.name === name);
    expect(a).toBeDefined();
    return a;
  };

  test.each<[string, string, string, Record<string, unknown>]>([
    ["User", "userName", USER, { required: true, uniqueness: "server", caseExact: false }],
    ["User", "emails", USER, { required: true, multiValued: true }],
    ["User", "password", USER, { returned: "never", mutability: "writeOnly" }],
    ["User", "groups", USER, { mutability: "readOnly", multiValued: true }],
    ["User", "active", USER, { type: "boolean" }],
    ["Group", "displayName", GROUP, { required: true }],
    ["Group", "members", GROUP, { multiValued: true }],
  ])("/Schemas tells the truth about the %s attribute '%s' (required, uniqueness, mutability, returned as enforced)", async (_rt, name, urn, expected) => {
    const a = await attrOf(urn, name);
    expect(a).toMatchObject(expected);
  });
});

describe("request-derived values", () => {
  it("originOf gives what URL.origin gives for the URLs a server sees", async () => {
    const { originOf } = await import("../../src/http/routing");
    for (const url of ["http://127.0.0.1:8080/api/v1/scim/Users?filter=x", "https://scim.example.com/api/v1/scim", "http://[::1]:9000/api/v1/scim/Users/1", "http://localhost/"])
      expect(originOf(url)).toBe(new URL(url).origin);
    // Bun gives a path-only URL when the Host header is missing or unusable: links become relative.
    expect(originOf("/api/v1/scim/Users")).toBe("");
  });
  it("a configured base URL with an internationalised name gives Location and meta.location in ASCII, and a create answers 201, not a 500 after the write (RFC 7644 §3.3, RFC 3986 §3.2.2)", async () => {
    // `--base-url https://例え.jp/…` passes serve's URL check, but a Location header cannot carry
    // those characters: the response failed after the resource was stored, and a retry got 409.
    const intl = await startServer({ baseUrl: "https://例え.jp/ぱす/api/v1/scim/" });
    try {
      const base = "https://xn--r8jz45g.jp/%E3%81%B1%E3%81%99/api/v1/scim";
      const r = await intl.req("POST", "/Users", userBody(uname("intl")));
      expect(r.status).toBe(201);
      expect(r.headers.get("location")).toBe(`${base}/Users/${r.body.id}`);
      expect(r.body.meta.location).toBe(r.headers.get("location"));
      const g = await intl.req("POST", "/Groups", groupBody("Intl", [r.body.id]));
      expect(g.status).toBe(201);
      expect(g.body.members[0].$ref).toBe(`${base}/Users/${r.body.id}`);
      expect((await intl.req("GET", "/Users?count=0")).body.totalResults).toBe(1);
    } finally {
      await intl.close();
    }
  });
  it("a request without a Host header (HTTP/1.0) gets relative links, not a doubled path or a 500", async () => {
    const port = new URL(s.base).port;
    const body = JSON.stringify(userBody(uname("nohost")));
    const received: string[] = [];
    const socket = await Bun.connect({ hostname: "127.0.0.1", port: Number(port), socket: { data: (_sock, chunk) => void received.push(Buffer.from(chunk).toString()) } });
    socket.write(`POST /api/v1/scim/Users HTTP/1.0\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/scim+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    let text = "";
    for (let i = 0; i < 200 && !/\r\n\r\n[\s\S]*\}$/.test(text); i++) {
      await Bun.sleep(10);
      text = received.join("");
    }
    socket.end();
    expect(text).toMatch(/^HTTP\/1\.[01] 201/);
    const location = text.match(/\r\nlocation: ([^\r]*)/i)?.[1];
    expect(location).toMatch(/^\/api\/v1\/scim\/Users\/[0-9a-f-]{36}$/);
    const created = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
    expect(created.meta.location).toBe(location);
  });
  it("a request without a Host header (HTTP/1.0) to an unknown path or with a wrong method gets a SCIM 404, not a 500", async () => {
    const port = Number(new URL(s.base).port);
    const send = async (head: string): Promise<string> => {
      const received: string[] = [];
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_sock, chunk) => void received.push(Buffer.from(chunk).toString()) } });
      socket.write(`${head}\r\nAuthorization: Bearer ${s.token}\r\n\r\n`);
      let text = "";
      for (let i = 0; i < 200 && !/\r\n\r\n[\s\S]*\}$/.test(text); i++) {
        await Bun.sleep(10);
        text = received.join("");
      }
      socket.end();
      return text;
    };
    // Elysia routes a path-only URL by the path it reads from the URL's 12th character on (`/Users`),
    // where it routes nothing: 404, as for any path it does not route (a 405 would name the methods of
    // a path it did not route by, and to a stranger, since no authenticated route is reached).
    for (const [head, status] of [
      ["GET /api/v1/scim/NoSuchEndpoint HTTP/1.0", 404],
      ["GET /no-such-page HTTP/1.0", 404],
      ["PUT /api/v1/scim/Users HTTP/1.0", 404],
    ] as const) {
      const text = await send(head);
      expect({ head, status: text.match(/^HTTP\/1\.[01] (\d{3})/)?.[1] }).toEqual({ head, status: String(status) });
      expect(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)).status).toBe(String(status));
    }
  });
  it("hashToken is SHA-256 in hex (the stored form of every existing token)", async () => {
    const { hashToken } = await import("../../src/tokens");
    expect(hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
