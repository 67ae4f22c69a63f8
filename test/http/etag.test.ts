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

describe("conditional requests on every verb (RFC 9110 §13.1)", () => {
  it("GET with an If-Match that does not name the current version is 412", async () => {
    const u = await create("/Users", userBody(`cond${++n}@example.com`));
    expect((await s.req("GET", `/Users/${u.id}`, undefined, { "If-Match": 'W/"999"' })).status).toBe(412);
    expect((await s.req("GET", `/Users/${u.id}`, undefined, { "If-Match": u.meta.version })).status).toBe(200);
  });

  it("If-None-Match naming the current version, or *, makes PUT, PATCH and DELETE 412 and changes nothing", async () => {
    const u = await create("/Users", userBody(`cond${++n}@example.com`, { title: "Kept" }));
    for (const tag of ["*", u.meta.version]) {
      expect((await s.req("PUT", `/Users/${u.id}`, userBody(u.userName, { title: "Changed" }), { "If-None-Match": tag })).status).toBe(412);
      expect((await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "Changed" }), { "If-None-Match": tag })).status).toBe(412);
      expect((await s.req("DELETE", `/Users/${u.id}`, undefined, { "If-None-Match": tag })).status).toBe(412);
    }
    const after = await s.req("GET", `/Users/${u.id}`);
    expect(after.body.title).toBe("Kept");
    expect(after.body.meta.version).toBe(u.meta.version);
    // An If-None-Match naming another version does not stop the write.
    expect((await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "Changed" }), { "If-None-Match": 'W/"999"' })).status).toBe(200);
  });

  it("If-Match is checked again inside the write: a group change that lands between the read and the write makes it 412", async () => {
    const u = await create("/Users", userBody(`cond${++n}@example.com`, { title: "Before" }));
    const g = await create("/Groups", groupBody(`Cond group ${n}`));
    // Let the membership change land after the service has read the User and checked If-Match.
    const update = s.store.update.bind(s.store);
    let injected = false;
    s.store.update = async (kind, id, input) => {
      if (kind === "User" && !injected) {
        injected = true;
        await update("Group", g.id, { data: { schemas: [g.schemas[0]], displayName: g.displayName }, memberChanges: [{ kind: "add", ids: [u.id] }] });
      }
      return update(kind, id, input);
    };
    try {
      const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "title", value: "After" }), { "If-Match": u.meta.version });
      expect(injected).toBe(true);
      expect(r.status).toBe(412);
    } finally {
      delete (s.store as { update?: unknown }).update;
    }
    const after = await s.req("GET", `/Users/${u.id}`);
    expect(after.body.title).toBe("Before");
    expect(after.body.groups.map((x: { value: string }) => x.value)).toEqual([g.id]);
  });
});
