/**
 * `npm run bench -- --db postgres` end to end on a tiny size (30 users): the three runs (SQLite, one
 * PostgreSQL replica, two) complete against the compiled binary and report each PostgreSQL figure as
 * a ratio to SQLite's; without server binaries it stops at once, naming the package to install.
 * scripts/bench-pg-ab.ts (two binaries on one database, alternated) runs end to end too.
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

  it("bench-pg-ab measures two binaries on one database in alternated rounds, with a ratio per phase", () => {
    const bin = builtBinary();
    const r = Bun.spawnSync([process.execPath, "run", "scripts/bench-pg-ab.ts", "--old", bin, "--new", bin, "--users", "120", "--rounds", "2", "--concurrency", "2"], { cwd: REPO, stdout: "pipe", stderr: "pipe", timeout: 90_000 });
    if (r.exitCode !== 0) throw new Error(`bench-pg-ab exited ${r.exitCode}:\n${r.stderr.toString().slice(-3000)}`);
    const out = r.stdout.toString();
    for (const phase of ["userName eq (ops/s)", "GET /Users/{id} (ops/s)", "first page, count=100 (ms)", "last page, count=100 (ms)", "full group, 120 members (ms)"]) {
      const line = out.split("\n").find((l) => l.includes(`  ${phase}: old `));
      expect({ phase, line }).toEqual({ phase, line: expect.stringMatching(/new\/old median ×\d+\.\d\d \(rounds \d+\.\d\d \d+\.\d\d\)$/) });
    }
  }, 100_000);
});
