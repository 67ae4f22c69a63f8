/**
 * The store contract for token scopes and lifetimes (issue 12): what createToken and rotateToken
 * keep, when a secret with a lifetime stops being found, and what refusal says about it. Call
 * `tokenScopeContract(name, open)` from one test file per engine, like storeContract.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import type { Store } from "../../src/store/store";
import type { OpenFresh } from "./contract";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const iso = (ms: number) => new Date(ms).toISOString();
const DAY = 86_400_000;

export function tokenScopeContract(name: string, open: OpenFresh): void {
  describe(`Store contract: ${name}: token scopes and lifetimes`, () => {
    let store: Store;
    let reopen: () => Promise<Store>;
    const others: Store[] = [];
    beforeEach(async () => {
      ({ store, reopen } = await open());
    });
    afterEach(async () => {
      for (const o of others.splice(0)) await o.close();
      await store.close();
    });

    it("a token is scope write with no lifetime unless told otherwise; scope and lifetime are kept and found", async () => {
      const idp = await store.createToken("okta", "h-okta");
      expect(idp).toMatchObject({ scope: "write", expiresAt: null, expires: null });
      expect("rotated" in idp).toBe(false);
      const end = iso(Date.now() + 90 * DAY);
      const app = await store.createToken("dashboard", "h-dash", { scope: "read", expiresAt: end });
      expect(app).toMatchObject({ name: "dashboard", scope: "read", expiresAt: end, expires: end });
      expect(await store.findToken("h-okta")).toMatchObject({ id: idp.id, scope: "write", expiresAt: null });
      expect(await store.findToken("h-dash")).toMatchObject({ id: app.id, scope: "read", expiresAt: end });
      expect((await store.listTokens()).map((t) => [t.name, t.scope, t.expiresAt])).toEqual([
        ["okta", "write", null],
        ["dashboard", "read", end],
      ]);
      expect(await store.tokenCount()).toBe(2);
      // Another store on the database (serve beside the token command) reads the same.
      const other = await reopen();
      others.push(other);
      expect(await other.findToken("h-dash")).toMatchObject({ scope: "read", expiresAt: end });
    });

    it("a secret past its lifetime is not found nor counted, is listed, and refusal says it expired, when, and by its lifetime", async () => {
      const past = iso(Date.now() - 1000);
      await store.createToken("old", "h-old", { expiresAt: past });
      expect(await store.findToken("h-old")).toBeUndefined();
      expect(await store.tokenCount()).toBe(0);
      expect((await store.listTokens()).map((t) => [t.name, t.expiresAt, t.expires])).toEqual([["old", past, past]]);
      expect(await store.refusal("h-old")).toEqual({ reason: "expired", at: past, by: "lifetime" });
      // The lifetime ends while a server runs: found before, refused on the first lookup after.
      // Lifetimes here are long enough for a loaded machine (this suite runs on PostgreSQL too).
      const soon = Date.now() + 2000;
      await store.createToken("soon", "h-soon", { scope: "read", expiresAt: iso(soon) });
      expect((await store.findToken("h-soon"))?.name).toBe("soon");
      await sleep(soon - Date.now() + 20);
      expect(await store.findToken("h-soon")).toBeUndefined();
      expect(await store.refusal("h-soon")).toMatchObject({ reason: "expired", by: "lifetime" });
      // An expired token still holds its name: rotate it (or revoke it) to use the name again.
      await expect(store.createToken("old", "h-x")).rejects.toThrow("already exists");
    });

    it("revoked wins over expired, and a revoked read token is refused as revoked", async () => {
      await store.createToken("old", "h-old", { scope: "read", expiresAt: iso(Date.now() - 1000) });
      expect(await store.revokeToken("old")).toBe(1);
      expect(await store.refusal("h-old")).toEqual({ reason: "revoked" });
      expect(await store.refusal("h-never")).toEqual({ reason: "no such token" });
    });

    it("rotateToken keeps the token's scope and, by default, the length of its lifetime, from now", async () => {
      const before = Date.now();
      await store.createToken("app", "h-1", { scope: "read", expiresAt: iso(before + 30 * DAY) });
      await sleep(5);
      const r = await store.rotateToken("app", "h-2", 60_000);
      expect(r!.token).toMatchObject({ name: "app", scope: "read" });
      expect("rotated" in r!.token).toBe(false);
      const lifetime = Date.parse(r!.token.expiresAt!) - Date.parse(r!.token.created);
      expect(lifetime).toBe(30 * DAY);
      expect(r!.token.expires).toBe(r!.token.expiresAt);
      // The replaced secret: rotated now, accepted for the grace period, its lifetime unchanged.
      expect(r!.retiring).toHaveLength(1);
      const old = r!.retiring[0]!;
      expect(old.rotated).toBe(r!.token.created);
      expect(old.expiresAt).toBe(iso(before + 30 * DAY));
      expect(Date.parse(old.expires!) - Date.parse(r!.token.created)).toBe(60_000);
      expect((await store.findToken("h-1"))?.scope).toBe("read");
      expect((await store.findToken("h-2"))?.scope).toBe("read");
      // Rotating again: still read, and the secret rotated before is not rotated "again" (its time stays).
      const r2 = await store.rotateToken("app", "h-3", 60_000);
      expect(r2!.token.scope).toBe("read");
      expect((await store.listTokens()).find((t) => t.id === old.id)?.rotated).toBe(old.rotated!);
    });

    it("rotateToken keeps the lifetime to the second: an end computed a few ms before the store stamped the creation is still 30d", async () => {
      // generate-token computes the end from its clock, then the store stamps `created` a moment later.
      await store.createToken("app", "h-1", { expiresAt: iso(Date.now() + 30 * DAY - 7) });
      await sleep(5);
      const r = await store.rotateToken("app", "h-2", 0);
      expect(Date.parse(r!.token.expiresAt!) - Date.parse(r!.token.created)).toBe(30 * DAY);
    });

    it("rotateToken gives the new secret the lifetime asked for, or none (null); a token without one gets none", async () => {
      await store.createToken("okta", "h-1");
      const none = await store.rotateToken("okta", "h-2", 0);
      expect(none!.token).toMatchObject({ scope: "write", expiresAt: null, expires: null });
      const end = iso(Date.now() + 7 * DAY);
      const set = await store.rotateToken("okta", "h-3", 0, { expiresAt: end });
      expect(set!.token).toMatchObject({ expiresAt: end, expires: end });
      const dropped = await store.rotateToken("okta", "h-4", 0, { expiresAt: null });
      expect(dropped!.token).toMatchObject({ expiresAt: null, expires: null });
      expect((await store.findToken("h-4"))?.expiresAt).toBeNull();
    });

    it("a replaced secret is never accepted past its own lifetime, whatever the grace", async () => {
      const ends = Date.now() + 2000;
      const end = iso(ends);
      await store.createToken("app", "h-1", { expiresAt: end });
      const r = await store.rotateToken("app", "h-2", 24 * 60 * 60_000, { expiresAt: null });
      expect(r!.retiring.map((t) => t.expires)).toEqual([end]);
      await sleep(ends - Date.now() + 20);
      expect(await store.findToken("h-1")).toBeUndefined();
      expect(await store.refusal("h-1")).toEqual({ reason: "expired", at: end, by: "lifetime" });
      expect((await store.findToken("h-2"))?.name).toBe("app");
    });

    it("a replaced secret past its grace is refused as expired by the rotation", async () => {
      await store.createToken("okta", "h-1", { expiresAt: iso(Date.now() + 30 * DAY) });
      const r = await store.rotateToken("okta", "h-2", 0);
      expect(await store.findToken("h-1")).toBeUndefined();
      expect(await store.refusal("h-1")).toEqual({ reason: "expired", at: r!.token.created, by: "rotation" });
    });

    it("an expired token can be rotated: the new secret works, with the token's scope and lifetime", async () => {
      const created = Date.now();
      // One second: the shortest lifetime --expires-in gives (a rotation keeps lifetimes to the second).
      await store.createToken("app", "h-1", { scope: "read", expiresAt: iso(created + 1000) });
      await sleep(created + 1020 - Date.now());
      expect(await store.findToken("h-1")).toBeUndefined();
      const r = await store.rotateToken("app", "h-2", 60_000);
      expect(r!.retiring).toEqual([]);
      expect(r!.token.scope).toBe("read");
      expect((await store.findToken("h-2"))?.id).toBe(r!.token.id);
      // The lifetime from the store's own stamp of the first secret's creation, to the second.
      const first = (await store.listTokens()).find((t) => t.name === "app" && t.rotated !== undefined)!;
      expect(Date.parse(r!.token.expiresAt!) - Date.parse(r!.token.created)).toBe(Math.round((Date.parse(first.expiresAt!) - Date.parse(first.created)) / 1000) * 1000);
    });
  });
}
