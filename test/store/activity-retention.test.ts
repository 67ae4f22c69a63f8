/**
 * serve's retention of the activity log (activityPruner): entries older than the retention are deleted
 * in the background, in writes of at most one batch each, queued with the API's writes (so a write
 * sent meanwhile commits between two batches instead of waiting for the whole backlog); newer entries
 * and the resources stay.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { activityPruner } from "../../src/cli/serve";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { memoryLogger, openSqliteStore, tempDir } from "../helpers";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
let tmp: ReturnType<typeof tempDir>;
let store: SqliteStore;

beforeEach(async () => {
  tmp = tempDir("scimd-retention-");
  store = await openSqliteStore(join(tmp.dir, "scimd.db"));
});
afterEach(async () => {
  await store.close();
  tmp.cleanup();
});

const entries = () => (store.db.query("SELECT count(*) AS n FROM activity").get() as { n: number }).n;
const createUsers = (prefix: string, n: number) =>
  Promise.all(Array.from({ length: n }, (_, i) => store.create("User", { id: `${prefix}${i}`, data: { schemas: [USER], userName: `${prefix}${i}` } })));

describe("activity retention", () => {
  it("prunes every entry past the retention in batches, one write each, and a write sent meanwhile commits between them", async () => {
    await createUsers("old", 1234);
    await Bun.sleep(20);
    const { logger, records } = memoryLogger("info");
    const commits: number[] = [];
    const off = store.onCommit((b) => commits.push(b.writes));
    const pruner = activityPruner(store, 10, logger, { batch: 500, firstAfterMs: 60_000, intervalMs: 60_000 });
    const running = pruner.run();
    // Queued while the first batch is pending: it shares that batch's commit or the next, never waits for all three.
    const during = store.create("User", { id: "during", data: { schemas: [USER], userName: "during" } });
    const order: string[] = [];
    void during.then(() => order.push("write"));
    void running.then(() => order.push("pruning done"));
    await during;
    const pruned = await running;
    expect(order).toEqual(["write", "pruning done"]);
    off();
    await pruner.stop();
    expect(pruned).toBe(1234);
    // Three pruning writes (500, 500, 234), each committed on its own turn.
    expect(commits.length).toBeGreaterThanOrEqual(3);
    expect(entries()).toBe(1);
    expect((await store.listActivity({ limit: 10 })).map((e) => e.id)).toEqual(["during"]);
    expect((store.db.query("SELECT count(*) AS n FROM users").get() as { n: number }).n).toBe(1235);
    expect(records.find((r) => r.event === "activity pruned")).toMatchObject({ entries: 1234 });
  });

  it("runs on its own timer and keeps entries younger than the retention", async () => {
    await createUsers("a", 3);
    const pruner = activityPruner(store, 60 * 60_000, memoryLogger("info").logger, { firstAfterMs: 1, intervalMs: 5 });
    await Bun.sleep(50);
    await pruner.stop();
    expect(entries()).toBe(3);
    const eager = activityPruner(store, 1, memoryLogger("info").logger, { firstAfterMs: 1, intervalMs: 5 });
    await Bun.sleep(20);
    for (let i = 0; i < 100 && entries() > 0; i++) await Bun.sleep(10);
    await eager.stop();
    expect(entries()).toBe(0);
  });
});
