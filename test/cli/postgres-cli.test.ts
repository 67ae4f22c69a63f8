/**
 * scimd export, import and activity on a PostgreSQL database (a throwaway cluster), through main():
 * a directory written over the SCIM API on SQLite, exported, imported into PostgreSQL and exported
 * from there again gives the same file (ids, attributes, members, meta); back into SQLite likewise;
 * `activity` reads the import's entries from PostgreSQL as it does from SQLite; an import into a
 * PostgreSQL database that already holds Users is refused and leaves it as it was.
 */
import { SQL } from "bun";
import { afterAll, beforeAll, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../src/main";
import { openStore } from "../../src/store/open";
import { describePostgres, startCluster, type PgCluster } from "../store/postgres/cluster";
import { groupBody, startSqliteServer as startServer, tempDir, userBody, type SqliteTestServer as TestServer } from "../helpers";

async function run(...argv: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const { log, error } = console;
  const w = process.stdout.write.bind(process.stdout);
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  process.stdout.write = ((chunk: string | Uint8Array) => (out.push(typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)), true)) as typeof process.stdout.write;
  try {
    return { code: await main(argv), out: out.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    process.stdout.write = w;
  }
}

const content = (path: string) => readFileSync(path, "utf8").replace(/"exported":"[^"]+"/, "");
/**
 * The records of a JSON-lines export, sorted, with members and groups sorted by id: on PostgreSQL the
 * creates of one import batch may commit in another order, and a group lists its members (a user its
 * groups) in their creation order.
 */
const records = (path: string) =>
  content(path)
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const r = JSON.parse(line) as Record<string, unknown>;
      for (const k of ["members", "groups"]) if (Array.isArray(r[k])) (r[k] as { value: string }[]).sort((a, b) => a.value.localeCompare(b.value));
      return JSON.stringify(r);
    })
    .sort();

describePostgres("export, import and activity on PostgreSQL", () => {
  const tmp = tempDir("scimd-pg-cli-");
  let cluster: PgCluster;
  let srv: TestServer;
  let n = 0;
  const file = (name: string) => join(tmp.dir, `${++n}-${name}`);
  beforeAll(async () => {
    cluster = await startCluster();
    const admin = new SQL(cluster.url(), { max: 1 });
    for (const db of ["cli_a", "cli_b"]) await admin.unsafe(`CREATE DATABASE ${db}`);
    await admin.close();
    srv = await startServer();
    const post = async (path: string, body: unknown) => {
      const r = await srv.req("POST", path, body);
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const jane = await post("/Users", userBody("jane@example.com", { name: { givenName: "Jane", familyName: "Doe" }, password: "never exported" }));
    const bob = await post("/Users", userBody("Bob@Example.com", { active: false }));
    await post("/Users", userBody("zoë@example.com"));
    const inner = await post("/Groups", groupBody("Inner", [bob]));
    await post("/Groups", groupBody("Staff", [jane, bob, inner]));
    const patch = { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "title", value: "Ops" }] };
    expect((await srv.req("PATCH", `/Users/${bob}`, patch)).status).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await srv?.close();
    cluster?.stop();
    tmp.cleanup();
  }, 60_000);

  it("SQLite → export → import into PostgreSQL → export gives the same file, and back into SQLite too", async () => {
    const first = file("a.jsonl");
    expect((await run("export", "--format", "jsonl", "--out", first, "--db", srv.dbPath)).code).toBe(0);
    const imported = await run("import", first, "--db", cluster.url("cli_a"), "--create");
    expect(imported.out).toContain("imported 3 users and 2 groups");
    expect(imported.code).toBe(0);
    const second = file("b.jsonl");
    const exported = await run("export", "--format", "jsonl", "--out", second, "--db", cluster.url("cli_a"));
    expect(exported.out).toContain("exported 3 users and 2 groups");
    expect(records(second)).toEqual(records(first));
    const back = join(tmp.dir, "back.db");
    expect((await run("import", second, "--db", back, "--create")).code).toBe(0);
    const third = file("c.jsonl");
    expect((await run("export", "--format", "jsonl", "--out", third, "--db", back)).code).toBe(0);
    expect(records(third)).toEqual(records(first));
    // The store itself counts what the import wrote.
    const s = await openStore(cluster.url("cli_a"), { create: false });
    try {
      expect((await s.search("User", { offset: 0, limit: 10 })).total).toBe(3);
    } finally {
      await s.close();
    }
  });

  it("activity reads the import's entries from PostgreSQL as from SQLite", async () => {
    const doc = file("doc.json");
    expect((await run("export", "--out", doc, "--db", srv.dbPath)).code).toBe(0);
    const sqliteTarget = join(tmp.dir, "activity.db");
    expect((await run("import", doc, "--db", sqliteTarget, "--create")).code).toBe(0);
    expect((await run("import", doc, "--db", cluster.url("cli_b"), "--create")).code).toBe(0);
    const shape = (out: string) =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .map((e) => `${e.op} ${e.resourceType} ${e.resourceId}`)
        .sort();
    const onSqlite = await run("activity", "--json", "--db", sqliteTarget);
    const onPostgres = await run("activity", "--json", "--db", cluster.url("cli_b"));
    expect(onSqlite.code).toBe(0);
    expect(onPostgres.code).toBe(0);
    expect(shape(onSqlite.out).length).toBe(5);
    expect(shape(onPostgres.out)).toEqual(shape(onSqlite.out));
    const bob = await run("activity", "--json", "--user", "bob@example.com", "--db", cluster.url("cli_b"));
    expect(bob.code).toBe(0);
    expect(shape(bob.out).length).toBeGreaterThanOrEqual(1);
  });

  it("refuses to import into a PostgreSQL database that holds Users, changing nothing", async () => {
    const doc = file("again.json");
    expect((await run("export", "--out", doc, "--db", srv.dbPath)).code).toBe(0);
    const before = file("before.jsonl");
    expect((await run("export", "--format", "jsonl", "--out", before, "--db", cluster.url("cli_a"))).code).toBe(0);
    const r = await run("import", doc, "--db", cluster.url("cli_a"));
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/holds|not empty|already/);
    const after = file("after.jsonl");
    expect((await run("export", "--format", "jsonl", "--out", after, "--db", cluster.url("cli_a"))).code).toBe(0);
    expect(content(after)).toBe(content(before));
  });
});
