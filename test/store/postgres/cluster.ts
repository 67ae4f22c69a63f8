/**
 * A throwaway PostgreSQL cluster for tests (scripts/pg-cluster.ts, which the benchmark shares): call
 * `stop()` from afterAll, so it also runs when a test fails. One cluster per test file: a cluster
 * starts in about a second, a database in it in milliseconds. Test clusters run with fsync,
 * synchronous_commit and full_page_writes off. Never use them for a real database.
 *
 * Without the binaries, `postgresAvailable` is false and the tests that need a cluster are skipped
 * with the install command printed; with SCIMD_REQUIRE_POSTGRES=1 (set by .ci/run) a missing server is
 * a failure instead, so CI never passes without having run them.
 */
import { describe, it } from "bun:test";
import { INSTALL_HINT, PG_ROOT, postgresAvailable, UNAVAILABLE_MESSAGE } from "../../../scripts/pg-cluster";

export { INSTALL_HINT, postgresAvailable, startCluster, TEST_ROLE, type PgCluster } from "../../../scripts/pg-cluster";

/** Whether a missing server must fail the run (CI) rather than skip its tests. */
export const postgresRequired = process.env.SCIMD_REQUIRE_POSTGRES === "1";

if (!postgresAvailable)
  console.warn(
    postgresRequired
      ? `SCIMD_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries under ${PG_ROOT}/*/bin: the PostgreSQL tests fail (install: ${INSTALL_HINT})`
      : `PostgreSQL tests SKIPPED: no server binaries under ${PG_ROOT}/*/bin (install them with: ${INSTALL_HINT})`,
  );

/**
 * `describe` for tests that need a cluster: runs them when the server binaries are here; else skips
 * them (the warning above names the install command), or, with SCIMD_REQUIRE_POSTGRES=1, fails.
 */
export function describePostgres(name: string, body: () => void): void {
  if (postgresAvailable) describe(name, body);
  else if (postgresRequired)
    describe(name, () => {
      it("needs the PostgreSQL server binaries (SCIMD_REQUIRE_POSTGRES=1)", () => {
        throw new Error(UNAVAILABLE_MESSAGE);
      });
    });
  else describe.skip(`${name} (skipped: no PostgreSQL server; ${INSTALL_HINT})`, body);
}
