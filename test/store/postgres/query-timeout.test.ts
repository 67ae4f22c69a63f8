/**
 * The query timeout on PostgreSQL: a search that is not an indexed lookup runs under
 * `SET LOCAL statement_timeout`, and past it the client gets 400 tooMany (RFC 7644 §3.12); an
 * indexed lookup (`userName eq`) runs without it, as before. A search whose request aborts (the
 * client went away) is cancelled on the server, and nothing is left unhandled.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { resolveFilter } from "../../../src/scim/filter";
import { rtOf } from "../../../src/scim/schema";
import { PostgresStore } from "../../../src/store/postgres/postgres-store";
import { expensiveFilter, populateUsers } from "../../expensive-filter";
import { SearchCancelled } from "../../../src/store/store";
import { scimErrorOf } from "../../helpers";
import { describePostgres, startCluster, type PgCluster } from "./cluster";

describePostgres("PostgreSQL store: query timeout", () => {
  let cluster: PgCluster;
  let store: PostgresStore;
  beforeAll(async () => {
    cluster = await startCluster();
    const admin = new SQL(cluster.url(), { max: 1 });
    await admin.unsafe("CREATE DATABASE scimd_timeout");
    await admin.close();
    // 1 ms: far below what the expensive filter takes over 2,000 users, above what a lookup needs (it has none).
    store = await PostgresStore.open(cluster.url("scimd_timeout"), "test", { queryTimeoutMs: 1 });
    await populateUsers(store, 2000);
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    cluster?.stop();
  }, 60_000);

  const rt = rtOf("User");
  it("stops a search past the query timeout with 400 tooMany saying the filter is too expensive", async () => {
    const e = await scimErrorOf(() => store.search("User", { filter: resolveFilter(rt, expensiveFilter()), offset: 0, limit: 10 }));
    expect(e.status).toBe(400);
    expect(e.scimType).toBe("tooMany");
    expect(e.detail).toContain("the filter is too expensive");
  });

  it("runs an indexed lookup (userName eq) without the deadline", async () => {
    const page = await store.search("User", { filter: resolveFilter(rt, 'userName eq "user7@example.com"'), offset: 0, limit: 10 });
    expect(page.total).toBe(1);
  });

  it("cancels the statement when the request's signal aborts: SearchCancelled at once, no unhandled rejection (it ended the process), the connection free again", async () => {
    const patient = await PostgresStore.open(cluster.url("scimd_timeout"), "test", { queryTimeoutMs: 60_000, maxConnections: 1 });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const filter = resolveFilter(rt, expensiveFilter());
      const ac = new AbortController();
      const t0 = performance.now();
      const search = patient.search("User", { filter, offset: 0, limit: 10, signal: ac.signal }).then(
        () => "finished",
        (e: unknown) => e,
      );
      setTimeout(() => ac.abort(), 20);
      const got = await search;
      expect(got).toBeInstanceOf(SearchCancelled);
      expect((got as SearchCancelled).status).toBe(503);
      // Well before the search would have finished on its own (hundreds of ms over 2,000 users).
      expect(performance.now() - t0).toBeLessThan(5_000);
      // The one connection serves the next search.
      const page = await patient.search("User", { filter: resolveFilter(rt, 'userName eq "user9@example.com"'), offset: 0, limit: 10 });
      expect(page.total).toBe(1);
      await Bun.sleep(100);
      expect(unhandled.map(String)).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await patient.close();
    }
  });

  it("stops a search whose request aborted before any of its statements ran (BEGIN): SearchCancelled, the search not run to its end", async () => {
    // The abort comes while the search waits for its transaction (BEGIN), before its first
    // statement: the old code only cancelled a statement already running, so this search ran to
    // completion for a client that was gone (a CI run caught it in the test above).
    const lazy = await PostgresStore.open(cluster.url("scimd_timeout"), "test", { queryTimeoutMs: 60_000, maxConnections: 1 });
    try {
      const filter = resolveFilter(rt, expensiveFilter());
      const ac = new AbortController();
      const search = lazy.search("User", { filter, offset: 0, limit: 10, signal: ac.signal }).then(
        () => "finished",
        (e: unknown) => e,
      );
      ac.abort();
      expect(await search).toBeInstanceOf(SearchCancelled);
      // Already aborted when it is asked: not started at all.
      expect(await lazy.search("User", { filter, offset: 0, limit: 10, signal: ac.signal }).then(() => "finished", (e: unknown) => e)).toBeInstanceOf(SearchCancelled);
      const page = await lazy.search("User", { filter: resolveFilter(rt, 'userName eq "user9@example.com"'), offset: 0, limit: 10 });
      expect(page.total).toBe(1);
    } finally {
      await lazy.close();
    }
  });
});
