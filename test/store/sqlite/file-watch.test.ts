/**
 * The SQLite store when its files change under it, on real files in a temp folder: a database file
 * (or its -wal) deleted or replaced refuses writes with 503 before BEGIN, and a write whose file went
 * away during its transaction is not acknowledged; an unwritable file refuses writes until it is
 * writable again (no restart); a full database (PRAGMA max_page_count) answers 507 with nothing
 * written, and the same write succeeds once the limit is raised; a -wal or -shm without its database
 * refuses the open and creates nothing; a new database says it was created.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ScimError } from "../../../src/scim/errors";
import { SqliteDatabase } from "../../../src/store/sqlite/database";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import { StoreOpenError } from "../../../src/store/store";
import { tempDir } from "../../helpers";

const tmp = tempDir("scimd-sqlite-file-watch-");
afterAll(() => tmp.cleanup());
let seq = 0;
const freshPath = () => join(tmp.dir, `db-${++seq}`, "scimd.db");

/** The error `p` rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<ScimError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(ScimError);
  return e as ScimError;
}

const user = (n: number) => ({ id: `u${n}`, data: { userName: `u${n}@example.com` } });

describe("SqliteStore writes after its files changed", () => {
  it("a deleted database file: writes answer 503 naming the file and saying to restart; nothing is acknowledged", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    try {
      await store.create("User", user(1));
      expect(store.fileProblem()).toBeUndefined();
      for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
      expect(store.fileProblem()).toMatchObject({ event: "database file deleted", gone: true });
      const e = await rejection(store.create("User", user(2)));
      expect(e.status).toBe(503);
      expect(e.detail).toStartWith(`nothing was written: the database file ${path} was deleted while scimd had it open`);
      expect(e.detail).toContain("restart scimd");
      expect(e.detail).toContain("restore the database from a backup");
      // Every write of the SCIM API goes through the same queue: a delete is refused the same way.
      expect((await rejection(store.delete("User", "u1"))).status).toBe(503);
      expect(store.stats().users).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("a database file replaced by a copy of itself (mv): 503 'replaced', and /readyz's ready() says the same", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    try {
      await store.create("User", user(1));
      copyFileSync(path, `${path}.copy`);
      renameSync(`${path}.copy`, path);
      const e = await rejection(store.create("User", user(2)));
      expect(e.status).toBe(503);
      expect(e.detail).toContain(`the database file ${path} was replaced by another file`);
      expect(store.fileProblem()?.event).toBe("database file replaced");
      const r = await store.ready(100);
      expect(!r.ok && r.reason).toContain("was replaced by another file");
    } finally {
      await store.close();
    }
  });

  it("a deleted -wal file alone is noticed too; a clean stop copies its writes into the database file, as the detail says", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    try {
      await store.create("User", user(1));
      expect(existsSync(`${path}-wal`)).toBe(true);
      rmSync(`${path}-wal`);
      expect(store.fileProblem()?.event).toBe("database WAL file deleted");
      const e = await rejection(store.create("User", user(2)));
      expect(e.status).toBe(503);
      expect(e.detail).toContain(`the WAL file ${path}-wal was deleted`);
      expect(e.detail).toContain("stop it cleanly (SIGTERM");
      expect(store.stats().walBytes).toBeNaN();
    } finally {
      await store.close();
    }
    const again = new SqliteStore(path);
    try {
      expect((await again.get("User", "u1"))?.id).toBe("u1");
      expect(await again.get("User", "u2")).toBeUndefined();
    } finally {
      await again.close();
    }
  });

  it("a write whose database file is deleted during its transaction is committed to a file nobody reaches, so it is refused (503), not acknowledged", async () => {
    const path = freshPath();
    const d = new SqliteDatabase(path);
    try {
      d.db.exec("CREATE TABLE scratch (x)");
      await d.write(() => void d.q("INSERT INTO scratch VALUES (1)").run());
      const during = d.write(() => {
        d.q("INSERT INTO scratch VALUES (2)").run();
        rmSync(path);
      });
      const e = await rejection(during);
      expect(e.status).toBe(503);
      expect(e.detail).toStartWith(`the write may not be stored: the database file ${path} was deleted`);
    } finally {
      d.close();
    }
  });

  it("a file restored in place (a copy put back at the path) is another file: writes stay refused until a restart, which opens it", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    await store.create("User", user(1));
    store.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    copyFileSync(path, `${path}.backup`);
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    copyFileSync(`${path}.backup`, path);
    try {
      expect((await rejection(store.create("User", user(2)))).detail).toContain("replaced by another file");
    } finally {
      await store.close();
    }
    const again = new SqliteStore(path);
    try {
      expect(again.created).toBeUndefined();
      expect((await again.get("User", "u1"))?.id).toBe("u1");
      expect((await again.create("User", user(2))).id).toBe("u2");
    } finally {
      await again.close();
    }
  });
});

/** Whether `chattr` can make a file immutable here (root ignores chmod a-w; an immutable file is unwritable even for root). */
function canChattr(): boolean {
  const probe = join(tmp.dir, "chattr-probe");
  writeFileSync(probe, "");
  const ok = Bun.spawnSync(["chattr", "+i", probe], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  if (ok) Bun.spawnSync(["chattr", "-i", probe]);
  rmSync(probe);
  return ok;
}
const root = process.getuid?.() === 0;

describe("SqliteStore writes while its file is unwritable", () => {
  it.skipIf(root && !canChattr())("chmod a-w (for root: chattr +i): writes answer 503 with Retry-After, ready() says why; writable again, the same write succeeds without a restart", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const lock = () => (root ? Bun.spawnSync(["chattr", "+i", path]) : chmodSync(path, 0o400));
    const unlock = () => {
      if (root) Bun.spawnSync(["chattr", "-i", path]);
      chmodSync(path, 0o600);
    };
    try {
      await store.create("User", user(1));
      chmodSync(path, 0o400);
      lock();
      expect(store.fileProblem()).toMatchObject({ event: "database file unwritable", gone: false });
      const e = await rejection(store.create("User", user(2)));
      expect(e.status).toBe(503);
      expect(e.headers?.["Retry-After"]).toBe("5");
      expect(e.detail).toStartWith(`nothing was written: the database file ${path} is not writable`);
      expect(e.detail).toContain("chmod u+w");
      expect(e.detail).not.toContain("SQLITE_READONLY");
      const r = await store.ready(100);
      expect(!r.ok && r.reason).toContain("is not writable");
      // Reads go on.
      expect((await store.get("User", "u1"))?.id).toBe("u1");
      expect(await store.get("User", "u2")).toBeUndefined();
      unlock();
      expect(store.fileProblem()).toBeUndefined();
      expect((await store.create("User", user(2))).id).toBe("u2");
      expect(await store.ready(100)).toEqual({ ok: true });
    } finally {
      unlock();
      await store.close();
    }
  });
});

