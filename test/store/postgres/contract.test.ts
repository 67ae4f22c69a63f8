/**
 * The store contract (test/store/contract.ts) run against the PostgreSQL store: one throwaway cluster
 * for the file (cluster.ts), a new database in it for each fresh store, opened the way `serve` opens
 * it, through openStore and a postgres:// URL.
 */
import { afterAll, beforeAll } from "bun:test";
import { SQL } from "bun";
import { openStore } from "../../../src/store/open";
import { activityContract } from "../contract-activity";
import { storeContract, type OpenFresh } from "../contract";
import { scanContract } from "../contract-scan";
import { copyContract } from "../contract-copy";
import { tokenScopeContract } from "../contract-tokens-scope";
import { describePostgres, startCluster, type PgCluster } from "./cluster";

describePostgres("PostgreSQL store", () => {
  let cluster: PgCluster;
  let admin: SQL;
  let seq = 0;
  beforeAll(async () => {
    cluster = await startCluster();
    admin = new SQL(cluster.url(), { max: 1 });
  }, 120_000);
  afterAll(async () => {
    await admin?.close();
    cluster?.stop();
  }, 60_000);

  /** Databases made so far and not dropped: each is dropped when the next is made (the contract has closed its stores by then). */
  const made: string[] = [];
  const fresh: OpenFresh = async () => {
    // Drop the databases of earlier tests (about 8 MB each): three hundred would fill /tmp with gigabytes.
    for (const old of made.splice(0)) await admin.unsafe(`DROP DATABASE IF EXISTS ${old} WITH (FORCE)`);
    const db = `scimd_${++seq}`;
    made.push(db);
    await admin.unsafe(`CREATE DATABASE ${db}`);
    const url = cluster.url(db);
    return { store: await openStore(url), reopen: () => openStore(url) };
  };

  storeContract("PostgreSQL", fresh);
  activityContract("PostgreSQL", fresh);
  tokenScopeContract("PostgreSQL", fresh);
  scanContract("PostgreSQL", fresh);
  copyContract("PostgreSQL", fresh);
});
