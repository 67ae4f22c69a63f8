/**
 * Migration 6 (token scopes and lifetimes) from a database as scimd wrote it at schema version 4, and
 * what a server still running an older scimd sees in the migrated file: it keeps looking secrets up
 * with its own SQL (the lookup of schema 4, copied below), and must refuse an expired and a
 * read-scoped token rather than accept them with full rights.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { APPLICATION_ID, MIGRATIONS } from "../../../src/store/sqlite/migrations";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import { tempDir } from "../../helpers";

const tmp = tempDir("scimd-token-migration-");
afterAll(() => tmp.cleanup());
let seq = 0;
const freshPath = () => join(tmp.dir, `db-${++seq}`, "scimd.db");

/** A database at schema version `version`, made by the migrations up to it, as that scimd left it. */
function databaseAt(path: string, version: number): Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true });
  for (const m of MIGRATIONS.slice(0, version)) typeof m === "string" ? m.trim() && db.exec(m) : m(db);
  db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
  db.exec(`PRAGMA user_version = ${version}`);
  return db;
}

/** findToken's query in scimd at schema version 4 (src/store/sqlite/tokens.ts before issue 12). */
const OLD_LOOKUP = "SELECT id FROM tokens WHERE hash = ? AND revoked IS NULL AND (expires IS NULL OR expires > ?)";

describe("migration 6: token scopes and lifetimes", () => {
  it("from schema 4: every token becomes scope write with no lifetime, rotated-out secrets are marked rotated when their successor was made, and every secret is accepted as before", async () => {
    const path = freshPath();
    const v4 = databaseAt(path, 4);
    const insert = v4.prepare("INSERT INTO tokens (id, name, hash, created, last_used, expires, revoked) VALUES (?, ?, ?, ?, ?, ?, ?)");
    insert.run("id-old", "okta", "h-old", "2026-01-01T00:00:00.000Z", null, "2999-01-01T00:00:00.000Z", null);
    insert.run("id-cur", "okta", "h-cur", "2026-02-01T00:00:00.000Z", "2026-02-02T00:00:00.000Z", null, null);
    insert.run("id-gone", "entra", "h-gone", "2026-01-01T00:00:00.000Z", null, "2026-01-02T00:00:00.000Z", null);
    insert.run("id-entra", "entra", "h-entra", "2026-01-01T12:00:00.000Z", null, null, null);
    insert.run("id-rev", "jumpcloud", "h-rev", "2026-01-01T00:00:00.000Z", null, "2026-01-05T00:00:00.000Z", "2026-01-05T00:00:00.000Z");
    insert.finalize();
    v4.close();

    const s = new SqliteStore(path);
    try {
      expect(s.db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
      const byId = Object.fromEntries((await s.listTokens()).map((t) => [t.id, t]));
      for (const t of Object.values(byId)) expect([t.scope, t.expiresAt]).toEqual(["write", null]);
      expect(byId["id-old"]).toMatchObject({ expires: "2999-01-01T00:00:00.000Z", rotated: "2026-02-01T00:00:00.000Z" });
      expect(byId["id-gone"]).toMatchObject({ rotated: "2026-01-01T12:00:00.000Z" });
      expect("rotated" in byId["id-cur"]!).toBe(false);
      expect("rotated" in byId["id-entra"]!).toBe(false);
      expect(byId["id-rev"]).toMatchObject({ revoked: "2026-01-05T00:00:00.000Z" });
      expect(byId["id-cur"]!.lastUsed).toBe("2026-02-02T00:00:00.000Z");
      for (const h of ["h-old", "h-cur", "h-entra"]) expect((await s.findToken(h))?.scope).toBe("write");
      expect(await s.refusal("h-gone")).toEqual({ reason: "expired", at: "2026-01-02T00:00:00.000Z", by: "rotation" });
      expect(await s.refusal("h-rev")).toEqual({ reason: "revoked" });
      // One current secret per name is still enforced by the database: a second unrotated, unrevoked okta is refused.
      expect(() => s.db.query("INSERT INTO tokens (id, name, hash, created) VALUES ('x', 'okta', 'h-x', '2026-03-01T00:00:00.000Z')").run()).toThrow(/UNIQUE/);
      // Rotating the migrated token works as for a new one: the replaced secret is marked, the new one current.
      const r = await s.rotateToken("okta", "h-new", 60_000);
      expect(r!.retiring.map((t) => t.id).sort()).toEqual(["id-cur", "id-old"]);
      expect((await s.listTokens()).find((t) => t.id === "id-cur")?.rotated).toBe(r!.token.created);
    } finally {
      s.close();
    }
  });

  it("a scope outside read and write cannot be stored", () => {
    const path = freshPath();
    databaseAt(path, 4).close();
    const s = new SqliteStore(path);
    try {
      expect(() => s.db.query("INSERT INTO tokens (id, name, hash, created, scope) VALUES ('x', 'a', 'h', '2026-01-01T00:00:00.000Z', 'admin')").run()).toThrow(/CHECK/);
    } finally {
      s.close();
    }
  });

  it("an older scimd still running on the migrated file refuses an expired token and a read token, and accepts a write token whose lifetime has not ended", async () => {
    const path = freshPath();
    databaseAt(path, 4).close();
    const s = new SqliteStore(path);
    try {
      await s.createToken("expired", "h-expired", { expiresAt: new Date(Date.now() - 1000).toISOString() });
      await s.createToken("reader", "h-reader", { scope: "read" });
      await s.createToken("idp", "h-idp", { expiresAt: new Date(Date.now() + 86_400_000).toISOString() });
      const old = s.db.query(OLD_LOOKUP);
      const now = new Date().toISOString();
      expect(old.get("h-expired", now)).toBeNull();
      expect(old.get("h-reader", now)).toBeNull();
      expect(old.get("h-idp", now)).not.toBeNull();
      // The new lookup finds the read token, with its scope.
      expect((await s.findToken("h-reader"))?.scope).toBe("read");
      // The hash column never holds the secret itself, only its hash (prefixed for a read token).
      expect(s.db.query("SELECT hash FROM tokens WHERE name = 'reader'").get()).toEqual({ hash: "read:h-reader" });
    } finally {
      s.close();
    }
  });
});
