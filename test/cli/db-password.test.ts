/**
 * Where a PostgreSQL --db gets its password (src/cli/db-password.ts): the URL > --db-password-file >
 * PGPASSWORD, a URL password beside a file refused as ambiguous, the file read with one trailing
 * newline dropped, its mistakes (missing, a folder, empty, unreadable, beside SQLite) one line each,
 * its mode warned about; and `scimd config` showing where the password comes from, never what it is.
 * No database is opened here: test/store/postgres/password.test.ts logs in with each source.
 */
import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { readPasswordFile, resolveDbPassword } from "../../src/cli/db-password";
import { dbArg } from "../../src/cli/invocation";
import { checkDbPasswordFile, UsageError, type Env } from "../../src/config";
import { main } from "../../src/main";
import { urlHasPassword } from "../../src/store/open";
import { tempDir, usageErrorOf } from "../helpers";

const tmp = tempDir("scimd-dbpw-");
afterAll(() => tmp.cleanup());

const SECRET = "Zq9-pw-never-shown";
const PG = "postgres://scimd@db.example.com:5432/scimd?sslmode=require";
const PG_WITH = `postgres://scimd:${SECRET}@db.example.com:5432/scimd?sslmode=require`;

let n = 0;
/** A password file with `content` and `mode` (0600 unless told). */
function pwFile(content: string, mode = 0o600): string {
  const path = join(tmp.dir, `pw-${++n}`);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

/** The Error (not a UsageError) `f` throws. */
function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    return e;
  }
  throw new Error("expected an error");
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe("urlHasPassword", () => {
  it.each([
    [PG, false],
    [PG_WITH, true],
    ["postgres://scimd:@db/scimd", false],
    ["postgres://db/scimd?password=x", true],
    ["postgres://db/scimd?sslpassword=x", false],
    ["postgresql://u:p%40ss@db:5432/scimd", true],
    ["postgres://u@db:5432/scimd?application_name=a@b", false],
    ["postgres://u:pa/ss@db/scimd", true],
  ] as const)("%s → %p", (url, has) => {
    expect(urlHasPassword(url)).toBe(has);
  });
});

describe("resolveDbPassword: URL > --db-password-file > PGPASSWORD", () => {
  const env: Env = { PGPASSWORD: "from-env" };

  it("the URL's password wins over PGPASSWORD and is left in the URL (nothing else handed over)", () => {
    const r = resolveDbPassword(PG_WITH, undefined, env);
    expect(r.password).toEqual({ value: undefined, from: "the password is the one in the --db URL" });
    expect(JSON.stringify(r)).not.toContain(SECRET);
  });

  it("a URL password and a password file together are refused as ambiguous, the URL not repeated", () => {
    const f = pwFile("x\n");
    for (const url of [PG_WITH, "postgres://db/scimd?password=" + SECRET]) {
      const e = usageErrorOf(() => resolveDbPassword(url, f, env));
      expect(e.message).toBe("--db-password-file is given, but the --db URL holds a password too: give the password one way, either in the URL or in the file (then remove it from --db)");
    }
  });

  it("the file wins over PGPASSWORD: its content, one trailing newline dropped", () => {
    const f = pwFile(`${SECRET}\n`);
    expect(resolveDbPassword(PG, f, env)).toEqual({ password: { value: SECRET, from: `the password was read from ${f} (--db-password-file)` } });
  });

  it("an empty password in the URL (user:@host) is none: the file applies", () => {
    const f = pwFile(SECRET);
    expect(resolveDbPassword("postgres://scimd:@db/scimd", f, {}).password?.value).toBe(SECRET);
  });

  it("PGPASSWORD when neither the URL nor a file gives one, handed over explicitly", () => {
    expect(resolveDbPassword(PG, undefined, env).password).toEqual({ value: "from-env", from: "the password came from PGPASSWORD" });
  });

  it("none at all (an empty PGPASSWORD is none) is said as such", () => {
    for (const e of [{}, { PGPASSWORD: "" }])
      expect(resolveDbPassword(PG, undefined, e).password).toEqual({ value: undefined, from: "no password was given (none in the --db URL, no --db-password-file, PGPASSWORD unset)" });
  });

  it("SQLite takes no password: PGPASSWORD is ignored, a password file refused as PostgreSQL only", () => {
    expect(resolveDbPassword("./data/scimd.db", undefined, env)).toEqual({});
    expect(resolveDbPassword("sqlite:/var/lib/scimd/scimd.db", undefined, env)).toEqual({});
    const f = pwFile("x");
    expect(usageErrorOf(() => resolveDbPassword("./data/scimd.db", f, env)).message).toBe(
      "--db-password-file applies to PostgreSQL only (a postgres:// --db); --db ./data/scimd.db is a SQLite file, which has no password",
    );
    const other = usageErrorOf(() => resolveDbPassword(`mysql://u:${SECRET}@h/db`, f, env));
    expect(other.message).toBe("--db-password-file applies to PostgreSQL only, and --db is not a postgres:// or postgresql:// URL");
    expect(usageErrorOf(() => checkDbPasswordFile(PG, " ")).message).toContain("--db-password-file is empty");
  });
});

