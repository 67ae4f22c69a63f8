/**
 * `npm test`: every test once (`bun test`, the HTTP tests on SQLite), then the HTTP tests again on
 * PostgreSQL (`SCIMD_TEST_STORE=postgres bun test test/http`: test/helpers.ts then opens each
 * server's store as a fresh database of one throwaway cluster). Both runs always run; the exit code
 * is the first failure's. Each run ends with bun's own "N pass" / "N fail" lines, which .ci/run adds up.
 *
 * Arguments go to both runs (`npm test -- test/http/users.test.ts`); without any, the PostgreSQL run
 * takes test/http. Without the PostgreSQL server binaries the second run is skipped, saying what to
 * install, or fails when SCIMD_REQUIRE_POSTGRES=1 (as .ci/run sets), like the store's own tests.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const ROOT = "/usr/lib/postgresql";
const INSTALL_HINT = "apt-get install postgresql";

/** As test/store/postgres/cluster.ts finds the server binaries (that file needs bun:test, so it is not imported here). */
function postgresAvailable(): boolean {
  if (process.env.SCIMD_PG_BIN) return existsSync(join(process.env.SCIMD_PG_BIN, "initdb"));
  return existsSync(ROOT) && readdirSync(ROOT).some((d) => /^\d+$/.test(d) && existsSync(join(ROOT, d, "bin", "initdb")));
}

const args = process.argv.slice(2);
const run = (env: Record<string, string | undefined>, argv: string[]): number =>
  Bun.spawnSync([process.execPath, "test", ...argv], { env: { ...process.env, ...env }, stdio: ["inherit", "inherit", "inherit"] }).exitCode ?? 1;

const sqlite = run({ SCIMD_TEST_STORE: undefined }, args);

let postgres: number;
if (postgresAvailable()) {
  console.error("\n=== the HTTP tests again, on PostgreSQL (SCIMD_TEST_STORE=postgres) ===\n");
  // Paths given (files or folders that exist) go to both runs; a flag's value (`-t NAME`) is no path.
  postgres = run({ SCIMD_TEST_STORE: "postgres" }, args.some((a) => !a.startsWith("-") && existsSync(a)) ? args : [...args, "test/http"]);
} else if (process.env.SCIMD_REQUIRE_POSTGRES === "1") {
  console.error(`\nSCIMD_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries under ${ROOT}/*/bin: the HTTP tests on PostgreSQL FAILED to run (install: ${INSTALL_HINT})`);
  postgres = 1;
} else {
  console.error(`\nThe HTTP tests on PostgreSQL were SKIPPED: no server binaries under ${ROOT}/*/bin (install them with: ${INSTALL_HINT})`);
  postgres = 0;
}

console.error(`npm test: SQLite run ${sqlite === 0 ? "passed" : `failed (exit ${sqlite})`}; PostgreSQL HTTP run ${postgres === 0 ? "passed or skipped" : `failed (exit ${postgres})`}`);
process.exit(sqlite || postgres);