describe("SqliteStore opening an unwritable file", () => {
  it.skipIf(root && !canChattr())("is refused with a StoreOpenError saying to make it writable, and opens once it is", async () => {
    const path = freshPath();
    await new SqliteStore(path).close();
    chmodSync(path, 0o400);
    if (root) Bun.spawnSync(["chattr", "+i", path]);
    try {
      expect(() => new SqliteStore(path)).toThrow(new RegExp(`^the database file ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is not writable by scimd's user \\((EACCES|EPERM)\\): make it writable`));
    } finally {
      if (root) Bun.spawnSync(["chattr", "-i", path]);
      chmodSync(path, 0o600);
    }
    await new SqliteStore(path).close();
  });
});

describe("SqliteStore on a full disk (PRAGMA max_page_count)", () => {
  it("a group with members that does not fit answers 507 and stores nothing of it; once the limit is raised the same write succeeds, whole", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) ids.push((await store.create("User", user(i))).id);
      const pages = (store.db.query("PRAGMA page_count").get() as { page_count: number }).page_count;
      store.db.exec(`PRAGMA max_page_count = ${pages}`);
      const before = store.stats();
      const group = { id: "g1", data: { displayName: "everyone", description: "x".repeat(2000) }, members: ids };
      // A small write queued in the same turn shares the transaction SQLite ends: nothing of either is stored.
      const [big, small] = [store.create("Group", group), store.create("User", user(1000))];
      for (const p of [big, small]) {
        const e = await rejection(p);
        expect(e.status).toBe(507);
        expect(e.detail).toStartWith(`the disk holding the database ${path} is full`);
        expect(e.detail).toContain("nothing was written");
      }
      expect(await store.get("Group", "g1")).toBeUndefined();
      expect((store.db.query("SELECT count(*) AS n FROM group_members").get() as { n: number }).n).toBe(0);
      expect((store.db.query("SELECT count(*) AS n FROM groups").get() as { n: number }).n).toBe(0);
      expect(store.stats()).toMatchObject({ users: before.users, groups: 0, memberships: 0 });
      expect(await store.ready(100)).toEqual({ ok: true });
      // Space is back: the same requests succeed, with no restart.
      store.db.exec(`PRAGMA max_page_count = ${pages * 10}`);
      expect((await store.create("Group", group)).id).toBe("g1");
      expect((await store.create("User", user(1000))).id).toBe("u1000");
      expect(await store.memberCount("g1", 1000)).toBe(300);
      expect(store.stats()).toMatchObject({ users: 301, groups: 1, memberships: 300 });
    } finally {
      await store.close();
    }
  });
});

