/**
 * The SCIM operations as plain data: each takes a RequestContext and returns one ScimResult (status,
 * headers, body), with no HTTP in between. One test per status an operation gives (200, 201 with
 * Location, 204, 304) and per refusal it throws (412, 404), on a real SQLite store.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { ScimError } from "../../src/scim/errors";
import { ScimOperations } from "../../src/scim/operations";
import { MEMBER_PAGE } from "../../src/scim/representation";
import type { ReadOptions, RequestContext, ScimResult } from "../../src/scim/result";
import type { Resource } from "../../src/scim/resource";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { TokenRecord } from "../../src/store/store";
import { allMembers, GROUP, groupBody, LIST, patchBody, tempDir, userBody } from "../helpers";

const BASE = "https://scim.example.com/api/v1/scim";
const CALLER: TokenRecord = { id: "t-1", name: "okta", created: "2024-01-01T00:00:00.000Z", lastUsed: null, scope: "write", expires: null, expiresAt: null };

let store: SqliteStore;
let ops: ScimOperations;
let cleanup: () => void;

beforeAll(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  store = new SqliteStore(join(t.dir, "db"));
  ops = new ScimOperations(store, { strict: false, maxResults: 100 });
});
afterAll(async () => {
  await store.close();
  cleanup();
});

function ctx(read: ReadOptions = {}, conditions: RequestContext["conditions"] = {}, baseUrl = BASE): RequestContext {
  return { baseUrl, caller: CALLER, read, conditions };
}

/** The body of a result as a value, whatever form it comes in (a member stream is joined as a response would be). */
async function valueOf(r: ScimResult): Promise<Resource | undefined> {
  const b = r.body;
  if (!b) return undefined;
  if (b.type === "object") return b.value;
  if (b.type === "json") return JSON.parse(b.text);
  const withMembers = async (head: string, batches: AsyncIterable<Resource[]>) => {
    const members: Resource[] = [];
    for await (const batch of batches) members.push(...batch);
    return { ...JSON.parse(head), ...(members.length ? { members } : {}) };
  };
  if (b.type === "members") return withMembers(b.head, b.batches);
  const resources: Resource[] = [];
  for (const r of b.resources) resources.push(typeof r === "string" ? JSON.parse(r) : await withMembers(r.head, r.batches));
  return { ...JSON.parse(`${b.head}]}`), Resources: resources };
}

async function thrown(p: Promise<unknown>): Promise<ScimError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ScimError);
    return e as ScimError;
  }
  throw new Error("expected a ScimError");
}

async function newUser(userName: string): Promise<{ id: string; etag: string }> {
  const r = await ops.create("User", userBody(userName), ctx());
  return { id: (await valueOf(r))!.id as string, etag: r.headers.ETag! };
}

describe("create answers 201 with Location and ETag (RFC 7644 §3.3)", () => {
  it("gives the resource, its Location on the context's base URL and an ETag equal to meta.version", async () => {
    const r = await ops.create("User", userBody("create@example.com"), ctx());
    expect(r.status).toBe(201);
    const body = (await valueOf(r))!;
    expect(r.headers).toEqual({ Location: `${BASE}/Users/${body.id}`, ETag: (body.meta as Resource).version as string });
    expect((body.meta as Resource).location).toBe(r.headers.Location);
    expect(body.userName).toBe("create@example.com");
  });

  it("builds Location and meta.location on whatever base URL the context names", async () => {
    const r = await ops.create("Group", groupBody("Located"), ctx({}, {}, "http://10.0.0.1:8080/api/v1/scim"));
    const body = (await valueOf(r))!;
    expect(r.headers.Location).toBe(`http://10.0.0.1:8080/api/v1/scim/Groups/${body.id}`);
    expect((body.meta as Resource).location).toBe(r.headers.Location);
  });

  it("shapes the representation by the context's read options (RFC 7644 §3.9)", async () => {
    const r = await ops.create("User", userBody("narrow@example.com"), ctx({ attributes: "userName" }));
    expect(Object.keys((await valueOf(r))!).sort()).toEqual(["id", "schemas", "userName"]);
  });
});

