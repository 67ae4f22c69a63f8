/**
 * One throwaway PostgreSQL cluster (cluster.ts) for a whole test process: the HTTP tests on
 * PostgreSQL (SCIMD_TEST_STORE=postgres, test/helpers.ts) each take a fresh database in it. Started
 * at the first use; stopped after the last test by test/preload.ts (bun test runs no `exit` handler).
 */
import { SQL } from "bun";
import { startCluster, type PgCluster } from "./cluster";

let shared: Promise<{ cluster: PgCluster; admin: SQL }> | undefined;

/** The process's cluster, with an admin connection to its `postgres` database. */
export function sharedCluster(): Promise<{ cluster: PgCluster; admin: SQL }> {
  shared ??= startCluster().then((cluster) => ({ cluster, admin: new SQL(cluster.url(), { max: 1 }) }));
  return shared;
}

/** Stops the cluster, if one was started, and removes its folder. */
export async function stopSharedCluster(): Promise<void> {
  const s = await shared?.catch(() => undefined);
  shared = undefined;
  if (!s) return;
  await s.admin.close().catch(() => {});
  s.cluster.stop();
}
