/**
 * Store contract for what `scimd migrate` needs (CopyStore): exact row counts, token rows with their
 * hashes read and written as they are (scope, lifetime, rotated and revoked state), the activity log's
 * raw entries (with the name keys of renames and deletes) read after a seq and appended in order, and
 * a created resource keeping the version it is given. Called from each engine's contract test file
 * with the same `open` as storeContract. One store per test (the PostgreSQL harness gives one database
 * at a time): what is written is a copy beside the originals, under other ids.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import type { Resource } from "../../src/scim/resource";
import type { Store, TokenCopy } from "../../src/store/store";
import type { OpenFresh } from "./contract";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const user = (userName: string): Resource => ({ schemas: [USER], userName });
const group = (displayName: string): Resource => ({ schemas: [GROUP], displayName });
const DAY = 86_400_000;

export function copyContract(name: string, open: OpenFresh): void {
  describe(`Store contract (copies for migrate): ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = (await open()).store;
    });
    afterEach(async () => {
      await store.close();
    });

    it("counts every row: users, groups, memberships, token secrets (revoked ones too), activity entries", async () => {
      expect(await store.rowCounts()).toEqual({ users: 0, groups: 0, memberships: 0, tokens: 0, activity: 0 });
      const a = await store.create("User", { id: "u-a", data: user("alice") });
      const b = await store.create("User", { id: "u-b", data: user("bob") });
      await store.create("Group", { id: "g-1", data: group("Staff"), members: [a.id, b.id] });
      await store.createToken("okta", "h1");
      await store.createToken("old", "h2");
      await store.revokeToken("old");
      await store.update("User", a.id, { data: { ...user("alice"), title: "Boss" } });
      expect(await store.rowCounts()).toEqual({ users: 2, groups: 1, memberships: 2, tokens: 2, activity: 4 });
    });

    it("reads token rows with the hash findToken takes, and writes them back as they are", async () => {
      const end = new Date(Date.now() + 30 * DAY).toISOString();
      await store.createToken("okta", "h-okta");
      await store.createToken("dash", "h-dash", { scope: "read", expiresAt: end });
      await store.rotateToken("dash", "h-dash-2", 3_600_000);
      await store.createToken("gone", "h-gone", { scope: "read" });
      expect(await store.revokeToken("gone")).toBe(1);
      const copies = await store.tokenCopies();
      expect(copies.map((t) => [t.name, t.hash, t.scope])).toEqual([
        ["okta", "h-okta", "write"],
        ["dash", "h-dash", "read"],
        ["dash", "h-dash-2", "read"],
        ["gone", "h-gone", "read"],
      ]);
      const listed = await store.listTokens();
      expect(copies.map(({ hash: _, ...record }) => record)).toEqual(listed);
      expect(copies[1]!.rotated).toBeString();
      expect(copies[3]!.revoked).toBeString();

      // Written back under other ids, names and hashes: every field kept, and the rules hold for them.
      const moved = (t: TokenCopy): TokenCopy => ({ ...t, id: `copy-${t.id}`, name: `copy-${t.name}`, hash: `copy-${t.hash}` });
      await store.insertTokenCopies(copies.map(moved));
      const after = await store.tokenCopies();
      expect(after.filter((t) => t.name.startsWith("copy-"))).toEqual(copies.map(moved));
      expect(await store.findToken("copy-h-okta")).toMatchObject({ name: "copy-okta", scope: "write" });
      expect(await store.findToken("copy-h-dash-2")).toMatchObject({ name: "copy-dash", scope: "read", expiresAt: copies[2]!.expiresAt });
      // Still within the rotation's grace: the replaced secret is accepted, with its rotation kept.
      expect(await store.findToken("copy-h-dash")).toMatchObject({ rotated: copies[1]!.rotated });
      expect(await store.findToken("copy-h-gone")).toBeUndefined();
      expect(await store.refusal("copy-h-gone")).toEqual({ reason: "revoked" });
      // A clash of hash writes none of the batch.
      const before = (await store.rowCounts()).tokens;
      await expect(store.insertTokenCopies([{ ...moved(copies[0]!), id: "x1", hash: "fresh" }, { ...moved(copies[0]!), id: "x2", name: "x" }])).rejects.toThrow();
      expect((await store.rowCounts()).tokens).toBe(before);
    });

    it("reads activity entries after a seq, oldest first, with the name keys of renames and deletes, and appends copies in order", async () => {
      const a = await store.create("User", { id: "u-a", data: user("Alice") });
      await store.create("Group", { id: "g-1", data: group("Staff"), members: [a.id], origin: { via: "scim", requestId: "r-1", token: "okta" } });
      await store.update("User", a.id, { data: user("alice.smith") });
      await store.delete("User", a.id);
      const all = await store.activityCopies(0, 100);
      expect(all.map((c) => [c.entry.op, c.entry.resourceType, c.entry.id])).toEqual([
        ["create", "User", "u-a"],
        ["create", "Group", "g-1"],
        ["replace", "User", "u-a"],
        ["delete", "User", "u-a"],
      ]);
      expect(all.map((c) => c.entry.seq)).toEqual([...all.map((c) => c.entry.seq)].sort((x, y) => x - y));
      // The rename is indexed by the name it left, the delete by its last name.
      expect(all.map((c) => c.nameKey)).toEqual([undefined, undefined, "alice", "alice.smith"]);
      expect(all[1]!.entry).toMatchObject({ via: "scim", requestId: "r-1", token: "okta", membersAdded: ["u-a"] });
      expect(all[3]!.entry.leftGroups).toEqual([{ value: "g-1", display: "Staff" }]);
      // Pages by seq.
      const page = await store.activityCopies(all[1]!.entry.seq, 1);
      expect(page).toEqual([all[2]!]);
      expect(await store.activityCopies(all[3]!.entry.seq, 10)).toEqual([]);
      // Appended in order, with new seqs: the same entries, the same keys; listActivity finds them.
      await store.insertActivityCopies(all);
      const copied = await store.activityCopies(all[3]!.entry.seq, 10);
      const bare = (cs: typeof all) => cs.map(({ entry: { seq: _, ...e }, nameKey }) => ({ e, nameKey }));
      expect(bare(copied)).toEqual(bare(all));
      expect(copied[0]!.entry.seq).toBeGreaterThan(all[3]!.entry.seq);
      expect((await store.listActivity({ user: "Alice", limit: 100 })).length).toBe(6 + 2);
      expect((await store.rowCounts()).activity).toBe(8);
    });

    it("creates copies in one transaction in the order given (lists, members and groups follow it), all or none", async () => {
      // Ids whose order is neither their text order nor the order of their names.
      const ids = ["u-9", "u-1", "u-5", "u-3", "u-7", "u-2"];
      const meta = (v: number) => ({ created: "2020-01-02T03:04:05.000Z", lastModified: "2022-01-02T03:04:05.000Z", version: v });
      await store.createCopies("User", ids.map((id, i) => ({ id, data: user(`n${(i * 7) % 6}`), meta: meta(i + 1) })));
      const scanned = await store.scan("User", undefined, 100);
      expect(scanned.resources.map((r) => r.id)).toEqual(ids);
      expect(scanned.resources.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6]);
      expect((await store.search("User", { offset: 0, limit: 100 })).resources.map((r) => r.id)).toEqual(ids);
      await store.createCopies("Group", [
        { id: "g-z", data: group("Zeta"), members: ["u-3", "u-9"], meta: meta(4) },
        { id: "g-a", data: group("Alpha"), members: ["u-3"], meta: meta(2) },
      ]);
      expect((await store.scan("Group", undefined, 10)).resources.map((r) => r.id)).toEqual(["g-z", "g-a"]);
      expect((await store.memberPage("g-z", undefined, 10)).members.map((m) => m.value)).toEqual(["u-9", "u-3"]);
      expect((await store.groupsOf("u-3")).map((g) => g.value)).toEqual(["g-z", "g-a"]);
      expect((await store.get("User", "u-3"))!.groups!.map((g) => g.value)).toEqual(["g-z", "g-a"]);
      // A clash (a taken userName, however it is cased) writes none of the batch: a 409 naming it.
      const before = await store.rowCounts();
      await expect(store.createCopies("User", [{ id: "u-new", data: user("fresh") }, { id: "u-dup", data: user("N0") }])).rejects.toMatchObject({ status: 409 });
      expect(await store.rowCounts()).toEqual(before);
      expect(await store.get("User", "u-new")).toBeUndefined();
      // An unknown member too (400).
      await expect(store.createCopies("Group", [{ id: "g-x", data: group("X"), members: ["nobody"] }])).rejects.toMatchObject({ status: 400 });
      expect(await store.rowCounts()).toEqual(before);
    });

    it("adds member copies to a Group without changing its version, lastModified or the log", async () => {
      const meta = { created: "2020-01-02T03:04:05.000Z", lastModified: "2022-01-02T03:04:05.000Z", version: 5 };
      await store.createCopies("User", [{ id: "u-1", data: user("one") }]);
      // A group created before the group it will hold (as a source's history may have it).
      await store.createCopies("Group", [
        { id: "g-outer", data: group("Outer"), members: ["u-1"], meta },
        { id: "g-inner", data: group("Inner"), meta },
      ]);
      const log = (await store.rowCounts()).activity;
      await store.insertMemberCopies("g-outer", ["g-inner"]);
      const outer = (await store.get("Group", "g-outer"))!;
      expect([outer.version, outer.lastModified]).toEqual([5, meta.lastModified]);
      expect((await store.memberPage("g-outer", undefined, 10)).members).toEqual([
        { value: "u-1", type: "User" },
        { value: "g-inner", type: "Group", display: "Inner" },
      ]);
      expect((await store.rowCounts()).memberships).toBe(2);
      expect((await store.rowCounts()).activity).toBe(log);
      await expect(store.insertMemberCopies("g-none", ["u-1"])).rejects.toMatchObject({ status: 404 });
      await expect(store.insertMemberCopies("g-inner", ["nobody"])).rejects.toMatchObject({ status: 400 });
    });

    it("creates a resource with the version it is given (ETags survive a migration), and 1 otherwise", async () => {
      const meta = { created: "2020-01-02T03:04:05.000Z", lastModified: "2022-01-02T03:04:05.000Z", version: 7 };
      const made = await store.create("User", { id: "u-v", data: user("v"), meta });
      expect(made.version).toBe(7);
      expect((await store.get("User", "u-v"))!.version).toBe(7);
      const g = await store.create("Group", { id: "g-v", data: group("V"), members: ["u-v"], meta: { ...meta, version: 3 } });
      expect([g.version, (await store.get("Group", "g-v"))!.version]).toEqual([3, 3]);
      expect((await store.update("User", "u-v", { data: { ...user("v"), title: "x" } })).version).toBe(8);
      expect((await store.create("User", { id: "u-w", data: user("w"), meta: { created: meta.created, lastModified: meta.lastModified } })).version).toBe(1);
    });
  });
}
