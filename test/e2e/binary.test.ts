/**
 * End to end on the real compiled binary: built once with scripts/build.ts into an empty temp
 * folder, then run from that folder (no package.json, no .env, no bunfig.toml) as an operator would.
 * The tests in this file run in order and share the running server.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json";
import { GROUP, groupBody, LIST, patchBody, userBody } from "../helpers";
import { api, BASE_PATH, buildBinaryInto, cleanEnv, startServe, stopAll, type Served } from "./harness";

let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();

function run(args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([bin, ...args], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** Starts `scimd serve` from the binary's folder and waits until /healthz answers (or the process exits). */
const serve = (extra: string[] = []) => startServe(bin, tmp, extra, started);


beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-"));
  // The binary runs next to nothing but itself.
  bin = buildBinaryInto(tmp);
}, 60_000);

afterAll(() => stopAll(started, tmp));

describe("the scimd binary", () => {
  it("prints the package.json version with --version and exits 0", () => {
    const r = run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(pkg.version);
  });

  it("prints the usage with --help and exits 0", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("Usage: scimd <command>");
    for (const cmd of ["serve", "generate-token", "tokens"]) expect(r.out).toContain(cmd);
  });

  const usageErrors: [string, string[], RegExp, RegExp][] = [
    ["an unknown command", ["frobnicate"], /unknown command 'frobnicate'/, /Usage: scimd <command>/],
    ["an unknown option", ["serve", "--no-such-option"], /unknown option '--no-such-option'/, /Usage: scimd serve/],
    ["an invalid port", ["serve", "--port", "eighty"], /--port must be a whole number/, /Usage: scimd serve/],
  ];
  it.each(usageErrors)("refuses %s with exit code 2, a short error and the usage on stderr", (_t, args, error, usage) => {
    const r = run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(error);
    expect(r.err).toMatch(usage);
    expect(r.err.split("\n")[0]!.length).toBeLessThan(120);
    expect(r.out).toBe("");
  });
});

