/**
 * export and import through the compiled binary (dist/scimd, run from an empty folder): a round
 * trip between two databases, and the progress bar, which cli-progress draws on stderr only when it
 * is a terminal: under a pseudo-terminal (util-linux `script`) it is there, through a pipe it is not.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shellQuote } from "../../src/cli/invocation";
import { openStore } from "../../src/store/open";
import { seedUsers } from "../cli/seed";
import { buildBinaryInto, cleanEnv, stopAll } from "./harness";

let tmp = "";
let bin = "";
let db = "";
const USERS = 3000;
const hasScript = Bun.which("script") !== null;
if (!hasScript) console.warn("SKIP the progress bar on a terminal: needs util-linux's `script` (apt-get install util-linux)");

function run(args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([bin, ...args], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-export-"));
  bin = buildBinaryInto(tmp);
  db = join(tmp, "source.db");
  const store = await openStore(db, { synchronous: "NORMAL" });
  await seedUsers(store, USERS);
  await store.close();
}, 120_000);

afterAll(() => stopAll(new Set(), tmp));

describe("scimd export / import (the binary)", () => {
  it("exports to stdout, imports into a new database and exports the same again", () => {
    const first = run(["export", "--format", "jsonl", "--db", db]);
    expect(first.code).toBe(0);
    expect(first.err).toContain(`exported ${USERS} users and 1 group`);
    const lines = first.out.trimEnd().split("\n");
    expect(lines).toHaveLength(USERS + 1);
    expect(JSON.parse(lines.at(-1)!).members).toHaveLength(USERS);
    Bun.write(join(tmp, "export.jsonl"), first.out);
    const imported = run(["import", "export.jsonl", "--db", "target.db", "--create"]);
    expect(imported.err).toContain(`imported ${USERS} users and 1 group`);
    expect(imported.code).toBe(0);
    const second = run(["export", "--format", "jsonl", "--db", "target.db"]);
    expect(second.out).toBe(first.out);
    // Through a pipe stderr is not a terminal: no bar, no escape sequence.
    expect(first.err).not.toContain("\x1b");
    expect(imported.err).not.toContain("\x1b");
    // Importing again into the now full database is refused.
    const again = run(["import", "export.jsonl", "--db", "target.db"]);
    expect(again.code).toBe(1);
    expect(again.err).toContain(`already holds ${USERS} users and 1 group`);
  });

  it.skipIf(!hasScript)("draws the progress bar on a terminal (stderr a pty), and writes the same file", () => {
    const cmd = [bin, "export", "--format", "csv", "--out", join(tmp, "tty.csv"), "--db", db].map(shellQuote).join(" ");
    const p = Bun.spawnSync(["script", "-qfec", cmd, "/dev/null"], { cwd: tmp, env: { ...cleanEnv(), TERM: "xterm" }, stdout: "pipe", stderr: "pipe" });
    const screen = p.stdout.toString();
    expect(p.exitCode).toBe(0);
    expect(screen).toMatch(/exporting \[[█░]+\] 100% \| 3000\/3000/);
    expect(screen).toContain(`exported ${USERS} users`);
    const piped = run(["export", "--format", "csv", "--db", db]);
    expect(readFileSync(join(tmp, "tty.csv"), "utf8")).toBe(piped.out);
  });
});
