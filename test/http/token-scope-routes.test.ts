/**
 * Every route of createApp's app, walked from its own route table (`app.routes`), for each scope: a
 * read token may GET, HEAD and .search, a write token may do everything, and a read token's write is
 * 403 insufficient_scope. The decision of each route is written down in DECISIONS below; a route
 * added later without one fails the first test, so nobody adds a route whose scope was never decided.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createApp, PROBE_PATHS } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import type { Store } from "../../src/store/store";
import type { TokenScope } from "../../src/store/store";
import { hashToken, newToken } from "../../src/tokens";
import { expectScimError, openTestStore, readResponse, userBody, groupBody, type TestResponse } from "../helpers";

const HOST = "http://scimd.test";
const BASE = "/api/v1/scim";
/** The methods an ALL route (one that serves any method) is walked with. */
const ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

type Decision = TokenScope | "no token";
/** A method-dependent decision, for the routes that serve any method (ALL). */
const BY_METHOD: Record<(typeof ANY_METHOD)[number], Decision> = { GET: "read", HEAD: "read", POST: "write", PUT: "write", PATCH: "write", DELETE: "write", OPTIONS: "write" };

/** The scope each route needs, by `METHOD path` as the route table has them. */
const DECISIONS: Record<string, Decision | typeof BY_METHOD> = {
  "GET /healthz": "no token",
  "GET /readyz": "no token",
  [`GET ${BASE}/ServiceProviderConfig`]: "read",
  [`GET ${BASE}/ResourceTypes`]: "read",
  [`GET ${BASE}/ResourceTypes/:id`]: "read",
  [`GET ${BASE}/Schemas`]: "read",
  [`GET ${BASE}/Schemas/:id`]: "read",
  [`GET ${BASE}/Users`]: "read",
  [`POST ${BASE}/Users/.search`]: "read",
  [`POST ${BASE}/Users`]: "write",
  [`GET ${BASE}/Users/:id`]: "read",
  [`PUT ${BASE}/Users/:id`]: "write",
  [`PATCH ${BASE}/Users/:id`]: "write",
  [`DELETE ${BASE}/Users/:id`]: "write",
  [`GET ${BASE}/Groups`]: "read",
  [`POST ${BASE}/Groups/.search`]: "read",
  [`POST ${BASE}/Groups`]: "write",
  [`GET ${BASE}/Groups/:id`]: "read",
  [`PUT ${BASE}/Groups/:id`]: "write",
  [`PATCH ${BASE}/Groups/:id`]: "write",
  [`DELETE ${BASE}/Groups/:id`]: "write",
  [`GET ${BASE}`]: "read",
  [`POST ${BASE}/.search`]: "read",
  [`POST ${BASE}/Bulk`]: "write",
  [`ALL ${BASE}/Me`]: BY_METHOD,
  [`ALL ${BASE}`]: BY_METHOD,
  [`ALL ${BASE}/*`]: BY_METHOD,
};

let store: Store;
let app: ReturnType<typeof createApp>;
let cleanup: () => Promise<void>;
const secrets: Record<TokenScope, string> = { read: newToken(), write: newToken() };
let userId: string;
let groupId: string;

beforeAll(async () => {
  const t = await openTestStore();
  cleanup = t.cleanup;
  store = t.store;
  await store.createToken("reader", hashToken(secrets.read), { scope: "read" });
  await store.createToken("idp", hashToken(secrets.write));
  app = createApp({ store, logger: SILENT_LOGGER, authFailuresPerMinute: 10_000 });
  userId = (await send("POST", `${BASE}/Users`, "write", userBody("alice@example.com"))).body.id;
  groupId = (await send("POST", `${BASE}/Groups`, "write", groupBody("staff"))).body.id;
  expect([typeof userId, typeof groupId]).toEqual(["string", "string"]);
});
afterAll(async () => {
  await cleanup();
});

async function send(method: string, path: string, scope: TokenScope | undefined, body?: unknown): Promise<TestResponse> {
  const headers: Record<string, string> = scope ? { Authorization: `Bearer ${secrets[scope]}` } : {};
  const withBody = !["GET", "HEAD", "DELETE", "OPTIONS"].includes(method);
  if (withBody) headers["Content-Type"] = "application/scim+json";
  return readResponse(await app.handle(new Request(`${HOST}${path}`, { method, headers, body: withBody ? JSON.stringify(body ?? {}) : undefined })));
}

/** A path that the route template names: ids of things that exist, `*` as a path no endpoint has. */
function concrete(template: string): string {
  if (template === `${BASE}/ResourceTypes/:id`) return `${BASE}/ResourceTypes/User`;
  if (template === `${BASE}/Schemas/:id`) return `${BASE}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User`;
  if (template.startsWith(`${BASE}/Users/`)) return template.replace(":id", userId);
  if (template.startsWith(`${BASE}/Groups/`)) return template.replace(":id", groupId);
  return template.replace("*", "NoSuchEndpoint");
}

