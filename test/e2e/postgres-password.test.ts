/**
 * The compiled binary on a PostgreSQL server that asks for a password (scram-sha-256): dist/scimd,
 * alone in an empty folder, serves with the password from --db-password-file, creates a token with it
 * from PGPASSWORD and lists tokens with SCIMD_DB_PASSWORD_FILE; a wrong password is refused in one
 * line naming where it came from; the password appears in no output (stdout, stderr, the log,
 * `scimd config`, `--help`).
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { SQL } from "bun";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
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
});
