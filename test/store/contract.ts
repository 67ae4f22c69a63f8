/**
 * The storage contract suite: every Store implementation (SQLite now, PostgreSQL next) must pass it,
 * and passing it is what proves one. It covers the whole interface (ResourceStore, TokenStore,
 * close): writes with their conditions checked inside the write, uniqueness, search (with the filter,
 * sort and paging suites of contract-filters.ts and contract-filter-fuzz.ts), membership with its
 * page cursors and removal by filter, tokens, the probes (counts kept exact, readiness, commits), and
 * what close and a second store on the database see.
 *
 * Call `storeContract(name, open)` from one test file per engine; `open` makes a new, empty database.
 * Each test of this file gets its own; the filter suites share one, seeded once.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { resolveAttrPath } from "../../src/scim/attributes";
import { preconditionFailed, ScimError } from "../../src/scim/errors";
import { resolveFilter, type ResolvedFilter, type Target } from "../../src/scim/filter";
import type { MemberChange } from "../../src/scim/patch";
import type { Resource } from "../../src/scim/resource";
import { GROUP_RESOURCE, rtOf, USER_RESOURCE, type ResourceKind } from "../../src/scim/schema";
import { TokenNameTaken, type Member, type Store, type StoredResource } from "../../src/store/store";
import { allMembers, scimErrorOf } from "../helpers";
import { filterFuzzContract } from "./contract-filter-fuzz";
import { filterContract } from "./contract-filters";

/** A new, empty database: a store opened on it, and a way to open another store on the same database. */
export interface FreshDatabase {
  store: Store;
  /** Another store on this database (while the first is open, as a token command beside `serve`, or after it closed). */
  reopen: () => Promise<Store>;
}

export type OpenFresh = () => Promise<FreshDatabase>;

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";

const user = (userName: string, extra: Resource = {}): Resource => ({
  schemas: [USER],
  userName,
  displayName: userName.split("@")[0],
  emails: [{ value: userName.includes("@") ? userName : `${userName}@example.com`, type: "work", primary: true }],
  ...extra,
});
const group = (displayName: string, extra: Resource = {}): Resource => ({ schemas: [GROUP], displayName, ...extra });

const tick = () => new Promise((r) => setTimeout(r, 5));

