/**
 * The SCIM API when the disk fails the store, through a real server on an ephemeral port over a real
 * SQLite file: a full database (PRAGMA max_page_count on the store's connection) answers 507 with a
 * SCIM body to a POST and a PATCH, stores nothing of either, and the same requests succeed once the
 * limit is raised; a deleted database file answers 503 with a SCIM body, never 201.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { rmSync } from "node:fs";
import { ERROR_SCHEMA } from "../../src/scim/errors";
import { groupBody, patchBody, startSqliteServer as startServer, userBody, type SqliteTestServer as TestServer } from "../helpers";

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

const pageCount = (s: TestServer) => (s.store.db.query("PRAGMA page_count").get() as { page_count: number }).page_count;

describe("SCIM writes on a full disk", () => {
  it("a POST and a PATCH of a group with members answer 507 with a SCIM body and store nothing; the same requests succeed once space is back", async () => {
    srv = await startServer();
    const s = srv;
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push((await s.req("POST", "/Users", userBody(`m${i}@example.com`))).body.id);
    const small = await s.req("POST", "/Groups", groupBody("small", ids.slice(0, 1)));
    expect(small.status).toBe(201);
    const pages = pageCount(s);
    s.store.db.exec(`PRAGMA max_page_count = ${pages}`);

    const body = groupBody("everyone", ids, { description: "x".repeat(5000) });
    const post = await s.req("POST", "/Groups", body);
    expect(post.status).toBe(507);
    expect(post.body).toEqual({ schemas: [ERROR_SCHEMA], status: "507", detail: expect.any(String) });
    expect(post.body.detail).toStartWith(`the disk holding the database ${s.dbPath} is full`);
    expect(post.body.detail).toContain("nothing was written");
    const patch = await s.req("PATCH", `/Groups/${small.body.id}`, patchBody({ op: "add", path: "members", value: ids.slice(1).map((value) => ({ value })) }));
    expect(patch.status).toBe(507);
    expect((await s.req("GET", `/Groups?filter=${encodeURIComponent('displayName eq "everyone"')}`)).body.totalResults).toBe(0);
    const kept = await s.req("GET", `/Groups/${small.body.id}`);
    expect(kept.body.members.length).toBe(1);
    expect(kept.body.meta.version).toBe(small.body.meta.version);
    // Reads and /readyz go on while the disk is full: the write lock can still be taken.
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);

    s.store.db.exec(`PRAGMA max_page_count = ${pages * 10}`);
    const again = await s.req("POST", "/Groups", body);
    expect(again.status).toBe(201);
    expect((await s.req("GET", `/Groups/${again.body.id}`)).body.members.length).toBe(200);
    expect((await s.req("PATCH", `/Groups/${small.body.id}`, patchBody({ op: "add", path: "members", value: ids.slice(1).map((value) => ({ value })) }))).status).toBe(204);
    expect((await s.req("GET", `/Groups/${small.body.id}`)).body.members.length).toBe(200);
  });
});

describe("SCIM writes after the database file was deleted", () => {
  it("a POST answers 503 with a SCIM body naming the file and saying to restart; /readyz says the same", async () => {
    srv = await startServer();
    const s = srv;
    expect((await s.req("POST", "/Users", userBody("before@example.com"))).status).toBe(201);
    for (const f of [s.dbPath, `${s.dbPath}-wal`, `${s.dbPath}-shm`]) rmSync(f, { force: true });
    const post = await s.req("POST", "/Users", userBody("after@example.com"));
    expect(post.status).toBe(503);
    expect(post.body.schemas).toEqual([ERROR_SCHEMA]);
    expect(post.body.detail).toStartWith(`nothing was written: the database file ${s.dbPath} was deleted`);
    expect(post.body.detail).toContain("restart scimd");
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { detail: string }).detail).toContain("was deleted");
  });
});
