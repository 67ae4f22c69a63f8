import { allMembers } from "../helpers";
/**
 * The storage contract suite: every Store implementation (SQLite now, others later) must pass it.
 * Call `storeContract(name, open, close)` from a test file; each test gets a fresh, empty store.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { ScimError } from "../../src/scim/errors";
import { resolveFilter } from "../../src/scim/filter";
import type { MemberChange } from "../../src/scim/patch";
import type { Resource } from "../../src/scim/resource";
import { GROUP_RESOURCE, USER_RESOURCE } from "../../src/scim/schema";
import { TokenNameTaken, type Member, type Store } from "../../src/store/store";
import type { ResourceKind } from "../../src/scim/schema";

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

/** Runs `f` and returns the ScimError it threw; fails the test when it throws nothing or something else. */
async function scimErrorOf(f: () => Promise<unknown>): Promise<ScimError> {
  let caught: unknown;
  try {
    await f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ScimError);
  return caught as ScimError;
}

const tick = () => new Promise((r) => setTimeout(r, 5));

export function storeContract(name: string, open: () => Promise<Store> | Store, close: (s: Store) => Promise<void> | void): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let n = 0;
    const id = (p: string) => `${p}-${++n}-${crypto.randomUUID()}`;

    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await close(store);
    });

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
      it("members are returned Users first, each kind in creation order, whatever the order they were added in (Store.members)", async () => {
        const a = await mkUser("a@example.com");
        const b = await mkUser("b@example.com");
        const c = await mkUser("c@example.com");
        const g = await mkGroup("Order", [c.id, a.id]);
        await store.update("Group", g.id, { data: group("Order"), memberChanges: [{ kind: "add", ids: [b.id] }] });
        expect(await memberIds(g.id)).toEqual([a.id, b.id, c.id]);
      });

      it("create with members stores each with its type and display; memberCount and groupsOf agree", async () => {
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

      it("revokeToken deletes one secret by id or every secret of a name, returns how many, and they are no longer found", async () => {
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
        await store.rotateToken("okta", "h4", 60_000);
        expect(await store.revokeToken("okta")).toBe(2);
        expect(await store.findToken("h2")).toBeUndefined();
        expect(await store.findToken("h4")).toBeUndefined();
        expect(await store.tokenCount()).toBe(0);
        expect(await store.revokeToken(a.id)).toBe(0);
        // A revoked name is free again.
        expect((await store.createToken("okta", "h5")).name).toBe("okta");
      });
    });
  });
}
