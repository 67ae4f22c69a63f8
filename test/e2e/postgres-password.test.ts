/**
 * The compiled binary on a PostgreSQL server that asks for a password (scram-sha-256): dist/scimd,
 * alone in an empty folder, serves with the password from --db-password-file, creates a token with it
 * from PGPASSWORD and lists tokens with SCIMD_DB_PASSWORD_FILE; a wrong password is refused in one
 * line naming where it came from; the password appears in no output (stdout, stderr, the log,
 * `scimd config`, `--help`). `scimd migrate` takes each side's password from its own file
 * (--from-password-file, --to-password-file) before PGPASSWORD.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describePostgres, startCluster, type PgCluster } from "../store/postgres/cluster";
import { api, buildBinaryInto, runCli, startServe, stopAll } from "./harness";

const ROLE = "scimd_bin";
const PASSWORD = "B1n-pw-never-shown";
const WRONG = "B1n-wrong-never-shown";

describePostgres("dist/scimd with a PostgreSQL password", () => {
  let cluster: PgCluster;
  let dir: string;
  let bin: string;
  let url: string;
  let file: string;
  const started = new Set<Bun.Subprocess>();
  beforeAll(async () => {
    cluster = await startCluster({ passwordRoles: [ROLE] });
    const admin = new SQL(cluster.url(), { max: 1 });
    await admin.unsafe(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'`);
    await admin.unsafe(`CREATE DATABASE scimd_bin OWNER ${ROLE}`);
    await admin.unsafe(`CREATE DATABASE scimd_mig OWNER ${ROLE}`);
    await admin.close();
    url = `postgres://${ROLE}@127.0.0.1:${cluster.port}/scimd_bin?sslmode=disable`;
    dir = mkdtempSync(join(tmpdir(), "scimd-e2e-pgpw-"));
    file = join(dir, "db-password");
    writeFileSync(file, `${PASSWORD}\n`);
    chmodSync(file, 0o600);
    bin = buildBinaryInto(dir);
  }, 300_000);
  afterAll(async () => {
    await stopAll(started, dir);
    cluster?.stop();
  }, 60_000);

  it("serves, creates and lists tokens with the password from a file, PGPASSWORD and SCIMD_DB_PASSWORD_FILE; a wrong one names its source; the password is never printed", async () => {
    const served = await startServe(bin, dir, ["--db", url, "--db-password-file", file, "--log-format", "json"], started, 20_000);
    expect(served.exited).toBeUndefined();
    // No mode warning for a 0600 file.
    expect(served.log()).not.toContain("is readable by");

    const gen = runCli(bin, dir, ["generate-token", "--name", "idp", "--db", url], { PGPASSWORD: PASSWORD });
    expect(gen.code).toBe(0);
    const token = gen.out.trim();
    expect((await api(served, token, "GET", "/Users")).status).toBe(200);

    const list = runCli(bin, dir, ["tokens", "list", "--db", url], { SCIMD_DB_PASSWORD_FILE: file, PGPASSWORD: WRONG });
    expect(list.code).toBe(0);
    expect(list.out).toContain("idp");

    const wrongFile = join(dir, "wrong-password");
    writeFileSync(wrongFile, WRONG);
    chmodSync(wrongFile, 0o600);
    const wrong = runCli(bin, dir, ["tokens", "list", "--db", url, "--db-password-file", wrongFile]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toBe(
      `scimd: cannot open ${url} as a scimd database: password authentication failed for user "${ROLE}" (ERR_POSTGRES_SERVER_ERROR); the password was read from ${wrongFile} (--db-password-file)\n`,
    );
    const wrongEnv = runCli(bin, dir, ["generate-token", "--name", "never", "--db", url], { PGPASSWORD: WRONG });
    expect(wrongEnv.code).toBe(1);
    expect(wrongEnv.err).toContain("password authentication failed");
    expect(wrongEnv.err).toContain("the password came from PGPASSWORD");

    const ambiguous = runCli(bin, dir, ["serve", "--db", url.replace(`${ROLE}@`, `${ROLE}:${PASSWORD}@`), "--db-password-file", file]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.err).toContain("the --db URL holds a password too");

    const config = [
      runCli(bin, dir, ["config", "--db", url, "--db-password-file", file]),
      runCli(bin, dir, ["config", "--db", url], { PGPASSWORD: PASSWORD }),
      runCli(bin, dir, ["config", "--db", url.replace(`${ROLE}@`, `${ROLE}:${PASSWORD}@`)]),
    ];
    for (const c of config) expect(c.code).toBe(0);
    expect(config[0]!.out).toContain("password: read from db-password-file at start");
    expect(config[1]!.out).toContain("password: from PGPASSWORD");
    expect(config[2]!.out).toContain(`${ROLE}:***@`);
    const helps = ["serve", "generate-token", "tokens", "activity", "backup", "restore", "export", "import", "config"].map((c) =>
      runCli(bin, dir, [c, "--help", "--db", url, "--db-password-file", file], { PGPASSWORD: PASSWORD }),
    );
    for (const h of helps) expect(h.out).toContain("db-password-file");

    expect(await served.stop(15_000)).toBe(0);
    const outputs = [served.log(), gen.out.replace(token, ""), gen.err, list.out, list.err, wrong.err, wrongEnv.err, ambiguous.out, ambiguous.err];
    for (const c of [...config, ...helps]) outputs.push(c.out, c.err);
    for (const out of outputs) {
      expect(out).not.toContain(PASSWORD);
      expect(out).not.toContain(WRONG);
    }
  }, 180_000);

  it("migrate copies SQLite to PostgreSQL with --to-password-file and back with --from-password-file, before PGPASSWORD; a wrong one names its flag; the password is never printed", async () => {
    const mig = `postgres://${ROLE}@127.0.0.1:${cluster.port}/scimd_mig?sslmode=disable`;
    const source = join(dir, "mig-source.db");
    expect(runCli(bin, dir, ["generate-token", "--name", "carried", "--create", "--db", source]).code).toBe(0);
    const wrongFile = join(dir, "mig-wrong-password");
    writeFileSync(wrongFile, WRONG);
    chmodSync(wrongFile, 0o600);

    const there = runCli(bin, dir, ["migrate", "--from", source, "--to", mig, "--to-password-file", file], { PGPASSWORD: WRONG });
    expect(there.err).toBe("");
    expect(there.code).toBe(0);
    expect(there.out).toContain("1 token secret");
    // The command it suggests logs in as migrate did.
    expect(there.out).toContain(`serve --db '${mig}' --db-password-file ${file}\n`);

    const back = join(dir, "mig-back.db");
    const wrongFrom = runCli(bin, dir, ["migrate", "--from", mig, "--to", back, "--from-password-file", wrongFile], { PGPASSWORD: PASSWORD });
    expect(wrongFrom.code).toBe(1);
    expect(wrongFrom.err).toContain(`password authentication failed for user "${ROLE}"`);
    expect(wrongFrom.err).toContain(`the password was read from ${wrongFile} (--from-password-file)`);
    const fromEnv = runCli(bin, dir, ["migrate", "--from", mig, "--to", back], { PGPASSWORD: WRONG });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.err).toContain("the password came from PGPASSWORD");
    expect(existsSync(back)).toBe(false);

    const onSqlite = runCli(bin, dir, ["migrate", "--from", mig, "--to", back, "--to-password-file", file]);
    expect(onSqlite.code).toBe(2);
    expect(onSqlite.err).toContain(`--to-password-file applies to PostgreSQL only (a postgres:// --to); --to ${back} is a SQLite file, which has no password`);

    const home = runCli(bin, dir, ["migrate", "--from", mig, "--to", back, "--from-password-file", file], { PGPASSWORD: WRONG });
    expect(home.err).toBe("");
    expect(home.code).toBe(0);
    expect(home.out).toContain("1 token secret");
    expect(runCli(bin, dir, ["tokens", "list", "--db", back]).out).toContain("carried");

    for (const r of [there, wrongFrom, fromEnv, onSqlite, home])
      for (const out of [r.out, r.err]) {
        expect(out).not.toContain(PASSWORD);
        expect(out).not.toContain(WRONG);
      }
  }, 180_000);
});
