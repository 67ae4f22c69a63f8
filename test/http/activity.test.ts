/**
 * The activity log over HTTP: each change the SCIM API commits is recorded with the request's id
 * (X-Request-Id as sent, or the one the edge gave it and answered with) and the name of the token
 * it authenticated with; refused writes (409, 412) and no-op PATCHes leave no entry; a password is
 * never stored, only "changed".
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createApp } from "../../src/app";
import { edgeHandler, infoOf } from "../../src/http/observe";
import type { Store } from "../../src/store/store";
import { hashToken, newToken } from "../../src/tokens";
import { groupBody, memoryLogger, openTestStore, patchBody, readResponse, userBody, type TestDb, type TestResponse } from "../helpers";

let db: TestDb;
let store: Store;
let okta: string, entra: string;
let handle: (r: Request) => Promise<Response>;

beforeAll(async () => {
  db = await openTestStore();
  store = db.store;
  okta = newToken();
  entra = newToken();
  await store.createToken("okta", hashToken(okta));
  await store.createToken("entra", hashToken(entra));
  const app = createApp({ store, logger: memoryLogger("error").logger, addressOf: (r) => infoOf(r)?.client ?? "unknown" });
  handle = edgeHandler((r) => app.handle(r), { clientAddress: () => "192.0.2.1", onFinish: () => {} });
});
afterAll(async () => {
  await db.cleanup();
});

async function send(token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
  const h: Record<string, string> = { Authorization: `Bearer ${token}`, ...headers };
  if (body !== undefined) h["Content-Type"] = "application/scim+json";
  return readResponse(await handle(new Request(`http://scimd.test/api/v1/scim${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) })));
}

const latest = async () => (await store.listActivity({ limit: 1 }))[0];
const count = async () => (await store.listActivity({ limit: 100_000 })).length;

describe("activity log over HTTP", () => {
  it("a POST is recorded with the X-Request-Id sent and the token's name, and the password only as changed", async () => {
    const r = await send(okta, "POST", "/Users", userBody("bob@example.com", { password: "Sup3r-secret!" }), { "X-Request-Id": "okta-req-42" });
    expect(r.status).toBe(201);
    const e = (await latest())!;
    expect(e).toMatchObject({ op: "create", resourceType: "User", id: r.body.id, name: "bob@example.com", via: "scim", token: "okta", requestId: "okta-req-42" });
    expect(e.changes).toContainEqual({ attr: "password", changed: true });
    const everything = JSON.stringify(await db.sql("SELECT * FROM activity"));
    expect(everything).not.toContain("Sup3r-secret!");
    expect(everything).not.toContain("$argon2");
  });

  it("without X-Request-Id the entry carries the id the edge gave the request and answered with", async () => {
    const u = await send(entra, "POST", "/Users", userBody("carol@example.com"));
    const r = await send(entra, "PATCH", `/Users/${u.body.id}`, patchBody({ op: "replace", path: "title", value: "Manager" }));
    expect(r.status).toBe(200);
    const sent = r.headers.get("x-request-id");
    expect(sent).toBeTruthy();
    expect(await latest()).toMatchObject({ op: "patch", token: "entra", requestId: sent!, changes: [{ attr: "title", new: "Manager" }] });
  });

  it("PUT, a group PATCH of members and DELETE are each one entry naming the operation", async () => {
    const a = await send(okta, "POST", "/Users", userBody("dave@example.com"));
    const b = await send(okta, "POST", "/Users", userBody("erin@example.com"));
    const g = await send(okta, "POST", "/Groups", groupBody("Sales"));
    expect((await send(okta, "PUT", `/Users/${a.body.id}`, userBody("dave@example.com", { title: "Rep" }))).status).toBe(200);
    expect(await latest()).toMatchObject({ op: "replace", id: a.body.id });
    const before = await count();
    expect((await send(okta, "PATCH", `/Groups/${g.body.id}`, patchBody({ op: "add", path: "members", value: [{ value: a.body.id }, { value: b.body.id }] }))).status).toBe(204);
    expect(await count()).toBe(before + 1);
    expect(await latest()).toMatchObject({ op: "patch", resourceType: "Group", name: "Sales", membersAdded: [a.body.id, b.body.id] });
    expect((await send(okta, "DELETE", `/Users/${a.body.id}`)).status).toBe(204);
    expect(await latest()).toMatchObject({ op: "delete", id: a.body.id, name: "dave@example.com", leftGroups: [{ value: g.body.id, display: "Sales" }] });
  });

  it("a 409, a 412 and a PATCH that changes nothing leave no entry", async () => {
    const u = await send(okta, "POST", "/Users", userBody("frank@example.com", { title: "Engineer" }));
    const n = await count();
    expect((await send(okta, "POST", "/Users", userBody("FRANK@example.com"))).status).toBe(409);
    expect((await send(okta, "PATCH", `/Users/${u.body.id}`, patchBody({ op: "replace", path: "title", value: "x" }), { "If-Match": 'W/"99"' })).status).toBe(412);
    expect((await send(okta, "DELETE", `/Users/${u.body.id}`, undefined, { "If-Match": 'W/"99"' })).status).toBe(412);
    expect((await send(okta, "PATCH", `/Users/${u.body.id}`, patchBody({ op: "replace", path: "title", value: "Engineer" }))).status).toBe(200);
    expect(await count()).toBe(n);
  });
});
