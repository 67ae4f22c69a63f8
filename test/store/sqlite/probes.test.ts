/**
 * The SQLite store's probes where SQLite itself matters: ready() while another connection holds the
 * write lock (a real second bun:sqlite connection on the same file, in BEGIN IMMEDIATE), without
 * stalling the event loop, and the group commit reporting the writes of one turn as one batch.
 */
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import type { CommitBatch } from "../../../src/store/store";
import { tempDir } from "../../helpers";

const tmp = tempDir("scimd-sqlite-probes-");
afterAll(() => tmp.cleanup());
let seq = 0;
const freshPath = () => join(tmp.dir, `db-${++seq}`, "scimd.db");

/** The longest gap between ticks of a 5 ms interval while `f` runs: how long the event loop was blocked. */
async function longestStall<T>(f: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    const result = await f();
    stallMs = Math.max(stallMs, performance.now() - last);
    return { result, stallMs };
  } finally {
    clearInterval(timer);
  }
}

describe("SqliteStore probes", () => {
  it("ready() is not ok while another connection holds BEGIN IMMEDIATE, without blocking the event loop; ok once it commits", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const other = new Database(path);
    try {
      other.exec("BEGIN IMMEDIATE");
      const t0 = performance.now();
      const { result, stallMs } = await longestStall(() => store.ready(400));
      const took = performance.now() - t0;
      expect(result.ok).toBe(false);
      expect(result.ok ? "" : result.reason).toMatch(/write lock could not be taken within 400 ms/);
      // It waited for the lock the whole timeout, in short steps: the 5 ms timer kept running.
      expect(took).toBeGreaterThanOrEqual(390);
      expect(stallMs).toBeLessThan(100);
      // The store's own busy timeout is back as it was for its writes.
      expect(store.db.query("PRAGMA busy_timeout").get()).toEqual({ timeout: 5000 });
      other.exec("COMMIT");
      expect(await store.ready(400)).toEqual({ ok: true });
    } finally {
      other.close();
      await store.close();
    }
  });

  it("ready() waits for a lock released within the timeout and answers ok", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    const other = new Database(path);
    try {
      other.exec("BEGIN IMMEDIATE");
      setTimeout(() => other.exec("ROLLBACK"), 100);
      const t0 = performance.now();
      expect(await store.ready(2000)).toEqual({ ok: true });
      const took = performance.now() - t0;
      expect(took).toBeGreaterThanOrEqual(90);
      expect(took).toBeLessThan(1000);
    } finally {
      other.close();
      await store.close();
    }
  });

  it("writes queued around a ready() probe commit as usual, and the writes of one turn are one batch", async () => {
    const store = new SqliteStore(freshPath());
    try {
      const batches: CommitBatch[] = [];
      store.onCommit((b) => batches.push(b));
      const writes = [1, 2, 3, 4, 5, 6, 7].map((i) => store.create("User", { id: `u${i}`, data: { userName: `u${i}@example.com` } }));
      const ready = store.ready(500);
      await Promise.all(writes);
      expect(await ready).toEqual({ ok: true });
      expect(batches.map((b) => b.writes)).toEqual([7]);
      expect(store.stats().users).toBe(7);
      expect(store.db.inTransaction).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("stats() counts rows written before this store opened, and reports the file and WAL sizes on disk", async () => {
    const path = freshPath();
    const first = new SqliteStore(path);
    for (let i = 0; i < 30; i++) await first.create("User", { id: `u${i}`, data: { userName: `u${i}@example.com`, displayName: "x".repeat(200) } });
    const second = new SqliteStore(path);
    try {
      expect(second.stats()).toMatchObject({ users: 30, groups: 0, memberships: 0 });
      const s = first.stats();
      expect(s.databaseBytes).toBe(Bun.file(path).size);
      expect(s.walBytes).toBe(Bun.file(`${path}-wal`).size);
      expect(s.walBytes).toBeGreaterThan(0);
    } finally {
      await second.close();
      await first.close();
    }
  });
});

describe("SqliteStore probes after the file is deleted or replaced", () => {
  const { copyFileSync, renameSync, rmSync } = require("node:fs") as typeof import("node:fs");

  it("ready() is not ok, with the reason, once scimd.db and its -wal and -shm are deleted; stats() sizes are NaN, not 0", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    try {
      await store.create("User", { id: "u1", data: { userName: "u1@example.com" } });
      expect(await store.ready(200)).toEqual({ ok: true });
      expect(store.stats().databaseBytes).toBeGreaterThan(0);
      for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
      const r = await store.ready(200);
      expect(r.ok).toBe(false);
      expect(!r.ok && r.reason).toMatch(new RegExp(`^the database file ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} was deleted .*restart scimd`));
      const s = store.stats();
      expect(s.users).toBe(1);
      expect(s.databaseBytes).toBeNaN();
      expect(s.walBytes).toBeNaN();
    } finally {
      await store.close();
    }
  });

  it("ready() is not ok once another file is moved over the path (mv), even a copy of the same database", async () => {
    const path = freshPath();
    const store = new SqliteStore(path);
    try {
      await store.create("User", { id: "u1", data: { userName: "u1@example.com" } });
      copyFileSync(path, `${path}.copy`);
      renameSync(`${path}.copy`, path);
      const r = await store.ready(200);
      expect(r.ok).toBe(false);
      expect(!r.ok && r.reason).toContain("was replaced by another file");
      expect(store.stats().databaseBytes).toBeNaN();
    } finally {
      await store.close();
    }
  });
});
