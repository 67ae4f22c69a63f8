/**
 * scimd export and import through main(), on real databases: data written over the SCIM API by a
 * real server, exported, imported into a fresh database and exported again (identical); the file
 * modes; and import's refusals, each leaving the target database as it was, including a write that
 * fails part-way (a real SQLite trigger aborts one insert), after which nothing is left.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../src/main";
import { openStore } from "../../src/store/open";
import { ENTERPRISE, groupBody, startSqliteServer, tempDir, USER, userBody, type SqliteTestServer } from "../helpers";

/** Runs main(argv) with console output captured (the commands write their data into --out files here). */
async function run(...argv: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    return { code: await main(argv), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const tmp = tempDir("scimd-export-");
let srv: SqliteTestServer;
const ids: Record<string, string> = {};
let n = 0;
const file = (name: string) => join(tmp.dir, `${++n}-${name}`);

/** The users and groups a database holds. */
async function holdings(db: string): Promise<[number, number]> {
  const s = await openStore(db, { create: false });
  try {
    return [(await s.search("User", { offset: 0, limit: 0 })).total, (await s.search("Group", { offset: 0, limit: 0 })).total];
  } finally {
    await s.close();
  }
}

/** An export file without its `exported` time, which differs between two runs. */
const content = (path: string) => readFileSync(path, "utf8").replace(/"exported":"[^"]+"/, "");

beforeAll(async () => {
  srv = await startSqliteServer();
  const post = async (path: string, body: unknown) => {
    const r = await srv.req("POST", path, body);
    expect(r.status).toBe(201);
    return r.body.id as string;
  };
  ids.jane = await post(
    "/Users",
    userBody("jane@example.com", {
      schemas: [USER, ENTERPRISE],
      externalId: "okta-00u1",
      name: { givenName: "Jane", familyName: "Doe, Jr." },
      password: "correct horse battery staple",
      phoneNumbers: [{ value: "+1 555 0100", type: "mobile" }],
      [ENTERPRISE]: { employeeNumber: "=1+2", manager: { value: "boss-1" } },
    }),
  );
  ids.bob = await post("/Users", userBody("bob@example.com", { active: false }));
  ids.zoe = await post("/Users", userBody("zoë@example.com"));
  ids.inner = await post("/Groups", groupBody("Inner", [ids.bob!]));
  ids.staff = await post("/Groups", groupBody("Staff", [ids.jane!, ids.bob!, ids.inner!]));
  // A later change, so that lastModified differs from created and the version is not 1.
  expect((await srv.req("PATCH", `/Users/${ids.bob}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "title", value: "Ops" }] })).status).toBe(200);
});

afterAll(async () => {
  await srv.close();
  tmp.cleanup();
});

describe("scimd export → import → export", () => {
  for (const format of ["json", "jsonl"])
    it(`gives the same ${format} export from the imported database: ids, attributes, groups, members and meta kept`, async () => {
      const first = file(`a.${format}`);
      const r = await run("export", "--format", format, "--out", first, "--db", srv.dbPath);
      expect(r).toEqual({ code: 0, err: expect.stringContaining(`exported 3 users and 2 groups`) });
      // Not a terminal here: no progress bar, no escape sequence.
      expect(r.err).not.toContain("\x1b");
      const target = join(tmp.dir, `${++n}-imported.db`);
      const imported = await run("import", first, "--db", target, "--create");
      expect(imported.err).toContain("imported 3 users and 2 groups");
      expect(imported.code).toBe(0);
      const second = file(`b.${format}`);
      expect((await run("export", "--format", format, "--out", second, "--db", target)).code).toBe(0);
      expect(content(second)).toBe(content(first));
      // Never the password hash; the API's own representation otherwise.
      expect(content(first)).not.toContain("argon2");
      const api = (await srv.req("GET", `/Users/${ids.bob}`)).body;
      const line = content(first).split("\n").find((l) => l.includes(ids.bob!) && l.includes("bob@example.com"))!;
      const rec = JSON.parse(line.replace(/,$/, ""));
      expect(rec.meta.lastModified).toBe(api.meta.lastModified);
      expect(rec.meta.lastModified > rec.meta.created).toBe(true);
      const { meta: _m, groups: _g, ...attrs } = api;
      expect(rec.meta.version).toBeUndefined();
      expect(rec).toMatchObject(attrs);
    });

  it("refuses --out naming the database or a file SQLite keeps beside it (usage error, nothing written)", async () => {
    const before = readFileSync(srv.dbPath);
    for (const out of [srv.dbPath, `${srv.dbPath}-wal`]) {
      const r = await run("export", "--out", out, "--db", srv.dbPath);
      expect(r.code).toBe(2);
      expect(r.err).toContain("is the database itself");
    }
    expect(readFileSync(srv.dbPath).equals(before)).toBe(true);
  });

  it("refuses an --out that could only fail after the export was written (a folder, a missing folder), naming --out, leaving nothing", async () => {
    const folder = join(tmp.dir, "out-folder");
    mkdirSync(folder);
    for (const [out, why] of [
      [folder, "is a folder; name a file in it"],
      [join(tmp.dir, "no-such-folder", "users.jsonl"), "does not exist"],
    ] as const) {
      const r = await run("export", "--out", out, "--db", srv.dbPath);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`--out ${out}`);
      expect(r.err).toContain(why);
      expect(r.err).not.toContain(".partial");
    }
    expect(readdirSync(folder)).toEqual([]);
  });

  it("writes a JSON document import reads back: {format, version, exported, Users, Groups}, members with value, type, display", async () => {
    const out = file("doc.json");
    expect((await run("export", "--out", out, "--db", srv.dbPath)).code).toBe(0);
    const doc = JSON.parse(readFileSync(out, "utf8"));
    expect(Object.keys(doc)).toEqual(["format", "version", "exported", "Users", "Groups"]);
    expect(doc.Users.map((u: { userName: string }) => u.userName)).toEqual(["jane@example.com", "bob@example.com", "zoë@example.com"]);
    const staff = doc.Groups.find((g: { displayName: string }) => g.displayName === "Staff");
    expect(staff.members).toEqual([
      { value: ids.jane, type: "User", display: "jane" },
      { value: ids.bob, type: "User", display: "bob" },
      { value: ids.inner, type: "Group", display: "Inner" },
    ]);
    expect(Object.keys(staff).at(-1)).toBe("meta");
  });

  it("writes the file 0600 under a temporary name renamed at the end, leaving nothing else beside it", async () => {
    const dir = join(tmp.dir, "out");
    require("node:fs").mkdirSync(dir);
    writeFileSync(join(dir, "users.csv"), "old");
    expect((await run("export", "--format", "csv", "--out", join(dir, "users.csv"), "--db", srv.dbPath)).code).toBe(0);
    expect(statSync(join(dir, "users.csv")).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["users.csv"]);
    const lines = readFileSync(join(dir, "users.csv"), "utf8").split("\r\n");
    expect(lines[0]!.startsWith("id,externalId,userName,displayName,")).toBe(true);
    expect(lines).toHaveLength(5); // header, 3 users, and the empty string after the last CRLF
    const jane = lines.find((l) => l.startsWith(ids.jane!))!;
    expect(jane).toContain(`"Doe, Jr."`);
    expect(jane).toContain(",'=1+2,");
    expect(jane).toContain(",'+1 555 0100,");
  });

  it("writes one CSV row per group with --groups", async () => {
    const out = file("groups.csv");
    expect((await run("export", "--format", "csv", "--groups", "--out", out, "--db", srv.dbPath)).code).toBe(0);
    const lines = readFileSync(out, "utf8").trimEnd().split("\r\n");
    expect(lines[0]).toBe("id,externalId,displayName,members.count,members.value,members.display,meta.created,meta.lastModified");
    expect(lines[2]).toContain(`,Staff,3,${ids.jane} ${ids.bob} ${ids.inner},jane; bob; Inner,`);
  });

  it("exports only the Users or only the Groups when asked", async () => {
    const out = file("users.jsonl");
    expect((await run("export", "--format", "jsonl", "--users", "--out", out, "--db", srv.dbPath)).code).toBe(0);
    expect(readFileSync(out, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l).meta.resourceType)).toEqual(["User", "User", "User"]);
  });

  const usage: [string, string[], RegExp][] = [
    ["an unknown format", ["--format", "xml"], /--format must be json, jsonl or csv/],
    ["--users with --groups", ["--users", "--groups"], /--users and --groups are alternatives/],
    ["a file name as an argument", ["out.json"], /unexpected argument 'out.json' \(to write into a file, use --out out.json\)/],
  ];
  for (const [what, argv, message] of usage)
    it(`refuses ${what} with exit 2 and the usage`, async () => {
      const r = await run("export", ...argv, "--db", srv.dbPath);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err).toContain("Usage: scimd export");
    });

  it("refuses a database that does not exist, creating nothing", async () => {
    const missing = join(tmp.dir, "missing.db");
    const r = await run("export", "--db", missing);
    expect(r).toEqual({ code: 1, err: expect.stringContaining(`there is no scimd database at ${missing}`) });
    expect(readdirSync(tmp.dir)).not.toContain("missing.db");
  });
});

describe("scimd import refuses, and leaves the database as it was", () => {
  /** A JSON-lines file of these records. */
  const jsonl = (records: unknown[]) => {
    const path = file("in.jsonl");
    writeFileSync(path, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
    return path;
  };
  const u = (id: string, userName: string) => ({ ...userBody(userName), id });
  const g = (id: string, displayName: string, members: string[]) => ({ ...groupBody(displayName, members), id });
  const fresh = () => join(tmp.dir, `${++n}-fresh.db`);

  it("a database that holds Users or Groups already (tokens alone are fine)", async () => {
    const path = jsonl([u("u1", "a")]);
    const r = await run("import", path, "--db", srv.dbPath);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/already holds 3 users and 2 groups; import loads into a database without Users and Groups only/);
    expect(await holdings(srv.dbPath)).toEqual([3, 2]);
    // The server's database has a token: a database with only tokens is empty enough.
    const tokensOnly = fresh();
    const s = await openStore(tokensOnly);
    await s.createToken("okta", "h".repeat(64));
    await s.close();
    expect((await run("import", path, "--db", tokensOnly)).code).toBe(0);
    expect(await holdings(tokensOnly)).toEqual([1, 0]);
  });

  const bad: [string, unknown[], string][] = [
    ["a bad record, naming its line and what is wrong", [u("u1", "a"), { ...u("u2", "b"), active: "maybe" }], "line 2: 'active' must be a boolean (true or false), got a string"],
    ["a line that is not JSON", [u("u1", "a"), "{oops"], "line 2: not JSON"],
    ["a member the file does not hold", [u("u1", "a"), g("g1", "G", ["u1", "nobody"])], "line 2: member 'nobody' is neither a User nor a Group in the file"],
    ["a userName twice", [u("u1", "Alice"), u("u2", "alice")], `line 2: userName "alice" is already the userName of the User at line 1`],
    ["a record of no known type", [{ id: "x", userName: "y" }], "line 1: says neither that it is a User nor a Group"],
  ];
  for (const [what, records, message] of bad)
    it(`${what}, importing nothing`, async () => {
      const path = records[1] === "{oops" ? file("in.jsonl") : jsonl(records);
      if (records[1] === "{oops") writeFileSync(path, `${JSON.stringify(records[0])}\n{oops\n`);
      const db = fresh();
      const r = await run("import", path, "--db", db, "--create");
      expect(r.code).toBe(1);
      expect(r.err).toContain(`scimd: ${path} ${message}`);
      expect(r.err).toContain("nothing was imported");
      expect(await holdings(db)).toEqual([0, 0]);
    });

  it("reads a SCIM ListResponse (e.g. saved from another server's GET /Users)", async () => {
    const path = file("list.json");
    writeFileSync(path, JSON.stringify({ schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], totalResults: 2, Resources: [u("x1", "x"), g("g1", "G", ["x1"])] }));
    const db = fresh();
    expect((await run("import", path, "--db", db, "--create")).code).toBe(0);
    expect(await holdings(db)).toEqual([1, 1]);
  });

  it("a write that fails part-way: what was written is removed again, and the message says where and why", async () => {
    const db = fresh();
    (await openStore(db)).close();
    const sql = new Database(db);
    sql.exec(`CREATE TRIGGER fail_last BEFORE INSERT ON groups WHEN NEW.display_name_key = 'last' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`);
    sql.close();
    const users = Array.from({ length: 1200 }, (_, i) => u(`u${i}`, `user${i}`));
    const path = jsonl([...users, g("g1", "First", ["u1", "u2"]), g("g2", "Last", ["u3"])]);
    const r = await run("import", path, "--db", db);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`import failed at ${path} line 1202: disk on fire; the 1201 resources written before were removed again: nothing was imported`);
    expect(await holdings(db)).toEqual([0, 0]);
    const left = new Database(db);
    expect(left.query("SELECT count(*) AS n FROM group_members").get()).toEqual({ n: 0 });
    // The activity log keeps the attempt, every entry the import's: 1,201 creates, then their 1,201 deletes.
    expect(left.query("SELECT via, op, count(*) AS n FROM activity GROUP BY via, op ORDER BY op").all()).toEqual([
      { via: "import", op: "create", n: 1201 },
      { via: "import", op: "delete", n: 1201 },
    ]);
    left.close();
  });

  it("a JSON-lines export of one resource imports whatever the file is called; a file that cannot be read creates no database", async () => {
    const one = join(tmp.dir, "one-user.json");
    writeFileSync(one, JSON.stringify(u("only", "only-user")) + "\n");
    const db = fresh();
    expect((await run("import", one, "--db", db, "--create")).code).toBe(0);
    expect(await holdings(db)).toEqual([1, 0]);
    const never = fresh();
    expect((await run("import", join(tmp.dir, "nope.jsonl"), "--db", never, "--create")).code).toBe(1);
    expect(existsSync(never)).toBe(false);
  });

  it("text that is not UTF-8 is refused with the line it is on (never imported with U+FFFD in it); a byte order mark is fine", async () => {
    const lines = ["a", "b", "c"].map((n) => Buffer.from(JSON.stringify(u(n, `${n}-user`)) + "\n"));
    // Latin-1 "é" (0xE9) inside the third line's userName.
    const bad = Buffer.from(lines[2]!.toString().replace("c-user", "c-\u0001"));
    bad[bad.indexOf(1)] = 0xe9;
    const jsonl = join(tmp.dir, "latin1.jsonl");
    writeFileSync(jsonl, Buffer.concat([lines[0]!, lines[1]!, bad]));
    const db = fresh();
    const r = await run("import", jsonl, "--db", db, "--create");
    expect(r.code).toBe(1);
    expect(r.err).toContain("line 3: not UTF-8 text");
    expect(await holdings(db)).toEqual([0, 0]);
    const doc = join(tmp.dir, "latin1.json");
    writeFileSync(doc, Buffer.concat([Buffer.from('{"Users":['), bad.subarray(0, bad.length - 1), Buffer.from("]}")]));
    const r2 = await run("import", doc, "--db", fresh(), "--create");
    expect(r2.code).toBe(1);
    expect(r2.err).toContain("not UTF-8 text");
    const bom = join(tmp.dir, "bom.json");
    writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ Users: [u("bom", "bom-user")] }))]));
    const db3 = fresh();
    expect((await run("import", bom, "--db", db3, "--create")).code).toBe(0);
    expect(await holdings(db3)).toEqual([1, 0]);
  });

  it("--strict checks records as serve --strict checks a POST: a string boolean an IdP quirk accepts is refused", async () => {
    const f = join(tmp.dir, "quirky.json");
    writeFileSync(f, JSON.stringify({ Users: [{ ...u("q", "quirky-user"), active: "true" }] }));
    const strict = fresh();
    const r = await run("import", f, "--db", strict, "--create", "--strict");
    expect(r.code).toBe(1);
    expect(r.err).toContain("Users[0]");
    expect(await holdings(strict)).toEqual([0, 0]);
    const lenient = fresh();
    expect((await run("import", f, "--db", lenient, "--create")).code).toBe(0);
    expect(await holdings(lenient)).toEqual([1, 0]);
  });

  it("FILE missing is a usage error; an unreadable FILE one line", async () => {
    expect((await run("import")).code).toBe(2);
    const r = await run("import", join(tmp.dir, "nope.json"), "--db", fresh(), "--create");
    expect(r).toEqual({ code: 1, err: expect.stringContaining("no such file") });
  });
});
