/**
 * The reader pool's own behaviour beyond the contract (test/store/sqlite/contract-readers.test.ts runs
 * the contract through readers): a search cut off because the store closes (scimd stopping) is told
 * so, not reported as a client that went away.
 */
import { afterAll, expect, it } from "bun:test";
import { join } from "node:path";
import { resolveFilter } from "../../../src/scim/filter";
import { USER_RESOURCE } from "../../../src/scim/schema";
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
