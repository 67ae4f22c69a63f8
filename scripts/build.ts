/**
 * Builds the single binary dist/scimd with pinned options: no .env or bunfig.toml autoload at run time
 * (the binary's behaviour must not depend on the folder it starts in), bytecode for fast startup,
 * and the version injected with `define`.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import pkg from "../package.json";

const outfile = process.env.SCIMD_OUTFILE ?? "dist/scimd";
mkdirSync(dirname(outfile), { recursive: true });
const cmd = [
  process.execPath,
  "build",
  "src/main.ts",
  // The SQLite store's reader runs in a Worker: a worker's file is an entrypoint of its own in the binary.
  "src/store/sqlite/reader-worker.ts",
  "--compile",
  "--minify",
  "--bytecode",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  "--define",
  `SCIMD_VERSION=${JSON.stringify(pkg.version)}`,
  "--outfile",
  outfile,
];
const started = performance.now();
const proc = Bun.spawnSync(cmd, { stdout: "inherit", stderr: "inherit" });
if (proc.exitCode !== 0) {
  console.error(`build failed (exit ${proc.exitCode})`);
  process.exit(proc.exitCode ?? 1);
}
console.error(`built ${outfile} in ${Math.round(performance.now() - started)} ms`);
