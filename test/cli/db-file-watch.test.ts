/**
 * serve's watch of the database's files (watchDatabaseFile) over a real SQLite store in a temp
 * folder: one error line per change, named for what happened, and a line when the file is as opened
 * again; nothing while nothing changes; nothing for a store without files.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, rmSync } from "node:fs";
import { join } from "node:path";
import { watchDatabaseFile } from "../../src/cli/serve";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { memoryLogger, tempDir } from "../helpers";

const tmp = tempDir("scimd-db-file-watch-");
afterAll(() => tmp.cleanup());
const root = process.getuid?.() === 0;
const chattr = (flag: string, path: string) => Bun.spawnSync(["chattr", flag, path], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

describe("watchDatabaseFile", () => {
  it("logs nothing while the file is as opened; unwritable, then writable again: one line each, however many checks", async () => {
    const path = join(tmp.dir, "a", "scimd.db");
    const store = new SqliteStore(path);
    const { logger, records } = memoryLogger("info");
    const watch = watchDatabaseFile(store, logger, "scimd.db", 60_000)!;
    try {
      for (let i = 0; i < 3; i++) watch.check();
      expect(records).toEqual([]);
      chmodSync(path, 0o400);
      if (root && !chattr("+i", path)) return void console.log("skipped: chattr +i is not available here");
      for (let i = 0; i < 3; i++) watch.check();
      expect(records.map((r) => [r.level, r.event])).toEqual([["error", "database file unwritable"]]);
      expect(String(records[0]!.message)).toContain("chmod u+w");
      expect(records[0]!.db).toBe("scimd.db");
      if (root) chattr("-i", path);
      chmodSync(path, 0o600);
      for (let i = 0; i < 3; i++) watch.check();
      expect(records.map((r) => [r.level, r.event])).toEqual([
        ["error", "database file unwritable"],
        ["info", "database file ok"],
      ]);
      expect(String(records[1]!.message)).toContain("after: database file unwritable");
    } finally {
      if (root) chattr("-i", path);
      chmodSync(path, 0o600);
      watch.stop();
      await store.close();
    }
  });

  it("a deleted file is one error line, and its timer notices it by itself", async () => {
    const path = join(tmp.dir, "b", "scimd.db");
    const store = new SqliteStore(path);
    const { logger, records } = memoryLogger("info");
    const watch = watchDatabaseFile(store, logger, path, 20)!;
    try {
      rmSync(path);
      const t0 = performance.now();
      while (records.length === 0 && performance.now() - t0 < 2000) await Bun.sleep(10);
      await Bun.sleep(100);
      expect(records.map((r) => r.event)).toEqual(["database file deleted"]);
      expect(String(records[0]!.message)).toContain("restart scimd");
    } finally {
      watch.stop();
      await store.close();
    }
  });

  it("is undefined for a store without files to watch", () => {
    const { logger } = memoryLogger("info");
    expect(watchDatabaseFile({}, logger, "x")).toBeUndefined();
  });
});