describe("get answers 200, 304 or 412 by the context's conditions (RFC 7644 §3.4.1, §3.14)", () => {
  it("gives 200 with the stored JSON text spliced, and its ETag", async () => {
    const u = await newUser("get@example.com");
    const r = await ops.get("User", u.id, ctx());
    expect(r.status).toBe(200);
    expect(r.body?.type).toBe("json");
    expect(r.headers).toEqual({ ETag: u.etag });
    expect((await valueOf(r))!.userName).toBe("get@example.com");
  });

  it("gives 200 with an object when the projection is not the default one", async () => {
    const u = await newUser("get-narrow@example.com");
    const r = await ops.get("User", u.id, ctx({ attributes: "displayName" }));
    expect(r.body?.type).toBe("object");
    expect(Object.keys((await valueOf(r))!).sort()).toEqual(["displayName", "id", "schemas"]);
  });

  it("gives 304 with the ETag and no body when If-None-Match names the current version", async () => {
    const u = await newUser("not-modified@example.com");
    const r = await ops.get("User", u.id, ctx({}, { ifNoneMatch: u.etag }));
    expect(r).toEqual({ status: 304, headers: { ETag: u.etag } });
  });

  it("gives 200 when If-None-Match names another version", async () => {
    const u = await newUser("modified@example.com");
    expect((await ops.get("User", u.id, ctx({}, { ifNoneMatch: 'W/"999"' }))).status).toBe(200);
  });

  it("refuses a stale If-Match with 412", async () => {
    const u = await newUser("get-stale@example.com");
    expect((await thrown(ops.get("User", u.id, ctx({}, { ifMatch: 'W/"999"' })))).status).toBe(412);
    expect((await ops.get("User", u.id, ctx({}, { ifMatch: u.etag }))).status).toBe(200);
  });

  it("refuses an unknown id with 404", async () => {
    expect((await thrown(ops.get("User", crypto.randomUUID(), ctx()))).status).toBe(404);
  });

  it("gives a Group's members as a stream after its head, in batches of at most one member page", async () => {
    const members = [(await newUser("member-1@example.com")).id, (await newUser("member-2@example.com")).id];
    const created = await valueOf(await ops.create("Group", groupBody("Streamed", members), ctx()));
    const r = await ops.get("Group", created!.id as string, ctx());
    expect(r.status).toBe(200);
    if (r.body?.type !== "members") throw new Error(`expected a member stream, got ${r.body?.type}`);
    expect(JSON.parse(r.body.head).members).toBeUndefined();
    const batches: Resource[][] = [];
    for await (const b of r.body.batches) batches.push(b);
    for (const b of batches) expect(b.length).toBeLessThanOrEqual(MEMBER_PAGE);
    expect(batches.flat().map((m) => m.value).sort()).toEqual([...members].sort());
    // Joined, head and stream are the Group as create rendered it whole.
    expect({ ...JSON.parse(r.body.head), members: batches.flat() }).toEqual(created!);
  });

  it("gives a Group without a member stream when members are left out", async () => {
    const created = await valueOf(await ops.create("Group", groupBody("No Members Asked"), ctx()));
    const r = await ops.get("Group", created!.id as string, ctx({ excludedAttributes: "members" }));
    expect(r.body?.type).toBe("json");
  });
});

describe("replace answers 200 with the new state and its ETag (RFC 7644 §3.5.1)", () => {
  it("gives 200, and a changed ETag", async () => {
    const u = await newUser("replace@example.com");
    const r = await ops.replace("User", u.id, userBody("replace@example.com", { title: "Replaced" }), ctx());
    expect(r.status).toBe(200);
    const body = (await valueOf(r))!;
    expect(body.title).toBe("Replaced");
    expect(r.headers).toEqual({ ETag: (body.meta as Resource).version as string });
    expect(r.headers.ETag).not.toBe(u.etag);
  });

  it("refuses a stale If-Match with 412 and stores nothing", async () => {
    const u = await newUser("replace-stale@example.com");
    const e = await thrown(ops.replace("User", u.id, userBody("replace-stale@example.com", { title: "No" }), ctx({}, { ifMatch: 'W/"999"' })));
    expect(e.status).toBe(412);
    expect((await store.get("User", u.id))!.data.title).toBeUndefined();
  });
});

