/** `scimd backup` and `scimd restore`: a verified copy of the database while serve runs, and putting one back. */
import { readdirSync, rmSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { checkDbPasswordFile, DB_FLAG, DB_PASSWORD_FILE_FLAG, flag, flagHelp, HELP_FLAG, resolveFlags, UsageError } from "../config";
import { fileStamp, firstFreeName } from "../file-names";
import { backupDatabase, parseDbLocation, restoreDatabase, type DatabaseSummary } from "../store/open";
import { POSTGRES_NOT_YET_HELP } from "./db-password";
import { commandLine, dbArg } from "./invocation";

export const BACKUP_FLAGS = [
  DB_FLAG,
  DB_PASSWORD_FILE_FLAG,
  flag({ name: "dir", kind: "string", help: "write a timestamped backup (scimd-20261202T101500Z.db) into this folder instead of a FILE" }),
  flag({
    name: "keep",
    kind: "int",
    help: "with --dir: keep the newest N backups in the folder, removing older ones once the new one is verified",
    check: (v) => {
      if (v < 1) throw new UsageError("--keep must be at least 1 (the backup just made is always kept)");
    },
  }),
  flag({ name: "force", kind: "bool", default: false, help: "replace FILE if it exists (by default an existing file is refused)" }),
  HELP_FLAG,
] as const;

export const RESTORE_FLAGS = [DB_FLAG, DB_PASSWORD_FILE_FLAG, HELP_FLAG] as const;

export const BACKUP_USAGE = `Usage: scimd backup FILE [--force] [--db PATH]
       scimd backup --dir FOLDER [--keep N] [--db PATH]

Copies the database to FILE while serve runs and writes: a consistent snapshot (SQLite's VACUUM INTO),
written under a temporary name, flushed to disk, verified (scimd's database, schema version,
integrity_check, counts), then given its name. It prints what the backup holds. The file has mode
0600: it holds the whole directory and the tokens' hashes; keep it as safe as the database.

Options:
${flagHelp(BACKUP_FLAGS)}

${POSTGRES_NOT_YET_HELP}

Examples:
  ${commandLine("backup", ["/var/backups/scimd/before-upgrade.db", "--db", "/var/lib/scimd/scimd.db"])}
  ${commandLine("backup", ["--dir", "/var/backups/scimd", "--keep", "14", "--db", "/var/lib/scimd/scimd.db"])}`;

export const RESTORE_USAGE = `Usage: scimd restore FILE [--db PATH]

Replaces the database's content with the backup FILE. Stop the server first: restore refuses while
any process has the database open (it asks SQLite's locks). FILE is checked before anything is
touched (a scimd database, a schema version this scimd can open, integrity_check); the content it
replaces is saved beside the database as <db>.before-restore-<time>; and the replacement is one
SQLite transaction, so an interrupted restore leaves the old content, never a mix.

Options:
${flagHelp(RESTORE_FLAGS)}

${POSTGRES_NOT_YET_HELP}

Example:
  systemctl stop scimd
  ${commandLine("restore", ["/var/backups/scimd/scimd-20261202T030000Z.db", "--db", "/var/lib/scimd/scimd.db"])}
  systemctl start scimd`;

/** The names `--dir` gives backups: scimd-<UTC time>[-n].db. Nothing else in the folder is ever removed. */
const ROTATED = /^scimd-(\d{8}T\d{6}Z)(?:-(\d+))?\.db$/;

/** The name for a backup made at `now` that no file in `taken` has: a second one in the same second gets -2, -3, … */
export function rotatedName(now: Date, taken: readonly string[]): string {
  const stamp = fileStamp(now);
  const names = new Set(taken);
  return firstFreeName((n) => (n === 1 ? `scimd-${stamp}.db` : `scimd-${stamp}-${n}.db`), (name) => names.has(name));
}

/**
 * The backups to remove so that `keep` remain: of the names `--dir` gives (others are not looked at),
 * the oldest by their time and number; `made` (the backup just verified) is always kept, even when a
 * clock set back makes it look older than the rest.
 */
export function rotation(names: readonly string[], keep: number, made: string): string[] {
  const key = (n: string) => {
    const m = ROTATED.exec(n)!;
    return `${m[1]}-${(m[2] ?? "1").padStart(6, "0")}`;
  };
  const others = names.filter((n) => ROTATED.test(n) && n !== made).sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0));
  return others.slice(Math.max(0, keep - 1));
}

