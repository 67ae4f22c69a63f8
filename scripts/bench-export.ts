/**
 * Export at scale: seeds N users (default 100,000) through the store directly, then runs `scimd
 * export` as a child process for each format and reports its wall time and peak resident memory
 * (VmHWM, through /usr/bin/time). Usage: bun run scripts/bench-export.ts [N] [--bin dist/scimd]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { openStore } from "../src/store/open";
import { seedUsers } from "../test/cli/seed";

const args = process.argv.slice(2);
const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 100_000);
const binAt = args.indexOf("--bin");
const command = binAt >= 0 ? [resolve(args[binAt + 1]!)] : [process.execPath, resolve(import.meta.dir, "../src/main.ts")];
const dir = mkdtempSync(join(tmpdir(), "scimd-bench-export-"));
try {
  const db = join(dir, "scimd.db");
  const store = await openStore(db, { synchronous: "NORMAL" });
  const t0 = performance.now();
  await seedUsers(store, n);
  await store.close();
  console.log(`seeded ${n} users (+ 1 group holding them all) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const format of ["jsonl", "json", "csv"]) {
    const out = join(dir, `export.${format}`);
    const rss = join(dir, "rss");
    const t = performance.now();
    const p = Bun.spawnSync(["/usr/bin/time", "-f", "%M", "-o", rss, ...command, "export", "--format", format, "--out", out, "--db", db], { stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`export failed: ${p.stderr.toString()}`);
    const seconds = (performance.now() - t) / 1000;
    const peak = Number((await Bun.file(rss).text()).trim().split("\n").at(-1)) / 1024;
    console.log(`export --format ${format.padEnd(5)} ${n} users: ${seconds.toFixed(1)} s, peak RSS ${peak.toFixed(0)} MiB, ${(statSync(out).size / 2 ** 20).toFixed(0)} MiB written`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