describe("first run, provisioning, tokens and restart", () => {
  let token = "";
  let server: Served;
  const dbPath = () => join(tmp, "data", "scimd.db");

  it("generate-token prints only the token on stdout and the SCIM API URL and a shown-once notice on stderr", () => {
    // The first command on a new machine: --create, as serve has not created the database yet.
    const r = run(["generate-token", "--name", "okta", "--create"]);
    expect(r.code).toBe(0);
    const lines = r.out.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    token = lines[0]!;
    expect(r.out).toBe(`${token}\n`);
    expect(token).toMatch(/^scimd_[A-Za-z0-9_-]{43,}$/);
    expect(r.err).toContain(BASE_PATH);
    expect(r.err).toMatch(/shown once/i);
    expect(r.err).not.toContain(token);
  });

  it("creates ./data/scimd.db readable by its owner only (mode 0600)", () => {
    expect(existsSync(dbPath())).toBe(true);
    expect(statSync(dbPath()).mode & 0o777).toBe(0o600);
  });

  it("stores no plaintext token: neither the token nor its secret part is in the database files", () => {
    const secret = token.slice("scimd_".length);
    for (const f of [dbPath(), `${dbPath()}-wal`]) {
      if (!existsSync(f)) continue;
      const bytes = readFileSync(f).toString("latin1");
      expect(bytes.includes(token)).toBe(false);
      expect(bytes.includes(secret)).toBe(false);
    }
  });

  it("serve answers /healthz and logs the SCIM API URL", async () => {
    server = await serve();
    expect((server as { exited?: number }).exited).toBeUndefined();
    const r = await fetch(`${server.url}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: "ok", version: pkg.version });
    await server.waitForLog(/"event":"listening"/);
    expect(server.records().find((r) => r.event === "listening")?.apiUrl).toBe(server.base);
    expect(server.log()).not.toMatch(/no API token exists/);
  });

  it("serve refuses a request without a token or with a wrong one with 401 (RFC 7644 §2)", async () => {
    const none = await fetch(`${server.base}/Users`);
    expect(none.status).toBe(401);
    const wrong = await api(server, "scimd_wrong", "GET", "/Users");
    expect(wrong.status).toBe(401);
  });

  it("serve accepts the generated token", async () => {
    const r = await api(server, token, "GET", "/Users");
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.totalResults).toBe(0);
  });

  it("a token generated while serve runs is accepted at once", async () => {
    const r = run(["generate-token", "--name", "entra"]);
    expect(r.code).toBe(0);
    const second = r.out.trim();
    expect(second).not.toBe(token);
    expect((await api(server, second, "GET", "/Groups")).status).toBe(200);
  });

  let aliceId = "";
  let bobId = "";
  let groupId = "";

  it("provisions Users over HTTP: create 201, filter, PATCH, PUT (RFC 7644 §3.3, §3.4.2, §3.5)", async () => {
    const alice = await api(server, token, "POST", "/Users", userBody("alice@example.com", { externalId: "ext-alice" }));
    expect(alice.status).toBe(201);
    aliceId = alice.body.id;
    expect(alice.headers.get("location")).toBe(`${server.base}/Users/${aliceId}`);
    expect(alice.body.meta.version).toBe(alice.headers.get("etag"));
    const bob = await api(server, token, "POST", "/Users", userBody("bob@example.com"));
    expect(bob.status).toBe(201);
    bobId = bob.body.id;

    const dup = await api(server, token, "POST", "/Users", userBody("ALICE@example.com"));
    expect(dup.status).toBe(409);
    expect(dup.body.scimType).toBe("uniqueness");

    const found = await api(server, token, "GET", `/Users?filter=${encodeURIComponent('userName eq "Alice@Example.com"')}`);
    expect(found.status).toBe(200);
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].id).toBe(aliceId);

    const patched = await api(server, token, "PATCH", `/Users/${aliceId}`, patchBody({ op: "replace", path: "active", value: false }, { op: "add", path: "title", value: "Engineer" }));
    expect(patched.status).toBe(200);
    expect(patched.body.active).toBe(false);
    expect(patched.body.title).toBe("Engineer");

    const put = await api(server, token, "PUT", `/Users/${bobId}`, userBody("bob@example.com", { displayName: "Robert" }));
    expect(put.status).toBe(200);
    expect(put.body.displayName).toBe("Robert");
    const got = await api(server, token, "GET", `/Users/${bobId}`);
    expect(got.body.displayName).toBe("Robert");
  });

  it("provisions a Group with members and PATCHes its membership (RFC 7644 §3.5.2)", async () => {
    const g = await api(server, token, "POST", "/Groups", groupBody("Engineering", [aliceId]));
    expect(g.status).toBe(201);
    groupId = g.body.id;
    expect(g.body.schemas).toContain(GROUP);
    expect(g.body.members.map((m: { value: string }) => m.value)).toEqual([aliceId]);

    const add = await api(server, token, "PATCH", `/Groups/${groupId}`, patchBody({ op: "add", path: "members", value: [{ value: bobId }] }));
    expect(add.status).toBe(204);
    const got = await api(server, token, "GET", `/Groups/${groupId}`);
    expect(got.body.members.map((m: { value: string }) => m.value).sort()).toEqual([aliceId, bobId].sort());

    const user = await api(server, token, "GET", `/Users/${aliceId}`);
    expect(user.body.groups.map((x: { value: string }) => x.value)).toEqual([groupId]);

    const remove = await api(server, token, "PATCH", `/Groups/${groupId}`, patchBody({ op: "remove", path: `members[value eq "${aliceId}"]` }));
    expect(remove.status).toBe(204);
    const after = await api(server, token, "GET", `/Groups/${groupId}`);
    expect(after.body.members.map((m: { value: string }) => m.value)).toEqual([bobId]);
  });

  it("reads queries as the source does: endpoint names in any case, repeated attributes, unquoted values, the root query", async () => {
    const list = await api(server, token, "GET", "/users?attributes=userName&attributes=emails");
    expect(list.status).toBe(200);
    expect(list.body.Resources.map((u: { id: string }) => u.id).sort()).toEqual([aliceId, bobId].sort());
    expect(Object.keys(list.body.Resources[0]).sort()).toEqual(["emails", "id", "schemas", "userName"]);
    expect((await api(server, token, "GET", `/users/${aliceId}`)).body.id).toBe(aliceId);
    expect((await api(server, token, "GET", `/users/${aliceId.toUpperCase()}`)).status).toBe(404);
    const search = await api(server, token, "POST", "/USERS/.search", { filter: "userName sw alice", attributes: ['emails[type eq "work"].value'] });
    expect(search.status).toBe(200);
    expect(search.body.Resources).toEqual([{ schemas: expect.any(Array), id: aliceId, emails: [{ value: "alice@example.com" }] }]);
    const root = await api(server, token, "GET", `?filter=${encodeURIComponent('displayName eq "Engineering"')}`);
    expect(root.body.Resources.map((r: { id: string }) => r.id)).toEqual([groupId]);
    const bad = await api(server, token, "GET", `/Users?filter=${encodeURIComponent('userName eqq "x"')}`);
    expect([bad.status, bad.body.detail]).toEqual([400, "unknown operator 'eqq' at position 10: expected eq, ne, co, sw, ew, gt, ge, lt, le or pr after 'userName'"]);
  });

  it("deletes a User with 204, after which it is 404 and gone from its groups (RFC 7644 §3.6)", async () => {
    const del = await api(server, token, "DELETE", `/Users/${bobId}`);
    expect(del.status).toBe(204);
    expect((await api(server, token, "GET", `/Users/${bobId}`)).status).toBe(404);
    const g = await api(server, token, "GET", `/Groups/${groupId}`);
    expect(g.body.members ?? []).toEqual([]);
  });

  it("tokens list shows the token names and never a secret", () => {
    const r = run(["tokens", "list"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("okta");
    expect(r.out).toContain("entra");
    expect(r.out).not.toContain(token);
    expect(r.out).not.toContain(token.slice("scimd_".length, 20));
    expect(r.out).not.toMatch(/scimd_[A-Za-z0-9_-]{20,}/);
  });

  it("tokens revoke okta makes the next request with that token 401 while serve keeps running", async () => {
    const r = run(["tokens", "revoke", "okta"]);
    expect(r.code).toBe(0);
    expect((await api(server, token, "GET", "/Users")).status).toBe(401);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(run(["tokens", "list"]).out).not.toContain("okta");
  });

  it("SIGTERM makes serve exit with code 0 within a few seconds", async () => {
    const code = await server.stop(5000);
    expect(code).toBe(0);
    await server.waitForLog(/stopped/, 1000);
    expect(server.log()).toMatch(/SIGTERM/);
  });

  it("a restarted serve on the same database still has the data and the remaining token", async () => {
    const fresh = run(["generate-token", "--name", "after-restart"]).out.trim();
    server = await serve();
    const users = await api(server, fresh, "GET", "/Users");
    expect(users.status).toBe(200);
    expect(users.body.Resources.map((u: { id: string }) => u.id)).toEqual([aliceId]);
    expect(users.body.Resources[0].title).toBe("Engineer");
    const g = await api(server, fresh, "GET", `/Groups/${groupId}`);
    expect(g.status).toBe(200);
    expect(g.body.displayName).toBe("Engineering");
    expect(await server.stop(5000)).toBe(0);
  });
});

describe("serve with an empty or foreign database", () => {
  it("logs how to create a token when no token exists", async () => {
    const s = await serve(["--db", "./empty/scimd.db"]);
    try {
      await s.waitForLog(/generate-token/);
      expect(s.log()).toMatch(/no API token exists/);
      expect(s.log()).toContain(`${bin} generate-token --name okta --db ${join(tmp, "empty", "scimd.db")}`);
    } finally {
      expect(await s.stop(5000)).toBe(0);
    }
  });

  const foreign: [string, (path: string) => void, RegExp][] = [
    ["a file of junk bytes", (p) => writeFileSync(p, Buffer.from("not a database at all\n\x00\xff\x10".repeat(200), "latin1")), /cannot open|not a scimd|database/i],
    [
      "an SQLite database of another application",
      (p) => {
        const db = new Database(p, { create: true });
        db.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices (total) VALUES (12.5)");
        db.close();
      },
      /did not create|not a scimd|refus/i,
    ],
  ];
  it.each(foreign)("refuses to start on %s with a non-zero exit code and a clear message, leaving the file byte-identical", async (_t, make, message) => {
    const path = join(tmp, `foreign-${crypto.randomUUID()}.db`);
    make(path);
    const before = readFileSync(path);
    const s = await serve(["--db", path]);
    const exited = (s as { exited?: number }).exited;
    if (exited === undefined) await s.stop(2000);
    expect(exited).toBeDefined();
    expect(exited).not.toBe(0);
    expect(s.log()).toMatch(message);
    expect(Buffer.compare(readFileSync(path), before)).toBe(0);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });
});