describe("patch answers 200 for a User, 204 for a Group unless attributes are asked for (RFC 7644 §3.5.2)", () => {
  it("gives a User 200 with the patched resource and its ETag", async () => {
    const u = await newUser("patch@example.com");
    const r = await ops.patch("User", u.id, patchBody({ op: "replace", path: "title", value: "Patched" }), ctx());
    expect(r.status).toBe(200);
    const body = (await valueOf(r))!;
    expect(body.title).toBe("Patched");
    expect(r.headers).toEqual({ ETag: (body.meta as Resource).version as string });
  });

  it("gives a Group 204 with the new ETag and no body", async () => {
    const g = await valueOf(await ops.create("Group", groupBody("Patched Group"), ctx()));
    const r = await ops.patch("Group", g!.id as string, patchBody({ op: "replace", path: "displayName", value: "Renamed Group" }), ctx());
    expect(r.status).toBe(204);
    expect(r.body).toBeUndefined();
    const now = await ops.get("Group", g!.id as string, ctx());
    expect(r.headers).toEqual({ ETag: now.headers.ETag! });
    expect(r.headers.ETag).not.toBe((g!.meta as Resource).version);
  });

  it("gives a Group 200 with the resource when attributes are asked for", async () => {
    const g = await valueOf(await ops.create("Group", groupBody("Asked Group"), ctx()));
    const r = await ops.patch("Group", g!.id as string, patchBody({ op: "replace", path: "displayName", value: "Asked Group 2" }), ctx({ attributes: "displayName" }));
    expect(r.status).toBe(200);
    expect((await valueOf(r))!.displayName).toBe("Asked Group 2");
  });

  it("refuses a stale If-Match with 412 and changes nothing (RFC 7644 §3.14)", async () => {
    const u = await newUser("patch-stale@example.com");
    const e = await thrown(ops.patch("User", u.id, patchBody({ op: "replace", path: "title", value: "No" }), ctx({}, { ifMatch: 'W/"999"' })));
    expect(e.status).toBe(412);
    expect((await ops.get("User", u.id, ctx())).headers.ETag).toBe(u.etag);
  });
});

describe("delete answers 204 with nothing else (RFC 7644 §3.6)", () => {
  it("gives 204, no headers, no body, and the resource is gone", async () => {
    const u = await newUser("delete@example.com");
    expect(await ops.delete("User", u.id, ctx())).toEqual({ status: 204, headers: {} });
    expect(await store.get("User", u.id)).toBeUndefined();
  });

  it("refuses a stale If-Match with 412 and keeps the resource", async () => {
    const u = await newUser("delete-stale@example.com");
    expect((await thrown(ops.delete("User", u.id, ctx({}, { ifMatch: 'W/"999"' })))).status).toBe(412);
    expect(await store.get("User", u.id)).toBeDefined();
    expect((await ops.delete("User", u.id, ctx({}, { ifMatch: u.etag }))).status).toBe(204);
  });
});

describe("search answers 200 with a ListResponse as JSON text (RFC 7644 §3.4.2)", () => {
  it("gives the resources the filter selects, projected by the context", async () => {
    await newUser("search-me@example.com");
    const r = await ops.search("User", { filter: 'userName eq "search-me@example.com"' }, ctx({ attributes: "userName" }));
    expect(r.status).toBe(200);
    expect(r.headers).toEqual({});
    expect(r.body?.type).toBe("json");
    const list = (await valueOf(r))!;
    expect(list.schemas).toEqual([LIST]);
    expect(list.totalResults).toBe(1);
    expect(list.Resources).toEqual([{ schemas: expect.any(Array), id: expect.any(String), userName: "search-me@example.com" }]);
  });

  it("searches Users and Groups when no resource type is given (the service root)", async () => {
    const r = await ops.search(undefined, { count: 0 }, ctx());
    const list = (await valueOf(r))!;
    expect(list.totalResults).toBe((await store.search("User", { offset: 0, limit: 0 })).total + (await store.search("Group", { offset: 0, limit: 0 })).total);
    expect(list.itemsPerPage).toBe(0);
  });
});

describe("the result of a write says what was written", () => {
  it("a Group created with members answers them, as stored", async () => {
    const m = (await newUser("written-member@example.com")).id;
    const g = (await valueOf(await ops.create("Group", { schemas: [GROUP], displayName: "Written", members: [{ value: m }] }, ctx())))!;
    expect((g.members as Resource[]).map((x) => x.value)).toEqual([m]);
    expect((await allMembers(store, g.id as string)).map((x) => x.value)).toEqual([m]);
  });
});
