/**
 * Endpoint names in any case (`/users`, `/GROUPS/{id}`, `/serviceproviderconfig`): Microsoft's own
 * SCIM test collection writes `/users`. Resource ids and the base path stay case-exact; authentication,
 * 404 and 405 behave as for the canonical path.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { Elysia } from "elysia";
import { createApp, SCIM_BASE_PATH } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import { routedMethods } from "../../src/http/routing";
import { hashToken, newToken } from "../../src/tokens";
import { expectScimError, groupBody, LIST, openTestStore, patchBody, rawRequest, readResponse, startServer, userBody, type TestServer } from "../helpers";

/** The store of the 405 describe, which builds its app at once (of the test engine). */
const db405 = await openTestStore();

const SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User";

let s: TestServer;
let userId = "";

beforeAll(async () => {
  s = await startServer();
  const r = await s.req("POST", "/Users", userBody("routing@example.com"));
  if (r.status !== 201) throw new Error(r.text);
  userId = r.body.id;
});
afterAll(async () => {
  await s.close();
});

describe("endpoint names are matched case-insensitively", () => {
  test.each(["/users", "/USERS", "/uSeRs", "/users/", "/groups", "/GROUPS"])("GET %s answers the ListResponse of the endpoint", async (path) => {
    const r = await s.req("GET", path);
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
  });

  test.each([
    ["/serviceproviderconfig", (b: any) => expect(b.schemas).toEqual([SPC])],
    ["/SERVICEPROVIDERCONFIG", (b: any) => expect(b.schemas).toEqual([SPC])],
    ["/schemas", (b: any) => expect(b.totalResults).toBeGreaterThan(0)],
    [`/schemas/${USER_URN}`, (b: any) => expect(b.id).toBe(USER_URN)],
    ["/resourcetypes", (b: any) => expect(b.totalResults).toBe(2)],
    ["/RESOURCETYPES/User", (b: any) => expect(b.name).toBe("User")],
  ])("GET %s answers the discovery document (RFC 7644 §4)", async (path, check) => {
    const r = await s.req("GET", path);
    expect(r.status).toBe(200);
    check(r.body);
  });

  test.each(["/users/.search", "/USERS/.SEARCH", "/.SEARCH"])("POST %s answers the search (RFC 7644 §3.4.3)", async (path) => {
    const r = await s.req("POST", path, { schemas: [SEARCH_REQUEST], filter: 'userName eq "routing@example.com"' });
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(1);
    expect(r.body.Resources[0].id).toBe(userId);
  });

  it("keeps the query string: GET /users?filter=… filters", async () => {
    const r = await s.req("GET", `/users?filter=${encodeURIComponent('userName eq "ROUTING@example.com"')}&attributes=userName`);
    expect(r.status).toBe(200);
    expect(r.body.Resources).toEqual([{ schemas: [USER_URN], id: userId, userName: "routing@example.com" }]);
  });

  it("creates, reads, replaces, patches and deletes through lower-case paths, with bodies and canonical Locations", async () => {
    const created = await s.req("POST", "/users", userBody("lower@example.com"));
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.headers.get("location")).toBe(`${s.base}/Users/${id}`);
    expect(created.body.meta.location).toBe(`${s.base}/Users/${id}`);
    expect((await s.req("GET", `/users/${id}`)).body.userName).toBe("lower@example.com");
    const put = await s.req("PUT", `/USERS/${id}`, userBody("lower@example.com", { title: "Put" }));
    expect([put.status, put.body.title]).toEqual([200, "Put"]);
    const patched = await s.req("PATCH", `/users/${id}`, patchBody({ op: "replace", path: "title", value: "Patched" }));
    expect([patched.status, patched.body.title]).toEqual([200, "Patched"]);
    const group = await s.req("POST", "/groups", groupBody("Lower Group", [id]));
    expect(group.status).toBe(201);
    expect((await s.req("DELETE", `/groups/${group.body.id}`)).status).toBe(204);
    expect((await s.req("DELETE", `/users/${id}`)).status).toBe(204);
    expect((await s.req("GET", `/Users/${id}`)).status).toBe(404);
  });

  it("keeps resource ids case-exact: GET /users/{ID in upper case} is 404", async () => {
    expect(userId).not.toBe(userId.toUpperCase());
    expectScimError(await s.req("GET", `/users/${userId.toUpperCase()}`), 404);
    expect((await s.req("GET", `/users/${userId}`)).status).toBe(200);
  });

  it("answers an unsupported method on a differently-cased path with 405 naming the endpoint and its methods", async () => {
    const r = await s.req("DELETE", "/users");
    expectScimError(r, 405);
    expect(r.body.detail).toBe(`DELETE is not allowed on ${SCIM_BASE_PATH}/Users; allowed: GET, POST`);
    expectScimError(await s.req("PUT", "/serviceproviderconfig", {}), 405);
  });

  it("answers a path that names no endpoint in any case with 404", async () => {
    expectScimError(await s.req("GET", "/userz"), 404);
    expectScimError(await s.req("GET", `/users/${userId}/extra`), 404);
  });

  it("keeps the base path case-exact: /API/V1/SCIM/Users is 404", async () => {
    const r = await s.req("GET", `${s.url}/API/V1/SCIM/Users`);
    expect(r.status).toBe(404);
  });

  test.each([
    ["GET", "/users"],
    ["GET", `/users/${"x".repeat(8)}`],
    ["POST", "/users/.search"],
    ["DELETE", "/users"],
    ["GET", "/serviceproviderconfig"],
  ])("still requires the bearer token: %s %s without one is 401 (RFC 7644 §2)", async (method, path) => {
    const r = await readResponse(await fetch(`${s.base}${path}`, { method, headers: { "Content-Type": "application/scim+json" }, body: method === "POST" ? "{}" : undefined }));
    expectScimError(r, 401);
  });
});

