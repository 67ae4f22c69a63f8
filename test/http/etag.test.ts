import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { groupBody, patchBody, startServer, userBody, type TestServer } from "../helpers";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.close());

let n = 0;
const create = async (path: string, body: Record<string, unknown>) => {
  const r = await s.req("POST", path, body);
  expect(r.status).toBe(201);
  return r.body;
};

describe("versions and ETags (RFC 7644 §3.14)", () => {
  it("a User's version changes when it joins or leaves a group, so If-None-Match does not answer 304 with stale groups", async () => {
    const u = await create("/Users", userBody(`etag${++n}@example.com`));
    const g = await create("/Groups", groupBody(`ETag group ${n}`));
    const before = u.meta.version;
    expect((await s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "add", path: "members", value: [{ value: u.id }] }))).status).toBe(204);
    const joined = await s.req("GET", `/Users/${u.id}`, undefined, { "If-None-Match": before });
    expect(joined.status).toBe(200);
    expect(joined.body.groups.map((x: { value: string }) => x.value)).toEqual([g.id]);
    expect(joined.body.meta.version).not.toBe(before);
    expect(joined.headers.get("etag")).toBe(joined.body.meta.version);
    // The new ETag is current: If-None-Match with it is 304, If-Match with it succeeds.
    expect((await s.req("GET", `/Users/${u.id}`, undefined, { "If-None-Match": joined.body.meta.version })).status).toBe(304);
    const stale = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "x" }), { "If-Match": before });
    expect(stale.status).toBe(412);
    const ok = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "x" }), { "If-Match": joined.body.meta.version });
    expect(ok.status).toBe(200);
    // Leaving the group changes it again.
    await s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "remove", path: `members[value eq "${u.id}"]` }));
    const left = await s.req("GET", `/Users/${u.id}`, undefined, { "If-None-Match": ok.body.meta.version });
    expect(left.status).toBe(200);
    expect(left.body.groups).toBeUndefined();
  });

  it("the ETag is the same whatever attributes the client asks for", async () => {
    const u = await create("/Users", userBody(`etag${++n}@example.com`));
    const g = await create("/Groups", groupBody(`ETag group ${n}`, [u.id]));
    void g;
    const full = await s.req("GET", `/Users/${u.id}`);
    const slim = await s.req("GET", `/Users/${u.id}?attributes=userName`);
    expect(slim.headers.get("etag")).toBe(full.headers.get("etag"));
  });

  it("a PATCH or PUT that changes nothing keeps the version and lastModified (an IdP re-sending the same state)", async () => {
    const u = await create("/Users", userBody(`etag${++n}@example.com`, { title: "Same" }));
    const g = await create("/Groups", groupBody(`ETag group ${n}`, [u.id]));
    const v = (await s.req("GET", `/Groups/${g.id}?excludedAttributes=members`)).body.meta;
    for (const body of [
      patchBody({ op: "add", path: "members", value: [{ value: u.id }] }), // already a member
      patchBody({ op: "remove", path: `members[value eq "no-such-id"]` }), // not a member
      patchBody({ op: "replace", path: "members", value: [{ value: u.id }] }), // the same list
      patchBody({ op: "replace", path: "displayName", value: `ETag group ${n}` }),
    ]) {
      const r = await s.req("PATCH", `/Groups/${g.id}`, body, { "If-Match": v.version });
      expect(r.status).toBe(204);
      expect(r.headers.get("etag")).toBe(v.version);
    }
    const after = (await s.req("GET", `/Groups/${g.id}?excludedAttributes=members`)).body.meta;
    expect(after).toEqual(v);
    const uv = (await s.req("GET", `/Users/${u.id}`)).body;
    const put = await s.req("PUT", `/Users/${u.id}`, { ...uv });
    expect(put.status).toBe(200);
    expect(put.body.meta.version).toBe(uv.meta.version);
    expect(put.body.meta.lastModified).toBe(uv.meta.lastModified);
  });
});