describe("readPasswordFile", () => {
  it.each([
    ["pw", "pw"],
    ["pw\n", "pw"],
    ["pw\r\n", "pw"],
    ["pw\n\n", "pw\n"],
    [" pw with spaces \n", " pw with spaces "],
    ["pässwörd\n", "pässwörd"],
  ])("%j → %j", (content, value) => {
    expect(readPasswordFile(pwFile(content)).value).toBe(value);
  });

  it("refuses a missing file, a folder and an empty one (a newline alone is empty) in one line, not as a usage mistake", () => {
    const missing = join(tmp.dir, "nope");
    const folder = join(tmp.dir, "a-folder");
    mkdirSync(folder);
    const cases: [string, string][] = [
      [missing, `cannot read the database password file ${missing} (--db-password-file): no such file`],
      [folder, `cannot read the database password file ${folder} (--db-password-file): it is a folder, not a file`],
    ];
    const empty = pwFile(""), newline = pwFile("\n");
    cases.push([empty, `the database password file ${empty} (--db-password-file) is empty; write the PostgreSQL password into it`]);
    cases.push([newline, `the database password file ${newline} (--db-password-file) is empty; write the PostgreSQL password into it`]);
    for (const [path, message] of cases) {
      const e = errorOf(() => resolveDbPassword(PG, path, {}));
      expect(e).not.toBeInstanceOf(UsageError);
      expect(e.message).toBe(message);
    }
  });

  it.skipIf(isRoot)("refuses a file it may not read, saying so", () => {
    const f = pwFile("x", 0o000);
    expect(errorOf(() => readPasswordFile(f)).message).toBe(`cannot read the database password file ${f} (--db-password-file): permission denied (serve reads it as the user it runs as)`);
  });

  it("warns (does not refuse) when its group or every user may read it, as ssh does", () => {
    const open = pwFile(SECRET, 0o644), group = pwFile(SECRET, 0o640), others = pwFile(SECRET, 0o604);
    expect(readPasswordFile(open)).toEqual({
      value: SECRET,
      warning: `the database password file ${open} (--db-password-file) is readable by its group and every user (mode 0644); make it readable by scimd's user only: chmod 600 ${open}`,
    });
    expect(readPasswordFile(group).warning).toContain("is readable by its group (mode 0640)");
    expect(readPasswordFile(others).warning).toContain("is readable by every user (mode 0604)");
    expect(readPasswordFile(pwFile(SECRET, 0o600)).warning).toBeUndefined();
    expect(readPasswordFile(pwFile(SECRET, 0o400)).warning).toBeUndefined();
    expect(resolveDbPassword(PG, open, {}).warning).toContain("chmod 600");
  });
});

