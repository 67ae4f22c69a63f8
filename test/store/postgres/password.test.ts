/**
 * The PostgreSQL password, against a real server that asks for it (a role with scram-sha-256 over
 * 127.0.0.1): the Bun.SQL behaviours scimd's resolution is built on (pinned here, so a Bun upgrade
 * that changes them fails a test), and serve and generate-token, run from source, logging in with the
 * password from each of the three sources (the URL, --db-password-file, PGPASSWORD); a wrong one is
 * refused in one line that names its source and never the password, which appears in no output.
 * test/e2e/postgres-password.test.ts does the same through the compiled binary.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { SQL } from "bun";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveDbPassword } from "../../../src/cli/db-password";
import { openStore } from "../../../src/store/open";
import { runCli, SOURCE, startServe, stopAll, type Served } from "../../e2e/harness";
import { describePostgres, startCluster, type PgCluster } from "./cluster";

const ROLE = "scimd_pw";
const PASSWORD = "Pw-7rK2-never-shown";
const WRONG = "Wr0ng-pw-never-shown";

describePostgres("a PostgreSQL server that asks for a password", () => {
  let cluster: PgCluster;
  let dir: string;
  const started = new Set<Bun.Subprocess>();
  /** The database's URL without a password, and with one. */
  let bare: string;
  const withPassword = (pw: string) => bare.replace(`${ROLE}@`, `${ROLE}:${pw}@`);
  /** A password file holding `content`, mode 0600 unless told. */
  let n = 0;
  const pwFile = (content: string, mode = 0o600) => {
    const f = join(dir, `db-password-${++n}`);
    writeFileSync(f, content);
    chmodSync(f, mode);
    return f;
  };

  beforeAll(async () => {
    cluster = await startCluster({ passwordRoles: [ROLE] });
    const admin = new SQL(cluster.url(), { max: 1 });
    await admin.unsafe(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'`);
    await admin.unsafe(`CREATE DATABASE scimd_pw OWNER ${ROLE}`);
    await admin.close();
    bare = `postgres://${ROLE}@127.0.0.1:${cluster.port}/scimd_pw`;
    dir = mkdtempSync(join(tmpdir(), "scimd-pg-pw-"));
  }, 120_000);
  afterAll(async () => {
    await stopAll(started, dir);
    cluster?.stop();
  }, 60_000);

  describe("Bun.SQL on this Bun (what scimd's own resolution relies on and works around)", () => {
    /** Whether `new SQL(url, opts)` logs in, with PGPASSWORD set to `pg` (or unset) meanwhile. */
    async function logsIn(url: string, opts: Partial<SQL.Options>, pg: string | undefined): Promise<boolean> {
      const saved = process.env.PGPASSWORD;
      if (pg === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = pg;
      const sql = new SQL(url, { max: 1, connectionTimeout: 5, ...opts });
      try {
        await sql`SELECT 1`;
        return true;
      } catch (e) {
        expect((e as { errno?: string }).errno).toBe("28P01");
        return false;
      } finally {
        await sql.close();
        if (saved === undefined) delete process.env.PGPASSWORD;
        else process.env.PGPASSWORD = saved;
      }
    }

    it("reads PGPASSWORD itself for a URL without one (so scimd reads it first and hands it over explicitly)", async () => {
      expect(await logsIn(bare, {}, PASSWORD)).toBe(true);
      expect(await logsIn(bare, {}, undefined)).toBe(false);
    });

    it("a URL's password wins over PGPASSWORD; the password option wins over both; an empty option is no password", async () => {
      expect(await logsIn(withPassword(PASSWORD), {}, WRONG)).toBe(true);
      expect(await logsIn(withPassword(WRONG), {}, PASSWORD)).toBe(false);
      expect(await logsIn(withPassword(WRONG), { password: PASSWORD }, WRONG)).toBe(true);
      expect(await logsIn(withPassword(PASSWORD), { password: WRONG }, undefined)).toBe(false);
      expect(await logsIn(bare, { password: "" }, PASSWORD)).toBe(true);
    });

    it("PGDATABASE wins over the URL's database, the database option over PGDATABASE (so the store passes the URL's as the option)", async () => {
      const saved = process.env.PGDATABASE;
      process.env.PGDATABASE = "no_such_database";
      try {
        const plain = new SQL(withPassword(PASSWORD), { max: 1, connectionTimeout: 5 });
        const e = await plain`SELECT 1`.then(() => undefined, (err) => err);
        await plain.close();
        expect((e as { errno?: string } | undefined)?.errno).toBe("3D000");
        const explicit = new SQL(withPassword(PASSWORD), { max: 1, connectionTimeout: 5, database: "scimd_pw" });
        const [row] = await explicit`SELECT current_database() AS db`;
        await explicit.close();
        expect(row.db).toBe("scimd_pw");
        const store = await openStore(withPassword(PASSWORD), { create: true });
        await store.close();
      } finally {
        if (saved === undefined) delete process.env.PGDATABASE;
        else process.env.PGDATABASE = saved;
      }
    });

    it("takes ?password= in the URL (which scimd counts as the URL's password)", async () => {
      expect(await logsIn(`${bare}?password=${PASSWORD}`, {}, WRONG)).toBe(true);
    });
  });

  it("openStore logs in with the password resolved from each source", async () => {
    const sources: [string, string | undefined, Record<string, string>][] = [
      [withPassword(PASSWORD), undefined, { PGPASSWORD: WRONG }],
      [bare, pwFile(`${PASSWORD}\n`), { PGPASSWORD: WRONG }],
      [bare, undefined, { PGPASSWORD: PASSWORD }],
    ];
    for (const [db, file, env] of sources) {
      const store = await openStore(db, { create: true, password: resolveDbPassword(db, file, env).password });
      expect(await store.tokenCount()).toBeGreaterThanOrEqual(0);
      await store.close();
    }
  });

  /** The three ways to give the password: arguments and environment for `scimd …`. */
  const ways = (): [string, string[], Record<string, string>, string][] => [
    ["the URL", ["--db", withPassword(PASSWORD)], {}, "the password is the one in the --db URL"],
    ["--db-password-file", ["--db", bare, "--db-password-file", pwFile(`${PASSWORD}\n`)], { PGPASSWORD: WRONG }, "(--db-password-file)"],
    ["SCIMD_DB_PASSWORD_FILE", ["--db", bare], { SCIMD_DB_PASSWORD_FILE: pwFile(PASSWORD) }, "(--db-password-file)"],
    ["PGPASSWORD", ["--db", bare], { PGPASSWORD: PASSWORD }, "the password came from PGPASSWORD"],
  ];

  it("generate-token and serve log in with the password from each source, and it appears in no output", async () => {
    for (const [way, args, env] of ways()) {
      const gen = runCli(SOURCE, dir, ["generate-token", "--name", `t-${way.replace(/\W/g, "")}`, "--create", ...args], env);
      expect({ way, code: gen.code, err: gen.code ? gen.err : "" }).toEqual({ way, code: 0, err: "" });
      const token = gen.out.trim();
      const served: Served = await startServe(SOURCE, dir, args, started, 20_000, env);
      expect({ way, exited: served.exited, log: served.exited === undefined ? "" : served.log() }).toEqual({ way, exited: undefined, log: "" });
      // A read through the API: the served store is logged in (serve listens only once it is open).
      const users = await fetch(`${served.base}/Users`, { headers: { Authorization: `Bearer ${token}` } });
      expect(users.status).toBe(200);
      expect(await served.stop(15_000)).toBe(0);
      const config = runCli(SOURCE, dir, ["config", ...args], env);
      expect(config.code).toBe(0);
      expect(config.out).toContain(`127.0.0.1:${cluster.port}/scimd_pw`);
      const help = runCli(SOURCE, dir, ["serve", "--help", ...args], env);
      for (const out of [gen.out.replace(token, ""), gen.err, served.log(), config.out, config.err, help.out, help.err]) expect(out).not.toContain(PASSWORD);
    }
  }, 120_000);

  it("a wrong password is refused in one line naming its source, never the password (exit 1; serve logs it and stops)", async () => {
    const wrongFile = pwFile(`${WRONG}\n`);
    const configFile = join(dir, "scimd.toml");
    writeFileSync(configFile, `db = "${bare}"\ndb-password-file = "${wrongFile}"\n`);
    const wrong: [string, string[], Record<string, string>, string][] = [
      ["the URL", ["--db", withPassword(WRONG)], {}, "the password is the one in the --db URL"],
      ["--db-password-file", ["--db", bare, "--db-password-file", wrongFile], { PGPASSWORD: PASSWORD }, `the password was read from ${wrongFile} (--db-password-file)`],
      // Named by where the file was set, so the reader looks in the right place.
      ["SCIMD_DB_PASSWORD_FILE", ["--db", bare], { PGPASSWORD: PASSWORD, SCIMD_DB_PASSWORD_FILE: wrongFile }, `the password was read from ${wrongFile} (SCIMD_DB_PASSWORD_FILE)`],
      ["the config file", ["--config", configFile], { PGPASSWORD: PASSWORD }, `the password was read from ${wrongFile} (db-password-file in ${configFile})`],
      ["PGPASSWORD", ["--db", bare], { PGPASSWORD: WRONG }, "the password came from PGPASSWORD"],
      ["none", ["--db", bare], {}, "no password was given (none in the --db URL, no --db-password-file, PGPASSWORD unset)"],
    ];
    for (const [way, args, env, says] of wrong) {
      const gen = runCli(SOURCE, dir, ["generate-token", "--name", "never", ...args], env);
      expect({ way, code: gen.code, out: gen.out }).toEqual({ way, code: 1, out: "" });
      expect(gen.err.trim().split("\n")).toHaveLength(1);
      const shown = way === "the URL" ? bare.replace(`${ROLE}@`, `${ROLE}:***@`) : bare;
      expect(gen.err).toContain(`scimd: cannot open ${shown} as a scimd database: password authentication failed for user "${ROLE}"`);
      expect(gen.err).toContain(says);
      const served = await startServe(SOURCE, dir, args, started, 20_000, env);
      expect(served.exited).toBe(1);
      expect(served.log()).toContain("password authentication failed");
      expect(served.log()).toContain(says);
      for (const out of [gen.err, served.log()]) {
        expect(out).not.toContain(WRONG);
        expect(out).not.toContain(PASSWORD);
        expect(out).not.toContain("    at ");
      }
    }
  }, 120_000);

  it("serve warns once, at start, about a password file its group or others may read, and still serves", async () => {
    const f = pwFile(PASSWORD, 0o644);
    const served = await startServe(SOURCE, dir, ["--db", bare, "--db-password-file", f, "--log-format", "json"], started, 20_000);
    expect(served.exited).toBeUndefined();
    await served.stop();
    const warnings = served.records().filter((r) => String(r.message ?? "").includes("is readable by"));
    expect(warnings).toEqual([
      expect.objectContaining({
        level: "warn",
        message: `the database password file ${f} (--db-password-file) is readable by its group and every user (mode 0644); make it readable by scimd's user only: chmod 600 ${f}`,
      }),
    ]);
    expect(served.log()).not.toContain(PASSWORD);
  }, 60_000);
});
