/**
 * `scimd migrate`, in-process through main(), on real databases: a SQLite file filled through the
 * store (Users with enterprise attributes, nested Groups, a rotated, a revoked and a read token,
 * activity with renames and deletes) copied SQLite → SQLite, and SQLite → PostgreSQL → SQLite on a
 * throwaway cluster (skipped without the server binaries, as the store's PostgreSQL tests are); every
 * copy compared with the original row by row. Then the refusals: a target that is not empty, the same
 * database twice, an unreachable server, never with a password in what is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { SQL } from "bun";
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { main } from "../src/main";
import { NO_QUIRKS } from "../src/scim/quirks";
import { finalizeResource, normalizeBody, type Resource } from "../src/scim/resource";
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_RESOURCE, USER_SCHEMA } from "../src/scim/schema";
import { openStore } from "../src/store/open";
import type { Store } from "../src/store/store";
import { hashToken, newToken } from "../src/tokens";
import { tempDir } from "./helpers";
import { describePostgres, startCluster, type PgCluster } from "./store/postgres/cluster";

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const userData = (i: number, extra: Record<string, unknown> = {}): Resource =>
  finalizeResource(
    USER_RESOURCE,
    normalizeBody(
      USER_RESOURCE,
      {
        schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        userName: `user${i}@example.com`,
        name: { givenName: `Given${i}`, familyName: `Family${i}` },
        displayName: `User ${i}`,
        emails: [{ value: `user${i}@example.com`, type: "work", primary: true }],
        [ENTERPRISE_USER_SCHEMA]: { employeeNumber: String(i), department: "R&D", manager: { value: "m-1" } },
        ...extra,
      },
      { quirks: NO_QUIRKS },
    ).resource,
  );

/** The plain secrets made while filling, to prove the copy accepts them. */
interface Secrets {
  okta: string;
  oktaOld: string;
  dash: string;
  revoked: string;
}

/** Fills an empty store as a server's life would: creates, updates, renames, deletes, nested groups, tokens. */
async function fill(store: Store, users = 1234): Promise<Secrets> {
  const ids: string[] = [];
  for (let start = 0; start < users; start += 500) {
    const batch: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(users, start + 500); i++) {
      const id = `u-${i}-${crypto.randomUUID()}`;
      ids.push(id);
      const meta = i % 3 === 0 ? { created: "2021-01-02T03:04:05.678Z", lastModified: "2023-04-05T06:07:08.901Z" } : undefined;
      batch.push(store.create("User", { id, data: userData(i), meta, origin: { via: "scim", requestId: `req-${i}`, token: "okta" } }));
    }
    await Promise.all(batch);
  }
  // Versions above 1, a rename (indexed by its old name), a delete (leaves its groups).
  await store.update("User", ids[1]!, { data: userData(1, { title: "Boss" }), origin: { via: "scim", token: "okta" } });
  await store.update("User", ids[1]!, { data: userData(1, { title: "Chief" }), op: "patch" });
  await store.update("User", ids[2]!, { data: userData(100_002) });
  const staff = await store.create("Group", { id: "g-staff", data: { schemas: [GROUP_SCHEMA], displayName: "Staff" }, members: ids.slice(0, 800) });
  const admins = await store.create("Group", { id: "g-admins", data: { schemas: [GROUP_SCHEMA], displayName: "Admins" }, members: [ids[0]!, ids[1]!, ids[3]!] });
  // A group made before its member group (so the copy must order them), and one nested two deep.
  const all = await store.create("Group", { id: "g-all", data: { schemas: [GROUP_SCHEMA], displayName: "All" }, members: [ids[4]!] });
  const ops = await store.create("Group", { id: "g-ops", data: { schemas: [GROUP_SCHEMA], displayName: "Ops" }, members: [admins.id, ids[5]!] });
  await store.update("Group", all.id, { data: { schemas: [GROUP_SCHEMA], displayName: "All" }, memberChanges: [{ kind: "add", ids: [ops.id, staff.id] }] });
  await store.create("Group", { id: "g-empty", data: { schemas: [GROUP_SCHEMA], displayName: "Empty" } });
  await store.delete("User", ids[3]!, { origin: { via: "scim", requestId: "del-1" } });
  const s: Secrets = { okta: newToken(), oktaOld: newToken(), dash: newToken(), revoked: newToken() };
  await store.createToken("okta", hashToken(s.oktaOld));
  await store.rotateToken("okta", hashToken(s.okta), 3_600_000);
  await store.createToken("dashboard", hashToken(s.dash), { scope: "read", expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString() });
  await store.createToken("gone", hashToken(s.revoked));
  await store.revokeToken("gone");
  return s;
}