describe("a differently-cased request dispatched again", () => {
  it("authenticates a miscased path before rerouting it, so a stranger's failure counts against its own request and address", async () => {
    const t = await openTestStore();
    const store = t.store;
    const seen: Request[] = [];
    try {
      const app = createApp({ store, logger: SILENT_LOGGER, addressOf: (r) => (seen.push(r), "198.51.100.7") });
      const original = new Request(`http://scimd.test${SCIM_BASE_PATH}/users`, { headers: { Authorization: "Bearer scimd_wrong" } });
      const r = await app.handle(original);
      expect(r.status).toBe(401);
      expect(seen.length).toBeGreaterThan(0);
      for (const request of seen) expect(request).toBe(original);
    } finally {
      await t.cleanup();
    }
  });
});

describe("a request without a usable Host header (HTTP/1.0 without one, or an invalid one)", () => {
  // Bun gives such a request a path-only URL (`/nothing`): reading its path with `new URL` threw a
  // TypeError inside the error renderer itself, and the client got a 500 page instead of a SCIM error.
  // (Elysia reads the path of such a URL from its 12th character on, so off its own routes it sees
  // another path: what matters here is that the answer is a SCIM error, never a 500.)
  const port = () => Number(new URL(s.url).port);
  test.each([
    ["no Host, HTTP/1.0", (line: string, auth: string) => `${line} HTTP/1.0\r\n${auth}`],
    ["Host: a b", (line: string, auth: string) => `${line} HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n${auth}`],
  ])("%s: a path that is no endpoint as sent is answered with a SCIM error, never a 500 (RFC 7644 §3.12)", async (_, request) => {
    const auth = `Authorization: Bearer ${s.token}\r\n`;
    const paths = ["/nothing", `${SCIM_BASE_PATH}/nothing`, `${SCIM_BASE_PATH}/users`, `${SCIM_BASE_PATH}/Users/${userId}/extra`];
    for (const path of paths)
      for (const withAuth of ["", auth]) {
        const r = await rawRequest(port(), request(`GET ${path}`, withAuth));
        expect([path, withAuth !== "", r.status === 401 || r.status === 404]).toEqual([path, withAuth !== "", true]);
        expect(r.type).toStartWith("application/scim+json");
        expect(JSON.parse(r.body).status).toBe(String(r.status));
      }
    // The canonical endpoint still answers, to a stranger with 401 (the client's side kept open: the answer needs the store).
    expect((await rawRequest(port(), request(`GET ${SCIM_BASE_PATH}/Users?count=0`, auth), { halfClose: false })).status).toBe(200);
    expect((await rawRequest(port(), request(`GET ${SCIM_BASE_PATH}/Users`, ""), { halfClose: false })).status).toBe(401);
  });
});