export function storeContract(name: string, open: OpenFresh): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let reopenDb: () => Promise<Store>;
    /** Every store a test opened and has not closed itself: closed after the test. */
    const opened = new Set<Store>();
    let n = 0;
    const id = (p: string) => `${p}-${++n}-${crypto.randomUUID()}`;

    beforeEach(async () => {
      const db = await open();
      store = db.store;
      reopenDb = db.reopen;
      opened.add(store);
    });
    afterEach(async () => {
      for (const s of opened) await s.close();
      opened.clear();
    });

    /** Another store on the test's database, closed after the test. */
    const reopen = async () => {
      const s = await reopenDb();
      opened.add(s);
      return s;
    };
    const closeStore = async (s: Store) => {
      opened.delete(s);
      await s.close();
    };

    const mkUser = async (userName: string, extra: Resource = {}) => store.create("User", { id: id("u"), data: user(userName, extra) });
    const mkGroup = async (displayName: string, members: string[] = []) => store.create("Group", { id: id("g"), data: group(displayName), members });
    const memberIds = async (gid: string) => ((await allMembers(store, gid))).map((m) => m.value);

    describe("create, get, update, delete", () => {
      const kinds: [ResourceKind, (s: string) => Resource, string][] = [
        ["User", (s) => user(s), "userName"],
        ["Group", (s) => group(s), "displayName"],
      ];

      it.each(kinds)("creates a %s at version 1 and get returns the same data, id, created and lastModified", async (kind, body) => {
        const rid = id(kind);
        const data = body(`Created-${kind}`);
        const created = await store.create(kind, { id: rid, data });
        expect(created.id).toBe(rid);
        expect(created.version).toBe(1);
        expect(created.data).toEqual(data);
        expect(Number.isNaN(Date.parse(created.created))).toBe(false);
        expect(created.lastModified).toBe(created.created);
        const got = await store.get(kind, rid);
        expect(got).toEqual(created);
      });

      it.each(kinds)("get returns undefined for an unknown %s id and for an id of the other kind", async (kind, body) => {
        expect(await store.get(kind, "no-such-id")).toBeUndefined();
        const other: ResourceKind = kind === "User" ? "Group" : "User";
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Kind-${kind}`) });
        expect(await store.get(other, rid)).toBeUndefined();
      });

      it.each(kinds)("update of a %s replaces the data, increments version, changes lastModified and keeps created", async (kind, body) => {
        const rid = id(kind);
        const first = await store.create(kind, { id: rid, data: body(`Before-${kind}`) });
        await tick();
        const data = { ...body(`After-${kind}`), externalId: "ext-1" };
        const updated = await store.update(kind, rid, { data });
        expect(updated.version).toBe(2);
        expect(updated.created).toBe(first.created);
        expect(updated.lastModified).not.toBe(first.lastModified);
        expect(Date.parse(updated.lastModified)).toBeGreaterThan(Date.parse(first.lastModified));
        expect(updated.data).toEqual(data);
        expect(await store.get(kind, rid)).toEqual(updated);
        const same = await store.update(kind, rid, { data, expectedVersion: 2 });
        expect(same).toEqual(updated); // nothing changed: same version, same lastModified
        const again = await store.update(kind, rid, { data: { ...data, externalId: "ext-2" }, expectedVersion: 2 });
        expect(again.version).toBe(3);
      });

      it.each(kinds)("delete removes a %s so that get returns undefined", async (kind, body) => {
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Doomed-${kind}`) });
        await store.delete(kind, rid);
        expect(await store.get(kind, rid)).toBeUndefined();
        // The name is free again.
        await store.create(kind, { id: id(kind), data: body(`Doomed-${kind}`) });
      });

      it.each(kinds)("update and delete of an unknown %s id throw 404", async (kind, body) => {
        const e1 = await scimErrorOf(() => store.update(kind, "missing", { data: body("x") }));
        expect(e1.status).toBe(404);
        const e2 = await scimErrorOf(() => store.delete(kind, "missing"));
        expect(e2.status).toBe(404);
      });

      it.each(kinds)("update of a %s with a stale expectedVersion throws 412 and changes nothing (RFC 7644 §3.14)", async (kind, body) => {
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Stale-${kind}`) });
        const v2 = await store.update(kind, rid, { data: body(`Stale2-${kind}`) });
        const e = await scimErrorOf(() => store.update(kind, rid, { data: body(`Stale3-${kind}`), expectedVersion: 1 }));
        expect(e.status).toBe(412);
        expect(await store.get(kind, rid)).toEqual(v2);
      });

      it.each(kinds)("delete of a %s with a stale expectedVersion throws 412 and keeps it (RFC 7644 §3.14)", async (kind, body) => {
        const rid = id(kind);
        const created = await store.create(kind, { id: rid, data: body(`StaleDel-${kind}`) });
        await store.update(kind, rid, { data: { ...body(`StaleDel-${kind}`), externalId: "changed" } });
        const e = await scimErrorOf(() => store.delete(kind, rid, { expectedVersion: created.version }));
        expect(e.status).toBe(412);
        expect(await store.get(kind, rid)).toBeDefined();
        await store.delete(kind, rid, { expectedVersion: 2 });
        expect(await store.get(kind, rid)).toBeUndefined();
      });

      it.each(kinds)("create of a %s whose %s differs only in case throws 409 uniqueness (RFC 7644 §3.3)", async (kind, body) => {
        await store.create(kind, { id: id(kind), data: body("Alice.Smith@Example.com") });
        for (const clash of ["Alice.Smith@Example.com", "alice.smith@example.com", "ALICE.SMITH@EXAMPLE.COM"]) {
          const e = await scimErrorOf(() => store.create(kind, { id: id(kind), data: body(clash) }));
          expect(e.status).toBe(409);
          expect(e.scimType).toBe("uniqueness");
        }
        expect((await store.search(kind, { offset: 0, limit: 10 })).total).toBe(1);
      });

      it.each(kinds)("update of a %s to a %s another one holds (any case) throws 409 uniqueness and changes nothing", async (kind, body) => {
        await store.create(kind, { id: id(kind), data: body("Taken") });
        const rid = id(kind);
        const mine = await store.create(kind, { id: rid, data: body("Mine") });
        const e = await scimErrorOf(() => store.update(kind, rid, { data: body("tAKEN") }));
        expect(e.status).toBe(409);
        expect(e.scimType).toBe("uniqueness");
        expect(await store.get(kind, rid)).toEqual(mine);
        // Changing only the case of one's own name is not a clash.
        const renamed = await store.update(kind, rid, { data: body("MINE") });
        expect(renamed.version).toBe(2);
      });

      it("a User and a Group may share the same name: uniqueness is per resource type", async () => {
        await mkUser("shared");
        await mkGroup("shared");
        expect((await store.search("User", { offset: 0, limit: 10 })).total).toBe(1);
        expect((await store.search("Group", { offset: 0, limit: 10 })).total).toBe(1);
      });
    });

    describe("search", () => {
      const seed = async () => {
        const users = [];
        for (const [i, nm] of ["ann", "bob", "cid", "dee", "eve"].entries()) users.push(await mkUser(`${nm}@example.com`, { active: i % 2 === 0, title: i < 2 ? "Engineer" : "Manager" }));
        return users;
      };

      it("without a filter returns every resource in creation order with the total", async () => {
        const users = await seed();
        const page = await store.search("User", { offset: 0, limit: 100 });
        expect(page.total).toBe(5);
        expect(page.resources.map((r) => r.id)).toEqual(users.map((u) => u.id));
        expect(page.resources[0]).toEqual(users[0]!);
      });

      const filters: [string, string[]][] = [
        ['userName eq "BOB@example.com"', ["bob@example.com"]],
        ['userName sw "c"', ["cid@example.com"]],
        ['title eq "Manager"', ["cid@example.com", "dee@example.com", "eve@example.com"]],
        ["active eq true", ["ann@example.com", "cid@example.com", "eve@example.com"]],
        ['title eq "Engineer" and active eq false', ["bob@example.com"]],
        ['emails.value eq "dee@example.com"', ["dee@example.com"]],
        ['userName eq "nobody"', []],
      ];
      it.each(filters)("with filter %s returns exactly the matching resources (RFC 7644 §3.4.2.2)", async (text, expected) => {
        await seed();
        const page = await store.search("User", { filter: resolveFilter(USER_RESOURCE, text), offset: 0, limit: 100 });
        expect(page.total).toBe(expected.length);
        expect(page.resources.map((r) => r.data.userName).sort()).toEqual(expected);
      });

      it("filters Groups by displayName case-insensitively", async () => {
        await mkGroup("Engineering");
        await mkGroup("Sales");
        const page = await store.search("Group", { filter: resolveFilter(GROUP_RESOURCE, 'displayName eq "engineering"'), offset: 0, limit: 10 });
        expect(page.resources.map((r) => r.data.displayName)).toEqual(["Engineering"]);
      });

      const pages: [number, number, number[]][] = [
        [0, 2, [0, 1]],
        [2, 2, [2, 3]],
        [4, 2, [4]],
        [5, 2, []],
        [10, 2, []],
        [1, 100, [1, 2, 3, 4]],
      ];
      it.each(pages)("offset %d and limit %d return the right slice while total stays the full count (RFC 7644 §3.4.2.4)", async (offset, limit, idx) => {
        const users = await seed();
        const page = await store.search("User", { offset, limit });
        expect(page.total).toBe(5);
        expect(page.resources.map((r) => r.id)).toEqual(idx.map((i) => users[i]!.id));
      });

      // A client's startIndex far past the end: the SCIM layer clamps it to the largest safe integer.
      it.each([2 ** 31, Number.MAX_SAFE_INTEGER - 1])("an offset of %d, past any 32-bit int, is an empty page with the full total", async (offset) => {
        await seed();
        expect(await store.search("User", { offset, limit: 2 })).toEqual({ total: 5, resources: [] });
        expect(await store.search("User", { offset, limit: 2, sortBy: { extension: null, attr: resolveAttrPath(USER_RESOURCE, "userName")!.attr } })).toEqual({ total: 5, resources: [] });
      });

      it("limit 0 returns only the total and no resources (RFC 7644 §3.4.2.4)", async () => {
        await seed();
        const page = await store.search("User", { offset: 0, limit: 0 });
        expect(page).toEqual({ total: 5, resources: [] });
        const filtered = await store.search("User", { filter: resolveFilter(USER_RESOURCE, "active eq true"), offset: 0, limit: 0 });
        expect(filtered).toEqual({ total: 3, resources: [] });
      });

      it("does not find a deleted resource and sees an updated one by its new values", async () => {
        const users = await seed();
        await store.delete("User", users[0]!.id);
        await store.update("User", users[1]!.id, { data: user("robert@example.com", { title: "Director" }) });
        const all = await store.search("User", { offset: 0, limit: 100 });
        expect(all.total).toBe(4);
        expect(all.resources.some((r) => r.id === users[0]!.id)).toBe(false);
        const old = await store.search("User", { filter: resolveFilter(USER_RESOURCE, 'userName eq "bob@example.com"'), offset: 0, limit: 10 });
        expect(old.total).toBe(0);
        const fresh = await store.search("User", { filter: resolveFilter(USER_RESOURCE, 'title eq "Director"'), offset: 0, limit: 10 });
        expect(fresh.resources.map((r) => r.id)).toEqual([users[1]!.id]);
      });
    });

    describe("group membership", () => {
      it("members are returned Users first, each kind in creation order, whatever the order they were added in (memberPage)", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const c = await mkUser("c@example.com");
        const g = await mkGroup("Order", [c.id, a.id]);
        await store.update("Group", g.id, { data: group("Order"), memberChanges: [{ kind: "add", ids: [b.id] }] });
        expect(await memberIds(g.id)).toEqual([a.id, b.id, c.id]);
      });

      it("create with members stores each with its type and display; memberPage and groupsOf agree", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const inner = await mkGroup("Inner");
        const g = await mkGroup("Outer", [b.id, inner.id, a.id]);
        const byId = (x: { value: string }, y: { value: string }) => x.value.localeCompare(y.value);
        expect(((await allMembers(store, g.id))).sort(byId)).toEqual(
          [
            { value: b.id, type: "User", display: "b" },
            { value: inner.id, type: "Group", display: "Inner" },
            { value: a.id, type: "User", display: "a" },
          ].sort(byId) as Member[],
        );
        expect((await allMembers(store, g.id)).length).toBe(3);
        expect(await store.groupsOf(a.id)).toEqual([{ value: g.id, display: "Outer" }]);
        expect(await store.groupsOf(inner.id)).toEqual([{ value: g.id, display: "Outer" }]);
        expect((await allMembers(store, inner.id)).length).toBe(0);
        expect((await allMembers(store, inner.id))).toEqual([]);
      });

      it("memberCount counts direct members (Users and Groups) up to atMost, and 0 for an unknown or empty group", async () => {
        const users = [await mkUser("a@example.com"), await mkUser("b@example.com"), await mkUser("c@example.com")];
        const inner = await mkGroup("Inner", [users[0]!.id]);
        const g = await mkGroup("Counted", [...users.map((u) => u.id), inner.id]);
        for (const [atMost, expected] of [[0, 0], [1, 1], [3, 3], [4, 4], [5, 4], [1_000_000, 4]] as const) expect(await store.memberCount(g.id, atMost)).toBe(expected);
        expect(await store.memberCount(inner.id, 10)).toBe(1);
        expect(await store.memberCount((await mkGroup("Empty")).id, 10)).toBe(0);
        expect(await store.memberCount("no-such-group", 10)).toBe(0);
        await store.update("Group", g.id, { data: group("Counted"), memberChanges: [{ kind: "remove", ids: [users[1]!.id] }] });
        expect(await store.memberCount(g.id, 10)).toBe(3);
      });

      it("groupsOf lists every group a member is directly in", async () => {
        const a = await mkUser("a@example.com");
        const g1 = await mkGroup("G1", [a.id]);
        const g2 = await mkGroup("G2", [a.id]);
        await mkGroup("G3");
        expect((await store.groupsOf(a.id)).map((g) => g.value).sort()).toEqual([g1.id, g2.id].sort());
        expect(await store.groupsOf("unknown")).toEqual([]);
      });

      it("a User's groups are the same, in group creation order, however the User is read", async () => {
        const users = [];
        for (let i = 0; i < 6; i++) users.push(await mkUser(`reader${i}@example.com`, { title: "T", displayName: `Reader ${5 - i}` }));
        const [a, b] = users;
        // Created in this order; a joins them out of order.
        const g = [await mkGroup("G0"), await mkGroup("G1"), await mkGroup("G2"), await mkGroup("G3")];
        for (const k of [2, 0, 3]) await store.update("Group", g[k]!.id, { data: group(`G${k}`), memberChanges: [{ kind: "add", ids: [a!.id] }] });
        await store.update("Group", g[1]!.id, { data: group("G1"), memberChanges: [{ kind: "add", ids: [b!.id] }] });
        const expectedA = [g[0]!, g[2]!, g[3]!].map((x) => ({ value: x.id, display: x.data.displayName as string }));
        const expectedB = [{ value: g[1]!.id, display: "G1" }];
        const pick = (rs: { id: string; groups?: unknown }[], u: { id: string }) => rs.find((r) => r.id === u.id)?.groups;
        expect((await store.get("User", a!.id))!.groups).toEqual(expectedA);
        const searches = [
          { filter: resolveFilter(USER_RESOURCE, `userName eq "${a!.data.userName}"`) },
          {},
          { sortBy: { extension: null, attr: USER_RESOURCE.schema.attributes.find((x) => x.name === "displayName")! } },
          { sortBy: { extension: null, attr: USER_RESOURCE.schema.attributes.find((x) => x.name === "displayName")! }, descending: true },
          { filter: resolveFilter(USER_RESOURCE, 'title eq "T"') },
          { filter: resolveFilter(USER_RESOURCE, 'displayName sw "Reader"') },
        ];
        for (const q of searches) {
          const page = await store.search("User", { offset: 0, limit: 100, ...q });
          const withA = pick(page.resources, a!);
          expect(withA).toEqual(expectedA);
          if (!q.filter || page.resources.some((r) => r.id === b!.id)) expect(pick(page.resources, b!)).toEqual(expectedB);
          for (const r of page.resources) if (r.id !== a!.id && r.id !== b!.id) expect(r.groups).toEqual([]);
        }
      });

      it("the same member given twice is stored once", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("Dup", [a.id, a.id]);
        expect(await memberIds(g.id)).toEqual([a.id]);
      });

      it("memberChanges add, remove, removeAll and replace are applied in order within one update (RFC 7644 §3.5.2)", async () => {
        const [a, b, c, d] = await Promise.all(["a", "b", "c", "d"].map((x) => mkUser(`${x}@example.com`)));
        const g = await mkGroup("Ordered", [a!.id]);
        const cases: [MemberChange[], string[]][] = [
          [[{ kind: "add", ids: [b!.id, c!.id] }], [a!.id, b!.id, c!.id]],
          [[{ kind: "remove", ids: [b!.id, "not-a-member"] }], [a!.id, c!.id]],
          [[{ kind: "removeAll" }, { kind: "add", ids: [d!.id] }], [d!.id]],
          [[{ kind: "add", ids: [a!.id] }, { kind: "remove", ids: [a!.id] }], [d!.id]],
          [[{ kind: "remove", ids: [d!.id] }, { kind: "add", ids: [d!.id, b!.id] }], [d!.id, b!.id]],
          [[{ kind: "replace", ids: [c!.id, a!.id] }], [c!.id, a!.id]],
          [[{ kind: "replace", ids: [b!.id] }, { kind: "add", ids: [c!.id] }, { kind: "remove", ids: [b!.id] }], [c!.id]],
          [[{ kind: "removeAll" }], []],
        ];
        let version = 1;
        for (const [changes, expected] of cases) {
          const r = await store.update("Group", g.id, { data: group("Ordered"), memberChanges: changes, expectedVersion: version });
          version = r.version;
          expect({ changes, members: (await memberIds(g.id)).sort() }).toEqual({ changes, members: [...expected].sort() });
          expect((await allMembers(store, g.id)).length).toBe(expected.length);
        }
      });

      it("update with members replaces the whole membership (PUT, RFC 7644 §3.5.1)", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const g = await mkGroup("Put", [a.id]);
        await store.update("Group", g.id, { data: group("Put"), members: [b.id] });
        expect(await memberIds(g.id)).toEqual([b.id]);
        await store.update("Group", g.id, { data: group("Put"), members: [] });
        expect(await memberIds(g.id)).toEqual([]);
      });

      it("update without members or memberChanges leaves the membership as it is", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("Keep", [a.id]);
        await store.update("Group", g.id, { data: group("Kept") });
        expect(await memberIds(g.id)).toEqual([a.id]);
      });

      it("create with an unknown member id throws 400 invalidValue and creates nothing", async () => {
        const a = await mkUser("a@example.com");
        const gid = id("g");
        const e = await scimErrorOf(() => store.create("Group", { id: gid, data: group("Bad"), members: [a.id, "no-such-member"] }));
        expect(e.status).toBe(400);
        expect(e.scimType).toBe("invalidValue");
        expect(e.message).toContain("no-such-member");
        expect(await store.get("Group", gid)).toBeUndefined();
        expect(await store.groupsOf(a.id)).toEqual([]);
        // The name was not taken by the failed create.
        await store.create("Group", { id: gid, data: group("Bad") });
      });

      it("an update adding an unknown member id throws 400 invalidValue and changes nothing: data, version, members (atomic)", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const g = await mkGroup("Atomic", [a.id]);
        const before = await store.get("Group", g.id);
        const e = await scimErrorOf(() =>
          store.update("Group", g.id, {
            data: group("Atomic renamed"),
            memberChanges: [{ kind: "removeAll" }, { kind: "add", ids: [b.id] }, { kind: "add", ids: ["ghost"] }],
          }),
        );
        expect(e.status).toBe(400);
        expect(e.scimType).toBe("invalidValue");
        expect(await store.get("Group", g.id)).toEqual(before);
        expect(await memberIds(g.id)).toEqual([a.id]);
        const e2 = await scimErrorOf(() => store.update("Group", g.id, { data: group("Atomic"), members: [b.id, "ghost"] }));
        expect(e2.status).toBe(400);
        expect(await memberIds(g.id)).toEqual([a.id]);
      });

      it("a group cannot contain itself: create, add and replace are refused with 400 invalidValue", async () => {
        const gid = id("g");
        const e1 = await scimErrorOf(() => store.create("Group", { id: gid, data: group("Self"), members: [gid] }));
        expect(e1.status).toBe(400);
        expect(e1.scimType).toBe("invalidValue");
        expect(await store.get("Group", gid)).toBeUndefined();
        await store.create("Group", { id: gid, data: group("Self") });
        for (const changes of [[{ kind: "add", ids: [gid] }], [{ kind: "replace", ids: [gid] }]] as MemberChange[][]) {
          const e = await scimErrorOf(() => store.update("Group", gid, { data: group("Self"), memberChanges: changes }));
          expect(e.status).toBe(400);
          expect(e.scimType).toBe("invalidValue");
        }
        expect((await allMembers(store, gid)).length).toBe(0);
        expect((await store.get("Group", gid))!.version).toBe(1);
      });

      it("deleting a User removes it from every group and bumps those groups' version", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const g1 = await mkGroup("G1", [a.id, b.id]);
        const g2 = await mkGroup("G2", [a.id]);
        const g3 = await mkGroup("G3", [b.id]);
        await store.delete("User", a.id);
        expect(await memberIds(g1.id)).toEqual([b.id]);
        expect(await memberIds(g2.id)).toEqual([]);
        expect(await store.groupsOf(a.id)).toEqual([]);
        expect((await store.get("Group", g1.id))!.version).toBe(2);
        expect((await store.get("Group", g2.id))!.version).toBe(2);
        expect((await store.get("Group", g3.id))!.version).toBe(1);
        // The deleted id cannot be added back.
        const e = await scimErrorOf(() => store.update("Group", g2.id, { data: group("G2"), memberChanges: [{ kind: "add", ids: [a.id] }] }));
        expect(e.status).toBe(400);
      });

      it("deleting a Group removes it from its parent groups and drops its own membership", async () => {
        const a = await mkUser("a@example.com");
        const inner = await mkGroup("Inner", [a.id]);
        const outer = await mkGroup("Outer", [inner.id, a.id]);
        await store.delete("Group", inner.id);
        expect(await memberIds(outer.id)).toEqual([a.id]);
        expect(await store.groupsOf(a.id)).toEqual([{ value: outer.id, display: "Outer" }]);
        expect((await allMembers(store, inner.id)).length).toBe(0);
      });

      it("a member's display follows its current displayName", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("Display", [a.id]);
        await store.update("User", a.id, { data: user("a@example.com", { displayName: "Alice A." }) });
        expect((await allMembers(store, g.id))).toEqual([{ value: a.id, type: "User", display: "Alice A." }]);
        await store.update("Group", g.id, { data: group("Display 2") });
        expect(await store.groupsOf(a.id)).toEqual([{ value: g.id, display: "Display 2" }]);
      });
    });

    describe("tokens", () => {
      it("createToken returns a record that findToken finds by hash and listTokens lists", async () => {
        expect(await store.tokenCount()).toBe(0);
        expect(await store.listTokens()).toEqual([]);
        const rec = await store.createToken("okta", "hash-okta");
        expect(rec.name).toBe("okta");
        expect(rec.id).toBeTruthy();
        expect(rec.lastUsed).toBeNull();
        expect(Number.isNaN(Date.parse(rec.created))).toBe(false);
        const found = await store.findToken("hash-okta");
        expect(found?.id).toBe(rec.id);
        expect(found?.name).toBe("okta");
        expect(await store.findToken("hash-other")).toBeUndefined();
        const list = await store.listTokens();
        expect(list.map((t) => [t.id, t.name])).toEqual([[rec.id, "okta"]]);
        expect(JSON.stringify(list)).not.toContain("hash-okta");
        expect(await store.tokenCount()).toBe(1);
      });

      it("findToken records the token's last use", async () => {
        const rec = await store.createToken("entra", "hash-entra");
        await store.findToken("hash-entra");
        const [listed] = await store.listTokens();
        expect(listed!.id).toBe(rec.id);
        expect(listed!.lastUsed).not.toBeNull();
        expect(Date.parse(listed!.lastUsed!)).toBeGreaterThanOrEqual(Date.parse(rec.created));
      });

      it("createToken refuses a name some token already has and stores nothing", async () => {
        const first = await store.createToken("okta", "h1");
        let caught: unknown;
        try {
          await store.createToken("okta", "h2");
        } catch (e) {
          caught = e;
        }
        expect(caught).toBeInstanceOf(TokenNameTaken);
        expect((caught as TokenNameTaken).tokenName).toBe("okta");
        expect(await store.findToken("h2")).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual([first.id]);
        // Another name is fine.
        expect((await store.createToken("entra", "h3")).name).toBe("entra");
      });

      it("rotateToken gives the name a new current secret and keeps the old one accepted for the grace period", async () => {
        const old = await store.createToken("okta", "h-old");
        const before = Date.now();
        const r = await store.rotateToken("okta", "h-new", 60 * 60_000);
        expect(r).toBeDefined();
        expect(r!.token).toMatchObject({ name: "okta", expires: null, lastUsed: null });
        expect(r!.retiring.map((t) => t.id)).toEqual([old.id]);
        const until = Date.parse(r!.retiring[0]!.expires!);
        expect(until).toBeGreaterThanOrEqual(before + 60 * 60_000);
        expect(until).toBeLessThanOrEqual(Date.now() + 60 * 60_000);
        expect((await store.findToken("h-old"))?.id).toBe(old.id);
        expect((await store.findToken("h-new"))?.id).toBe(r!.token.id);
        const listed = await store.listTokens();
        expect(listed.map((t) => [t.id, t.name, t.expires === null])).toEqual([
          [old.id, "okta", false],
          [r!.token.id, "okta", true],
        ]);
        expect(await store.tokenCount()).toBe(2);
        // The name is still taken for createToken.
        await expect(store.createToken("okta", "h-third")).rejects.toBeInstanceOf(TokenNameTaken);
      });

      it("rotateToken with a grace of 0 refuses the old secret at once; an expired secret is listed but not found or counted", async () => {
        await store.createToken("okta", "h-old");
        const r = await store.rotateToken("okta", "h-new", 0);
        expect(await store.findToken("h-old")).toBeUndefined();
        expect((await store.findToken("h-new"))?.id).toBe(r!.token.id);
        expect(r!.retiring).toEqual([]);
        expect(await store.tokenCount()).toBe(1);
        const listed = await store.listTokens();
        expect(listed).toHaveLength(2);
        expect(Date.parse(listed[0]!.expires!)).toBeLessThanOrEqual(Date.now());
      });

      it("a rotated-out secret is refused once its grace period has passed", async () => {
        await store.createToken("okta", "h-old");
        await store.rotateToken("okta", "h-new", 40);
        expect(await store.findToken("h-old")).toBeDefined();
        await Bun.sleep(60);
        expect(await store.findToken("h-old")).toBeUndefined();
        expect(await store.findToken("h-new")).toBeDefined();
      });

      it("a second rotation ends every older secret at the new grace period at the latest, never later than it already ended", async () => {
        const a = await store.createToken("okta", "h-a");
        const b = (await store.rotateToken("okta", "h-b", 60 * 60_000))!.token;
        const second = await store.rotateToken("okta", "h-c", 60_000);
        expect(second!.retiring.map((t) => t.id).sort()).toEqual([a.id, b.id].sort());
        for (const t of second!.retiring) expect(Date.parse(t.expires!)).toBeLessThanOrEqual(Date.now() + 60_000);
        const third = await store.rotateToken("okta", "h-d", 24 * 60 * 60_000);
        for (const t of third!.retiring.filter((t) => t.id !== second!.token.id)) expect(Date.parse(t.expires!)).toBeLessThanOrEqual(Date.now() + 60_000);
        expect(await store.findToken("h-a")).toBeDefined();
      });

      it("rotateToken of a name no token has returns undefined and stores nothing", async () => {
        expect(await store.rotateToken("nobody", "h", 60_000)).toBeUndefined();
        expect(await store.findToken("h")).toBeUndefined();
        expect(await store.listTokens()).toEqual([]);
      });

      it("revokeToken revokes one secret by id or every secret of a name, returns how many, and they are no longer found or counted", async () => {
        const a = await store.createToken("okta", "h1");
        const b = (await store.rotateToken("okta", "h2", 60_000))!.token;
        const c = await store.createToken("entra", "h3");
        expect(await store.tokenCount()).toBe(3);
        expect(await store.revokeToken("nobody")).toBe(0);
        expect(await store.revokeToken(c.id)).toBe(1);
        expect(await store.findToken("h3")).toBeUndefined();
        expect(await store.revokeToken(a.id)).toBe(1);
        expect(await store.findToken("h1")).toBeUndefined();
        expect((await store.findToken("h2"))?.id).toBe(b.id);
        expect(await store.tokenCount()).toBe(1);
        await store.rotateToken("okta", "h4", 60_000);
        // The name takes its secrets not revoked yet: the rotated-out h2 and the current h4.
        expect(await store.revokeToken("okta")).toBe(2);
        expect(await store.findToken("h2")).toBeUndefined();
        expect(await store.findToken("h4")).toBeUndefined();
        expect(await store.tokenCount()).toBe(0);
        // Revoking again revokes nothing.
        expect(await store.revokeToken(a.id)).toBe(0);
        expect(await store.revokeToken("okta")).toBe(0);
      });

      it("a revoked secret is kept: listTokens lists it with when it was revoked, and it is never found again", async () => {
        const a = await store.createToken("okta", "h-a");
        const b = (await store.rotateToken("okta", "h-b", 60 * 60_000))!.token;
        const live = await store.createToken("entra", "h-live");
        const before = Date.now();
        await store.revokeToken("okta");
        const after = Date.now();
        const listed = await store.listTokens();
        expect(listed.map((t) => t.id)).toEqual([a.id, b.id, live.id]);
        const revoked = listed.filter((t) => t.revoked !== undefined);
        expect(revoked.map((t) => t.id)).toEqual([a.id, b.id]);
        // Every secret of the name revoked at one instant, the rotated-out one too.
        expect(revoked[0]!.revoked).toBe(revoked[1]!.revoked!);
        const at = Date.parse(revoked[0]!.revoked!);
        expect(at).toBeGreaterThanOrEqual(before - 1);
        expect(at).toBeLessThanOrEqual(after + 1);
        // Names and creation times are as they were; a revoked secret's `expires` ends at its revocation
        // (so that an older scimd, which knows no `revoked`, refuses it too); the live token carries no `revoked`.
        expect(listed[1]).toMatchObject({ name: "okta", created: b.created, expires: revoked[1]!.revoked! });
        expect("revoked" in listed[2]!).toBe(false);
        expect(JSON.stringify(listed)).not.toContain("h-a");
        // Another store on the database (a server beside the token command) refuses them too.
        const other = await reopen();
        expect(await other.findToken("h-a")).toBeUndefined();
        expect(await other.findToken("h-b")).toBeUndefined();
        expect((await other.findToken("h-live"))?.id).toBe(live.id);
        expect(await other.tokenCount()).toBe(1);
      });

      it("refusal says why a secret is refused: revoked (current or rotated-out), expired, or no such token", async () => {
        await store.createToken("okta", "h-old");
        await store.rotateToken("okta", "h-cur", 60 * 60_000);
        await store.createToken("entra", "h-e1");
        await store.rotateToken("entra", "h-e2", 0);
        expect((await store.refusal("h-never")).reason).toBe("no such token");
        expect((await store.refusal("h-e1")).reason).toBe("expired");
        await store.revokeToken("okta");
        expect((await store.refusal("h-cur")).reason).toBe("revoked");
        expect((await store.refusal("h-old")).reason).toBe("revoked");
        // Revoked wins over expired: the expired secret of a revoked token was revoked.
        await store.revokeToken("entra");
        expect((await store.refusal("h-e1")).reason).toBe("revoked");
        expect((await store.refusal("h-e2")).reason).toBe("revoked");
        // One secret revoked by id.
        await store.createToken("one", "h-one");
        const r = await store.rotateToken("one", "h-two", 60 * 60_000);
        await store.revokeToken(r!.retiring[0]!.id);
        expect((await store.refusal("h-one")).reason).toBe("revoked");
        expect((await store.findToken("h-two"))?.name).toBe("one");
      });

      it("a revoked token's name is free for createToken; the revoked secrets stay listed beside the new one, and revoking the name again takes only the new one", async () => {
        const old = await store.createToken("okta", "h-old");
        await store.revokeToken("okta");
        const fresh = await store.createToken("okta", "h-new");
        expect(fresh.name).toBe("okta");
        expect((await store.findToken("h-new"))?.id).toBe(fresh.id);
        expect(await store.findToken("h-old")).toBeUndefined();
        expect((await store.refusal("h-old")).reason).toBe("revoked");
        expect(await store.tokenCount()).toBe(1);
        const listed = await store.listTokens();
        expect(listed.map((t) => [t.id, t.name, t.revoked !== undefined])).toEqual([
          [old.id, "okta", true],
          [fresh.id, "okta", false],
        ]);
        // The new token's name is taken again, and rotating it rotates the new one only.
        await expect(store.createToken("okta", "h-third")).rejects.toBeInstanceOf(TokenNameTaken);
        const r = await store.rotateToken("okta", "h-rot", 60_000);
        expect(r!.retiring.map((t) => t.id)).toEqual([fresh.id]);
        const revokedAt = (await store.listTokens())[0]!.revoked;
        expect(await store.revokeToken("okta")).toBe(2);
        // The old secret keeps the time it was revoked first.
        expect((await store.listTokens())[0]!.revoked).toBe(revokedAt!);
        expect(await store.tokenCount()).toBe(0);
      });

      it("rotateToken of a revoked token returns undefined and stores nothing: it is not brought back", async () => {
        const old = await store.createToken("okta", "h-old");
        await store.revokeToken("okta");
        const before = await store.listTokens();
        expect(await store.rotateToken("okta", "h-new", 60_000)).toBeUndefined();
        expect(await store.findToken("h-new")).toBeUndefined();
        expect(await store.findToken("h-old")).toBeUndefined();
        expect(await store.listTokens()).toEqual(before);
        expect(before.map((t) => t.id)).toEqual([old.id]);
        expect(await store.tokenCount()).toBe(0);
      });

      it("revoking a name's current secret by id leaves its rotated-out secret accepted, and a rotation then gives the name a current secret again", async () => {
        const a = await store.createToken("okta", "h-a");
        const b = (await store.rotateToken("okta", "h-b", 60 * 60_000))!.token;
        expect(await store.revokeToken(b.id)).toBe(1);
        expect((await store.findToken("h-a"))?.id).toBe(a.id);
        // The name is still held by its rotated-out secret.
        await expect(store.createToken("okta", "h-x")).rejects.toBeInstanceOf(TokenNameTaken);
        const r = await store.rotateToken("okta", "h-c", 0);
        expect(r!.token.name).toBe("okta");
        expect(r!.retiring).toEqual([]);
        expect(await store.findToken("h-a")).toBeUndefined();
        expect((await store.refusal("h-a")).reason).toBe("expired");
        expect((await store.refusal("h-b")).reason).toBe("revoked");
        // The revoked secret was not touched by the rotation: it still ends where it was revoked.
        const kept = (await store.listTokens()).find((t) => t.id === b.id)!;
        expect(kept.expires).toBe(kept.revoked!);
      });
    });

    describe("conditions checked inside the write (RFC 7644 §3.14)", () => {
      const kinds: [ResourceKind, (s: string, extra?: Resource) => Resource][] = [
        ["User", (s, extra) => user(s, extra)],
        ["Group", (s, extra) => group(s, extra)],
      ];

      it("a precondition is checked inside the write, against the current row and a User's groups", async () => {
        await store.create("User", { id: "pu", data: { userName: "pu@example.com" } });
        await store.create("Group", { id: "pg", data: { displayName: "PG" }, members: ["pu"] });
        let seen: unknown;
        const refused = await store
          .update("User", "pu", { data: { userName: "pu2@example.com" }, precondition: (cur) => { seen = cur.groups; throw new Error("refused"); } })
          .catch((x: unknown) => x);
        expect((refused as Error).message).toBe("refused");
        expect(seen).toEqual([{ value: "pg", display: "PG" }]);
        expect((await store.get("User", "pu"))!.data.userName).toBe("pu@example.com");
        const e = await store.delete("User", "pu", { precondition: () => { throw new Error("no"); } }).catch((x: unknown) => x);
        expect((e as Error).message).toBe("no");
        expect(await store.get("User", "pu")).toBeDefined();
      });

      it.each(kinds)("a %s update's precondition sees the resource as the write finds it, after a write queued just before it", async (kind, body) => {
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Queued-${kind}`) });
        let seen: StoredResource | undefined;
        const first = store.update(kind, rid, { data: body(`Queued-${kind}`, { externalId: "first" }) });
        const second = store.update(kind, rid, { data: body(`Queued-${kind}`, { externalId: "second" }), precondition: (cur) => void (seen = cur) });
        await Promise.all([first, second]);
        expect(seen?.version).toBe(2);
        expect(seen?.data.externalId).toBe("first");
        const stored = await store.get(kind, rid);
        expect(stored?.version).toBe(3);
        expect(stored?.data.externalId).toBe("second");
      });

      it.each(kinds)("a %s update refused by its precondition stores nothing (data, version, name, members) and the error comes out as thrown", async (kind, body) => {
        const a = await mkUser("member-a@example.com");
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Refused-${kind}`) });
        const before = await store.get(kind, rid);
        const thrown = preconditionFailed("the resource has changed");
        const caught = await store
          .update(kind, rid, {
            data: body(`Renamed-${kind}`, { externalId: "never" }),
            ...(kind === "Group" ? { memberChanges: [{ kind: "add", ids: [a.id] }] as MemberChange[] } : {}),
            precondition: () => {
              throw thrown;
            },
          })
          .catch((x: unknown) => x);
        expect(caught).toBe(thrown);
        expect(await store.get(kind, rid)).toEqual(before);
        expect(await store.groupsOf(a.id)).toEqual([]);
        // The name the refused write asked for was not taken.
        await store.create(kind, { id: id(kind), data: body(`Renamed-${kind}`) });
      });

      it.each(kinds)("a %s delete refused by its precondition keeps it, its place in its groups and those groups' versions", async (kind, body) => {
        const rid = id(kind);
        const created = await store.create(kind, { id: rid, data: body(`Kept-${kind}`) });
        const parent = await mkGroup(`Parent-${kind}`, [rid]);
        let seen: StoredResource | undefined;
        const caught = await store
          .delete(kind, rid, {
            precondition: (cur) => {
              seen = cur;
              throw preconditionFailed("no");
            },
          })
          .catch((x: unknown) => x);
        expect((caught as ScimError).status).toBe(412);
        expect(seen?.version).toBe(created.version);
        expect(seen?.data).toEqual(created.data);
        if (kind === "User") expect(seen?.groups).toEqual([{ value: parent.id, display: `Parent-${kind}` }]);
        expect(await store.get(kind, rid)).toBeDefined();
        expect(await memberIds(parent.id)).toEqual([rid]);
        expect((await store.get("Group", parent.id))!.version).toBe(parent.version);
      });

      it.each(kinds)("a %s precondition that passes lets the update and then the delete happen", async (kind, body) => {
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Passes-${kind}`) });
        const versions: number[] = [];
        const updated = await store.update(kind, rid, { data: body(`Passes-${kind}`, { externalId: "x" }), precondition: (cur) => void versions.push(cur.version) });
        expect(updated.version).toBe(2);
        await store.delete(kind, rid, { precondition: (cur) => void versions.push(cur.version) });
        expect(versions).toEqual([1, 2]);
        expect(await store.get(kind, rid)).toBeUndefined();
      });

      it.each(kinds)("of two %s updates sent together with the same expectedVersion, one is stored and the other gets 412", async (kind, body) => {
        const rid = id(kind);
        await store.create(kind, { id: rid, data: body(`Race-${kind}`) });
        const results = await Promise.allSettled(
          ["one", "two"].map((x) => store.update(kind, rid, { data: body(`Race-${kind}`, { externalId: x }), expectedVersion: 1 })),
        );
        const won = results.filter((r): r is PromiseFulfilledResult<StoredResource> => r.status === "fulfilled");
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect((lost[0]!.reason as ScimError).status).toBe(412);
        expect(await store.get(kind, rid)).toEqual(won[0]!.value);
        expect(won[0]!.value.version).toBe(2);
      });

      it("a Group update with a stale expectedVersion changes none of its members", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("Stale members");
        await store.update("Group", g.id, { data: group("Stale members", { externalId: "v2" }) });
        const e = await scimErrorOf(() => store.update("Group", g.id, { data: group("Stale members"), memberChanges: [{ kind: "add", ids: [a.id] }], expectedVersion: 1 }));
        expect(e.status).toBe(412);
        expect(await memberIds(g.id)).toEqual([]);
        const e2 = await scimErrorOf(() => store.delete("Group", g.id, { expectedVersion: 1 }));
        expect(e2.status).toBe(412);
        expect(await store.get("Group", g.id)).toBeDefined();
      });
    });

    describe("uniqueness (RFC 7644 §3.3, §3.5.1)", () => {
      const kinds: [ResourceKind, (s: string) => Resource][] = [
        ["User", (s) => user(s)],
        ["Group", (s) => group(s)],
      ];

      it.each(kinds)("of two creates of one %s name sent together, one is stored and the other gets 409 uniqueness", async (kind, body) => {
        const results = await Promise.allSettled([store.create(kind, { id: id(kind), data: body("Twin") }), store.create(kind, { id: id(kind), data: body("TWIN") })]);
        expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
        const lost = results.find((r): r is PromiseRejectedResult => r.status === "rejected")!;
        expect((lost.reason as ScimError).status).toBe(409);
        expect((lost.reason as ScimError).scimType).toBe("uniqueness");
        expect((await store.search(kind, { offset: 0, limit: 10 })).total).toBe(1);
      });

      it("a Group rename refused with 409 adds none of the members the same update asked for", async () => {
        const a = await mkUser("a@example.com");
        await mkGroup("Taken");
        const g = await mkGroup("Mine");
        const e = await scimErrorOf(() => store.update("Group", g.id, { data: group("taken"), memberChanges: [{ kind: "add", ids: [a.id] }] }));
        expect(e.status).toBe(409);
        expect(await memberIds(g.id)).toEqual([]);
        expect(await store.get("Group", g.id)).toEqual(g);
      });

      it("a create refused with 409 among writes sent together leaves the others stored", async () => {
        await mkUser("taken@example.com");
        const results = await Promise.allSettled([
          store.create("User", { id: id("u"), data: user("first@example.com") }),
          store.create("User", { id: id("u"), data: user("TAKEN@example.com") }),
          store.create("Group", { id: id("g"), data: group("Together") }),
        ]);
        expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
        expect((await store.search("User", { offset: 0, limit: 10 })).total).toBe(2);
        expect((await store.search("Group", { offset: 0, limit: 10 })).total).toBe(1);
      });
    });

    describe("search: sortBy and pages", () => {
      const sortBy = (kind: ResourceKind, path: string): Target => {
        const r = resolveAttrPath(rtOf(kind), path);
        if (!r) throw new Error(`bad sort path ${path}`);
        return { extension: r.extension, attr: r.attr, sub: r.sub };
      };

      it("sorts ascending case-insensitively with ties in creation order and unassigned values last; descending is the exact reverse (RFC 7644 §3.4.2.3)", async () => {
        const zed = await mkUser("zed@example.com", { title: "analyst" });
        const amy = await mkUser("amy@example.com");
        const kim = await mkUser("kim@example.com", { title: "Director" });
        const lee = await mkUser("lee@example.com", { title: "ANALYST" });
        const asc = await store.search("User", { sortBy: sortBy("User", "title"), offset: 0, limit: 10 });
        expect(asc.resources.map((r) => r.id)).toEqual([zed.id, lee.id, kim.id, amy.id]);
        const desc = await store.search("User", { sortBy: sortBy("User", "title"), descending: true, offset: 0, limit: 10 });
        expect(desc.resources.map((r) => r.id)).toEqual([amy.id, kim.id, lee.id, zed.id]);
        const byName = await store.search("User", { sortBy: sortBy("User", "userName"), offset: 0, limit: 10 });
        expect(byName.resources.map((r) => r.id)).toEqual([amy.id, kim.id, lee.id, zed.id]);
      });

      it("sorts Groups by displayName case-insensitively, and pages the sorted order with the full total", async () => {
        const names = ["delta", "Alpha", "charlie", "Bravo", "echo"];
        const byName = new Map<string, string>();
        for (const nm of names) byName.set(nm, (await mkGroup(nm)).id);
        const order = ["Alpha", "Bravo", "charlie", "delta", "echo"].map((nm) => byName.get(nm)!);
        const all = await store.search("Group", { sortBy: sortBy("Group", "displayName"), offset: 0, limit: 10 });
        expect(all.resources.map((r) => r.id)).toEqual(order);
        for (const [offset, limit] of [[0, 2], [2, 2], [4, 2], [1, 3], [5, 2]] as const) {
          const page = await store.search("Group", { sortBy: sortBy("Group", "displayName"), offset, limit });
          expect({ offset, limit, total: page.total, ids: page.resources.map((r) => r.id) }).toEqual({ offset, limit, total: 5, ids: order.slice(offset, offset + limit) });
        }
        const desc = await store.search("Group", { sortBy: sortBy("Group", "displayName"), descending: true, offset: 1, limit: 2 });
        expect(desc.resources.map((r) => r.id)).toEqual([order[3]!, order[2]!]);
        expect(desc.total).toBe(5);
      });

      it("a filtered page past the first counts every match in total, and a page past the last match is empty with the same total (RFC 7644 §3.4.2.4)", async () => {
        const users = [];
        for (const nm of ["p1", "p2", "p3", "p4"]) users.push(await mkUser(`${nm}@example.com`, { title: nm === "p4" ? "Other" : "Pager" }));
        const f = resolveFilter(USER_RESOURCE, 'title eq "pager"');
        expect(await store.search("User", { filter: f, offset: 1, limit: 1 })).toMatchObject({ total: 3, resources: [{ id: users[1]!.id }] });
        expect(await store.search("User", { filter: f, offset: 2, limit: 5 })).toMatchObject({ total: 3, resources: [{ id: users[2]!.id }] });
        expect(await store.search("User", { filter: f, offset: 3, limit: 5 })).toEqual({ total: 3, resources: [] });
      });

      it("a lookup by a unique key (id, userName, a Group's displayName) pages as any search: the match on the first page, none past it, the total either way", async () => {
        const [, bob] = [await mkUser("ann@example.com"), await mkUser("bob@example.com")];
        const g = await mkGroup("Unique");
        await mkGroup("Other");
        const cases: [ResourceKind, string, string][] = [
          ["User", 'userName eq "BOB@example.com"', bob!.id],
          ["User", `id eq "${bob!.id}"`, bob!.id],
          ["Group", 'displayName eq "unique"', g.id],
          ["Group", `id eq "${g.id}"`, g.id],
        ];
        for (const [kind, text, want] of cases) {
          const f = resolveFilter(rtOf(kind), text);
          expect({ text, page: await store.search(kind, { filter: f, offset: 0, limit: 10 }) }).toMatchObject({ text, page: { total: 1, resources: [{ id: want }] } });
          expect({ text, page: await store.search(kind, { filter: f, offset: 0, limit: 1 }) }).toMatchObject({ text, page: { total: 1, resources: [{ id: want }] } });
          expect({ text, page: await store.search(kind, { filter: f, offset: 1, limit: 10 }) }).toEqual({ text, page: { total: 1, resources: [] } });
          expect({ text, page: await store.search(kind, { filter: f, offset: 0, limit: 0 }) }).toEqual({ text, page: { total: 1, resources: [] } });
        }
        const nobody = await store.search("User", { filter: resolveFilter(USER_RESOURCE, 'userName eq "nobody@example.com"'), offset: 0, limit: 10 });
        expect(nobody).toEqual({ total: 0, resources: [] });
      });

      it("a deep page of a filtered, sorted search holds the right resources, each with its groups", async () => {
        const users = [];
        for (let i = 0; i < 30; i++) users.push(await mkUser(`deep${String(i).padStart(2, "0")}@example.com`, { title: i % 3 === 0 ? "Skip" : `T${String(29 - i).padStart(2, "0")}` }));
        const g = await mkGroup("Deep", [users[28]!.id, users[1]!.id]);
        const f = resolveFilter(USER_RESOURCE, 'not (title eq "Skip")');
        // Sorted by title descending: T29 (deep00 is Skip) … the title of user i is T(29-i): ascending i.
        const kept = users.filter((_, i) => i % 3 !== 0);
        const page = await store.search("User", { filter: f, sortBy: sortBy("User", "title"), descending: true, offset: 15, limit: 10 });
        expect(page.total).toBe(20);
        expect(page.resources.map((r) => r.id)).toEqual(kept.slice(15).map((u) => u.id));
        // deep23, deep25, deep26, deep28 (a member), deep29.
        expect(page.resources.map((r) => r.groups)).toEqual([[], [], [], [{ value: g.id, display: "Deep" }], []]);
      });

      it("a User found by search carries its groups; a Group carries none", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("Carried", [a.id]);
        const users = await store.search("User", { offset: 0, limit: 10 });
        expect(users.resources[0]!.groups).toEqual([{ value: g.id, display: "Carried" }]);
        const groups = await store.search("Group", { offset: 0, limit: 10 });
        expect(groups.resources[0]!.groups).toBeUndefined();
      });
    });

    describe("member pages: keyset cursors", () => {
      /** Four Users and three Groups, all members of one group, added out of order: the expected order is Users, then Groups, each in creation order. */
      const seedMembers = async () => {
        const users = [];
        for (const nm of ["m1", "m2", "m3", "m4"]) users.push(await mkUser(`${nm}@example.com`));
        const groups = [await mkGroup("Sub 1"), await mkGroup("Sub 2"), await mkGroup("Sub 3")];
        const [u1, u2, u3, u4] = users.map((u) => u.id);
        const [g1, g2, g3] = groups.map((g) => g.id);
        const g = await mkGroup("Paged", [g2!, u3!, u1!, g3!]);
        await store.update("Group", g.id, { data: group("Paged"), memberChanges: [{ kind: "add", ids: [u4!, g1!, u2!] }] });
        return { gid: g.id, users: users.map((u) => u.id), groups: groups.map((x) => x.id), order: [u1!, u2!, u3!, u4!, g1!, g2!, g3!] };
      };

      /** Reads every page of `size` after `cursor`; fails if the cursors do not end. */
      const readPages = async (gid: string, size: number, cursor?: string) => {
        const pages: { members: Member[]; next?: string }[] = [];
        do {
          const page = await store.memberPage(gid, cursor, size);
          pages.push(page);
          cursor = page.next;
          if (pages.length > 50) throw new Error("the cursors never end");
        } while (cursor);
        return pages;
      };

      it.each([1, 2, 3, 6, 7, 8, 100])("pages of %d, each read after the previous page's cursor, give every member once in order, and only the last page lacks next", async (size) => {
        const { gid, order } = await seedMembers();
        const pages = await readPages(gid, size);
        expect(pages.flatMap((p) => p.members.map((m) => m.value))).toEqual(order);
        for (const p of pages.slice(0, -1)) {
          expect(p.members).toHaveLength(size);
          expect(typeof p.next).toBe("string");
        }
        expect(pages.at(-1)!.next).toBeUndefined();
        expect(pages.at(-1)!.members.length).toBeLessThanOrEqual(size);
      });

      it("a cursor after the last member gives no members and no next", async () => {
        const { gid, order } = await seedMembers();
        const first = await store.memberPage(gid, undefined, order.length);
        expect(first.members.map((m) => m.value)).toEqual(order);
        // A store may or may not know that a full page was the last; when it gives a cursor, reading after it ends the group.
        if (first.next !== undefined) expect(await store.memberPage(gid, first.next, order.length)).toEqual({ members: [] });
      });

      it("members removed between pages, the one the cursor names included, are not repeated and the rest still follow", async () => {
        const { gid, order } = await seedMembers();
        const [u1, u2, u3, u4, g1, g2, g3] = order;
        const first = await store.memberPage(gid, undefined, 3);
        expect(first.members.map((m) => m.value)).toEqual([u1!, u2!, u3!]);
        // u3 is the member the cursor names; u1 was read already; u4 and g2 are still to come; and u2 is deleted altogether.
        await store.update("Group", gid, { data: group("Paged"), memberChanges: [{ kind: "remove", ids: [u3!, u1!, u4!, g2!] }] });
        await store.delete("User", u2!);
        const rest = await readPages(gid, 3, first.next);
        expect(rest.flatMap((p) => p.members.map((m) => m.value))).toEqual([g1!, g3!]);
      });

      it("a member added between pages after the cursor's place appears on a later page", async () => {
        const { gid, order } = await seedMembers();
        const first = await store.memberPage(gid, undefined, 2);
        const late = await mkUser("late@example.com");
        await store.update("Group", gid, { data: group("Paged"), memberChanges: [{ kind: "add", ids: [late.id] }] });
        const rest = await readPages(gid, 2, first.next);
        expect(rest.flatMap((p) => p.members.map((m) => m.value))).toEqual([...order.slice(2, 4), late.id, ...order.slice(4)]);
      });

      it("a group's pages hold its own members only, when they are members of other groups too", async () => {
        const { gid, order } = await seedMembers();
        const before = await mkGroup("Before", order.slice(2));
        const after = await mkGroup("After", [...order].reverse());
        for (const size of [1, 3, 100]) expect((await readPages(gid, size)).flatMap((p) => p.members.map((m) => m.value))).toEqual(order);
        expect((await readPages(before.id, 2)).flatMap((p) => p.members.map((m) => m.value))).toEqual(order.slice(2));
        expect((await readPages(after.id, 2)).flatMap((p) => p.members.map((m) => m.value))).toEqual(order);
      });

      it("an unknown group, and a group without members, have one page with no members and no next", async () => {
        const empty = await mkGroup("Nobody here");
        expect(await store.memberPage("no-such-group", undefined, 10)).toEqual({ members: [] });
        expect(await store.memberPage(empty.id, undefined, 10)).toEqual({ members: [] });
      });

      it("a member's display is its displayName, else a User's name.formatted, else absent", async () => {
        const named = await store.create("User", { id: id("u"), data: { userName: "named@example.com", displayName: "Named" } });
        const formatted = await store.create("User", { id: id("u"), data: { userName: "formatted@example.com", name: { formatted: "Ms. Formatted" } } });
        const bare = await store.create("User", { id: id("u"), data: { userName: "bare@example.com" } });
        const sub = await mkGroup("Sub");
        const g = await mkGroup("Displays", [bare.id, sub.id, formatted.id, named.id]);
        expect((await store.memberPage(g.id, undefined, 10)).members).toEqual([
          { value: named.id, type: "User", display: "Named" },
          { value: formatted.id, type: "User", display: "Ms. Formatted" },
          { value: bare.id, type: "User" },
          { value: sub.id, type: "Group", display: "Sub" },
        ]);
      });
    });

    describe("member removal by filter (PATCH remove members[filter], RFC 7644 §3.5.2.2)", () => {
      /** The element filter PATCH passes as `removeWhere` for `members[<text>]` (patch.ts parsePatchPath). */
      const memberFilter = (text: string): ResolvedFilter => {
        const f = resolveFilter(GROUP_RESOURCE, `members[${text}]`);
        if (f.kind !== "any") throw new Error(`members[${text}] is not a value filter`);
        return f.filter;
      };
      const seed = async () => {
        const ann = await mkUser("ann@example.com", { displayName: "Ann Smith" });
        const bob = await mkUser("bob@example.com", { displayName: "Bob Jones" });
        const cid = await store.create("User", { id: id("u"), data: { userName: "cid@example.com", name: { formatted: "Cid Formatted" } } });
        const inner = await mkGroup("Inner");
        const g = await mkGroup("Filtered", [ann.id, bob.id, cid.id, inner.id]);
        return { gid: g.id, ann: ann.id, bob: bob.id, cid: cid.id, inner: inner.id };
      };
      type Ids = Awaited<ReturnType<typeof seed>>;
      const cases: [string, (x: Ids) => string, (x: Ids) => string[]][] = [
        ["by type", () => 'type eq "Group"', (x) => [x.ann, x.bob, x.cid]],
        ["by type, case-insensitively", () => 'type eq "user"', (x) => [x.inner]],
        ["by display, case-insensitively", () => 'display eq "ann smith"', (x) => [x.bob, x.cid, x.inner]],
        ["by display prefix", () => 'display sw "b"', (x) => [x.ann, x.cid, x.inner]],
        ["by the display a User without displayName shows (name.formatted)", () => 'display eq "cid formatted"', (x) => [x.ann, x.bob, x.inner]],
        ["by value ne: every other member", (x) => `value ne "${x.ann}"`, (x) => [x.ann]],
        ["by value or type", (x) => `value eq "${x.bob}" or type eq "Group"`, (x) => [x.ann, x.cid]],
        ["by type and display", () => 'type eq "User" and display co "o"', (x) => [x.ann, x.inner]],
        ["by not", () => 'not (type eq "User")', (x) => [x.ann, x.bob, x.cid]],
      ];

      it.each(cases)("removes exactly the members matching the filter: %s, and the group gets a new version", async (_what, filter, remaining) => {
        const x = await seed();
        const r = await store.update("Group", x.gid, { data: group("Filtered"), memberChanges: [{ kind: "removeWhere", filter: memberFilter(filter(x)) }] });
        expect(r.version).toBe(2);
        expect((await memberIds(x.gid)).sort()).toEqual(remaining(x).sort());
        const removed = [x.ann, x.bob, x.cid, x.inner].filter((m) => !remaining(x).includes(m));
        for (const m of removed) expect(await store.groupsOf(m)).toEqual([]);
      });

      it("a filter no member matches changes nothing: same members, same version", async () => {
        const x = await seed();
        const before = await store.get("Group", x.gid);
        const r = await store.update("Group", x.gid, { data: before!.data, memberChanges: [{ kind: "removeWhere", filter: memberFilter('display eq "nobody"') }] });
        expect(r.version).toBe(1);
        expect(await store.get("Group", x.gid)).toEqual(before);
        expect(await memberIds(x.gid)).toHaveLength(4);
      });

      it("removal by filter takes its turn among the changes of one PATCH: add after it stays, remove before it counts", async () => {
        const x = await seed();
        const dan = await mkUser("dan@example.com", { displayName: "Dan" });
        const changes: MemberChange[] = [
          { kind: "add", ids: [dan.id] },
          { kind: "removeWhere", filter: memberFilter('type eq "User"') },
          { kind: "add", ids: [x.bob] },
        ];
        await store.update("Group", x.gid, { data: group("Filtered"), memberChanges: changes });
        expect((await memberIds(x.gid)).sort()).toEqual([x.bob, x.inner].sort());
      });
    });

    describe("removeAll, and an update that changes nothing", () => {
      it("removeAll empties the group in one new version and its former members no longer list it; on an empty group it changes nothing", async () => {
        const a = await mkUser("a@example.com");
        const inner = await mkGroup("Inner");
        const g = await mkGroup("Everyone", [a.id, inner.id]);
        const r = await store.update("Group", g.id, { data: group("Everyone"), memberChanges: [{ kind: "removeAll" }] });
        expect(r.version).toBe(2);
        expect(await store.memberPage(g.id, undefined, 10)).toEqual({ members: [] });
        expect(await store.groupsOf(a.id)).toEqual([]);
        expect(await store.groupsOf(inner.id)).toEqual([]);
        const again = await store.update("Group", g.id, { data: group("Everyone"), memberChanges: [{ kind: "removeAll" }] });
        expect(again.version).toBe(2);
        expect(again.lastModified).toBe(r.lastModified);
      });

      it("an update with the same data and the same members (an IdP re-sending what is stored) keeps the version and lastModified", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const g = await mkGroup("Same", [a.id, b.id]);
        await tick();
        const r = await store.update("Group", g.id, { data: group("Same"), members: [b.id, a.id] });
        expect(r).toEqual(g);
        const u = await store.update("User", a.id, { data: user("a@example.com"), expectedVersion: 1 });
        expect(u).toEqual({ ...a, groups: [{ value: g.id, display: "Same" }] });
        expect(await store.get("User", a.id)).toEqual(u);
      });

      it("an update of a User returns it with its groups, as get does", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("Returned", [a.id]);
        const r = await store.update("User", a.id, { data: user("a@example.com", { title: "New" }) });
        expect(r.groups).toEqual([{ value: g.id, display: "Returned" }]);
        expect(await store.get("User", a.id)).toEqual(r);
      });
    });

    describe("tokens: last use", () => {
      it("findToken records a use at most once a minute: a second find right after leaves lastUsed as it was", async () => {
        await store.createToken("okta", "h-okta");
        await store.findToken("h-okta");
        const [first] = await store.listTokens();
        expect(first!.lastUsed).not.toBeNull();
        await tick();
        await store.findToken("h-okta");
        const [second] = await store.listTokens();
        expect(second!.lastUsed).toBe(first!.lastUsed);
      });
    });

    describe("stats, readiness and commits (StoreProbes)", () => {
      const counts = (s: Store) => {
        const { users, groups, memberships } = s.stats();
        return { users, groups, memberships };
      };
      /** The same counts read through the interface: every User, every Group, every member of every Group. */
      const counted = async (s: Store) => {
        const groups = await s.search("Group", { offset: 0, limit: 1000 });
        let memberships = 0;
        for (const g of groups.resources) memberships += (await allMembers(s, g.id)).length;
        return { users: (await s.search("User", { offset: 0, limit: 0 })).total, groups: groups.total, memberships };
      };
      /** stats() says `expected`, and so does reading everything back. */
      const expectCounts = async (expected: { users: number; groups: number; memberships: number }, what: string, s: Store = store) => {
        expect({ what, stats: counts(s) }).toEqual({ what, stats: expected });
        expect({ what, read: await counted(s) }).toEqual({ what, read: expected });
      };

      it("users, groups and memberships are exact after each kind of change: creates, PATCH and PUT of members, deletes", async () => {
        await expectCounts({ users: 0, groups: 0, memberships: 0 }, "empty");
        const [a, b, c] = [await mkUser("a@example.com"), await mkUser("b@example.com"), await mkUser("c@example.com")];
        await expectCounts({ users: 3, groups: 0, memberships: 0 }, "three users");
        const inner = await mkGroup("Inner", [a.id, b.id]);
        const outer = await mkGroup("Outer", [inner.id, c.id, c.id]);
        await expectCounts({ users: 3, groups: 2, memberships: 4 }, "groups created with members (one given twice)");
        await store.update("Group", inner.id, { data: group("Inner"), memberChanges: [{ kind: "add", ids: [c.id, a.id] }] });
        await expectCounts({ users: 3, groups: 2, memberships: 5 }, "PATCH add (one already a member)");
        await store.update("Group", inner.id, { data: group("Inner"), memberChanges: [{ kind: "remove", ids: [a.id, "not-a-member"] }] });
        await expectCounts({ users: 3, groups: 2, memberships: 4 }, "PATCH remove");
        const where = resolveFilter(GROUP_RESOURCE, `members[value eq "${b.id}"]`);
        if (where.kind !== "any") throw new Error("members[…] is not a value filter");
        await store.update("Group", inner.id, { data: group("Inner"), memberChanges: [{ kind: "removeWhere", filter: where.filter }] });
        await expectCounts({ users: 3, groups: 2, memberships: 3 }, "PATCH remove members[value eq …]");
        await store.update("Group", inner.id, { data: group("Inner"), members: [a.id, b.id, c.id] });
        await expectCounts({ users: 3, groups: 2, memberships: 5 }, "PUT members (c kept, a and b added)");
        await store.update("Group", inner.id, { data: group("Inner"), memberChanges: [{ kind: "replace", ids: [a.id] }] });
        await expectCounts({ users: 3, groups: 2, memberships: 3 }, "PATCH replace members");
        await store.update("Group", outer.id, { data: group("Outer"), memberChanges: [{ kind: "removeAll" }, { kind: "add", ids: [a.id, b.id, inner.id] }] });
        await expectCounts({ users: 3, groups: 2, memberships: 4 }, "PATCH remove all, then add three");
        await store.update("User", a.id, { data: user("a@example.com", { displayName: "Renamed" }) });
        await expectCounts({ users: 3, groups: 2, memberships: 4 }, "a User replaced");
        await store.delete("User", a.id);
        await expectCounts({ users: 2, groups: 2, memberships: 2 }, "a User in two groups deleted");
        await store.delete("Group", inner.id);
        await expectCounts({ users: 2, groups: 1, memberships: 1 }, "a Group with one member, itself a member of another, deleted");
        await store.delete("Group", outer.id);
        await expectCounts({ users: 2, groups: 0, memberships: 0 }, "the last Group deleted with its member");
      });

      it("a write that fails is rolled back and not counted, alone or beside writes committed with it", async () => {
        const a = await mkUser("a@example.com");
        const g = await mkGroup("G", [a.id]);
        const before = { users: 1, groups: 1, memberships: 1 };
        await scimErrorOf(() => store.create("Group", { id: id("g"), data: group("Bad"), members: [a.id, "ghost"] }));
        await scimErrorOf(() => store.update("Group", g.id, { data: group("G"), memberChanges: [{ kind: "removeAll" }, { kind: "add", ids: ["ghost"] }] }));
        await scimErrorOf(() => store.update("Group", g.id, { data: group("G"), members: ["ghost"] }));
        await scimErrorOf(() => store.create("User", { id: id("u"), data: user("A@example.com") }));
        await scimErrorOf(() => store.delete("User", "no-such-id"));
        await scimErrorOf(() => store.delete("Group", g.id, { expectedVersion: 99 }));
        await scimErrorOf(() => store.delete("User", a.id, { precondition: () => { throw preconditionFailed("refused"); } }));
        await expectCounts(before, "after seven refused writes");
        // Sent in the same turn, so a store that commits in groups puts them in one transaction.
        const results = await Promise.allSettled([
          store.create("User", { id: id("u"), data: user("b@example.com") }),
          store.create("User", { id: id("u"), data: user("a@example.com") }),
          store.update("Group", g.id, { data: group("G"), memberChanges: [{ kind: "removeAll" }, { kind: "add", ids: ["ghost"] }] }),
          store.delete("User", "no-such-id"),
          store.create("Group", { id: id("g"), data: group("H"), members: [a.id] }),
        ]);
        expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected", "fulfilled"]);
        await expectCounts({ users: 2, groups: 2, memberships: 2 }, "two of five writes of one turn committed");
      });

      it("a store opened on an existing database starts from what is stored", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        await mkGroup("G", [a.id, b.id]);
        await mkGroup("Empty");
        await closeStore(store);
        const again = await reopen();
        await expectCounts({ users: 2, groups: 2, memberships: 2 }, "reopened", again);
      });

      it("databaseBytes is the size of a database that holds data; walBytes is a size too", async () => {
        for (let i = 0; i < 20; i++) await mkUser(`size${i}@example.com`);
        const s = store.stats();
        expect(s.databaseBytes).toBeGreaterThan(0);
        expect(Number.isSafeInteger(s.databaseBytes)).toBe(true);
        expect(Number.isSafeInteger(s.walBytes) && s.walBytes >= 0).toBe(true);
      });

      it("ready() answers ok at once on an open database, and not ok (with a reason) once it is closed", async () => {
        const t0 = performance.now();
        expect(await store.ready(1000)).toEqual({ ok: true });
        expect(performance.now() - t0).toBeLessThan(500);
        // Readiness takes the write lock and gives it back: writes go on as before.
        await mkUser("after-ready@example.com");
        const other = await reopen();
        expect(await other.ready(1000)).toEqual({ ok: true });
        await closeStore(other);
        const closed = await other.ready(100);
        expect(closed.ok).toBe(false);
        expect(closed.ok ? "" : closed.reason).toMatch(/closed/);
      });

      it("onCommit reports each committed transaction: the writes add up to those sent, and a stopped observer hears no more", async () => {
        const seen: { writes: number; commitSeconds: number }[] = [];
        const stop = store.onCommit((b) => seen.push(b));
        await Promise.all([1, 2, 3, 4, 5].map((i) => mkUser(`commit${i}@example.com`)));
        await mkGroup("Committed");
        expect(seen.reduce((n, b) => n + b.writes, 0)).toBe(6);
        for (const b of seen) {
          expect(b.writes).toBeGreaterThan(0);
          expect(Number.isFinite(b.commitSeconds) && b.commitSeconds >= 0).toBe(true);
        }
        const heard = seen.length;
        stop();
        await mkUser("unheard@example.com");
        expect(seen.length).toBe(heard);
      });
    });

    describe("close, and a second store on the same database", () => {
      it("close finishes the writes still queued: a create sent just before close is stored and found after reopening", async () => {
        const pending = store.create("User", { id: "queued", data: user("queued@example.com") });
        await closeStore(store);
        expect((await pending).id).toBe("queued");
        const again = await reopen();
        expect((await again.get("User", "queued"))?.data.userName).toBe("queued@example.com");
      });

      it("resources, memberships, versions and tokens written before close are all there after reopening", async () => {
        const a = await mkUser("kept@example.com");
        const g = await mkGroup("Kept", [a.id]);
        const renamed = await store.update("Group", g.id, { data: group("Kept 2") });
        const token = await store.createToken("okta", "hash-kept");
        await closeStore(store);
        const again = await reopen();
        expect(await again.get("User", a.id)).toEqual({ ...a, groups: [{ value: g.id, display: "Kept 2" }] });
        expect(await again.get("Group", g.id)).toEqual(renamed);
        expect((await allMembers(again, g.id)).map((m) => m.value)).toEqual([a.id]);
        expect((await again.findToken("hash-kept"))?.id).toBe(token.id);
        expect(await again.tokenCount()).toBe(1);
      });

      it("a second store on the same database (generate-token while serve runs) writes a token the first sees at once", async () => {
        const serving = store;
        const other = await reopen();
        expect(await serving.tokenCount()).toBe(0);
        await other.createToken("okta", "hash-from-cli");
        expect((await serving.findToken("hash-from-cli"))?.name).toBe("okta");
        expect(await serving.tokenCount()).toBe(1);
        // And the other way round for resources, then revocation.
        await serving.create("User", { id: "u1", data: { userName: "both@example.com" } });
        expect((await other.get("User", "u1"))?.data.userName).toBe("both@example.com");
        expect(await other.revokeToken("okta")).toBe(1);
        expect(await serving.findToken("hash-from-cli")).toBeUndefined();
      });
    });
  });

  // The filter suites seed one database each, so they sit beside the describe above, whose every test opens its own.
  describe(`Store contract: ${name}`, () => {
    filterContract(open);
    filterFuzzContract(open);
  });
}
