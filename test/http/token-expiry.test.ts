/**
 * Expired and read-scoped tokens over HTTP, on a real server: the 401 of an expired secret says it
 * expired and when (only for a secret that existed); a revoked or unknown one keeps the answer that
 * tells nothing; a read token reads and searches, and its writes are 403.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { hashToken, newToken } from "../../src/tokens";
import { expectScimError, startServer, userBody, type TestResponse, type TestServer } from "../helpers";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ authFailuresPerMinute: 10_000 });
});
afterAll(() => s.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function as(token: string, method: string, path: string, body?: unknown): Promise<TestResponse> {
  return s.req(method, path, body, { Authorization: `Bearer ${token}` });
}

/** A new token in the server's database (as `generate-token` makes it beside a running server). */
async function token(name: string, opts: Parameters<TestServer["store"]["createToken"]>[2] = {}): Promise<string> {
  const t = newToken();
  await s.store.createToken(name, hashToken(t), opts);
  return t;
}

const NOT_VALID = "the bearer token is not valid (it may have been revoked); create a new one with `scimd generate-token`";

describe("expired tokens", () => {
  it("a token past its lifetime gets 401 whose detail says it expired and when, with WWW-Authenticate invalid_token", async () => {
    const at = new Date(Date.now() - 60_000).toISOString();
    const t = await token("expired-app", { expiresAt: at });
    const r = await as(t, "GET", "/Users");
    expectScimError(r, 401);
    expect(r.body.detail).toBe(
      `the bearer token expired at ${at} (the end of the lifetime it was created with); give it a new secret with \`scimd tokens rotate NAME\` (NAME as \`scimd tokens list\` shows this token) and put that into the client`,
    );
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="scimd", error="invalid_token", error_description="the token expired"');
    // Never the secret, nor the token's name, in the answer.
    expect(r.text).not.toContain(t);
    expect(r.text).not.toContain("expired-app");
  });

  it("a token whose lifetime ends while the server runs is accepted before and refused on its first request after", async () => {
    // A lifetime long enough for the first request on a loaded machine; then the test waits it out.
    const ends = Date.now() + 1500;
    const t = await token("short", { expiresAt: new Date(ends).toISOString() });
    expect((await as(t, "GET", "/Users")).status).toBe(200);
    await sleep(ends - Date.now() + 50);
    const r = await as(t, "GET", "/Users");
    expect(r.status).toBe(401);
    expect(r.body.detail).toStartWith("the bearer token expired at ");
  });

  it("a rotated-out secret past its grace says it was replaced and to use the new secret", async () => {
    const old = await token("rotating");
    const r0 = await s.store.rotateToken("rotating", hashToken(newToken()), 0);
    const r = await as(old, "GET", "/Users");
    expect(r.status).toBe(401);
    expect(r.body.detail).toBe(`the bearer token expired at ${r0!.token.created}: it was replaced by \`scimd tokens rotate\` and its grace period has ended; use the token's new secret`);
  });

  it("an expired secret sent again and again keeps its 401 saying it expired: it is not a failed authentication that leads to 429", async () => {
    const strict = await startServer({ authFailuresPerMinute: 2 });
    try {
      const t = newToken();
      const at = new Date(Date.now() - 60_000).toISOString();
      await strict.store.createToken("expired-app", hashToken(t), { expiresAt: at });
      for (let i = 0; i < 25; i++) {
        const r = await strict.req("GET", "/Users", undefined, { Authorization: `Bearer ${t}` });
        expect(r.status).toBe(401);
        expect(r.body.detail).toStartWith(`the bearer token expired at ${at} `);
      }
      // Unknown secrets from the same address are still limited.
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await strict.req("GET", "/Users", undefined, { Authorization: `Bearer ${newToken()}` })).status);
      expect(statuses).toEqual([401, 401, 429, 429]);
    } finally {
      await strict.close();
    }
  });

  it("a revoked secret and one never created get the same answer as before, which says nothing of expiry", async () => {
    const t = await token("revoked-app", { expiresAt: new Date(Date.now() - 1000).toISOString() });
    await s.store.revokeToken("revoked-app");
    const revoked = await as(t, "GET", "/Users");
    const unknown = await as(newToken(), "GET", "/Users");
    for (const r of [revoked, unknown]) {
      expectScimError(r, 401);
      expect(r.body.detail).toBe(NOT_VALID);
      expect(r.headers.get("www-authenticate")).toBe('Bearer realm="scimd"');
    }
    expect(revoked.text).toBe(unknown.text);
  });
});

describe("read-scoped tokens", () => {
  let reader: string;
  let id: string;
  beforeAll(async () => {
    reader = await token("dashboard", { scope: "read" });
    id = (await s.req("POST", "/Users", userBody("bob@example.com"))).body.id;
  });

  it("reads: list, get, HEAD, .search on a resource type and on the root, discovery", async () => {
    expect((await as(reader, "GET", "/Users")).body.totalResults).toBeGreaterThanOrEqual(1);
    expect((await as(reader, "GET", `/Users/${id}`)).body.userName).toBe("bob@example.com");
    const head = await fetch(`${s.base}/Users/${id}`, { method: "HEAD", headers: { Authorization: `Bearer ${reader}` } });
    expect(head.status).toBe(200);
    const search = { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: 'userName eq "bob@example.com"' };
    expect((await as(reader, "POST", "/Users/.search", search)).body.totalResults).toBe(1);
    expect((await as(reader, "POST", "/.search", search)).body.totalResults).toBe(1);
    expect((await as(reader, "GET", "/ServiceProviderConfig")).status).toBe(200);
  });

  it("every write is 403 with the token's scope and what is needed, and nothing is written", async () => {
    const before = (await as(reader, "GET", `/Users/${id}`)).text;
    const patch = { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "active", value: false }] };
    for (const [method, path, body] of [
      ["POST", "/Users", userBody("eve@example.com")],
      ["PUT", `/Users/${id}`, userBody("bob@example.com", { displayName: "Eve" })],
      ["PATCH", `/Users/${id}`, patch],
      ["DELETE", `/Users/${id}`, undefined],
      ["POST", "/Bulk", { schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], Operations: [] }],
    ] as const) {
      const r = await as(reader, method, path, body);
      expectScimError(r, 403);
      expect(r.body.detail).toBe("this token has scope 'read'; creating, replacing, patching and deleting need a token with scope 'write' (scimd generate-token --scope write)");
      expect(r.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    }
    expect((await as(reader, "GET", `/Users/${id}`)).text).toBe(before);
    expect((await as(reader, "GET", '/Users?filter=userName eq "eve@example.com"')).body.totalResults).toBe(0);
  });

  it("a 403 is not a failed authentication: many of them never lead to 429", async () => {
    const strict = await startServer({ authFailuresPerMinute: 2 });
    try {
      const t = newToken();
      await strict.store.createToken("reader", hashToken(t), { scope: "read" });
      for (let i = 0; i < 5; i++) expect((await strict.req("POST", "/Users", userBody(`u${i}@example.com`), { Authorization: `Bearer ${t}` })).status).toBe(403);
      expect((await strict.req("GET", "/Users", undefined, { Authorization: `Bearer ${t}` })).status).toBe(200);
    } finally {
      await strict.close();
    }
  });

  it("a write token (the default) writes", async () => {
    const r = await s.req("POST", "/Users", userBody("carol@example.com"));
    expect(r.status).toBe(201);
  });
});