/** Everything a store holds, in an order that does not depend on the engine. */
async function snapshot(store: Store) {
  const scan = async (kind: "User" | "Group") => {
    const all = [];
    let after: string | undefined;
    do {
      const page = await store.scan(kind, after, 300);
      all.push(...page.resources);
      after = page.next;
    } while (after !== undefined);
    return all;
  };
  // In creation order, the members and groups as the store orders them: the copy keeps the order, so it serves the same documents and lists.
  const users = (await scan("User")).map((u) => ({ id: u.id, data: u.data, created: u.created, lastModified: u.lastModified, version: u.version, groups: u.groups ?? [] }));
  const groups = [];
  for (const g of await scan("Group")) {
    const members = [];
    let cursor: string | undefined;
    do {
      const page = await store.memberPage(g.id, cursor, 250);
      members.push(...page.members);
      cursor = page.next;
    } while (cursor !== undefined);
    groups.push({ id: g.id, data: g.data, created: g.created, lastModified: g.lastModified, version: g.version, members });
  }
  const tokens = (await store.tokenCopies()).sort((a, b) => a.hash.localeCompare(b.hash));
  const activity = [];
  for (let after = 0; ; ) {
    const page = await store.activityCopies(after, 400);
    if (!page.length) break;
    activity.push(...page.map(({ entry: { seq: _, ...entry }, nameKey }) => ({ entry, nameKey })));
    after = page[page.length - 1]!.entry.seq;
  }
  return { counts: await store.rowCounts(), users, groups, tokens, activity };
}

/** What the copy must still do as the original did: tokens found by their hash with their scope, history by an old name. */
async function behaves(store: Store, s: Secrets): Promise<void> {
  expect(await store.findToken(hashToken(s.okta))).toMatchObject({ name: "okta", scope: "write" });
  expect(await store.findToken(hashToken(s.oktaOld))).toMatchObject({ name: "okta", rotated: expect.any(String) });
  expect(await store.findToken(hashToken(s.dash))).toMatchObject({ name: "dashboard", scope: "read", expiresAt: expect.any(String) });
  expect(await store.findToken(hashToken(s.revoked))).toBeUndefined();
  expect(await store.refusal(hashToken(s.revoked))).toEqual({ reason: "revoked" });
  // The user renamed away from user2@… is found by that name in the copied log (and the group that added it).
  expect((await store.listActivity({ user: "user2@example.com", limit: 10 })).map((e) => [e.op, e.resourceType])).toEqual([
    ["create", "Group"],
    ["replace", "User"],
    ["create", "User"],
  ]);
  expect((await store.listActivity({ group: "Admins", limit: 10 })).map((e) => e.op)).toEqual(["delete", "create"]);
}

const tmp = tempDir("scimd-migrate-");
afterAll(() => tmp.cleanup());
let n = 0;
const file = () => join(tmp.dir, `db-${++n}`, "scimd.db");

