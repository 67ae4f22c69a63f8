/**
 * Backup and restore on real SQLite files (src/store/sqlite/backup.ts through src/store/open.ts), and
 * the commands from source: a backup holds every row, a restore puts back exactly those rows, and every
 * file that is not a restorable scimd database is refused before anything is touched.
 */
import { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rotatedName, rotation } from "../src/cli/backup";
import { backupDatabase, restoreDatabase } from "../src/store/open";
import { APPLICATION_ID, MIGRATIONS } from "../src/store/sqlite/migrations";
import { dumpRows, inconsistencies, userNames } from "./backup-rows";
import { groupBody, openSqliteStore, patchBody, startSqliteServer, tempDir, userBody, type SqliteTestServer } from "./helpers";
import { SOURCE } from "./e2e/harness";

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => (tmp = tempDir("scimd-backup-")));
afterEach(() => tmp.cleanup());

/** A server with `n` users, two groups (one nested in the other), memberships and a second token. */
async function populated(n: number): Promise<SqliteTestServer> {
  const s = await startSqliteServer();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await s.req("POST", "/Users", userBody(`user${i}@example.com`, { title: `t${i}`, name: { givenName: `G${i}`, familyName: "F" } }));
    expect(r.status).toBe(201);
    ids.push(r.body.id);
  }
  const inner = await s.req("POST", "/Groups", groupBody("inner", ids.slice(0, Math.ceil(n / 2))));
  expect(inner.status).toBe(201);
  const outer = await s.req("POST", "/Groups", groupBody("outer", [inner.body.id, ids[n - 1]!]));
  expect(outer.status).toBe(201);
  // A deleted user leaves a gap in the AUTOINCREMENT sequence that a restore must keep.
  expect((await s.req("DELETE", `/Users/${ids[1]}`)).status).toBe(204);
  expect((await s.req("PATCH", `/Users/${ids[0]}`, patchBody({ op: "replace", path: "title", value: "changed" }))).status).toBe(200);
  return s;
}

