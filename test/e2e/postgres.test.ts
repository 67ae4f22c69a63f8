/**
 * The compiled binary on PostgreSQL: dist/scimd, alone in an empty folder, creates a token in and
 * serves a database of a throwaway cluster; two binaries on one database serve one directory (a write
 * through one is read through the other, one userName created through both at once is stored once, a
 * token revoked by the CLI is refused by both), and the URL's password reaches no output. A client
 * that goes away during an expensive search cancels it, and the server goes on serving.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresStore } from "../../src/store/postgres/postgres-store";
import { expensiveFilter, populateUsers } from "../expensive-filter";
import { describePostgres, startCluster, TEST_ROLE, type PgCluster } from "../store/postgres/cluster";
import { api, buildBinaryInto, runCli, startServe, stopAll, type Served } from "./harness";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
// The cluster trusts the test role, so any password is accepted: it is there to prove it is never shown.
const userBody = (userName: string) => ({ schemas: [USER], userName, displayName: userName.split("@")[0], emails: [{ value: userName, type: "work", primary: true }] });
const PASSWORD = "pg-S3cret-never-shown";

describePostgres("dist/scimd on PostgreSQL", () => {
  let cluster: PgCluster;
  let dir: string;
  let bin: string;
  let url: string;
  const started = new Set<Bun.Subprocess>();
  beforeAll(async () => {
    cluster = await startCluster();
    const admin = new SQL(cluster.url(), { max: 1 });
    await admin`CREATE DATABASE scimd_e2e`;
    await admin`CREATE DATABASE scimd_e2e_cancel`;
    await admin.close();
    url = `postgres://${TEST_ROLE}:${PASSWORD}@127.0.0.1:${cluster.port}/scimd_e2e`;
    dir = mkdtempSync(join(tmpdir(), "scimd-e2e-pg-"));
    bin = buildBinaryInto(dir);
  }, 300_000);
  afterAll(async () => {
    await stopAll(started, dir);
    cluster?.stop();
  }, 60_000);

  it("two binaries on one database serve one directory, and the password appears in no output", async () => {
    const gen = runCli(bin, dir, ["generate-token", "--name", "idp", "--db", url, "--create"]);
    expect(gen.code).toBe(0);
    const token = gen.out.trim();
    expect(gen.err).toContain(`127.0.0.1:${cluster.port}/scimd_e2e`);
    const a: Served = await startServe(bin, dir, ["--db", url], started, 20_000);
    const b: Served = await startServe(bin, dir, ["--db", url], started, 20_000);
    expect(a.exited ?? b.exited).toBeUndefined();

    const created = await api(a, token, "POST", "/Users", userBody("shared@example.com"));
    expect(created.status).toBe(201);
    const read = await api(b, token, "GET", `/Users/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body.userName).toBe("shared@example.com");

    // One userName created through both at once (differing in case): one 201, one 409.
    const race = await Promise.all([
      api(a, token, "POST", "/Users", userBody("race@example.com")),
      api(b, token, "POST", "/Users", userBody("RACE@example.com")),
    ]);
    expect(race.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(race.find((r) => r.status === 409)!.body.scimType).toBe("uniqueness");

    expect(runCli(bin, dir, ["tokens", "revoke", "idp", "--db", url]).code).toBe(0);
    expect((await api(a, token, "GET", "/Users")).status).toBe(401);
    expect((await api(b, token, "GET", "/Users")).status).toBe(401);

    for (const out of [gen.out.replace(token, ""), gen.err, a.log(), b.log()]) expect(out).not.toContain(PASSWORD);
  }, 120_000);

  it("migrate moves a served SQLite directory to PostgreSQL: the IdP's token, ids and ETags work there as before", async () => {
    const file = join(dir, "before.db");
    const gen = runCli(bin, dir, ["generate-token", "--name", "okta", "--db", file, "--create"]);
    expect(gen.code).toBe(0);
    const token = gen.out.trim();
    const old = await startServe(bin, dir, ["--db", file], started, 20_000);
    const made = await api(old, token, "POST", "/Users", userBody("moved@example.com"));
    expect(made.status).toBe(201);
    const renamed = await api(old, token, "PATCH", `/Users/${made.body.id}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "title", value: "Boss" }] });
    expect(renamed.status).toBe(200);
    const etag = renamed.headers.get("etag");
    expect(etag).toBe('W/"2"');
    expect(await old.stop()).toBe(0);

    const admin = new SQL(cluster.url(), { max: 1 });
    await admin`CREATE DATABASE scimd_moved`;
    await admin.close();
    const target = `postgres://${TEST_ROLE}:${PASSWORD}@127.0.0.1:${cluster.port}/scimd_moved`;
    const moved = runCli(bin, dir, ["migrate", "--from", file, "--to", target]);
    expect(moved.err).toBe("");
    expect(moved.code).toBe(0);
    expect(moved.out).toContain("1 user, 0 groups, 0 memberships, 1 token secret, 2 activity entries");
    expect(moved.out).not.toContain(PASSWORD);

    const now = await startServe(bin, dir, ["--db", target], started, 20_000);
    const read = await api(now, token, "GET", `/Users/${made.body.id}`);
    expect(read.status).toBe(200);
    expect(read.headers.get("etag")).toBe(etag);
    // The same meta but for location (the new server listens on another port).
    expect({ ...read.body.meta, location: undefined }).toEqual({ ...renamed.body.meta, location: undefined });
    expect(read.body.title).toBe("Boss");
    // If-Match with the ETag the IdP holds still matches.
    const next = await api(now, token, "PATCH", `/Users/${made.body.id}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "title", value: "Chief" }] }, { "If-Match": etag! });
    expect(next.status).toBe(200);
    expect(now.log()).not.toContain(PASSWORD);
    const log = runCli(bin, dir, ["activity", "--db", target, "--json"]);
    expect(log.code).toBe(0);
    expect(log.out.trim().split("\n").map((l) => JSON.parse(l).op)).toEqual(["patch", "patch", "create"]);
  }, 120_000);

  it("a client that goes away during an expensive search cancels it, and the server goes on serving (the cancel's rejection once ended the process)", async () => {
    const db = cluster.url("scimd_e2e_cancel");
    const store = await PostgresStore.open(db, "test", {});
    await populateUsers(store, 2000);
    await store.close();
    const gen = runCli(bin, dir, ["generate-token", "--name", "idp", "--db", db]);
    expect(gen.code).toBe(0);
    const token = gen.out.trim();
    const served = await startServe(bin, dir, ["--db", db, "--query-timeout", "60s"], started, 20_000);
    expect(served.exited).toBeUndefined();
    const filtered = (f: string) => `${served.base}/Users?filter=${encodeURIComponent(f)}`;
    const headers = { Authorization: `Bearer ${token}` };
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      const heavy = fetch(filtered(expensiveFilter()), { headers, signal: ac.signal }).catch(() => undefined);
      await Bun.sleep(30);
      ac.abort();
      await heavy;
    }
    await Bun.sleep(300);
    // Still there: a process ended by an unhandled rejection refuses the connection.
    expect((await fetch(`${served.url}/healthz`)).status).toBe(200);
    const r = await fetch(filtered('userName eq "user7@example.com"'), { headers });
    expect(((await r.json()) as { totalResults: number }).totalResults).toBe(1);
    expect(served.log()).not.toContain("canceling statement");
    expect(await served.stop(15_000)).toBe(0);
  }, 120_000);
});