const mb = (bytes: number) => (bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

/** "1,234 users, 56 groups, 7,890 memberships, 3 tokens" (and activity entries when the schema has them). */
export function describeCounts(c: DatabaseSummary["counts"]): string {
  const n = (v: number, one: string, many = `${one}s`) => `${v.toLocaleString("en-US")} ${v === 1 ? one : many}`;
  return [n(c.users, "user"), n(c.groups, "group"), n(c.memberships, "membership"), n(c.tokens, "token"), ...(c.activity !== undefined ? [n(c.activity, "activity entry", "activity entries")] : [])].join(", ");
}

export async function backup(argv: string[]): Promise<number> {
  const { values, args, sources } = resolveFlags(argv, BACKUP_FLAGS);
  if (values.help) {
    console.log(BACKUP_USAGE);
    return 0;
  }
  const { db, dir, keep, force } = values;
  checkDbPasswordFile(db, values["db-password-file"], sources);
  if (dir === undefined && args.length !== 1) throw new UsageError(args.length ? `'backup' takes one FILE, got ${args.length}` : "'backup' needs a FILE, or --dir FOLDER");
  if (dir !== undefined && args.length) throw new UsageError(`give a FILE or --dir, not both (got '${args[0]}' and --dir ${dir})`);
  if (dir === "") throw new UsageError("--dir must name a folder");
  if (keep !== undefined && dir === undefined) throw new UsageError("--keep applies with --dir only (a rotating set of backups in one folder)");
  if (force && dir !== undefined) throw new UsageError("--force applies to a FILE only (--dir never replaces a backup)");
  const folder = dir === undefined ? undefined : resolve(dir);
  const listed = () => {
    try {
      return readdirSync(folder!);
    } catch {
      return [];
    }
  };
  const target = folder ? join(folder, rotatedName(new Date(), listed())) : resolve(args[0]!);
  const r = await backupDatabase(db, target, { force });
  const lines = [
    `Backed up ${resolve(parseDbLocation(db).path)} to ${r.path} in ${(r.ms / 1000).toFixed(2)} s: ${mb(r.bytes)}, schema version ${r.schemaVersion}, integrity ok.`,
    `It holds ${describeCounts(r.counts)}.`,
  ];
  if (folder && keep !== undefined) {
    // Only regular files are backups of ours (a folder of the same shape of name is not touched); a file
    // that cannot be removed is said, after the new backup is reported: the backup itself succeeded.
    const files = readdirSync(folder, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    const old = rotation(files, keep, basename(r.path));
    const removed: string[] = [];
    const failed: string[] = [];
    for (const name of old) {
      try {
        rmSync(join(folder, name), { force: true });
        removed.push(name);
      } catch (e) {
        failed.push(`${name} (${(e as { code?: string }).code ?? String(e)})`);
      }
    }
    lines.push(removed.length ? `Removed ${removed.length} older backup${removed.length > 1 ? "s" : ""} (keeping ${keep}): ${removed.join(", ")}.` : `Nothing to remove (keeping ${keep}).`);
    if (failed.length) lines.push(`Could not remove ${failed.length} older backup${failed.length > 1 ? "s" : ""}: ${failed.join(", ")}; remove ${failed.length > 1 ? "them" : "it"} by hand.`);
  }
  console.log(lines.join("\n"));
  return 0;
}

/**
 * Test only: with SCIMD_TEST_RESTORE_PAUSE=<step>, restore stops at that step (validated, locked, saved,
 * copied, committed, written), says so on stderr and waits, so that a test can kill it with SIGKILL
 * right there (test/e2e/restore-crash.test.ts).
 */
function pauseHook(): ((step: string) => void) | undefined {
  const at = process.env.SCIMD_TEST_RESTORE_PAUSE;
  if (!at) return undefined;
  return (step) => {
    if (step !== at) return;
    process.stderr.write(`scimd restore: paused at ${step} (SCIMD_TEST_RESTORE_PAUSE)\n`);
    for (;;) Bun.sleepSync(1000);
  };
}

export async function restore(argv: string[]): Promise<number> {
  const { values, args, sources } = resolveFlags(argv, RESTORE_FLAGS);
  if (values.help) {
    console.log(RESTORE_USAGE);
    return 0;
  }
  if (args.length !== 1) throw new UsageError(args.length ? `'restore' takes one FILE, got ${args.length}` : "'restore' needs the backup FILE to restore");
  const { db } = values;
  checkDbPasswordFile(db, values["db-password-file"], sources);
  const r = await restoreDatabase(db, args[0]!, { onStep: pauseHook() });
  const v = r.restored;
  console.log(
    [
      `Restored ${v.path} from ${resolve(args[0]!)}: ${describeCounts(v.counts)}; schema version ${v.schemaVersion}.`,
      r.previous ? `The content it replaced is saved in ${r.previous} (remove it once you no longer need it).` : `There was no database at ${v.path} before.`,
      `Start the server again:`,
      `  ${commandLine("serve", dbArg(db))}`,
    ].join("\n"),
  );
  return 0;
}