describe("405 comes from the route table the request was routed by (RFC 9110 §15.5.6)", () => {
  const store = db405.store;
  const token = newToken();
  const app = createApp({ store, logger: SILENT_LOGGER });
  const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
  const send = async (method: string, path: string, host = "http://scimd.test") =>
    readResponse(await app.handle(new Request(`${host}${path}`, { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" }, body: method === "GET" || method === "DELETE" ? undefined : "{}" })));

  beforeAll(async () => {
    await store.createToken("405", hashToken(token));
  });
  afterAll(() => db405.cleanup());

  it("names as allowed exactly methods the router then serves, and never the method it refuses", async () => {
    const paths = [...new Set(app.routes.filter((r) => r.method !== "ALL" && r.path.startsWith(SCIM_BASE_PATH)).map((r) => r.path.replace(/:[A-Za-z]+/g, "no-such-id")))];
    let refusals = 0;
    for (const path of paths)
      for (const method of METHODS) {
        const r = await send(method, path);
        if (r.status !== 405) continue;
        refusals++;
        const allowed = /; allowed: (.*)$/.exec(r.body.detail)?.[1]?.split(", ") ?? [];
        expect({ path, method, allowed: allowed.length > 0, refusedIsAllowed: allowed.includes(method) }).toEqual({ path, method, allowed: true, refusedIsAllowed: false });
        for (const other of allowed) {
          // Served: any answer but 405 or the router's own 404 (an unknown id is a resource's 404).
          const o = await send(other, path);
          expect({ path, other, routed: o.status !== 405 && !(o.status === 404 && o.body.detail.startsWith("no SCIM endpoint")) }).toEqual({ path, other, routed: true });
        }
      }
    // /Users, /Groups, their /{id}, .search and the discovery endpoints each refuse some method.
    expect(refusals).toBeGreaterThan(20);
  });

  it("answers a request the router read another path from (a host shorter than four characters) with 404, not a 405 for the method it serves", async () => {
    // Elysia reads the path from the URL's 12th character on: for http://x/… it sees /v1/scim/Users.
    for (const method of ["GET", "PUT"]) {
      const r = await send(method, `${SCIM_BASE_PATH}/Users`, "http://x");
      expectScimError(r, 404);
      expect(r.body.detail).not.toContain("allowed");
    }
    expect((await send("GET", `${SCIM_BASE_PATH}/Users`)).status).toBe(200);
    expect((await send("PUT", `${SCIM_BASE_PATH}/Users`)).status).toBe(405);
  });
});

describe("routedMethods asks Elysia's own router", () => {
  const app = new Elysia()
    .get("/a", () => "")
    .post("/a", () => "")
    .get("/a/:id", () => "")
    .delete("/a/:id", () => "")
    .post("/a/.search", () => "")
    .all("/any", () => "");
  const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
  // The router is built on the first request.
  beforeAll(async () => void (await app.handle(new Request("http://host.test/a"))));

  test.each([
    ["/a", ["GET", "POST"]],
    ["/a/", ["GET", "POST"]],
    ["/a/x", ["GET", "DELETE"]],
    ["/a/x/", ["GET", "DELETE"]],
    // A literal segment and a parameter both match: the router serves both methods there.
    ["/a/.search", ["GET", "POST", "DELETE"]],
    ["/a/x/y", []],
    ["/b", []],
    // An ALL route serves every method: none is left to name.
    ["/any", []],
  ])("serves %s with %p", (path, expected) => {
    expect(routedMethods(app.router, methods, path)).toEqual(expected);
  });
});
