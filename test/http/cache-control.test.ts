/**
 * Every response under the SCIM base path carries `Cache-Control: no-store` (RFC 9111 §5.2.2.5):
 * resources, lists, discovery documents, 201/204/304, and errors. A real server on a real store.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { respondWithMembers } from "../../src/http/scim-plugin";
import { groupBody, patchBody, readResponse, startServer, userBody, type TestResponse, type TestServer } from "../helpers";

let s: TestServer;
let limited: TestServer;
beforeAll(async () => {
  s = await startServer();
  limited = await startServer({ authFailuresPerMinute: 1 });
});
afterAll(async () => {
  await s.close();
  await limited.close();
});

const expectNoStore = (what: string, r: { status: number; headers: Headers }, status: number) =>
  expect({ what, status: r.status, cacheControl: r.headers.get("cache-control") }).toEqual({ what, status, cacheControl: "no-store" });

describe("Cache-Control: no-store on every SCIM response (RFC 9111 §5.2.2.5)", () => {
  it("on resources and lists: POST 201, GET 200 and 304, PUT 200, PATCH 200 and 204, DELETE 204, list and every .search", async () => {
    const u = await s.req("POST", "/Users", userBody("cache@example.com"));
    expectNoStore("POST /Users", u, 201);
    const g = await s.req("POST", "/Groups", groupBody("Cache Group", [u.body.id]));
    expectNoStore("POST /Groups", g, 201);
    expectNoStore("GET /Users/{id}", await s.req("GET", `/Users/${u.body.id}`), 200);
    expectNoStore("GET /Groups/{id}", await s.req("GET", `/Groups/${g.body.id}`), 200);
    const etag = (await s.req("GET", `/Users/${u.body.id}`)).headers.get("etag")!;
    expectNoStore("GET /Users/{id} If-None-Match", await s.req("GET", `/Users/${u.body.id}`, undefined, { "If-None-Match": etag }), 304);
    expectNoStore("GET /Users", await s.req("GET", "/Users?filter=userName%20eq%20%22cache@example.com%22"), 200);
    expectNoStore("GET /Groups", await s.req("GET", "/Groups"), 200);
    const search = { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], count: 1 };
    for (const p of ["/Users/.search", "/Groups/.search", "/.search"]) expectNoStore(`POST ${p}`, await s.req("POST", p, search), 200);
    expectNoStore("PUT /Users/{id}", await s.req("PUT", `/Users/${u.body.id}`, userBody("cache@example.com", { title: "T" })), 200);
    expectNoStore("PATCH /Users/{id}", await s.req("PATCH", `/Users/${u.body.id}`, patchBody({ op: "replace", path: "title", value: "U" })), 200);
    expectNoStore("PATCH /Groups/{id}", await s.req("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "replace", path: "displayName", value: "Cache G2" })), 204);
    expectNoStore("DELETE /Groups/{id}", await s.req("DELETE", `/Groups/${g.body.id}`), 204);
    expectNoStore("DELETE /Users/{id}", await s.req("DELETE", `/Users/${u.body.id}`), 204);
  });

  it("on a Group whose members are streamed in batches", async () => {
    async function* batches() {
      yield [{ value: "a" }];
      yield [{ value: "b" }];
      yield [{ value: "c" }];
    }
    const r = await respondWithMembers('{"id":"g"}', batches(), { ETag: 'W/"1"' });
    expectNoStore("streamed group", r, 200);
    expect(JSON.parse(await r.text()).members).toEqual([{ value: "a" }, { value: "b" }, { value: "c" }]);
  });

  it("on discovery documents: /ServiceProviderConfig, /ResourceTypes, /Schemas and each of their entries", async () => {
    for (const p of ["/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"])
      expectNoStore(`GET ${p}`, await s.req("GET", p), 200);
  });

  it("on errors: 400, 401, 404, 405, 409, 412, 413 and 429", async () => {
    const noAuth = async (server: TestServer, path: string): Promise<TestResponse> => readResponse(await fetch(`${server.base}${path}`));
    expectNoStore("400", await s.req("GET", "/Users?filter=bad%20filter"), 400);
    expectNoStore("401", await noAuth(s, "/Users"), 401);
    expectNoStore("404 resource", await s.req("GET", "/Users/does-not-exist"), 404);
    expectNoStore("404 endpoint", await s.req("GET", "/Nope"), 404);
    expectNoStore("405", await s.req("DELETE", "/Users"), 405);
    await s.req("POST", "/Users", userBody("cache-dup@example.com"));
    expectNoStore("409", await s.req("POST", "/Users", userBody("cache-dup@example.com")), 409);
    const u = await s.req("POST", "/Users", userBody("cache-412@example.com"));
    expectNoStore("412", await s.req("PUT", `/Users/${u.body.id}`, userBody("cache-412@example.com"), { "If-Match": 'W/"999"' }), 412);
    expectNoStore("413", await s.req("POST", "/Users", "x".repeat(2 * 1024 * 1024)), 413);
    await noAuth(limited, "/Users");
    expectNoStore("429", await noAuth(limited, "/Users"), 429);
  });
});
