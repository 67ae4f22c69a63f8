/**
 * What the PostgreSQL store does beyond the shared contract: its migrations (under an advisory lock,
 * refusing a newer or a foreign database), opening errors that never show the password, and
 * uniqueness and ordering when several stores (as several replicas would) write to one database.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { openStore } from "../../../src/store/open";
import { StoreMissingError, StoreOpenError, type Store } from "../../../src/store/store";
import { resolveFilter } from "../../../src/scim/filter";
import { USER_RESOURCE } from "../../../src/scim/schema";
import { MIGRATIONS } from "../../../src/store/postgres/migrations";
import { compileFilter } from "../../../src/store/postgres/sql-filter";
import { USER } from "../../helpers";
import { describePostgres, startCluster, TEST_ROLE, type PgCluster } from "./cluster";

describePostgres("PostgreSQL store", () => {
  let cluster: PgCluster;
  let admin: SQL;
  let n = 0;
  beforeAll(async () => {
    cluster = await startCluster();
    admin = new SQL(cluster.url(), { max: 1 });
  }, 120_000);
  afterAll(async () => {
    await admin?.close();
    cluster?.stop();
  }, 60_000);

  const newDb = async () => {
    const db = `pgstore_${++n}`;
    await admin.unsafe(`CREATE DATABASE ${db}`);
    return cluster.url(db);
  };
  const refusal = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as Error);

  it("stores opened together on an empty database migrate it once, under the advisory lock", async () => {
    const url = await newDb();
    const migrated: number[] = [];
    const stores = await Promise.all([1, 2, 3].map(() => openStore(url, { onMigrated: (_f, to) => migrated.push(to) })));
    try {
      expect(migrated).toEqual(MIGRATIONS.map((_, i) => i + 1));
      const check = new SQL(url, { max: 1 });
      const [{ version }] = await check`SELECT version FROM scimd_schema`;
      await check.close();
      expect(version).toBe(MIGRATIONS.length);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it("refuses a database from a newer scimd, changing nothing", async () => {
    const url = await newDb();
    await (await openStore(url)).close();
    const db = new SQL(url, { max: 1 });
    await db`UPDATE scimd_schema SET version = ${MIGRATIONS.length + 1}`;
    const e = await refusal(openStore(url));
    expect(e).toBeInstanceOf(StoreOpenError);
    expect(e!.message).toContain(`schema version ${MIGRATIONS.length + 1}, newer than this scimd understands`);
    const [{ version }] = await db`SELECT version FROM scimd_schema`;
    expect(version).toBe(MIGRATIONS.length + 1);
    await db.close();
  });

  it("refuses a database holding tables scimd did not create, and creates none", async () => {
    const url = await newDb();
    const db = new SQL(url, { max: 1 });
    await db`CREATE TABLE invoices (id int)`;
    const e = await refusal(openStore(url));
    expect(e).toBeInstanceOf(StoreOpenError);
    expect(e!.message).toContain("tables that scimd did not create");
    const [{ n: tables }] = await db`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`;
    expect(tables).toBe(1);
    await db.close();
  });

  it("without create, an empty database is StoreMissingError", async () => {
    const url = await newDb();
    expect(await refusal(openStore(url, { create: false }))).toBeInstanceOf(StoreMissingError);
  });

  it("a server that cannot be reached is a StoreOpenError that names the URL without its password", async () => {
    const url = `postgres://${TEST_ROLE}:hunter2secret@127.0.0.1:1/nowhere?password=alsosecret`;
    const e = await refusal(openStore(url));
    expect(e).toBeInstanceOf(StoreOpenError);
    expect(e!.message).toContain("127.0.0.1:1/nowhere");
    expect(e!.message).not.toContain("hunter2secret");
    expect(e!.message).not.toContain("alsosecret");
  });

  it("the search document is stored as a jsonb object, not a JSON string (oven-sh/bun #28819)", async () => {
    const url = await newDb();
    const store = await openStore(url);
    await store.create("User", { id: "u1", data: { schemas: [USER], userName: "Åsa@Example.com" } });
    await store.close();
    const db = new SQL(url, { max: 1 });
    const [row] = await db`SELECT jsonb_typeof(search) AS t, search ->> 'userName' AS key, user_name_key FROM users`;
    await db.close();
    expect(row).toEqual({ t: "object", key: "åsa@example.com", user_name_key: "åsa@example.com" });
  });

  it("two stores on one database creating one userName (differing in case and normalisation) at once: one is stored, the other gets 409 uniqueness", async () => {
    const url = await newDb();
    const a = await openStore(url), b = await openStore(url);
    try {
      for (let round = 0; round < 10; round++) {
        const results = await Promise.allSettled([
          a.create("User", { id: `a${round}`, data: { schemas: [USER], userName: `\u00e5sa.race${round}@example.com` } }),
          b.create("User", { id: `b${round}`, data: { schemas: [USER], userName: `A\u030aSA.RACE${round}@EXAMPLE.COM` } }),
        ]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected")!;
        expect(failed.reason).toMatchObject({ status: 409, scimType: "uniqueness" });
      }
      expect((await a.search("User", { offset: 0, limit: 0 })).total).toBe(10);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("member PATCHes on one group from two stores at once lose nothing", async () => {
    const url = await newDb();
    const a = await openStore(url), b = await openStore(url);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push((await a.create("User", { id: `m${i}`, data: { schemas: [USER], userName: `m${i}@example.com` } })).id);
      await a.create("Group", { id: "g", data: { displayName: "G" } });
      await Promise.all(ids.map((id, i) => (i % 2 ? a : b).update("Group", "g", { data: { displayName: "G" }, memberChanges: [{ kind: "add", ids: [id] }] })));
      const stored = await b.get("Group", "g");
      const members = await b.memberPage("g", undefined, 100);
      expect(members.members.map((m) => m.value).sort()).toEqual([...ids].sort());
      // Every add that changed the membership is a version.
      expect(stored!.version).toBe(41);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a token created through one store is found by another on its next lookup, and refused there once revoked", async () => {
    const url = await newDb();
    const a: Store = await openStore(url), b: Store = await openStore(url);
    try {
      await a.createToken("idp", "hash-1");
      expect((await b.findToken("hash-1"))?.name).toBe("idp");
      expect(await a.revokeToken("idp")).toBe(1);
      expect(await b.findToken("hash-1")).toBeUndefined();
      expect(await b.refusal("hash-1")).toEqual({ reason: "revoked" });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("in a database whose collation is not C, filters on the key columns (code-point order, as SQLite) are served by their indexes", async () => {
    const db = `pgstore_${++n}`;
    await admin.unsafe(`CREATE DATABASE ${db} TEMPLATE template0 LOCALE 'C.UTF-8'`);
    await (await openStore(cluster.url(db))).close();
    const sql = new SQL(cluster.url(db), { max: 1 });
    try {
      await sql.unsafe("SET enable_seqscan = off");
      for (const [filter, index] of [
        ['userName eq "Bob@example.com"', "users_user_name_key_key"],
        ['externalId eq "e1"', "users_external_id"],
        ['meta.lastModified gt "2020-01-01T00:00:00Z"', "users_last_modified"],
      ]) {
        const where = compileFilter("User", resolveFilter(USER_RESOURCE, filter!));
        const plan = (await sql.unsafe(`EXPLAIN SELECT 1 FROM users r WHERE ${where.sql}`, where.params)).map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n");
        expect(plan).toContain(index!);
      }
    } finally {
      await sql.close();
    }
  });

  it("while the server is down a write fails with 503 and Retry-After, nothing half-written; the pool reconnects when it is back", async () => {
    // A cluster of its own: halting the shared one would disturb the other tests of this file.
    const own = await startCluster();
    try {
      const store = await openStore(own.url());
      try {
        await store.create("User", { id: "before", data: { schemas: [USER], userName: "before@example.com" } });
        own.halt();
        const e = await refusal(store.create("User", { id: "during", data: { schemas: [USER], userName: "during@example.com" } }));
        expect(e).toMatchObject({ status: 503, headers: { "Retry-After": "1" } });
        expect(e!.message).not.toContain("scimd_test@");
        expect(await refusal(store.get("User", "before"))).toMatchObject({ status: 503 });
        expect((await store.ready(2000)).ok).toBe(false);
        own.resume();
        // A pooled connection the server ended while down fails its next statement once (a 503 like the
        // others, nothing written), then the pool replaces it: the client's retry succeeds.
        let created;
        const failures: unknown[] = [];
        while (!created && failures.length < 10)
          created = await store.create("User", { id: "after", data: { schemas: [USER], userName: "after@example.com" } }).catch((x: unknown) => void failures.push(x));
        for (const f of failures) expect(f).toMatchObject({ status: 503 });
        expect(created?.id).toBe("after");
        expect((await store.ready(5000)).ok).toBe(true);
        const all = await store.search("User", { offset: 0, limit: 10 });
        expect(all.resources.map((r) => r.id)).toEqual(["before", "after"]);
      } finally {
        await store.close();
      }
    } finally {
      own.stop();
    }
  }, 120_000);

  it("two groups that are members of each other, deleted at once from two stores, are both deleted: the deadlock PostgreSQL breaks is retried, not a 500", async () => {
    const url = await newDb();
    const a = await openStore(url), b = await openStore(url);
    try {
      // Each round deadlocks (checked with the retry turned off); PostgreSQL detects it after deadlock_timeout (1 s).
      for (let round = 0; round < 3; round++) {
        const [x, y] = [`x${round}`, `y${round}`];
        await a.create("Group", { id: x, data: { displayName: x } });
        await a.create("Group", { id: y, data: { displayName: y }, members: [x] });
        await a.update("Group", x, { data: { displayName: x }, memberChanges: [{ kind: "add", ids: [y] }] });
        const results = await Promise.allSettled([a.delete("Group", x), b.delete("Group", y)]);
        expect(results.map((r) => (r.status === "rejected" ? String(r.reason) : "deleted"))).toEqual(["deleted", "deleted"]);
        expect(await a.get("Group", x)).toBeUndefined();
        expect(await a.get("Group", y)).toBeUndefined();
      }
      expect(a.stats().memberships + b.stats().memberships).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
    // Three deadlocks of deadlock_timeout (1 s) each: bun's default 5 s leaves no room on a loaded machine (a CI failure).
  }, 20_000);
});
