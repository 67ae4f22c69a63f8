import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ScimError } from "../../../src/scim/errors";
import { APPLICATION_ID, MIGRATIONS } from "../../../src/store/sqlite/migrations";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import { StoreMissingError, StoreOpenError } from "../../../src/store/store";
import { TokenNameTaken } from "../../../src/store/store";
import { allMembers, tempDir } from "../../helpers";

const tmp = tempDir("scimd-sqlite-store-");
afterAll(() => tmp.cleanup());
let seq = 0;
const freshPath = () => join(tmp.dir, `db-${++seq}`, "scimd.db");

/** Opening `path` must throw StoreOpenError and leave the file byte-identical. */
function expectRefused(path: string, message: RegExp): void {
  const before = readFileSync(path);
  let caught: unknown;
  try {
    new SqliteStore(path).close();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(StoreOpenError);
  expect((caught as Error).message).toMatch(message);
  expect(Buffer.compare(readFileSync(path), before)).toBe(0);
}

describe("SqliteStore specifics", () => {
  it("opens the file in WAL journal mode with a busy timeout, synchronous FULL and foreign keys on", () => {
    const s = new SqliteStore(freshPath());
    try {
      expect(s.db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
      expect((s.db.query("PRAGMA busy_timeout").get() as Record<string, number>)).toEqual({ timeout: 5000 });
      expect(s.db.query("PRAGMA synchronous").get()).toEqual({ synchronous: 2 });
      expect(s.db.query("PRAGMA foreign_keys").get()).toEqual({ foreign_keys: 1 });
    } finally {
      s.close();
    }
  });

  it("honours the synchronous and busyTimeoutMs options", () => {
    const s = new SqliteStore(freshPath(), { synchronous: "NORMAL", busyTimeoutMs: 1234 });
    try {
      expect(s.db.query("PRAGMA synchronous").get()).toEqual({ synchronous: 1 });
      expect(s.db.query("PRAGMA busy_timeout").get()).toEqual({ timeout: 1234 });
    } finally {
      s.close();
    }
  });

  it("creates its folder and a database file readable by its owner only (mode 0600), WAL files too", async () => {
    const path = freshPath();
    const s = new SqliteStore(path);
    await s.createToken("t", "h");
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      for (const f of [`${path}-wal`, `${path}-shm`]) {
        let mode: number | undefined;
        try {
          mode = statSync(f).mode & 0o777;
        } catch {
          mode = undefined; // absent is fine
        }
        if (mode !== undefined) expect({ f, mode }).toEqual({ f, mode: 0o600 });
      }
    } finally {
      s.close();
    }
  });

  it("migrations set PRAGMA user_version to MIGRATIONS.length and application_id to scimd's", () => {
    const path = freshPath();
    new SqliteStore(path).close();
    const db = new Database(path, { readonly: true });
    try {
      expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
      expect(db.query("PRAGMA application_id").get()).toEqual({ application_id: APPLICATION_ID });
      const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      expect(tables).toEqual(expect.arrayContaining(["users", "groups", "group_members", "user_emails", "tokens"]));
    } finally {
      db.close();
    }
  });

  it("reopening an existing database keeps its data and does not migrate again", async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    const u = await a.create("User", { id: "u1", data: { userName: "kept@example.com" } });
    const g = await a.create("Group", { id: "g1", data: { displayName: "Kept" }, members: ["u1"] });
    await a.createToken("okta", "hash");
    a.close();
    const b = new SqliteStore(path);
    try {
      expect(await b.get("User", "u1")).toEqual({ ...u, groups: [{ value: "g1", display: "Kept" }] });
      expect(await b.get("Group", "g1")).toEqual(g);
      expect((await allMembers(b, "g1")).length).toBe(1);
      expect((await b.findToken("hash"))?.name).toBe("okta");
      expect(b.db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
    } finally {
      b.close();
    }
  });

  it("refuses a scimd database from a newer schema version with StoreOpenError and leaves it unchanged", () => {
    const path = freshPath();
    new SqliteStore(path).close();
    const db = new Database(path);
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    db.exec("PRAGMA journal_mode = DELETE");
    db.close();
    expectRefused(path, /newer/);
  });

  it("refuses an SQLite database that scimd did not create with StoreOpenError and leaves it unchanged", () => {
    const path = join(tmp.dir, "other-app.db");
    const db = new Database(path, { create: true });
    db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hello')");
    db.close();
    expectRefused(path, /did not create|not a scimd|refus/i);
    const check = new Database(path, { readonly: true });
    expect(check.query("SELECT body FROM notes").all()).toEqual([{ body: "hello" }]);
    expect(check.query("PRAGMA user_version").get()).toEqual({ user_version: 0 });
    check.close();
  });

  it("refuses a file that is not an SQLite database with StoreOpenError and leaves it unchanged", () => {
    const path = join(tmp.dir, "junk.db");
    writeFileSync(path, Buffer.from("this is not a database, just some junk bytes \x00\x01\x02".repeat(100)));
    expectRefused(path, /scimd database|not a database|file/i);
  });

  it("refuses a folder given as the database with a StoreOpenError that names the path", () => {
    const path = join(tmp.dir, "a-folder.db");
    mkdirSync(path);
    expect(() => new SqliteStore(path)).toThrow(new RegExp(`cannot open ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} as a scimd database`));
    expect(() => new SqliteStore(path)).toThrow(StoreOpenError);
  });

  it("group commit: writes queued together commit together, and one failing write is rolled back alone", async () => {
    const store = new SqliteStore(freshPath());
    try {
      const user = (i: number) => ({ id: `gc${i}`, data: { userName: `gc${i}@example.com`, displayName: `GC ${i}`, emails: [{ value: `gc${i}@example.com` }] } });
      const results = await Promise.allSettled([
        store.create("User", user(1)),
        store.create("User", user(2)),
        store.create("User", { ...user(3), data: { ...user(3).data, userName: "GC1@example.com" } }), // clashes with gc1
        store.create("Group", { id: "g-bad", data: { displayName: "Bad" }, members: ["no-such-member"] }),
        store.create("Group", { id: "g-ok", data: { displayName: "Ok" }, members: ["gc1", "gc2"] }),
      ]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "rejected", "fulfilled"]);
      expect(((results[2] as PromiseRejectedResult).reason as { scimType?: string }).scimType).toBe("uniqueness");
      expect(((results[3] as PromiseRejectedResult).reason as { scimType?: string }).scimType).toBe("invalidValue");
      expect(await store.get("User", "gc3")).toBeUndefined();
      expect(await store.get("Group", "g-bad")).toBeUndefined();
      expect((await allMembers(store, "g-ok")).length).toBe(2);
      expect(store.db.inTransaction).toBe(false);
    } finally {
      store.close();
    }
  });

  it("a write never joins or ends a transaction it did not open on the store's connection", async () => {
    const store = new SqliteStore(freshPath());
    try {
      store.db.exec("BEGIN");
      store.db.exec("INSERT INTO tokens (id, name, hash, created) VALUES ('t1', 'outer', 'h1', 'now')");
      const e = await store.create("User", { id: "in-txn", data: { userName: "in-txn@example.com" } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Error);
      expect(store.db.inTransaction).toBe(true);
      expect(store.db.query("SELECT count(*) AS n FROM tokens").get()).toEqual({ n: 1 });
      store.db.exec("ROLLBACK");
      expect(await store.get("User", "in-txn")).toBeUndefined();
    } finally {
      store.close();
    }
  });

  it("a write that cannot get the write lock within the busy timeout is refused with 503 and Retry-After, and changes nothing", async () => {
    const path = freshPath();
    const store = new SqliteStore(path, { busyTimeoutMs: 100 });
    const other = new Database(path);
    try {
      other.exec("BEGIN IMMEDIATE"); // another process holding the write lock
      const e = (await store.create("User", { id: "busy", data: { userName: "busy@example.com" } }).catch((x: unknown) => x)) as ScimError;
      expect(e).toBeInstanceOf(ScimError);
      expect(e.status).toBe(503);
      expect(e.headers?.["Retry-After"]).toBe("1");
      other.exec("ROLLBACK");
      expect(await store.get("User", "busy")).toBeUndefined();
      await store.create("User", { id: "busy", data: { userName: "busy@example.com" } });
      expect(await store.get("User", "busy")).toBeDefined();
    } finally {
      other.close();
      store.close();
    }
  });

  it("a write waiting for another connection's write lock leaves the event loop free; writes queued meanwhile commit in their order once it is released", async () => {
    const path = freshPath();
    const store = new SqliteStore(path, { busyTimeoutMs: 5000 });
    const other = new Database(path);
    try {
      other.exec("BEGIN IMMEDIATE");
      const t0 = performance.now();
      const first = store.create("User", { id: "a", data: { userName: "a@example.com" } });
      let ticks = 0;
      let longestGap = 0;
      let last = performance.now();
      const iv = setInterval(() => {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        ticks++;
      }, 10);
      await Bun.sleep(150);
      const later = ["b", "c", "d"].map((id) => store.create("User", { id, data: { userName: `${id}@example.com` } }));
      await Bun.sleep(150);
      other.exec("ROLLBACK");
      await Promise.all([first, ...later]);
      clearInterval(iv);
      expect(performance.now() - t0).toBeGreaterThan(250);
      expect(ticks).toBeGreaterThan(10);
      expect(longestGap).toBeLessThan(150);
      // Commit order is rowid order.
      expect(store.db.query("SELECT id FROM users ORDER BY rowid").all()).toEqual([{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }]);
      // A token's last use is never waited for: a lookup under the lock returns at once.
      await store.createToken("t", "hash-t");
      other.exec("BEGIN IMMEDIATE");
      const t1 = performance.now();
      expect((await store.findToken("hash-t"))?.name).toBe("t");
      expect(performance.now() - t1).toBeLessThan(100);
      other.exec("ROLLBACK");
    } finally {
      other.close();
      store.close();
    }
  });

  it("with create: false refuses a missing file, or an empty one, with StoreMissingError naming the path, and creates nothing", () => {
    const path = join(tmp.dir, "missing-folder", "scimd.db");
    let caught: unknown;
    try {
      new SqliteStore(path, { create: false }).close();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(StoreMissingError);
    expect(caught).toBeInstanceOf(StoreOpenError);
    expect((caught as StoreMissingError).location).toBe(path);
    expect((caught as Error).message).toContain(path);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(dirname(path))).toBe(false);
    const empty = join(tmp.dir, "empty.db");
    writeFileSync(empty, "");
    expect(() => new SqliteStore(empty, { create: false })).toThrow(StoreMissingError);
    expect(statSync(empty).size).toBe(0);
  });

  it("with create: false opens an existing scimd database and sees its tokens", async () => {
    const path = freshPath();
    const a = new SqliteStore(path);
    await a.createToken("okta", "hash");
    a.close();
    const b = new SqliteStore(path, { create: false });
    try {
      expect((await b.findToken("hash"))?.name).toBe("okta");
    } finally {
      b.close();
    }
  });

  it("migrating a database whose tokens share names keeps every secret valid: the oldest keeps the name, later ones get -2, -3 (skipping taken names)", async () => {
    const path = freshPath();
    mkdirSync(dirname(path), { recursive: true });
    // A database as scimd wrote it before token names were unique (schema version 1).
    const v1 = new Database(path, { create: true });
    v1.exec(MIGRATIONS[0] as string);
    v1.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    v1.exec("PRAGMA user_version = 1");
    const insert = v1.prepare("INSERT INTO tokens (id, name, hash, created) VALUES (?, ?, ?, ?)");
    insert.run("id-okta-3", "okta", "h-okta-3", "2026-03-01T00:00:00.000Z");
    insert.run("id-okta-1", "okta", "h-okta-1", "2026-01-01T00:00:00.000Z");
    insert.run("id-okta-2", "okta", "h-okta-2", "2026-02-01T00:00:00.000Z");
    insert.run("id-taken", "okta-2", "h-taken", "2025-12-01T00:00:00.000Z");
    insert.run("id-entra", "entra", "h-entra", "2026-01-15T00:00:00.000Z");
    insert.finalize();
    v1.close();

    const s = new SqliteStore(path);
    try {
      const names = Object.fromEntries((await s.listTokens()).map((t) => [t.id, t.name]));
      expect(names).toEqual({ "id-okta-1": "okta", "id-okta-2": "okta-3", "id-okta-3": "okta-4", "id-taken": "okta-2", "id-entra": "entra" });
      for (const h of ["h-okta-1", "h-okta-2", "h-okta-3", "h-taken", "h-entra"]) expect(await s.findToken(h)).toBeDefined();
      expect((await s.listTokens()).every((t) => t.expires === null)).toBe(true);
      // Names are unique from now on, and revoking the old name revokes only the oldest secret.
      await expect(s.createToken("okta", "h-new")).rejects.toBeInstanceOf(TokenNameTaken);
      expect(await s.revokeToken("okta")).toBe(1);
      expect(await s.findToken("h-okta-2")).toBeDefined();
      expect(s.db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
    } finally {
      s.close();
    }
  });

  it("a resource written before the log was on is found by its current name, by a name it gave up and by its last name once deleted", async () => {
    const path = freshPath();
    const user = (userName: string) => ({ schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName });
    const off = new SqliteStore(path, { activityLog: false });
    await off.create("User", { id: "u1", data: user("carol") });
    await off.create("User", { id: "u2", data: user("dave") });
    off.close();
    const s = new SqliteStore(path);
    try {
      const ops = async (user: string) => (await s.listActivity({ user, limit: 100 })).map((e) => `${e.id}:${e.op}`);
      expect(await s.listActivity({ limit: 100 })).toEqual([]);
      await s.update("User", "u1", { data: { ...user("carol"), title: "CTO" }, op: "patch" });
      expect(await ops("CAROL")).toEqual(["u1:patch"]);
      await s.update("User", "u1", { data: user("caroline"), op: "replace" });
      await s.delete("User", "u2");
      expect(await ops("carol")).toEqual(["u1:replace", "u1:patch"]);
      expect(await ops("Caroline")).toEqual(["u1:replace", "u1:patch"]);
      expect(await ops("dave")).toEqual(["u2:delete"]);
      // Only the rename and the delete wrote a name key: the name each gave up.
      expect(s.db.query("SELECT op, name, name_key FROM activity ORDER BY seq").all()).toEqual([
        { op: "patch", name: "carol", name_key: null },
        { op: "replace", name: "caroline", name_key: "carol" },
        { op: "delete", name: "dave", name_key: "dave" },
      ]);
    } finally {
      s.close();
    }
  });

  it("migrating a schema-6 database drops the activity index by resource id and keeps every entry findable by the names it was keyed by", async () => {
    const path = freshPath();
    mkdirSync(dirname(path), { recursive: true });
    const v6 = new Database(path, { create: true });
    for (const m of MIGRATIONS.slice(0, 6)) typeof m === "string" ? v6.exec(m) : m(v6);
    v6.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    v6.exec("PRAGMA user_version = 6");
    // As schema 6 wrote them: a create keyed by the name it gave (the user was deleted since, before the log could key its delete).
    v6.query("INSERT INTO activity (at, via, op, resource_type, resource_id, name, name_key, changes) VALUES ('2026-11-01T00:00:00.000Z', 'scim', 'create', 'User', 'gone', 'Erin', 'erin', '[]')").run();
    v6.close();
    const s = new SqliteStore(path);
    try {
      expect(s.db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
      const indexes = (s.db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activity' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      expect(indexes).toEqual(["activity_at", "activity_name"]);
      expect((await s.listActivity({ user: "ERIN", limit: 100 })).map((e) => e.id)).toEqual(["gone"]);
    } finally {
      s.close();
    }
  });

  it("migrating a schema-3 database to kept revocations keeps every secret as it was, and a revoked name is free again afterwards", async () => {
    const path = freshPath();
    mkdirSync(dirname(path), { recursive: true });
    // A database as scimd wrote it before revoked tokens were kept (schema version 3): revoke deleted rows.
    const v3 = new Database(path, { create: true });
    for (const m of MIGRATIONS.slice(0, 3)) typeof m === "string" ? v3.exec(m) : m(v3);
    v3.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    v3.exec("PRAGMA user_version = 3");
    const insert = v3.prepare("INSERT INTO tokens (id, name, hash, created, expires) VALUES (?, ?, ?, ?, ?)");
    insert.run("id-old", "okta", "h-old", "2026-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z");
    insert.run("id-cur", "okta", "h-cur", "2026-02-01T00:00:00.000Z", null);
    insert.run("id-gone", "entra", "h-gone", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z");
    insert.finalize();
    v3.close();

    const s = new SqliteStore(path);
    try {
      expect(s.db.query("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
      const listed = await s.listTokens();
      expect(listed.map((t) => [t.id, t.name, t.expires, "revoked" in t])).toEqual([
        ["id-old", "okta", "2999-01-01T00:00:00.000Z", false],
        ["id-gone", "entra", "2026-01-02T00:00:00.000Z", false],
        ["id-cur", "okta", null, false],
      ]);
      expect((await s.findToken("h-old"))?.id).toBe("id-old");
      expect((await s.findToken("h-cur"))?.id).toBe("id-cur");
      expect((await s.refusal("h-gone")).reason).toBe("expired");
      expect(await s.tokenCount()).toBe(2);
      // One current secret per name is still enforced by the database itself, for a secret not revoked.
      expect(() => s.db.query("INSERT INTO tokens (id, name, hash, created) VALUES ('x', 'okta', 'h-x', '2026-03-01T00:00:00.000Z')").run()).toThrow(/UNIQUE/);
      expect(await s.revokeToken("okta")).toBe(2);
      expect((await s.refusal("h-cur")).reason).toBe("revoked");
      // The index leaves revoked rows out: the name takes a new current secret, as createToken gives it.
      expect((await s.createToken("okta", "h-new")).name).toBe("okta");
      expect(s.db.query("SELECT count(*) AS n FROM tokens WHERE name = 'okta' AND expires IS NULL").get()).toEqual({ n: 1 });
      // A revoked secret's expires ends at its revocation: a server still on schema 3 (no `revoked`
      // column), left running while a newer binary migrated the file, refuses it as expired.
      expect(s.db.query("SELECT count(*) AS n FROM tokens WHERE name = 'okta' AND revoked IS NOT NULL AND expires <= revoked").get()).toEqual({ n: 2 });
      expect(s.db.query("SELECT count(*) AS n FROM tokens WHERE hash = 'h-cur' AND (expires IS NULL OR expires > ?)").get(new Date().toISOString())).toEqual({ n: 0 });
    } finally {
      s.close();
    }
  });
});