/** Every (method, path, decision) the route table yields; ALL routes once per method. */
function cases(): [string, string, Decision][] {
  return app.routes.flatMap((r): [string, string, Decision][] => {
    const d = DECISIONS[`${r.method} ${r.path}`]!;
    if (typeof d === "string") return [[r.method, concrete(r.path), d]];
    return ANY_METHOD.map((m): [string, string, Decision] => [m, concrete(r.path), d[m]]);
  });
}

describe("scope decisions over the route table", () => {
  it("every route of the app has a scope decision written down here, and every decision names a route", () => {
    const keys = app.routes.map((r) => `${r.method} ${r.path}`);
    const undecided = keys.filter((k) => !(k in DECISIONS));
    expect(undecided, `routes without a scope decision (add them to DECISIONS): ${undecided.join(", ")}`).toEqual([]);
    expect(Object.keys(DECISIONS).filter((k) => !keys.includes(k))).toEqual([]);
    // The probes are the only routes without a token.
    expect(Object.entries(DECISIONS).flatMap(([k, d]) => (d === "no token" ? [k.split(" ")[1]] : []))).toEqual([...PROBE_PATHS]);
  });

  it("a .search in another case (routed by the catch-all) is a read; a write in another case is refused", async () => {
    const search = await send("POST", `${BASE}/users/.SEARCH`, "read", { filter: 'userName eq "alice@example.com"' });
    expect(search.status).toBe(200);
    expect(search.body.totalResults).toBe(1);
    expect((await send("POST", `${BASE}/users`, "read", userBody("mallory@example.com"))).status).toBe(403);
    expect((await send("GET", `${BASE}/users/${userId}`, "read")).status).toBe(200);
  });

  it("a read token's refused writes change nothing: the user and the group are byte-identical, and nothing was created", async () => {
    const before = [(await send("GET", `${BASE}/Users/${userId}`, "read")).text, (await send("GET", `${BASE}/Groups/${groupId}`, "read")).text];
    const writes: [string, string, unknown][] = [
      ["POST", `${BASE}/Users`, userBody("mallory@example.com")],
      ["PUT", `${BASE}/Users/${userId}`, userBody("alice@example.com", { displayName: "Mallory" })],
      ["PATCH", `${BASE}/Users/${userId}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "active", value: false }] }],
      ["DELETE", `${BASE}/Users/${userId}`, undefined],
      ["PATCH", `${BASE}/Groups/${groupId}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "add", path: "members", value: [{ value: userId }] }] }],
      ["DELETE", `${BASE}/Groups/${groupId}`, undefined],
    ];
    for (const [method, path, body] of writes) expect((await send(method, path, "read", body)).status).toBe(403);
    expect([(await send("GET", `${BASE}/Users/${userId}`, "read")).text, (await send("GET", `${BASE}/Groups/${groupId}`, "read")).text]).toEqual(before);
    expect(store.stats().users).toBe(1);
  });

  it("a read token is refused exactly the writes (403 insufficient_scope, SCIM error, the scope in the detail); a write token is never refused", async () => {
    const all = cases();
    expect(all.length).toBeGreaterThan(30);
    for (const [method, path, decision] of all) {
      for (const scope of ["read", "write"] as const) {
        const r = await send(method, path, scope);
        const what = `${method} ${path} with a ${scope} token (needs ${decision}): ${r.status} ${r.text.slice(0, 200)}`;
        if (decision === "write" && scope === "read") {
          expect(r.status, what).toBe(403);
          if (method !== "HEAD") {
            expectScimError(r, 403);
            expect(r.body.detail, what).toBe(
              "this token has scope 'read'; creating, replacing, patching and deleting need a token with scope 'write' (scimd generate-token --scope write)",
            );
          }
          expect(r.headers.get("www-authenticate"), what).toBe('Bearer realm="scimd", error="insufficient_scope", scope="write"');
        } else {
          expect([401, 403], what).not.toContain(r.status);
          // Let through, the route answers for itself: a SCIM answer or a refusal, never a server
          // error (501 only where scimd says it does not support the operation: /Bulk and /Me).
          if (r.status === 501) expect(/\/(Bulk|Me)(\/|$)/.test(path), what).toBe(true);
          else expect(r.status, what).toBeLessThan(500);
        }
      }
    }
  });

  it("without a token every SCIM route is 401 before any scope decision (the probes answer)", async () => {
    for (const [method, path, decision] of cases()) {
      const r = await send(method, path, undefined);
      if (decision === "no token") expect(r.status, `${method} ${path}`).toBe(200);
      else expect(r.status, `${method} ${path}`).toBe(401);
    }
  });

});
