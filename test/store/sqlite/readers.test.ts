/**
 * The reader pool's own behaviour beyond the contract (test/store/sqlite/contract-readers.test.ts runs
 * the contract through readers): a search cut off because the store closes (scimd stopping) is told
 * so, not reported as a client that went away; and a worker terminated while a statement still runs
 * counts against the pool's size until its thread has ended.
 */
import { afterAll, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { resolveFilter } from "../../../src/scim/filter";
import { USER_RESOURCE } from "../../../src/scim/schema";
import { SqliteReaders } from "../../../src/store/sqlite/readers";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import { SearchCancelled } from "../../../src/store/store";
import { expensiveFilter, populateUsers } from "../../expensive-filter";
import { tempDir } from "../../helpers";

const tmp = tempDir("scimd-readers-");
afterAll(() => tmp.cleanup());

it("a search running in a reader when the store closes gets 503 'the store is closing', not 'the client closed the request'; a waiting one too", async () => {
  const path = join(tmp.dir, "scimd.db");
  const seed = new SqliteStore(path, { readers: false });
  await populateUsers(seed, 5000);
  await seed.close();
  const store = new SqliteStore(path, { readers: { timeoutMs: 60_000, size: 1 } });
  const filter = resolveFilter(USER_RESOURCE, expensiveFilter());
  const outcome = (p: Promise<unknown>) => p.then(() => "finished", (e: unknown) => e);
  // One reader: the first search runs, the second waits for it.
  const running = outcome(store.search("User", { filter, offset: 0, limit: 10 }));
  const waiting = outcome(store.search("User", { filter, offset: 0, limit: 10 }));
  await Bun.sleep(100);
  await store.close();
  for (const got of await Promise.all([running, waiting])) {
    expect(got).not.toBeInstanceOf(SearchCancelled);
    expect(got).toMatchObject({ status: 503, message: "the store is closing (scimd is stopping)" });
  }
}, 60_000);

/** This process's threads named "Worker" (Bun names a Web Worker's thread so), from /proc. */
function workerThreads(): number {
  let n = 0;
  for (const t of readdirSync("/proc/self/task")) {
    try {
      if (readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim() === "Worker") n++;
    } catch {
      // The thread ended while we looked.
    }
  }
  return n;
}

/** An empty database file (the readers open it read-only). */
function emptyDatabase(name: string): string {
  const path = join(tmp.dir, name);
  const seed = new Database(path, { create: true });
  seed.exec("PRAGMA journal_mode = WAL");
  seed.exec("CREATE TABLE t (x INTEGER)");
  seed.close();
  return path;
}

/**
 * A search whose scan is one quick chunk and whose page statement (the final sort, which cannot be
 * chunked or interrupted) runs for a time that grows with `rows`: 10 million rows of a recursive CTE
 * take about a second on this machine.
 */
const slowJob = (rows: number) => ({
  maxSql: "SELECT 1 AS m",
  scanSql: "SELECT 1 WHERE ? >= 0 AND ? >= 0",
  params: [],
  pageSql: `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows}) SELECT count(*) - count(*) + 1 FROM c WHERE ? IS NOT NULL AND ? >= 0`,
  rowsSql: "SELECT value AS seq FROM json_each(?)",
  offset: 0,
  limit: 10,
});

it("a reader terminated while its final statement still runs counts against the size until its thread ends: searches cut off one after another never run more threads than the pool's size", async () => {
  const path = emptyDatabase("threads.db");
  // Earlier tests' workers end a moment after their store closes; idle ones of a store left open stay.
  for (const until = Date.now() + 5000; workerThreads() > 0 && Date.now() < until; ) await Bun.sleep(20);
  const before = workerThreads();
  let most = 0;
  const sampler = setInterval(() => (most = Math.max(most, workerThreads() - before)), 20);
  const readers = new SqliteReaders(path, { timeoutMs: 200, size: 1 });
  try {
    const outcome = (p: Promise<unknown>) => p.then(() => "finished", (e: unknown) => e);
    // The first is cut off at its deadline, its worker after the grace period (its thread still runs
    // the statement); the others never start, because that thread has not ended: they are told to
    // retry (503), not that their filter is too expensive.
    expect(await outcome(readers.run(slowJob(30_000_000)))).toMatchObject({ status: 400, scimType: "tooMany" });
    for (let i = 0; i < 2; i++) {
      const got = await outcome(readers.run(slowJob(10)));
      expect(got).toMatchObject({ status: 503, headers: { "Retry-After": "1" } });
      expect((got as Error).message).toStartWith("every reader (1) was busy with other searches");
    }
    // Once the terminated thread has ended, the pool starts a new worker and searches run again.
    const until = Date.now() + 60_000;
    while (workerThreads() > before && Date.now() < until) await Bun.sleep(20);
    expect(workerThreads()).toBe(before);
    expect(await readers.run(slowJob(10))).toMatchObject({ total: 1, rows: [{ seq: 1 }] });
    most = Math.max(most, workerThreads() - before);
  } finally {
    clearInterval(sampler);
    readers.close();
  }
  expect(most).toBe(1);
}, 90_000);

it("a search whose client goes away during a statement that cannot be stopped (the final sort) ends within the grace period, not when the statement does", async () => {
  const readers = new SqliteReaders(emptyDatabase("abandoned.db"), { timeoutMs: 60_000, size: 1 });
  try {
    const abort = new AbortController();
    const search = readers.run(slowJob(60_000_000), abort.signal).then(() => "finished", (e: unknown) => e);
    await Bun.sleep(100);
    const t0 = performance.now();
    abort.abort();
    expect(await search).toBeInstanceOf(SearchCancelled);
    // The grace period is 1 s; the statement itself runs for several seconds.
    expect(performance.now() - t0).toBeLessThan(3000);
  } finally {
    readers.close();
    // Its thread ends when the statement does: not left to burn a CPU under the next tests' feet.
    for (const until = Date.now() + 60_000; workerThreads() > 0 && Date.now() < until; ) await Bun.sleep(20);
  }
}, 90_000);
