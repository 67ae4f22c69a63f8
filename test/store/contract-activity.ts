/**
 * The activity log's store contract: every Store records one entry per committed change, inside the
 * change's own write (so a refused write leaves none, a no-op writes none), with the origin it was
 * given, the changed attributes (writeOnly ones only marked changed), one entry for any number of
 * members added or removed, and what a delete left; listActivity finds them without reading the
 * resources (a deleted User by its last userName), and pruneActivity deletes the oldest in batches.
 *
 * Call `activityContract(name, open)` from the engine's contract test file, beside storeContract.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import type { ActivityEntry } from "../../src/scim/activity";
import { preconditionFailed } from "../../src/scim/errors";
import type { Resource } from "../../src/scim/resource";
import type { Store, WriteOrigin } from "../../src/store/store";
import type { OpenFresh } from "./contract";
import { scimErrorOf } from "../helpers";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const user = (userName: string, extra: Resource = {}): Resource => ({ schemas: [USER], userName, ...extra });
const group = (displayName: string): Resource => ({ schemas: [GROUP], displayName });
const okta: WriteOrigin = { via: "scim", requestId: "req-1", token: "okta" };
const tick = () => new Promise((r) => setTimeout(r, 5));

export function activityContract(name: string, open: OpenFresh): void {
  describe(`Store contract, activity log: ${name}`, () => {
    let store: Store;
    let reopenDb: () => Promise<Store>;
    const others: Store[] = [];
    beforeEach(async () => {
      const db = await open();
      store = db.store;
      reopenDb = db.reopen;
    });
    afterEach(async () => {
      for (const s of others.splice(0)) await s.close();
      await store.close();
    });
    const all = (q: Partial<Parameters<Store["listActivity"]>[0]> = {}) => store.listActivity({ limit: 100_000, ...q });
    const only = async (q: Partial<Parameters<Store["listActivity"]>[0]> = {}): Promise<ActivityEntry> => {
      const list = await all(q);
      expect(list).toHaveLength(1);
      return list[0]!;
    };

    it("records a create with its origin, the name and the attributes set, and a password only as changed", async () => {
      await store.create("User", { id: "u1", data: user("bob@example.com", { title: "Engineer", password: "$argon2id$v=19$secret-hash" }), origin: okta });
      const e = await only();
      expect(e).toMatchObject({ op: "create", resourceType: "User", id: "u1", name: "bob@example.com", via: "scim", token: "okta", requestId: "req-1" });
      expect(e.changes).toEqual([
        { attr: "userName", new: "bob@example.com" },
        { attr: "title", new: "Engineer" },
        { attr: "password", changed: true },
      ]);
      expect(JSON.stringify(await all())).not.toContain("secret-hash");
      expect(Number.isNaN(Date.parse(e.at))).toBe(false);
    });

    it("a PATCH records the changed attributes with old and new values, sub-attributes and extension attributes by path", async () => {
      await store.create("User", { id: "u1", data: user("bob", { name: { givenName: "Bob", familyName: "B" }, [ENTERPRISE]: { department: "R&D" } }) });
      await store.update("User", "u1", {
        data: user("bob", { name: { givenName: "Robert", familyName: "B" }, active: false, [ENTERPRISE]: { department: "Sales" }, password: "h2" }),
        origin: okta,
        op: "patch",
      });
      const e = (await all({ ops: ["patch"] }))[0]!;
      expect(e.op).toBe("patch");
      expect(e.changes).toEqual([
        { attr: "name.givenName", old: "Bob", new: "Robert" },
        { attr: `${ENTERPRISE}:department`, old: "R&D", new: "Sales" },
        { attr: "active", new: false },
        { attr: "password", changed: true },
      ]);
    });

    it("a PUT is recorded as replace, with an attribute it dropped as removed", async () => {
      await store.create("User", { id: "u1", data: user("bob", { title: "Engineer", nickName: "B" }) });
      await store.update("User", "u1", { data: user("bob", { title: "Manager" }), origin: okta, op: "replace" });
      const e = (await all({ ops: ["replace"] }))[0]!;
      expect(e.changes).toEqual([
        { attr: "title", old: "Engineer", new: "Manager" },
        { attr: "nickName", old: "B" },
      ]);
    });

    it("a group PATCH adding 1,000 members is one entry listing the 1,000 ids, and a removal one entry too", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 1000; i++) ids.push((await store.create("User", { id: `u${i}`, data: user(`user${i}`) })).id);
      await store.create("Group", { id: "g1", data: group("Engineering") });
      const before = (await all()).length;
      await store.update("Group", "g1", { data: group("Engineering"), memberChanges: [{ kind: "add", ids }], origin: okta, op: "patch" });
      const after = await all();
      expect(after.length).toBe(before + 1);
      expect(after[0]).toMatchObject({ op: "patch", resourceType: "Group", id: "g1", name: "Engineering", changes: [] });
      expect(after[0]!.membersAdded).toEqual(ids);
      expect(after[0]!.membersRemoved).toBeUndefined();
      await store.update("Group", "g1", { data: group("Engineering"), memberChanges: [{ kind: "remove", ids: ["u5", "u7"] }], op: "patch" });
      const removal = (await all({ ops: ["member-remove"] }))[0]!;
      expect(removal.membersRemoved).toEqual(["u5", "u7"]);
      expect(removal.via).toBe("unknown");
      await store.update("Group", "g1", { data: group("Engineering"), memberChanges: [{ kind: "removeAll" }], op: "patch" });
      expect((await all({ ops: ["member-remove"] }))[0]!.membersRemoved).toHaveLength(998);
      expect(await all({ ops: ["member-add"] })).toHaveLength(1);
    });

    it("a PUT of a group's members records only the difference", async () => {
      for (const u of ["a", "b", "c"]) await store.create("User", { id: u, data: user(u) });
      await store.create("Group", { id: "g1", data: group("G"), members: ["a", "b"] });
      expect((await only({ ops: ["create"], group: "g1" })).membersAdded).toEqual(["a", "b"]);
      await store.update("Group", "g1", { data: group("G"), members: ["b", "c"], op: "replace" });
      const e = (await all({ ops: ["replace"] }))[0]!;
      expect(e.membersAdded).toEqual(["c"]);
      expect(e.membersRemoved).toEqual(["a"]);
    });

    it("a delete records the last userName and the groups the User left; --user finds it by that name after the row is gone", async () => {
      await store.create("User", { id: "u1", data: user("bob") });
      await store.update("User", "u1", { data: user("robert") });
      await store.create("Group", { id: "g1", data: group("Engineering"), members: ["u1"] });
      await store.delete("User", "u1", { origin: okta });
      expect(await store.get("User", "u1")).toBeUndefined();
      const e = (await all({ ops: ["delete"] }))[0]!;
      expect(e).toMatchObject({ op: "delete", id: "u1", name: "robert", token: "okta", leftGroups: [{ value: "g1", display: "Engineering" }] });
      // Under its last name, under an earlier one (case-insensitively), and by id: all four of its entries and the group's that added it.
      for (const q of ["ROBERT", "bob", "u1"]) expect((await all({ user: q })).map((x) => `${x.resourceType}:${x.op}`)).toEqual(["User:delete", "Group:create", "User:replace", "User:create"]);
      expect((await all({ group: "engineering" })).map((x) => `${x.resourceType}:${x.op}`)).toEqual(["User:delete", "Group:create"]);
    });

    it("--user with --op member-add (or member-remove) finds only the entries that added (or removed) that user", async () => {
      for (const u of ["bob", "carol"]) await store.create("User", { id: u, data: user(u) });
      await store.create("Group", { id: "g1", data: group("G"), members: ["bob"] });
      await store.update("Group", "g1", { data: group("G"), memberChanges: [{ kind: "remove", ids: ["bob"] }, { kind: "add", ids: ["carol"] }], op: "patch" });
      expect((await all({ user: "bob", ops: ["member-add"] })).map((e) => e.op)).toEqual(["create"]);
      expect((await all({ user: "bob", ops: ["member-remove"] })).map((e) => e.op)).toEqual(["patch"]);
      expect(await all({ user: "carol", ops: ["member-remove"] })).toEqual([]);
      expect((await all({ user: "carol", ops: ["member-add", "member-remove"] })).map((e) => e.op)).toEqual(["patch"]);
    });

    it("members added and removed again in one PATCH, and nothing else, write no entry", async () => {
      await store.create("User", { id: "a", data: user("a") });
      await store.create("Group", { id: "g1", data: group("G") });
      const n = (await all()).length;
      await store.update("Group", "g1", { data: group("G"), memberChanges: [{ kind: "add", ids: ["a"] }, { kind: "removeAll" }], origin: okta, op: "patch" });
      expect(await all()).toHaveLength(n);
    });

    it("a no-op update writes no entry", async () => {
      await store.create("User", { id: "u1", data: user("bob", { title: "Engineer" }) });
      await store.create("Group", { id: "g1", data: group("G"), members: ["u1"] });
      const n = (await all()).length;
      await store.update("User", "u1", { data: user("bob", { title: "Engineer" }), origin: okta, op: "replace" });
      await store.update("Group", "g1", { data: group("G"), memberChanges: [{ kind: "add", ids: ["u1"] }], origin: okta, op: "patch" });
      expect(await all()).toHaveLength(n);
    });

    it("a refused write (409 uniqueness, 412 stale version, 412 precondition, 400 unknown member) leaves no entry, and a write committed beside it keeps its own", async () => {
      await store.create("User", { id: "u1", data: user("bob") });
      await store.create("Group", { id: "g1", data: group("G") });
      const n = (await all()).length;
      const [clash, ok] = await Promise.allSettled([
        store.create("User", { id: "u2", data: user("BOB"), origin: okta }),
        store.create("User", { id: "u3", data: user("carol"), origin: okta }),
      ]);
      expect(clash.status).toBe("rejected");
      expect(ok.status).toBe("fulfilled");
      expect((await scimErrorOf(() => store.update("User", "u1", { data: user("bob", { title: "x" }), expectedVersion: 7, origin: okta }))).status).toBe(412);
      expect(
        (
          await scimErrorOf(() =>
            store.update("User", "u1", {
              data: user("bob", { title: "y" }),
              origin: okta,
              precondition: () => {
                throw preconditionFailed("no");
              },
            }),
          )
        ).status,
      ).toBe(412);
      expect((await scimErrorOf(() => store.delete("User", "u1", { expectedVersion: 9, origin: okta }))).status).toBe(412);
      expect((await scimErrorOf(() => store.update("Group", "g1", { data: group("G"), memberChanges: [{ kind: "add", ids: ["u3", "nobody"] }], origin: okta }))).status).toBe(400);
      const after = await all();
      expect(after).toHaveLength(n + 1);
      expect(after[0]).toMatchObject({ op: "create", id: "u3" });
    });

    it("another store on the database sees each committed change with its entry (the same transaction)", async () => {
      const other = await reopenDb();
      others.push(other);
      await store.create("User", { id: "u1", data: user("bob"), origin: okta });
      expect(await other.get("User", "u1")).toBeDefined();
      expect((await other.listActivity({ limit: 10 })).map((e) => e.id)).toEqual(["u1"]);
    });

    it("filters by time, token and operation, newest first, at most limit", async () => {
      await store.create("User", { id: "u1", data: user("a"), origin: { via: "scim", token: "okta" } });
      await tick();
      const mid = new Date().toISOString();
      await tick();
      await store.create("User", { id: "u2", data: user("b"), origin: { via: "scim", token: "entra" } });
      await store.delete("User", "u1", { origin: { via: "scim", token: "entra" } });
      expect((await all()).map((e) => e.id)).toEqual(["u1", "u2", "u1"]);
      expect((await all({ since: mid })).map((e) => `${e.op}:${e.id}`)).toEqual(["delete:u1", "create:u2"]);
      expect((await all({ until: mid })).map((e) => `${e.op}:${e.id}`)).toEqual(["create:u1"]);
      expect((await all({ token: "okta" })).map((e) => e.id)).toEqual(["u1"]);
      expect((await all({ ops: ["create"] })).map((e) => e.id)).toEqual(["u2", "u1"]);
      expect((await all({ limit: 1 })).map((e) => e.op)).toEqual(["delete"]);
      expect(await all({ user: "nobody" })).toEqual([]);
    });

    it("pruneActivity deletes the oldest entries before the time given, at most limit per call, and keeps newer ones", async () => {
      for (let i = 0; i < 7; i++) await store.create("User", { id: `old${i}`, data: user(`old${i}`) });
      await tick();
      const cutoff = new Date().toISOString();
      await tick();
      await store.create("User", { id: "new", data: user("new") });
      expect(await store.pruneActivity(cutoff, 3)).toBe(3);
      expect((await all()).map((e) => e.id).reverse()).toEqual(["old3", "old4", "old5", "old6", "new"]);
      expect(await store.pruneActivity(cutoff, 3)).toBe(3);
      expect(await store.pruneActivity(cutoff, 3)).toBe(1);
      expect(await store.pruneActivity(cutoff, 3)).toBe(0);
      expect((await all()).map((e) => e.id)).toEqual(["new"]);
      // Pruning touches the log only.
      expect(await store.get("User", "old0")).toBeDefined();
    });

    it("a resource whose creating entry was pruned stays findable: a kept one by its current name, a deleted one by its last", async () => {
      await store.create("User", { id: "u1", data: user("alice") });
      await store.create("User", { id: "u2", data: user("bob") });
      await tick();
      const cutoff = new Date().toISOString();
      await tick();
      await store.update("User", "u1", { data: user("alice", { title: "Manager" }), op: "patch" });
      await store.delete("User", "u2");
      expect(await store.pruneActivity(cutoff, 100)).toBe(2);
      expect((await all({ user: "ALICE" })).map((e) => `${e.id}:${e.op}`)).toEqual(["u1:patch"]);
      expect((await all({ user: "bob" })).map((e) => `${e.id}:${e.op}`)).toEqual(["u2:delete"]);
    });
  });
}