describe("scimd migrate (SQLite)", () => {
  let source: string;
  let secrets: Secrets;
  let original: Awaited<ReturnType<typeof snapshot>>;
  beforeAll(async () => {
    source = file();
    const store = await openStore(source, { create: true });
    secrets = await fill(store);
    original = await snapshot(store);
    await store.close();
  }, 60_000);

  it("copies SQLite to a new SQLite file: every resource, membership, token and activity entry, as they were", async () => {
    expect(original.counts).toMatchObject({ users: 1233, groups: 5, tokens: 4 });
    expect(original.activity.length).toBeGreaterThan(1240);
    const target = file();
    const r = await run(["migrate", "--from", source, "--to", target, "--batch", "200"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`migrated ${source} to ${target}`);
    expect(r.out).toContain("Serve from it (the IdP's tokens work there as they did):\n");
    expect(r.out).toContain("1233 users, 5 groups");
    expect(r.out).toContain("verified: every count matches; 100 sampled resources, 4 token secrets and the newest 100 activity entries");
    const copy = await openStore(target);
    try {
      expect(await snapshot(copy)).toEqual(original);
      await behaves(copy, secrets);
    } finally {
      await copy.close();
    }
  }, 60_000);

  it("refuses a target that holds anything (a token is enough), in one line, and leaves it as it was", async () => {
    const target = file();
    const t = await openStore(target, { create: true });
    await t.createToken("x", "h");
    await t.close();
    const r = await run(["migrate", "--from", source, "--to", `sqlite:${target}`]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`scimd: the target ${target} is not empty (it holds 0 users, 0 groups, 0 memberships, 1 token secret, 0 activity entries); migrate copies into an empty database only, so that nothing is merged or overwritten`);
    const again = await openStore(target);
    expect(await again.rowCounts()).toEqual({ users: 0, groups: 0, memberships: 0, tokens: 1, activity: 0 });
    await again.close();
  });

  it("refuses the same database twice, however it is spelt", async () => {
    for (const to of [source, `sqlite:${source}`, `sqlite://${source}`, `${source}-wal`]) {
      const r = await run(["migrate", "--from", source, "--to", to]);
      expect([r.code, r.err]).toEqual([1, `scimd: --from and --to name the same database (${to.endsWith("-wal") ? `${source}-wal` : source}); migrate copies into another, empty database`]);
    }
  });

  it("refuses while another process (a server) has --from or --to open, naming it, and writes nothing", async () => {
    const target = file();
    const made = await openStore(target, { create: true });
    await made.close();
    for (const [flagName, held] of [["from", source], ["to", target]] as const) {
      // What a running serve holds: a WAL connection to the file, open.
      const holder = Bun.spawn(
        [process.execPath, "-e", `const { Database } = require("bun:sqlite"); const d = new Database(${JSON.stringify(held)}); d.query("SELECT count(*) FROM users").get(); console.log("open"); setInterval(() => {}, 1000);`],
        { stdout: "pipe", stderr: "inherit" },
      );
      try {
        const reader = holder.stdout.getReader();
        expect(new TextDecoder().decode((await reader.read()).value)).toContain("open");
        const r = await run(["migrate", "--from", source, "--to", target]);
        expect(r.code).toBe(1);
        expect(r.err).toStartWith(`scimd: process ${holder.pid} (`);
        expect(r.err).toContain(`has --${flagName} ${held} open (it holds SQLite's shared lock`);
        expect(r.err).toEndWith("then run migrate again: a write during the copy would " + (flagName === "from" ? "be missed" : "mix into the copy") + "; nothing was changed");
      } finally {
        holder.kill();
        await holder.exited;
      }
    }
    const t = await openStore(target);
    expect(await t.rowCounts()).toEqual({ users: 0, groups: 0, memberships: 0, tokens: 0, activity: 0 });
    await t.close();
  }, 30_000);

  it("names the cause when two Users of the source clash in the copy (userNames an older scimd's upgrade kept apart)", async () => {
    const legacy = file();
    const store = await openStore(legacy, { create: true });
    await store.create("User", { id: "u-a", data: userData(1, { userName: "alice" }) });
    await store.create("User", { id: "u-b", data: userData(2, { userName: "bob" }) });
    await store.close();
    // What schema migration 2 leaves when the width-mapped key is taken: the old key, the userName as it was.
    const db = new Database(legacy);
    db.query("UPDATE users SET user_name_key = 'ａｌｉｃｅ', data = json_set(data, '$.userName', 'ａｌｉｃｅ') WHERE id = 'u-b'").run();
    db.close();
    const target = file();
    const r = await run(["migrate", "--from", legacy, "--to", target]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `scimd: migrate failed: a User with userName "ａｌｉｃｅ" already exists (userName is compared case-insensitively): two Users of the source clash (an older scimd kept names apart that now compare equal, such as "ａｌｉｃｅ" and "alice"); rename one of them there and migrate again; ${target} now holds part of the copy: empty it (a new file, or DROP DATABASE and CREATE DATABASE) and run migrate again; ${legacy} is unchanged`,
    );
  });

  it("refuses a --from or --to no engine serves by that flag's name, with the forms migrate takes, never repeating the value", async () => {
    const to = await run(["migrate", "--from", source, "--to", "mysql://scimd:hunter2-secret@db/scimd"]);
    expect(to.code).toBe(2);
    expect(to.err).toStartWith("scimd: --to names a 'mysql:' database, which scimd does not serve; give a file path, sqlite:PATH or a postgres:// URL\n");
    const from = await run(["migrate", "--from", "jdbc:postgresql://scimd:hunter2-secret@db/scimd", "--to", file()]);
    expect(from.code).toBe(2);
    expect(from.err).toStartWith("scimd: --from names a 'jdbc:postgresql:' database, which scimd does not serve (for PostgreSQL give a postgres:// URL); give a file path, sqlite:PATH or a postgres:// URL\n");
    for (const r of [to, from]) {
      expect(r.err).not.toContain("hunter2");
      expect(r.err).not.toContain("--db");
    }
  });

  it("asks for --from and --to (usage, exit 2), and --help says how", async () => {
    expect((await run(["migrate", "--to", file()])).code).toBe(2);
    expect((await run(["migrate", "--from", source])).code).toBe(2);
    const help = await run(["migrate", "--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("Usage: scimd migrate --from DB --to DB");
    expect(help.out).toContain("--from <value>");
    const top = await run(["--help"]);
    expect(top.out).toMatch(/\n  migrate +copy a database into an empty one/);
  });

  it("on Ctrl-C (SIGINT) or SIGTERM stops after the batch in flight and says that the target holds part of the copy (exit 130, 143)", async () => {
    for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      const target = file();
      // One User per batch, each its own durable commit: the copy takes seconds, the signal comes after the first rows.
      const child = Bun.spawn([process.execPath, "run", join(import.meta.dir, "../src/main.ts"), "migrate", "--from", source, "--to", target, "--batch", "1"], { stdout: "pipe", stderr: "pipe" });
      const usersIn = () => {
        if (!existsSync(target)) return 0;
        try {
          const db = new Database(target, { readonly: true });
          try {
            return (db.query("SELECT count(*) AS n FROM users").get() as { n: number }).n;
          } finally {
            db.close();
          }
        } catch {
          return 0; // not created yet
        }
      };
      const t0 = Date.now();
      while (usersIn() === 0 && Date.now() - t0 < 20_000) await Bun.sleep(10);
      child.kill(signal);
      expect(await child.exited).toBe(code);
      const err = await new Response(child.stderr).text();
      expect(err).toBe(`scimd: migrate stopped (${signal}) before the copy was complete; ${target} now holds part of the copy: empty it (a new file, or DROP DATABASE and CREATE DATABASE) and run migrate again; ${source} is unchanged\n`);
      expect(await new Response(child.stdout).text()).toBe("");
      const left = usersIn();
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThan(original.counts.users);
    }
  }, 60_000);

  it("refuses an unreachable PostgreSQL server without printing the password, and a missing source", async () => {
    const r = await run(["migrate", "--from", source, "--to", "postgres://scimd:hunter2-secret@127.0.0.1:1/scimd?sslmode=disable"]);
    expect(r.code).toBe(1);
    expect(r.err).toStartWith("scimd: cannot open postgres://scimd:***@127.0.0.1:1/scimd");
    expect(r.err).not.toContain("hunter2");
    const from = await run(["migrate", "--from", "postgres://scimd:hunter2-secret@127.0.0.1:1/scimd", "--to", file()]);
    expect(from.code).toBe(1);
    expect(from.err).not.toContain("hunter2");
    const missing = await run(["migrate", "--from", join(tmp.dir, "none.db"), "--to", file()]);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(`scimd: there is no scimd database at --from ${join(tmp.dir, "none.db")}; give the database your server uses (its --db); nothing was changed`);
  }, 30_000);
});

describePostgres("scimd migrate (SQLite → PostgreSQL → SQLite)", () => {
  let cluster: PgCluster;
  let admin: SQL;
  let source: string;
  let secrets: Secrets;
  let original: Awaited<ReturnType<typeof snapshot>>;
  beforeAll(async () => {
    cluster = await startCluster();
    admin = new SQL(cluster.url(), { max: 1 });
    source = file();
    const store = await openStore(source, { create: true });
    secrets = await fill(store);
    original = await snapshot(store);
    await store.close();
  }, 120_000);
  afterAll(async () => {
    await admin?.close();
    cluster?.stop();
  }, 60_000);

  /** The URL of a new, empty database, with a password (the test cluster trusts loopback, so it is not checked). */
  const database = async (name: string) => {
    await admin.unsafe(`CREATE DATABASE ${name}`);
    return cluster.url(name).replace("scimd_test@", "scimd_test:hunter2-secret@");
  };

  it("copies to PostgreSQL and back to a new SQLite file, with nothing lost or changed on the way, never printing the password", async () => {
    const pg = await database("migrate_to");
    const there = await run(["migrate", "--from", source, "--to", pg]);
    expect(there.err).toBe("");
    expect(there.code).toBe(0);
    expect(there.out).not.toContain("hunter2");
    expect(there.out).toContain("postgres://scimd_test:***@127.0.0.1:");
    expect(there.out).toContain("Serve from it (the IdP's tokens work there as they did), with the URL's password in place of ***:\n");
    const onPg = await openStore(pg);
    /** What PostgreSQL holds once its tokens were used (findToken records lastUsed): what the copy back must hold. */
    let used: typeof original;
    try {
      expect(await snapshot(onPg)).toEqual(original);
      await behaves(onPg, secrets);
      used = await snapshot(onPg);
      expect(used.tokens.filter((t) => t.lastUsed !== null).length).toBe(3);
    } finally {
      await onPg.close();
    }

    const back = file();
    const home = await run(["migrate", "--from", pg, "--to", back, "--sample", "2000"]);
    expect(home.err).toBe("");
    expect(home.code).toBe(0);
    expect(home.out).not.toContain("hunter2");
    expect(home.out).toContain("1238 sampled resources");
    const copy = await openStore(back);
    try {
      expect(await snapshot(copy)).toEqual(used);
      await behaves(copy, secrets);
    } finally {
      await copy.close();
    }

    // Now the PostgreSQL database holds a directory: a second migrate into it is refused.
    const again = await run(["migrate", "--from", source, "--to", pg]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^scimd: the target postgres:\/\/scimd_test:\*\*\*@127\.0\.0\.1:\d+\/migrate_to is not empty \(it holds 1233 users, 5 groups, /);
    expect(again.err).not.toContain("hunter2");
  }, 120_000);

  it("when the PostgreSQL server goes away part-way, says the target holds part of the copy (and not 'nothing was changed')", async () => {
    const pg = await database("migrate_halted");
    const name = "migrate_halted";
    const copying = run(["migrate", "--from", source, "--to", pg, "--batch", "1"]);
    const t0 = Date.now();
    for (;;) {
      const probe = new SQL(cluster.url(name), { max: 1 });
      const users = await probe.unsafe("SELECT count(*)::int AS n FROM users").then((r) => r[0].n as number, () => 0);
      await probe.close();
      if (users > 0 || Date.now() - t0 > 20_000) break;
      await Bun.sleep(20);
    }
    cluster.halt();
    try {
      const r = await copying;
      expect(r.code).toBe(1);
      expect(r.err).toStartWith("scimd: migrate failed: the database does not answer (");
      expect(r.err).toContain(`${pg.replace("hunter2-secret", "***")} now holds part of the copy: empty it`);
      expect(r.err).not.toContain("nothing was changed");
      expect(r.err).not.toContain("retry shortly");
      expect(r.err).not.toContain("hunter2");
    } finally {
      cluster.resume();
      // The halt ended the admin connection too: a new one for the tests after this one.
      await admin.close().catch(() => {});
      admin = new SQL(cluster.url(), { max: 1 });
    }
  }, 60_000);

  it("refuses the same PostgreSQL database under two spellings, without the password", async () => {
    const pg = await database("migrate_same");
    const other = pg.replace("postgres://", "postgresql://").replace("hunter2-secret", "other-secret") + "?sslmode=disable";
    const r = await run(["migrate", "--from", pg, "--to", other]);
    expect(r.code).toBe(1);
    expect(r.err).toStartWith("scimd: --from and --to name the same database (postgresql://scimd_test:***@127.0.0.1:");
    expect(r.err).not.toContain("secret");
  });
});
