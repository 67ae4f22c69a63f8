/**
 * `npm run bench -- --db postgres` end to end on a tiny size (30 users): the three runs (SQLite, one
 * PostgreSQL replica, two) complete against the compiled binary and report each PostgreSQL figure as
 * a ratio to SQLite's; without server binaries it stops at once, naming the package to install.
 */
import { afterAll, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describePostgres } from "../store/postgres/cluster";
import { builtBinary, REPO } from "./harness";

const tmp = mkdtempSync(join(tmpdir(), "scimd-bench-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bench = (args: string[], env: Record<string, string> = {}) =>
  Bun.spawnSync([process.execPath, "run", "scripts/bench.ts", ...args], { cwd: REPO, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", timeout: 90_000 });

it("--db postgres without PostgreSQL server binaries says how to install them", () => {
  const r = bench(["--db", "postgres", "--users", "10"], { SCIMD_PG_BIN: join(tmp, "no-such-bin") });
  expect(r.exitCode).toBe(1);
  expect(r.stderr.toString()).toContain("apt-get install postgresql");
});

it("--db takes postgres or sqlite only", () => {
  const r = bench(["--db", "mysql"]);
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain("--db takes postgres");
});

describePostgres("npm run bench -- --db postgres", () => {
  it("runs the phases on SQLite and on PostgreSQL with one and two replicas, as ratios", () => {
    const out = join(tmp, "bench.json");
    const r = bench(["--db", "postgres", "--users", "30", "--members", "30", "--concurrency", "2", "--binary", builtBinary(), "--json", out, "--time-limit", "80"]);
    if (r.exitCode !== 0) throw new Error(`bench exited ${r.exitCode}:\n${r.stderr.toString().slice(-3000)}`);
    const summary = JSON.parse(readFileSync(out, "utf8"));
    expect(summary.runs.map((x: { name: string; replicas: number }) => [x.name, x.replicas])).toEqual([
      ["SQLite", 1],
      ["PostgreSQL, 1 replica", 1],
      ["PostgreSQL, 2 replicas", 2],
    ]);
    for (const run of summary.runs.slice(1)) {
      for (const name of ["create users (POST /Users)", "filter userName eq (mixed case)", "GET /Users/{id}", "DELETE /Users/{id}"]) expect(run.ratios[name]).toBeGreaterThan(0);
      expect(run.extra.groupGrowthLastOverFirst).toBeGreaterThan(0);
    }
    expect(r.stdout.toString()).toContain("× SQLite");
  }, 100_000);
});