const run = (args: string[]) => {
  const p = Bun.spawnSync([...SOURCE, ...args], { cwd: tmp.dir, stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

/** The activity log's entries in the database at `path` (the changes that made it). */
function activityEntries(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("SELECT count(*) AS n FROM activity").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe("backup", () => {
  it("copies every row of every table, the AUTOINCREMENT counters and the schema version, to a file of mode 0600, and says what it holds", async () => {
    const s = await populated(20);
    try {
      const file = join(tmp.dir, "b.db");
      const r = await backupDatabase(s.dbPath, file);
      expect(r.path).toBe(file);
      // inner: users 0..9 less the deleted user 1; outer: inner and user 19.
      expect(r.counts).toEqual({ users: 19, groups: 2, memberships: 9 + 2, tokens: 1, activity: activityEntries(file) });
      expect(r.counts.activity).toBe(activityEntries(s.dbPath));
      expect(r.schemaVersion).toBe(MIGRATIONS.length);
      expect(r.bytes).toBe(statSync(file).size);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(dumpRows(file)).toEqual(dumpRows(s.dbPath));
      expect(readdirSync(tmp.dir)).toEqual(["b.db"]);
    } finally {
      await s.close();
    }
  });

  it("refuses to replace an existing file unless forced, and leaves it as it was", async () => {
    const s = await populated(3);
    try {
      const file = join(tmp.dir, "b.db");
      writeFileSync(file, "precious");
      await expect(backupDatabase(s.dbPath, file)).rejects.toThrow(`${file} exists; choose another file, or pass --force to replace it`);
      expect(readFileSync(file, "utf8")).toBe("precious");
      await backupDatabase(s.dbPath, file, { force: true });
      expect(dumpRows(file)).toEqual(dumpRows(s.dbPath));
      expect(readdirSync(tmp.dir)).toEqual(["b.db"]);
    } finally {
      await s.close();
    }
  });

  it("refuses to write the backup over the database itself or a file SQLite keeps beside it, --force or not", async () => {
    const s = await populated(3);
    try {
      const before = dumpRows(s.dbPath);
      for (const target of [s.dbPath, `${s.dbPath}-wal`, `${s.dbPath}-shm`, `${s.dbPath}-journal`])
        for (const force of [false, true]) await expect(backupDatabase(s.dbPath, target, { force })).rejects.toThrow("is the database itself");
      expect(dumpRows(s.dbPath)).toEqual(before);
    } finally {
      await s.close();
    }
  });

  it("refuses a missing database and an SQLite file scimd did not make, writing nothing", async () => {
    const file = join(tmp.dir, "b.db");
    await expect(backupDatabase(join(tmp.dir, "none.db"), file)).rejects.toThrow(`there is no scimd database at ${join(tmp.dir, "none.db")}`);
    const other = join(tmp.dir, "other.db");
    new Database(other).exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    await expect(backupDatabase(other, file)).rejects.toThrow("is an SQLite database that scimd did not create; refusing to touch it");
    expect(readdirSync(tmp.dir).sort()).toEqual(["other.db"]);
  });
});

describe("restore", () => {
  it("puts back exactly the rows of the backup, keeps the replaced content beside the database, and the store opens it", async () => {
    const s = await populated(12);
    const file = join(tmp.dir, "b.db");
    await backupDatabase(s.dbPath, file);
    const atBackup = dumpRows(s.dbPath);
    // Changes after the backup: they are what the restore undoes, and what the side copy keeps.
    expect((await s.req("POST", "/Users", userBody("late@example.com"))).status).toBe(201);
    expect((await s.req("POST", "/Groups", groupBody("late"))).status).toBe(201);
    const beforeRestore = dumpRows(s.dbPath);
    const dbPath = s.dbPath;
    await s.store.close();
    const r = await restoreDatabase(dbPath, file);
    expect(dumpRows(dbPath)).toEqual(atBackup);
    expect(r.restored.counts).toEqual({ users: 11, groups: 2, memberships: 5 + 2, tokens: 1, activity: activityEntries(file) });
    expect(r.previous).toMatch(/\/scimd\.db\.before-restore-\d{8}T\d{6}Z$/);
    expect(dumpRows(r.previous!)).toEqual(beforeRestore);
    expect(statSync(r.previous!).mode & 0o777).toBe(0o600);
    const store = await openSqliteStore(dbPath);
    try {
      expect(store.stats()).toMatchObject({ users: 11, groups: 2, memberships: 7 });
      const page = await store.search("User", { offset: 0, limit: 100 });
      expect(page.resources.map((u) => u.data.userName).sort()).toEqual(userNames(file));
    } finally {
      await store.close();
    }
  });

  it("into a path with no database creates it from the backup", async () => {
    const s = await populated(4);
    try {
      const file = join(tmp.dir, "b.db");
      await backupDatabase(s.dbPath, file);
      const fresh = join(tmp.dir, "new", "scimd.db");
      const r = await restoreDatabase(fresh, file);
      expect(r.previous).toBeUndefined();
      expect(dumpRows(fresh)).toEqual(dumpRows(file));
      expect(statSync(fresh).mode & 0o777).toBe(0o600);
      expect(readdirSync(join(tmp.dir, "new"))).toEqual(["scimd.db"]);
    } finally {
      await s.close();
    }
  });

  it("saves what the old database still had in its WAL (a crashed server's last writes) in the side copy", async () => {
    const s = await populated(3);
    const file = join(tmp.dir, "b.db");
    await backupDatabase(s.dbPath, file);
    // A copy of the database and its WAL while the server has them open: what a server killed now leaves.
    s.store.db.exec("PRAGMA wal_autocheckpoint = 0");
    expect((await s.req("POST", "/Users", userBody("only-in-wal@example.com"))).status).toBe(201);
    const crashed = join(tmp.dir, "crashed.db");
    copyFileSync(s.dbPath, crashed);
    copyFileSync(`${s.dbPath}-wal`, `${crashed}-wal`);
    expect(statSync(`${crashed}-wal`).size).toBeGreaterThan(0);
    await s.close();
    const r = await restoreDatabase(crashed, file);
    expect(userNames(r.previous!)).toContain("only-in-wal@example.com");
    expect(userNames(crashed)).toEqual(userNames(file));
    expect(inconsistencies(crashed)).toEqual([]);
  });

  it("restores a backup of an older schema version as it is; the store migrates it when it next opens it", async () => {
    const old = join(tmp.dir, "v3.db");
    const db = new Database(old);
    for (const m of MIGRATIONS.slice(0, 3)) typeof m === "string" ? db.exec(m) : m(db);
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = 3`);
    db.exec("INSERT INTO tokens (id, name, hash, created) VALUES ('t1', 'okta', 'h', '2026-01-01T00:00:00.000Z')");
    db.close();
    const target = join(tmp.dir, "live.db");
    const r = await restoreDatabase(target, old);
    expect(r.restored.schemaVersion).toBe(3);
    const store = await openSqliteStore(target);
    try {
      expect((store.db.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(MIGRATIONS.length);
      expect((await store.listTokens()).map((t) => t.name)).toEqual(["okta"]);
    } finally {
      await store.close();
    }
  });

  it("is refused while a connection (here, in this very process) has the database open, by SQLite's exclusive lock, and nothing changes", async () => {
    const s = await populated(3);
    try {
      const file = join(tmp.dir, "b.db");
      await backupDatabase(s.dbPath, file);
      expect((await s.req("POST", "/Users", userBody("after@example.com"))).status).toBe(201);
      const before = dumpRows(s.dbPath);
      await expect(restoreDatabase(s.dbPath, file)).rejects.toThrow(/refusing to restore: another connection has .* open — SQLite refused this restore its exclusive lock \(SQLITE_BUSY\)\. Stop the server/);
      expect(dumpRows(s.dbPath)).toEqual(before);
      expect(readdirSync(join(s.dbPath, "..")).filter((n) => n.includes("before-restore"))).toEqual([]);
      // The server still writes afterwards: the refused restore left no lock behind.
      expect((await s.req("POST", "/Users", userBody("after2@example.com"))).status).toBe(201);
    } finally {
      await s.close();
    }
  });

  it("refuses the database itself as the backup", async () => {
    const s = await populated(2);
    const dbPath = s.dbPath;
    await s.store.close();
    await expect(restoreDatabase(dbPath, dbPath)).rejects.toThrow("is the database itself");
  });
});

describe("restore validates the file before it touches anything", () => {
  /** A valid backup to damage, and a live database whose content must stay as it is. */
  async function setup(): Promise<{ file: string; live: string; before: Record<string, string[]> }> {
    const s = await populated(30);
    const file = join(tmp.dir, "b.db");
    await backupDatabase(s.dbPath, file);
    const live = join(tmp.dir, "live.db");
    await backupDatabase(s.dbPath, live);
    await s.close();
    return { file, live, before: dumpRows(live) };
  }

  const cases: [string, (file: string) => void, RegExp][] = [
    ["a file that is not SQLite", (f) => writeFileSync(f, "id,userName\n1,bob\n".repeat(100)), /is not an SQLite database \(file is not a database\)/],
    ["an empty file", (f) => writeFileSync(f, ""), /is empty, not a scimd database/],
    [
      "an SQLite database scimd did not make",
      (f) => {
        writeFileSync(f, "");
        new Database(f).exec("CREATE TABLE users (x); INSERT INTO users VALUES (1)");
      },
      /is an SQLite database, but not one scimd made \(its application_id is 0, scimd's is 1396918605\)/,
    ],
    ["a newer schema", (f) => new Database(f).exec("PRAGMA user_version = 99"), new RegExp(`has schema version 99, newer than this scimd understands \\(${MIGRATIONS.length}\\)`)],
    [
      "a file with bytes overwritten in a page",
      (f) => {
        const bytes = readFileSync(f);
        const pageSize = bytes.readUInt16BE(16);
        // The users table's root page: its b-tree header and cell pointers become garbage.
        const root = (new Database(f, { readonly: true }).query("SELECT rootpage FROM sqlite_master WHERE name = 'users'").get() as { rootpage: number }).rootpage;
        bytes.fill(0x5a, (root - 1) * pageSize, (root - 1) * pageSize + 64);
        writeFileSync(f, bytes);
      },
      /(fails SQLite's integrity check|is corrupt|cannot be read as a scimd database)/,
    ],
    [
      "rows that point at rows it does not hold",
      (f) => new Database(f).exec("PRAGMA foreign_keys = OFF; INSERT INTO group_members (group_seq, member_kind, member_seq) VALUES (999, 0, 1)"),
      /has 1 row that point at rows it does not hold/,
    ],
    ["a missing file", (f) => Bun.spawnSync(["rm", f]), /cannot read .*: no such file/],
  ];

  it.each(cases)("refuses %s, and the database keeps its content, with no side copy made", async (_name, damage, why) => {
    const { file, live, before } = await setup();
    damage(file);
    await expect(restoreDatabase(live, file)).rejects.toThrow(why);
    expect(dumpRows(live)).toEqual(before);
    expect(readdirSync(tmp.dir).filter((n) => n.includes("before-restore"))).toEqual([]);
  });
});

describe("--dir names and --keep rotation", () => {
  const at = new Date("2026-12-02T03:00:00.123Z");

  it("names a backup by its UTC time, and a second one in the same second with -2, -3", () => {
    expect(rotatedName(at, [])).toBe("scimd-20261202T030000Z.db");
    expect(rotatedName(at, ["scimd-20261202T030000Z.db"])).toBe("scimd-20261202T030000Z-2.db");
    expect(rotatedName(at, ["scimd-20261202T030000Z.db", "scimd-20261202T030000Z-2.db"])).toBe("scimd-20261202T030000Z-3.db");
  });

  it("removes the oldest of its own names beyond N, never another file, and never the backup just made", () => {
    const names = [
      "scimd-20261201T030000Z.db",
      "scimd-20261130T030000Z.db",
      "scimd-20261202T030000Z.db",
      "scimd-20261202T030000Z-2.db",
      "scimd-20261202T030000Z-10.db",
      "notes.txt",
      "scimd-manual.db",
      ".scimd-20261203T030000Z.db.partial-12",
    ];
    expect(rotation(names, 3, "scimd-20261202T030000Z-10.db")).toEqual(["scimd-20261201T030000Z.db", "scimd-20261130T030000Z.db"]);
    expect(rotation(names, 1, "scimd-20261202T030000Z-10.db")).toHaveLength(4);
    // A clock set back: the new backup looks oldest, and stays.
    expect(rotation(names, 2, "scimd-20261130T030000Z.db")).toEqual(["scimd-20261202T030000Z-2.db", "scimd-20261202T030000Z.db", "scimd-20261201T030000Z.db"]);
    expect(rotation(names, 10, "scimd-20261202T030000Z.db")).toEqual([]);
  });
});

describe("the commands (from source)", () => {
  it("backup --dir --keep 2 keeps the two newest of four, and prints what each holds", async () => {
    const s = await populated(2);
    try {
      const dir = join(tmp.dir, "set");
      writeFileSync(join(tmp.dir, "keep-me"), "x");
      for (let i = 0; i < 4; i++) {
        const r = run(["backup", "--dir", dir, "--keep", "2", "--db", s.dbPath]);
        expect(r.err).toBe("");
        expect(r.code).toBe(0);
        expect(r.out).toContain(`schema version ${MIGRATIONS.length}, integrity ok.\nIt holds 1 user, 2 groups, 2 memberships, 1 token, 6 activity entries.`);
        if (i >= 2) expect(r.out).toMatch(/Removed 1 older backup \(keeping 2\): scimd-\d{8}T\d{6}Z(-\d+)?\.db\./);
      }
      const left = readdirSync(dir).sort();
      expect(left).toHaveLength(2);
      for (const f of left) expect(dumpRows(join(dir, f))).toEqual(dumpRows(s.dbPath));
    } finally {
      await s.close();
    }
  });

  it("backup --dir --keep leaves a folder named like a backup alone, and the backup still succeeds", async () => {
    const s = await populated(2);
    try {
      const dir = join(tmp.dir, "set-with-folder");
      mkdirSync(join(dir, "scimd-20000101T000000Z.db"), { recursive: true });
      const r = run(["backup", "--dir", dir, "--keep", "1", "--db", s.dbPath]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.out).toContain("Nothing to remove (keeping 1).");
      expect(statSync(join(dir, "scimd-20000101T000000Z.db")).isDirectory()).toBe(true);
    } finally {
      await s.close();
    }
  });

  it.each([
    [["backup"], "'backup' needs a FILE, or --dir FOLDER"],
    [["backup", "a.db", "b.db"], "'backup' takes one FILE, got 2"],
    [["backup", "a.db", "--dir", "x"], "give a FILE or --dir, not both"],
    [["backup", "a.db", "--keep", "3"], "--keep applies with --dir only"],
    [["backup", "--dir", "x", "--keep", "0"], "--keep must be at least 1"],
    [["backup", "--dir", "x", "--force"], "--force applies to a FILE only"],
    [["restore"], "'restore' needs the backup FILE to restore"],
    [["restore", "a", "b"], "'restore' takes one FILE, got 2"],
  ])("%j is a usage error (exit 2)", (argv, msg) => {
    const r = run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`scimd: ${msg}`);
    expect(r.err).toContain(`Usage: scimd ${argv[0]}`);
  });

  it("restore prints what it restored and where the old content went; a refusal is one line, exit 1", async () => {
    const s = await populated(2);
    const file = join(tmp.dir, "b.db");
    await backupDatabase(s.dbPath, file);
    const dbPath = s.dbPath;
    await s.store.close();
    writeFileSync(join(tmp.dir, "junk"), "junk");
    const bad = run(["restore", "junk", "--db", dbPath]);
    expect(bad.code).toBe(1);
    expect(bad.err).toBe(`scimd: ${join(tmp.dir, "junk")} is not an SQLite database (file is not a database)\n`);
    const ok = run(["restore", file, "--db", dbPath]);
    expect(ok.err).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`Restored ${dbPath} from ${file}: 1 user, 2 groups, 2 memberships, 1 token, 6 activity entries; schema version ${MIGRATIONS.length}.`);
    expect(ok.out).toMatch(/The content it replaced is saved in .*scimd\.db\.before-restore-\d{8}T\d{6}Z \(remove it/);
  });
});
