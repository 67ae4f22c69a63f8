import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { MEMBER_PAGE } from "../../src/scim/representation";
import { groupBody, patchBody, startServer, USER, type TestServer } from "../helpers";

let s: TestServer;
const ids: string[] = [];
const COUNT = MEMBER_PAGE * 2 + 500;

beforeAll(async () => {
  s = await startServer();
  for (let i = 0; i < COUNT; i++) ids.push(crypto.randomUUID());
  // 25 creates at a time: on PostgreSQL each is a round trip of its own transaction, on SQLite they
  // are serialised anyway. Each create is its own commit: on a loaded machine the seeding alone can pass bun's default 5 s.
  for (let from = 0; from < COUNT; from += 25)
    await Promise.all(
      ids.slice(from, from + 25).map((id, k) => {
        const i = from + k;
        return s.store.create("User", { id, data: { schemas: [USER], userName: `m${i}@example.com`, displayName: `Member ${i}`, emails: [{ value: `m${i}@example.com` }], active: true } });
      }),
    );
}, 30_000);
afterAll(() => s.close());

describe("a group larger than one member page", () => {
  it("GET /Groups/{id} returns every member exactly once, across pages, as valid JSON", async () => {
    const g = await s.req("POST", "/Groups?excludedAttributes=members", groupBody("Everyone", ids));
    expect(g.status).toBe(201);
    expect(g.body.members).toBeUndefined();
    const r = await s.req("GET", `/Groups/${g.body.id}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toStartWith("application/scim+json");
    expect(r.headers.get("etag")).toBe(r.body.meta.version);
    const values = r.body.members.map((m: { value: string }) => m.value);
    expect(values.length).toBe(COUNT);
    expect(new Set(values).size).toBe(COUNT);
    expect([...values].sort()).toEqual([...ids].sort());
    expect(r.body.members[0]).toMatchObject({ type: "User", $ref: expect.stringContaining("/Users/") });
    expect(r.body.displayName).toBe("Everyone");
  });

  it("projects streamed members like any attribute: attributes=members.value keeps only value (RFC 7644 §3.9)", async () => {
    const g = await s.req("POST", "/Groups?attributes=id", groupBody("Projected", ids.slice(0, MEMBER_PAGE + 10)));
    const r = await s.req("GET", `/Groups/${g.body.id}?attributes=members.value`);
    expect(r.status).toBe(200);
    expect(r.body.displayName).toBeUndefined();
    expect(r.body.members.length).toBe(MEMBER_PAGE + 10);
    expect(Object.keys(r.body.members[MEMBER_PAGE + 5])).toEqual(["value"]);
  });

  it("a group whose members were all removed has no members attribute at all (RFC 7643 §2.5)", async () => {
    const g = await s.req("POST", "/Groups?attributes=id", groupBody("Emptied", ids.slice(0, 3)));
    expect((await s.req("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "remove", path: "members" }))).status).toBe(204);
    const r = await s.req("GET", `/Groups/${g.body.id}`);
    expect(r.status).toBe(200);
    expect(r.body.members).toBeUndefined();
    expect(r.body.displayName).toBe("Emptied");
  });

  it("a group of up to one member page is one body with Content-Length; a larger one is streamed in chunks", async () => {
    const sizes = [0, 1, MEMBER_PAGE, MEMBER_PAGE + 1];
    for (const n of sizes) {
      const g = await s.req("POST", "/Groups?attributes=id", groupBody(`Sized ${n}`, ids.slice(0, n)));
      const res = await fetch(`${s.base}/Groups/${g.body.id}`, { headers: { Authorization: `Bearer ${s.token}` } });
      expect(res.status).toBe(200);
      const streamed = res.headers.get("transfer-encoding") === "chunked";
      expect(streamed).toBe(n > MEMBER_PAGE);
      if (!streamed) expect(Number(res.headers.get("content-length"))).toBeGreaterThan(0);
      const body = JSON.parse(await res.text());
      expect(body.displayName).toBe(`Sized ${n}`);
      if (n === 0) expect(body.members).toBeUndefined();
      else expect(body.members.map((m: { value: string }) => m.value).sort()).toEqual(ids.slice(0, n).sort());
      expect(res.headers.get("etag")).toBe(body.meta.version);
    }
  });
});
