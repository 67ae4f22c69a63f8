/**
 * The userName uniqueness key with width mapping (src/scim/username.ts) in the SQLite store, and
 * migration 2, which re-keys databases written before it.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fold, toSearchDoc } from "../../../src/scim/compare-keys";
import { resolveFilter } from "../../../src/scim/filter";
import { USER_RESOURCE } from "../../../src/scim/schema";
import { APPLICATION_ID, MIGRATIONS } from "../../../src/store/sqlite/migrations";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import { tempDir } from "../../helpers";

const tmp = tempDir("scimd-username-key-");
afterAll(() => tmp.cleanup());
let seq = 0;

/** A database at schema version 1, as the release before the width-mapped key wrote it (key = NFC + lower case). */
function versionOneDb(userNames: string[]): string {
  const dir = join(tmp.dir, `db-${++seq}`);
  mkdirSync(dir);
  const path = join(dir, "scimd.db");
  const db = new Database(path, { create: true });
  db.exec(MIGRATIONS[0] as string);
  db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
  db.exec("PRAGMA user_version = 1");
  const now = "2026-01-01T00:00:00.000Z";
  for (const [i, userName] of userNames.entries()) {
    const data = { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName, displayName: "U", active: true, emails: [{ value: `u${i}@example.com` }] };
    db.query("INSERT INTO users (id, user_name_key, external_id, created, last_modified, version, data, search) VALUES (?, ?, NULL, ?, ?, 1, ?, ?)").run(
      `u${i}`,
      fold(userName),
      now,
      now,
      JSON.stringify(data),
      JSON.stringify(toSearchDoc(USER_RESOURCE, data)),
    );
  }
  db.close();
  return path;
}

const ids = async (store: SqliteStore, filter: string) => (await store.search("User", { filter: resolveFilter(USER_RESOURCE, filter), offset: 0, limit: 10 })).resources.map((r) => r.id);

describe("userName key with width mapping (RFC 8265 §3.3.1) in the SQLite store", () => {
  it("migration 2 re-keys a full-width userName stored by the previous release, so a filter in either form finds it and the narrow form is a duplicate", async () => {
    const store = new SqliteStore(versionOneDb(["ｊｉｒｏ@example.com", "plain@example.com"]));
    try {
      expect(store.db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
      expect(await ids(store, 'userName eq "jiro@example.com"')).toEqual(["u0"]);
      expect(await ids(store, 'userName eq "ＪＩＲＯ@example.com"')).toEqual(["u0"]);
      expect(await ids(store, 'userName eq "plain@example.com"')).toEqual(["u1"]);
      await expect(store.create("User", { id: "dup", data: { userName: "jiro@example.com" } })).rejects.toMatchObject({ status: 409, scimType: "uniqueness" });
    } finally {
      store.close();
    }
  });

  it("migration 2 keeps both users when two stored userNames differ only in width, and the one keeping its old key can still be updated", async () => {
    const store = new SqliteStore(versionOneDb(["saburo", "ｓａｂｕｒｏ", "taro"]));
    try {
      expect(await ids(store, 'userName eq "saburo"')).toEqual(["u0"]);
      const legacy = (await store.get("User", "u1"))!;
      const updated = await store.update("User", "u1", { data: { ...legacy.data, active: false } });
      expect(updated.version).toBe(2);
      expect((await store.get("User", "u1"))!.data.active).toBe(false);
      // A lookup in the full-width form finds both users, not the narrow one alone (an IdP sees a conflict, never the wrong user).
      expect((await ids(store, 'userName eq "ｓａｂｕｒｏ"')).sort()).toEqual(["u0", "u1"]);
      expect((await ids(store, 'userName eq "ＳＡＢＵＲＯ"')).sort()).toEqual(["u0", "u1"]);
      // ne is the negation of eq, and co/sw/ew reach the old key as eq does.
      expect(await ids(store, 'userName ne "ｓａｂｕｒｏ"')).toEqual(["u2"]);
      expect(await ids(store, 'not (userName eq "ｓａｂｕｒｏ")')).toEqual(["u2"]);
      for (const f of ['userName sw "ｓａｂ"', 'userName co "ｂｕｒ"', 'userName ew "ＵＲＯ"', 'userName sw "ｓ" and userName ew "ｏ"'])
        expect((await ids(store, f)).sort()).toEqual(["u0", "u1"]);
      // renaming it to a taken name is still a uniqueness error
      await expect(store.update("User", "u1", { data: { ...legacy.data, userName: "SABURO" } })).rejects.toMatchObject({ status: 409 });
    } finally {
      store.close();
    }
  });
});