/** main(argv) with only `env` of SCIMD_* and PGPASSWORD set: exit code, stdout, stderr. */
async function run(argv: string[], env: Env = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith("SCIMD_") || k.startsWith("PG")) delete process.env[k];
  Object.assign(process.env, env);
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe("the commands: --db-password-file, SCIMD_DB_PASSWORD_FILE, the config file's db-password-file", () => {
  const COMMANDS: string[][] = [["serve"], ["generate-token"], ["tokens", "list"], ["activity"], ["backup", "x.db"], ["restore", "x.db"], ["export"], ["import", "x.jsonl"], ["config"]];

  it.each(COMMANDS)("%s refuses a password file beside a SQLite --db (exit 2), from a flag or SCIMD_DB_PASSWORD_FILE", async (...cmd) => {
    const f = pwFile(SECRET);
    const db = join(tmp.dir, "never-created.db");
    const flagged = await run([...cmd, "--db", db, "--db-password-file", f]);
    expect(flagged.code).toBe(2);
    expect(flagged.err).toContain("--db-password-file applies to PostgreSQL only");
    const env = await run([...cmd, "--db", db], { SCIMD_DB_PASSWORD_FILE: f });
    expect(env.code).toBe(2);
    expect(env.err.split("\n")[0]).toContain("applies to PostgreSQL only");
    expect(env.err.split("\n")[0]).toContain("--db-password-file is set by SCIMD_DB_PASSWORD_FILE");
    for (const r of [flagged, env]) expect(r.out + r.err).not.toContain(SECRET);
  });

  it.each([["serve"], ["generate-token"], ["config"]])("%s refuses a URL password beside a password file given in the config file, naming the file", async (cmd) => {
    const f = pwFile(SECRET);
    const toml = join(tmp.dir, `scimd-${++n}.toml`);
    writeFileSync(toml, `db = ${JSON.stringify(PG_WITH)}\ndb-password-file = ${JSON.stringify(f)}\n`);
    const r = await run([cmd!, "--config", toml]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("the --db URL holds a password too");
    expect(r.err).toContain(toml);
    expect(r.out + r.err).not.toContain(SECRET);
  });

  it("generate-token says a missing password file in one line, exit 1, before connecting", async () => {
    const missing = join(tmp.dir, "missing-pw");
    const r = await run(["generate-token", "--db", "postgres://scimd@127.0.0.1:1/scimd", "--db-password-file", missing]);
    expect(r).toEqual({ code: 1, out: "", err: `scimd: cannot read the database password file ${missing} (--db-password-file): no such file` });
  });

  it("the commands PostgreSQL does not serve yet refuse a postgres:// --db with a password file as before, without the password", async () => {
    const f = pwFile(SECRET);
    for (const cmd of [["backup", "x.db"], ["restore", "x.db"]]) {
      const r = await run([...cmd, "--db", PG, "--db-password-file", f]);
      expect(r.code).toBe(1);
      expect(r.err).toContain("this command needs a SQLite file");
      expect(r.err).not.toContain(SECRET);
    }
  });

  it.each([["serve"], ["generate-token"], ["tokens"], ["activity"], ["backup"], ["restore"], ["export"], ["import"]])(
    "'%s --help' describes PostgreSQL URLs and where the password comes from",
    async (cmd) => {
      const r = await run([cmd!, "--help"], { PGPASSWORD: SECRET });
      expect(r.code).toBe(0);
      expect(r.out).toContain("postgres://USER@HOST:5432/DB?sslmode=require");
      expect(r.out).toContain("--db-password-file <value>");
      expect(r.out).toContain("the URL's (postgres://USER:PASSWORD@HOST/DB), the content of --db-password-file FILE");
      expect(r.out).toContain("PGPASSWORD");
      expect(r.out).not.toContain(SECRET);
    },
  );
});

describe("scimd config: the effective db without its password, for each source", () => {
  const dbLine = (out: string) => out.split("\n").find((l) => l.startsWith("db "))!;
  const fileLine = (out: string) => out.split("\n").find((l) => l.startsWith("db-password-file "))!;

  it("the URL: the password masked", async () => {
    const r = await run(["config", "--db", PG_WITH], { PGPASSWORD: "other-" + SECRET });
    expect(r.code).toBe(0);
    expect(dbLine(r.out)).toMatch(/^db = "postgres:\/\/scimd:\*\*\*@db\.example\.com:5432\/scimd\?sslmode=require" +# flag --db \(password: in the URL, masked\)$/);
    expect(r.out + r.err).not.toContain(SECRET);
  });

  it("the file: its path, never its content (the file is not even read)", async () => {
    const f = pwFile(`${SECRET}\n`);
    const r = await run(["config", "--db", PG], { SCIMD_DB_PASSWORD_FILE: f });
    expect(r.code).toBe(0);
    expect(dbLine(r.out)).toMatch(/# flag --db \(password: read from db-password-file at start\)$/);
    expect(fileLine(r.out)).toMatch(new RegExp(`^db-password-file = "${f}" +# env SCIMD_DB_PASSWORD_FILE$`));
    expect(r.out + r.err).not.toContain(SECRET);
    const json = JSON.parse((await run(["config", "--db", PG, "--db-password-file", f, "--json"])).out);
    expect(json.settings["db-password-file"]).toEqual({ value: f, source: "flag", from: "--db-password-file" });
    expect(json.settings.db).toEqual({ value: PG, source: "flag", from: "--db", note: "password: read from db-password-file at start" });
  });

  it("PGPASSWORD: named, not shown", async () => {
    const r = await run(["config", "--db", PG], { PGPASSWORD: SECRET });
    expect(r.code).toBe(0);
    expect(dbLine(r.out)).toMatch(/^db = "postgres:\/\/scimd@db\.example\.com:5432\/scimd\?sslmode=require" +# flag --db \(password: from PGPASSWORD\)$/);
    expect(r.out + r.err).not.toContain(SECRET);
  });

  it("none, and nothing said for SQLite", async () => {
    expect(dbLine((await run(["config", "--db", PG])).out)).toMatch(/\(password: none given\)$/);
    expect(dbLine((await run(["config", "--db", "./x.db"], { PGPASSWORD: SECRET })).out)).toMatch(/# flag --db$/);
  });
});

describe("the commands scimd suggests", () => {
  it("carry the password file the command was given (its path, never the password), so they log in as it did", () => {
    expect(dbArg("postgres://scimd:pw-never@127.0.0.1/scimd", "run/db-password")).toEqual(["--db", "postgres://scimd:***@127.0.0.1/scimd", "--db-password-file", resolve("run/db-password")]);
    expect(dbArg("postgres://scimd@127.0.0.1/scimd")).toEqual(["--db", "postgres://scimd@127.0.0.1/scimd"]);
  });
});
