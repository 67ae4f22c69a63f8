/**
 * Store contract for what export and import need: `scan` (every resource of a type, in creation
 * order, page by page by an opaque cursor, Users with their groups) and `CreateInput.meta` (a created
 * resource keeps the timestamps it is given). Called from each engine's contract test file with the
 * same `open` as storeContract.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import type { Resource } from "../../src/scim/resource";
import type { ResourceKind } from "../../src/scim/schema";
import type { Store, StoredResource } from "../../src/store/store";
import type { OpenFresh } from "./contract";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";

const user = (userName: string): Resource => ({ schemas: [USER], userName, displayName: userName, emails: [{ value: `${userName}@example.com` }] });
const group = (displayName: string): Resource => ({ schemas: [GROUP], displayName });

/** Every resource of `kind`, following scan's cursor with pages of `limit`; also the number of pages read. */
async function scanAll(store: Store, kind: ResourceKind, limit: number): Promise<{ all: StoredResource[]; pages: number }> {
  const all: StoredResource[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = await store.scan(kind, after, limit);
    pages++;
    expect(page.resources.length).toBeLessThanOrEqual(limit);
    all.push(...page.resources);
    after = page.next;
  } while (after !== undefined);
  return { all, pages };
}

export function scanContract(name: string, open: OpenFresh): void {
  describe(`Store contract (scan, create with meta): ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = (await open()).store;
    });
    afterEach(async () => {
      await store.close();
    });

    it("scans an empty type as one empty last page", async () => {
      expect(await store.scan("User", undefined, 10)).toEqual({ resources: [] });
      expect(await store.scan("Group", undefined, 10)).toEqual({ resources: [] });
    });

    it("scans every resource once, in creation order, whatever the page size (keyset cursor)", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 23; i++) {
        const id = `u-${i}-${crypto.randomUUID()}`;
        await store.create("User", { id, data: user(`scan${i}`) });
        ids.push(id);
      }
      for (const limit of [1, 5, 22, 23, 24, 1000]) {
        const { all, pages } = await scanAll(store, "User", limit);
        expect(all.map((r) => r.id)).toEqual(ids);
        // A full last page may be followed by one empty page, never by more.
        expect(pages).toBeLessThanOrEqual(Math.ceil(23 / limit) + 1);
      }
      expect(((await store.scan("User", undefined, 1000)).resources[3]!.data as Resource).userName).toBe("scan3");
    });

    it("keeps its place across writes: a deleted resource is skipped, one created after the cursor is seen, none twice", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await store.create("Group", { id: `g-${i}-${crypto.randomUUID()}`, data: group(`G${i}`) })).id);
      const first = await store.scan("Group", undefined, 3);
      expect(first.resources.map((r) => r.id)).toEqual(ids.slice(0, 3));
      await store.delete("Group", ids[1]!);
      await store.delete("Group", ids[4]!);
      const late = (await store.create("Group", { id: `g-late-${crypto.randomUUID()}`, data: group("late") })).id;
      const rest: string[] = [];
      let after = first.next;
      while (after !== undefined) {
        const page = await store.scan("Group", after, 3);
        rest.push(...page.resources.map((r) => r.id));
        after = page.next;
      }
      expect(rest).toEqual([ids[3]!, ids[5]!, late]);
    });

    it("gives Users their groups (value and display, in group creation order) and Groups none", async () => {
      const a = await store.create("User", { id: `a-${crypto.randomUUID()}`, data: user("alice") });
      const b = await store.create("User", { id: `b-${crypto.randomUUID()}`, data: user("bob") });
      const g1 = await store.create("Group", { id: `g1-${crypto.randomUUID()}`, data: group("Admins"), members: [a.id] });
      const g2 = await store.create("Group", { id: `g2-${crypto.randomUUID()}`, data: group("Staff"), members: [a.id, b.id] });
      const users = (await store.scan("User", undefined, 10)).resources;
      expect(users.map((u) => [u.id, u.groups])).toEqual([
        [a.id, [{ value: g1.id, display: "Admins" }, { value: g2.id, display: "Staff" }]],
        [b.id, [{ value: g2.id, display: "Staff" }]],
      ]);
      const groups = (await store.scan("Group", undefined, 10)).resources;
      expect(groups.map((g) => [g.id, (g.data as Resource).displayName, g.groups])).toEqual([
        [g1.id, "Admins", undefined],
        [g2.id, "Staff", undefined],
      ]);
      expect(groups[0]!.version).toBe(1);
    });

    it("refuses a cursor it did not make and a page size below 1", async () => {
      await expect(store.scan("User", "not-a-cursor", 10)).rejects.toThrow(/cursor/);
      await expect(store.scan("User", undefined, 0)).rejects.toThrow(/page size/);
    });

    it("creates a resource with the created and lastModified it is given (an import keeps them), and with the time of the write otherwise", async () => {
      const meta = { created: "2019-03-04T05:06:07.000Z", lastModified: "2021-08-09T10:11:12.000Z" };
      const made = await store.create("User", { id: `m-${crypto.randomUUID()}`, data: user("kept"), meta });
      expect([made.created, made.lastModified, made.version]).toEqual([meta.created, meta.lastModified, 1]);
      const read = (await store.get("User", made.id))!;
      expect([read.created, read.lastModified]).toEqual([meta.created, meta.lastModified]);
      const before = new Date().toISOString();
      const fresh = await store.create("Group", { id: `n-${crypto.randomUUID()}`, data: group("new") });
      expect(fresh.created >= before && fresh.created === fresh.lastModified).toBe(true);
      // An update afterwards moves lastModified only.
      const updated = await store.update("User", made.id, { data: { ...user("kept"), title: "Boss" } });
      expect(updated.created).toBe(meta.created);
      expect(updated.lastModified > meta.lastModified).toBe(true);
    });
  });
}