describe("SqliteStore opening", () => {
  it("says where it created a new database, and nothing when it opened an existing one", async () => {
    const path = freshPath();
    const first = new SqliteStore(path);
    expect(first.created).toBe(resolve(path));
    await first.close();
    const again = new SqliteStore(path);
    expect(again.created).toBeUndefined();
    await again.close();
  });

  for (const left of [["-wal"], ["-shm"], ["-wal", "-shm"]]) {
    it(`refuses to create a database beside a ${left.join(" and ")} without one, and creates nothing`, () => {
      const path = freshPath();
      mkdirSync(join(path, ".."), { recursive: true });
      for (const s of left) writeFileSync(`${path}${s}`, "left over");
      let caught: unknown;
      try {
        new SqliteStore(path).close();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(StoreOpenError);
      const msg = (caught as Error).message;
      expect(msg).toStartWith(`refusing to create a new database at ${path}: ${path}${left[0]}`);
      expect(msg).toContain("restore it from a backup");
      expect(readdirSync(join(path, "..")).sort()).toEqual(left.map((s) => `scimd.db${s}`).sort());
    });
  }
});

describe("after the review: the -shm deleted, a read-only copy, a symbolic link, a closed store", () => {
  it("with the server's -shm deleted, another command's open is refused (its write would be lost when the server stops), and the server records no token use into it", async () => {
    const path = freshPath();
    const served = new SqliteStore(path);
    try {
      await served.create("User", user(1));
      await served.createToken("okta", "hash-okta");
      rmSync(`${path}-shm`);
      let caught: unknown;
      try {
        new SqliteStore(path, { create: false }).close();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(StoreOpenError);
      expect((caught as Error).message).toContain(`${path}-wal is there without ${path}-shm`);
      expect((caught as Error).message).toContain("Stop serve cleanly");
      // The token's first use is not written into files that are no longer the ones opened.
      expect((await served.findToken("hash-okta"))?.name).toBe("okta");
      expect((await served.listTokens()).find((t) => t.name === "okta")?.lastUsed).toBeNull();
    } finally {
      served.close();
    }
    // Stopped cleanly, the WAL is checkpointed: the next command opens it.
    const after = new SqliteStore(path, { create: false });
    expect(await after.get("User", "u1")).toBeDefined();
    after.close();
  });

  it.skipIf(root && !canChattr())("a read-only copy (chmod a-w; for root: chattr +i) opens for reading: export and activity work on a kept backup, its mode is left alone", async () => {
    const path = freshPath();
    const s = new SqliteStore(path);
    await s.create("User", user(1));
    s.close();
    chmodSync(path, 0o400);
    if (root) Bun.spawnSync(["chattr", "+i", path]);
    try {
      const ro = new SqliteStore(path, { create: false });
      try {
        expect((await ro.search("User", { offset: 0, limit: 10 })).total).toBe(1);
      } finally {
        ro.close();
      }
      expect(statSync(path).mode & 0o777).toBe(0o400);
      // serve (create) still refuses a file it could not write.
      expect(() => new SqliteStore(path)).toThrow(/is not writable by scimd's user/);
    } finally {
      if (root) Bun.spawnSync(["chattr", "-i", path]);
      chmodSync(path, 0o600);
    }
  });

  it("a --db that is a symbolic link: the -wal beside the link's target is watched, and a lone -wal there refuses the start", async () => {
    const real = freshPath();
    mkdirSync(join(real, ".."), { recursive: true });
    const link = join(tmp.dir, `link-${++seq}.db`);
    symlinkSync(real, link);
    const store = new SqliteStore(link);
    try {
      await store.create("User", user(1));
      expect(existsSync(`${real}-wal`)).toBe(true);
      rmSync(`${real}-wal`);
      const e = await rejection(store.create("User", user(2)));
      expect(e.status).toBe(503);
      expect(e.message).toContain(`${real}-wal`);
    } finally {
      store.close();
    }
    // The database file gone, its -wal and -shm left beside the target (a crash, then rm): refused through the link too.
    const again = new SqliteStore(link);
    again.db.exec("PRAGMA wal_autocheckpoint = 0");
    await again.create("User", user(3));
    const copyWal = readFileSync(`${real}-wal`);
    again.close();
    rmSync(real);
    writeFileSync(`${real}-wal`, copyWal);
    expect(() => new SqliteStore(link)).toThrow(/refusing to create a new database/);
    expect(existsSync(real)).toBe(false);
  });

  it("a write after close() is refused with 503, not thrown from a timer", async () => {
    const store = new SqliteStore(freshPath());
    store.close();
    const e = await rejection(store.create("User", user(1)));
    expect(e.status).toBe(503);
    expect(e.message).toContain("closed");
  });
});
