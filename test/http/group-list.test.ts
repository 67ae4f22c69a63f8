/**
 * Lists of Groups with their members (RFC 7644 §3.4.2): a page whose groups carry more than one
 * member page is streamed member batch by member batch, and a page ends before the group that would
 * take it past the member budget (--max-list-members), always holding its first resource.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { MEMBER_PAGE } from "../../src/scim/representation";
import { GROUP_SCHEMA } from "../../src/scim/schema";
import { seedUsers } from "../cli/seed";
import { startServer, type TestServer } from "../helpers";

const BUDGET = 2000;
let s: TestServer;
let users: string[] = [];
/** Each user's displayName: seedUsers creates them concurrently, so the scan's order need not be "User 0", "User 1", … (it is not on PostgreSQL). */
const displays = new Map<string, unknown>();
/** The groups in creation order (the list order), with their member ids. */
const groups: { id: string; name: string; members: string[] }[] = [];

beforeAll(async () => {
  s = await startServer({ maxListMembers: BUDGET });
  // "Everyone 0" holds all 3,000 users: larger than the budget.
  await seedUsers(s.store, 3000);
  for (let after: string | undefined; ; ) {
    const page = await s.store.scan("User", after, 1000);
    users.push(...page.resources.map((r) => r.id));
    for (const r of page.resources) displays.set(r.id, r.data.displayName);
    if (!(after = page.next)) break;
  }
  const everyone = (await s.store.search("Group", { offset: 0, limit: 10 })).resources[0]!;
  groups.push({ id: everyone.id, name: "Everyone 0", members: users });
  for (const [name, members] of [["Small", users.slice(0, 10)], ["Medium", users.slice(100, 1600)], ["Empty", []], ["Big", users.slice(500)]] as const) {
    const id = crypto.randomUUID();
    await s.store.create("Group", { id, data: { schemas: [GROUP_SCHEMA], displayName: name }, members: [...members] });
    groups.push({ id, name, members: [...members] });
  }
}, 60_000);
afterAll(() => s.close());

type Listed = { status: number; streamed: boolean; body: any };

async function list(path: string, init: RequestInit = {}): Promise<Listed> {
  const res = await fetch(`${s.base}${path}`, { ...init, headers: { Authorization: `Bearer ${s.token}`, "Content-Type": "application/scim+json", ...init.headers } });
  const streamed = res.headers.get("transfer-encoding") === "chunked";
  if (!streamed) expect(Number(res.headers.get("content-length"))).toBeGreaterThan(0);
  expect(res.headers.get("content-type")).toStartWith("application/scim+json");
  expect(res.headers.get("cache-control")).toBe("no-store");
  return { status: res.status, streamed, body: JSON.parse(await res.text()) };
}

const membersOf = (g: any): string[] => (g.members ?? []).map((m: { value: string }) => m.value);
const sorted = (a: readonly string[]) => [...a].sort();

/** Pages through `path` by itemsPerPage, as RFC 7644 §3.4.2.4 says a client continues: every page's body. */
async function allPages(path: string, init?: (startIndex: number) => RequestInit): Promise<Listed[]> {
  const pages: Listed[] = [];
  for (let start = 1; pages.length < 20; ) {
    const page = init ? await list(path, init(start)) : await list(`${path}${path.includes("?") ? "&" : "?"}startIndex=${start}`);
    expect(page.status).toBe(200);
    pages.push(page);
    start += page.body.itemsPerPage;
    if (page.body.itemsPerPage === 0 || start > page.body.totalResults) break;
  }
  return pages;
}

function expectEveryGroupOnce(pages: Listed[]) {
  const seen = pages.flatMap((p) => p.body.Resources);
  expect(seen.map((g: any) => g.displayName)).toEqual(groups.map((g) => g.name));
  for (const [i, g] of groups.entries()) {
    const members = membersOf(seen[i]);
    expect(members.length).toBe(g.members.length);
    expect(sorted(members)).toEqual(sorted(g.members));
    if (g.members.length === 0) expect(seen[i].members).toBeUndefined();
  }
}

