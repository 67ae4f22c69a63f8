/**
 * The throwaway cluster the PostgreSQL tests run on, and the behaviours of Bun.SQL (the pinned Bun)
 * the PostgreSQL store is built around: checked here so that a Bun upgrade that changes them fails a
 * test instead of a store.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { describePostgres, startCluster, type PgCluster } from "./cluster";

describePostgres("PostgreSQL test cluster and Bun.SQL", () => {
  let cluster: PgCluster;
  let sql: SQL;
  beforeAll(async () => {
    cluster = await startCluster();
    sql = new SQL(cluster.url(), { max: 4 });
  }, 120_000);
  afterAll(async () => {
    await sql?.close();
    cluster?.stop();
  }, 60_000);

  it("starts a server on 127.0.0.1 that answers as the test role", async () => {
    const [row] = await sql`SELECT current_user AS who, inet_server_addr()::text AS addr, current_setting('fsync') AS fsync`;
    expect(row).toEqual({ who: "scimd_test", addr: "127.0.0.1/32", fsync: "off" });
  });

  it("JSON text bound as $n::text::jsonb is stored as the object, not as a JSON string (oven-sh/bun #28819)", async () => {
    await sql`CREATE TEMP TABLE j (v jsonb)`;
    const text = JSON.stringify({ a: 1, b: ["x"] });
    await sql.unsafe("INSERT INTO j VALUES ($1::text::jsonb)", [text]);
    const [row] = await sql`SELECT jsonb_typeof(v) AS t, v::text AS v FROM j`;
    expect(row).toEqual({ t: "object", v: '{"a": 1, "b": ["x"]}' });
    // What the store avoids: a string bound straight to a jsonb parameter. Recorded, not relied on:
    // on this Bun it is encoded again (a JSON string), with Bun's fix (#40944) it would be the object.
    const [direct] = await sql.unsafe("SELECT jsonb_typeof($1::jsonb) AS t", [text]);
    expect(["string", "object"]).toContain(direct.t);
  });

  it("a query running when idleTimeout or maxLifetime fires finishes (oven-sh/bun #30646)", async () => {
    const timed = new SQL(cluster.url(), { max: 1, idleTimeout: 1, maxLifetime: 1 });
    try {
      const [row] = await timed`SELECT pg_sleep(2.5)::text AS slept, 1 AS n`;
      expect(row.n).toBe(1);
      // The pool opens a new connection after the old one retired.
      const [again] = await timed`SELECT 2 AS n`;
      expect(again.n).toBe(2);
    } finally {
      await timed.close();
    }
  }, 30_000);
});