describe("GET /Groups with members under a member budget (--max-list-members)", () => {
  it("ends each page before the group that would pass the budget; itemsPerPage says how many, totalResults stays the total (RFC 7644 §3.4.2.4)", async () => {
    const pages = await allPages("/Groups?count=100");
    // Everyone (3,000 > 2,000) comes alone; then Small + Medium + Empty (1,510), as Big (2,500) would pass the budget; then Big alone.
    expect(pages.map((p) => p.body.Resources.map((g: any) => g.displayName))).toEqual([["Everyone 0"], ["Small", "Medium", "Empty"], ["Big"]]);
    for (const p of pages) {
      expect(p.body.totalResults).toBe(groups.length);
      expect(p.body.itemsPerPage).toBe(p.body.Resources.length);
      const members = p.body.Resources.reduce((n: number, g: any) => n + membersOf(g).length, 0);
      if (p.body.Resources.length > 1) expect(members).toBeLessThanOrEqual(BUDGET);
      // More than one member page in all: streamed.
      expect(p.streamed).toBe(members > MEMBER_PAGE);
    }
    expect(pages.map((p) => p.body.startIndex)).toEqual([1, 2, 5]);
    expectEveryGroupOnce(pages);
  });

  it("each listed group is the one GET /Groups/{id} returns: the same members, meta and version", async () => {
    const pages = await allPages("/Groups?count=100");
    for (const g of pages.flatMap((p) => p.body.Resources)) {
      const one = await s.req("GET", `/Groups/${g.id}`);
      expect(one.status).toBe(200);
      expect(g.meta).toEqual(one.body.meta);
      expect(g.meta.version).toBe(one.headers.get("etag")!);
      expect({ ...g, members: sorted(membersOf(g)) }).toEqual({ ...one.body, members: sorted(membersOf(one.body)), ...(one.body.members ? {} : { members: [] }) });
    }
  });

  it("a page of groups within one member page is one body with Content-Length, as before", async () => {
    const r = await list(`/Groups?filter=${encodeURIComponent('displayName eq "Small" or displayName eq "Empty"')}`);
    expect(r.streamed).toBe(false);
    expect(r.body.Resources.map((g: any) => [g.displayName, membersOf(g).length])).toEqual([["Small", 10], ["Empty", 0]]);
    expect(r.body.Resources[0].members[0]).toEqual({ value: users[0], $ref: `${s.base}/Users/${users[0]}`, type: "User", display: displays.get(users[0]!) });
    expect(displays.get(users[0]!)).toMatch(/^User \d+$/);
  });

  it("excludedAttributes=members and attributes=displayName list the whole page, unbudgeted and not streamed (what Entra and Okta send)", async () => {
    for (const q of ["excludedAttributes=members", "attributes=displayName"]) {
      const r = await list(`/Groups?count=100&${q}`);
      expect(r.streamed).toBe(false);
      expect(r.body.itemsPerPage).toBe(groups.length);
      expect(r.body.Resources.map((g: any) => g.displayName)).toEqual(groups.map((g) => g.name));
      for (const g of r.body.Resources) expect(g.members).toBeUndefined();
      if (q.startsWith("attributes")) for (const g of r.body.Resources) expect(Object.keys(g).sort()).toEqual(["displayName", "id", "schemas"]);
      else for (const g of r.body.Resources) expect(g.meta.resourceType).toBe("Group");
    }
  });

  it("projects streamed members like GET /Groups/{id}: attributes=members.value keeps only value and id (RFC 7644 §3.9)", async () => {
    const pages = await allPages("/Groups?count=100&attributes=members.value");
    expect(pages.map((p) => p.body.Resources.length)).toEqual([1, 3, 1]);
    expect(pages.some((p) => p.streamed)).toBe(true);
    const listed = pages.flatMap((p) => p.body.Resources);
    expect(listed.map((g: any) => g.id)).toEqual(groups.map((g) => g.id));
    for (const [i, g] of listed.entries()) {
      expect(Object.keys(g).filter((k) => k !== "members").sort()).toEqual(["id", "schemas"]);
      for (const m of g.members ?? []) expect(Object.keys(m)).toEqual(["value"]);
      expect(sorted(membersOf(g))).toEqual(sorted(groups[i]!.members));
    }
  });

  it("POST /Groups/.search pages and streams the same way as GET /Groups (RFC 7644 §3.4.3)", async () => {
    const pages = await allPages("/Groups/.search", (startIndex) => ({ method: "POST", body: JSON.stringify({ schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], startIndex, count: 100 }) }));
    expect(pages.map((p) => p.body.Resources.length)).toEqual([1, 3, 1]);
    expect(pages[0]!.streamed).toBe(true);
    expectEveryGroupOnce(pages);
    const bare = await list("/Groups/.search", { method: "POST", body: JSON.stringify({ count: 100, excludedAttributes: ["members"] }) });
    expect(bare.body.itemsPerPage).toBe(groups.length);
  });

  it("a query on the service root ends its page at the first group that would pass the budget, after the Users", async () => {
    const r = await list("/.search", { method: "POST", body: JSON.stringify({ startIndex: users.length - 1, count: 100 }) });
    expect(r.body.totalResults).toBe(users.length + groups.length);
    // Two Users, then Everyone (3,000 members) would pass the budget: the page ends before it.
    expect(r.body.Resources.map((x: any) => x.meta.resourceType)).toEqual(["User", "User"]);
    const next = await list("/.search", { method: "POST", body: JSON.stringify({ startIndex: users.length + 1, count: 100 }) });
    expect(next.body.Resources.map((g: any) => g.displayName)).toEqual(["Everyone 0"]);
    expect(next.streamed).toBe(true);
  });

  it("a client that goes away in the middle of a streamed list leaves the server answering", async () => {
    const abort = new AbortController();
    const res = await fetch(`${s.base}/Groups?count=100`, { headers: { Authorization: `Bearer ${s.token}` }, signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.read().catch(() => undefined);
    const after = await s.req("GET", "/Groups?count=1&excludedAttributes=members");
    expect(after.status).toBe(200);
    expect(after.body.totalResults).toBe(groups.length);
  });
});
