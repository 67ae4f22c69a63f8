/**
 * Test harness: a real store opened through openStore as `serve` opens it, and a real server on an
 * ephemeral port on 127.0.0.1. No mocks of the store.
 *
 * The store is a SQLite file in a temp folder, or with SCIMD_TEST_STORE=postgres (the second run of
 * `npm test`, scripts/test.ts) a fresh database in one throwaway PostgreSQL cluster shared by the
 * whole test process (test/store/postgres/cluster.ts), so the HTTP tests run against both engines.
 * Tests that look into the store's tables do it through `sql`/`count`, which speak to either engine.
 */
import { expect, it } from "bun:test";
import { SQL } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp, SCIM_BASE_PATH, type AppOptions } from "../src/app";
import { UsageError } from "../src/config";
import { createLogger, type Logger, type LogLevel } from "../src/log";
import { ERROR_SCHEMA as ERROR, ScimError } from "../src/scim/errors";
import { GROUP_SCHEMA as GROUP, PATCH_OP_SCHEMA as PATCH_OP, USER_SCHEMA as USER } from "../src/scim/schema";
import { openStore } from "../src/store/open";
import { SqliteStore } from "../src/store/sqlite/sqlite-store";
import type { Member, ResourceStore, Store } from "../src/store/store";
import { hashToken, newToken } from "../src/tokens";
import { sharedCluster } from "./store/postgres/shared-cluster";

export {
  USER_SCHEMA as USER,
  GROUP_SCHEMA as GROUP,
  ENTERPRISE_USER_SCHEMA as ENTERPRISE,
  PATCH_OP_SCHEMA as PATCH_OP,
  LIST_RESPONSE_SCHEMA as LIST,
} from "../src/scim/schema";
export { ERROR_SCHEMA as ERROR } from "../src/scim/errors";

/** One log line as the Logger wrote it, parsed. */
export type LogRecord = { level: string; time: string; event: string } & Record<string, unknown>;

/** A Logger at `level` that keeps every line: as written (`lines`) and parsed (`records`). */
export function memoryLogger(level: LogLevel = "debug"): { logger: Logger; lines: string[]; records: LogRecord[] } {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const logger = createLogger({
    level,
    format: "json",
    write: (line) => {
      lines.push(line);
      records.push(JSON.parse(line));
    },
  });
  return { logger, lines, records };
}

export function tempDir(prefix = "scimd-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The engine the tests' stores are opened on: SCIMD_TEST_STORE=postgres, else SQLite. */
export const TEST_STORE: "sqlite" | "postgres" = process.env.SCIMD_TEST_STORE === "postgres" ? "postgres" : "sqlite";
export const onPostgres = TEST_STORE === "postgres";

/**
 * `it` for a test that reads what only SQLite has (its file, WAL, a second process holding its write
 * lock): skipped on the PostgreSQL run, with `why` (the SQLite-only part) in the test's name.
 */
export function itSqlite(why: string): typeof it {
  const named = ((name: string, ...rest: unknown[]) => (it.skipIf(onPostgres) as any)(onPostgres ? `${name} [SQLite only: ${why}]` : name, ...rest)) as typeof it;
  return named;
}

/** The databases made in the process's shared cluster (shared-cluster.ts, stopped by test/preload.ts), for their names. */
let databases = 0;

/** A fresh, empty store of the test engine, opened through openStore as `serve` opens it. */
export interface TestDb {
  store: Store;
  /** What `--db` would name: the SQLite file, or the PostgreSQL URL. */
  location: string;
  /** The SQLite store itself (undefined on PostgreSQL), for what only it has. */
  sqlite?: SqliteStore;
  /** Runs raw SQL on the store's database (both engines have the same tables); returns its rows. */
  sql(query: string): Promise<Record<string, unknown>[]>;
  /** How many rows `table` holds. */
  count(table: string): Promise<number>;
  /** Closes the store (if not yet) and removes its file or database. */
  cleanup(): Promise<void>;
}

export async function openTestStore(engine: "sqlite" | "postgres" = TEST_STORE): Promise<TestDb> {
  if (engine === "postgres") {
    const { cluster: c, admin } = await sharedCluster();
    const name = `scimd_http_${process.pid}_${++databases}`;
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const location = c.url(name);
    const store = await openStore(location);
    let raw: SQL | undefined;
    const sql = async (query: string) => [...(await (raw ??= new SQL(location, { max: 1 })).unsafe(query))] as Record<string, unknown>[];
    return {
      store,
      location,
      sql,
      count: async (table) => Number((await sql(`SELECT count(*) AS n FROM ${table}`))[0]!.n),
      cleanup: async () => {
        await raw?.close();
        await store.close();
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      },
    };
  }
  const { dir, cleanup } = tempDir();
  const location = join(dir, "scimd.db");
  const store = await openSqliteStore(location);
  const sql = async (query: string) => store.db.query(query).all() as Record<string, unknown>[];
  return {
    store,
    location,
    sqlite: store,
    sql,
    count: async (table) => Number((await sql(`SELECT count(*) AS n FROM ${table}`))[0]!.n),
    cleanup: async () => {
      await store.close();
      cleanup();
    },
  };
}

export interface TestServer {
  url: string;
  /** `${url}/api/v1/scim` */
  base: string;
  token: string;
  /** The store (SQLite or PostgreSQL: TEST_STORE), so that a test can also write to it directly. */
  store: Store;
  /** What `--db` names for this store: a SQLite file or a PostgreSQL URL. */
  db: string;
  /** The SQLite store (undefined on PostgreSQL). */
  sqlite?: SqliteStore;
  /** Raw SQL on the store's database, and a table's row count (either engine). */
  sql: TestDb["sql"];
  count: TestDb["count"];
  /** Every line the app logged (parsed; no request lines: the edge writes those, tested in request-log.test.ts and e2e/logs.test.ts). */
  logs: LogRecord[];
  /** The same lines as written. */
  logLines: string[];
  /** fetch relative to the SCIM base with the bearer token and a JSON body. */
  req: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<TestResponse>;
  close: () => Promise<void>;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is empty. */
  body: any;
}

/** Reads a response: status, headers, text, and the JSON body when there is one. */
export async function readResponse(res: Response): Promise<TestResponse> {
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** A server on a store of the test engine (TEST_STORE). */
export function startServer(opts: Partial<Omit<AppOptions, "store">> = {}): Promise<TestServer> {
  return serveTestStore(opts, TEST_STORE);
}

/** A server on a SQLite file whatever TEST_STORE says, for tests of what only SQLite has (backup, export). */
export type SqliteTestServer = TestServer & { store: SqliteStore; dbPath: string };
export async function startSqliteServer(opts: Partial<Omit<AppOptions, "store">> = {}): Promise<SqliteTestServer> {
  const s = await serveTestStore(opts, "sqlite");
  return { ...s, store: s.sqlite!, dbPath: s.db };
}

async function serveTestStore(opts: Partial<Omit<AppOptions, "store">>, engine: "sqlite" | "postgres"): Promise<TestServer> {
  const t = await openTestStore(engine);
  const store = t.store;
  const token = newToken();
  await store.createToken("test", hashToken(token));
  const { logger, lines, records } = memoryLogger("info");
  let server: ReturnType<typeof Bun.serve> | undefined;
  // app.listen (Bun's router in front of Elysia's), without the edge: its request lines are tested in request-log.test.ts.
  const app = createApp({ store, logger, addressOf: (r) => server?.requestIP(r)?.address ?? "unknown", ...opts });
  app.listen({ port: 0, hostname: "127.0.0.1" });
  server = app.server!;
  const url = `http://127.0.0.1:${server.port}`;
  const base = `${url}${SCIM_BASE_PATH}`;
  const req = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<TestResponse> => {
    const h: Record<string, string> = { Authorization: `Bearer ${token}`, ...headers };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["Content-Type"] = "application/scim+json";
    }
    return readResponse(await fetch(path.startsWith("http") ? path : `${base}${path}`, { method, headers: h, body: payload }));
  };
  return {
    url,
    base,
    token,
    store,
    db: t.location,
    sqlite: t.sqlite,
    sql: t.sql,
    count: t.count,
    logs: records,
    logLines: lines,
    req,
    close: async () => {
      await server!.stop(true);
      await t.cleanup();
    },
  };
}

/** Opens the SQLite database at `path` through openStore (as `serve` does), keeping its engine's type for tests that read its tables. */
export async function openSqliteStore(path: string): Promise<SqliteStore> {
  const store = await openStore(path);
  if (!(store instanceof SqliteStore)) throw new Error(`openStore(${path}) did not open a SQLite store`);
  return store;
}

/** A valid User body with the product's required attributes. */
export function userBody(userName: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemas: [USER],
    userName,
    displayName: userName.split("@")[0],
    emails: [{ value: userName.includes("@") ? userName : `${userName}@example.com`, type: "work", primary: true }],
    ...extra,
  };
}

export function groupBody(displayName: string, members: string[] = [], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemas: [GROUP], displayName, ...(members.length ? { members: members.map((value) => ({ value })) } : {}), ...extra };
}

export function patchBody(...Operations: Record<string, unknown>[]): Record<string, unknown> {
  return { schemas: [PATCH_OP], Operations };
}

/** Runs fn and returns the ScimError it throws; fails the test if it throws nothing or something else. */
export function scimError(fn: () => unknown): ScimError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ScimError);
    return e as ScimError;
  }
  throw new Error("expected a ScimError, but nothing was thrown");
}

/** Asserts an HTTP response is a SCIM Error (RFC 7644 §3.12) with this status and scimType. */
/** Runs `f` and returns the ScimError it threw; fails the test when it throws nothing or something else. */
export async function scimErrorOf(f: () => Promise<unknown>): Promise<ScimError> {
  let caught: unknown;
  try {
    await f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ScimError);
  return caught as ScimError;
}

export function expectScimError(r: { status: number; body: any; headers: Headers }, status: number, scimType?: string): void {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toStartWith("application/scim+json");
  expect(r.body.schemas).toEqual([ERROR]);
  expect(r.body.status).toBe(String(status));
  expect(typeof r.body.detail).toBe("string");
  if (scimType) expect(r.body.scimType).toBe(scimType);
}

/**
 * Sends `send` and asserts it is a 400 whose scimType is one of `scimTypes` and whose detail names
 * `named`, and that the resource at `path` is byte-identical afterwards, ETag included (nothing of
 * the request was applied).
 */
export async function expectRefusedUnchanged(
  s: Pick<TestServer, "req">,
  path: string,
  send: () => Promise<TestResponse>,
  scimTypes: string[],
  named: string,
): Promise<void> {
  const before = await s.req("GET", path);
  expect(before.status).toBe(200);
  const r = await send();
  expectScimError(r, 400);
  expect(scimTypes).toContain(r.body.scimType);
  expect(r.body.detail).toContain(named);
  const after = await s.req("GET", path);
  expect(after.text).toBe(before.text);
  expect(after.headers.get("etag")).toBe(before.headers.get("etag"));
}

/**
 * Writes `text` (a whole request, as bytes on the wire) over a plain socket to 127.0.0.1:`port`, for
 * requests fetch cannot send, and reads until the server closes; returns the status, the header
 * block, Content-Type and body.
 */
export async function rawExchange(port: number, text: string, opts: { halfClose?: boolean } = {}): Promise<{ status: number; headers: string; type: string; body: string }> {
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    // halfClose (the default) ends the client's side once the request is written. Bun drops the
    // answer to a request whose client has half-closed if it is not ready yet (a store query on
    // PostgreSQL is real I/O): a request whose answer needs the store passes halfClose: false, and
    // must make the server close (HTTP/1.0, or Connection: close).
    const socket = connect(port, "127.0.0.1", () => (opts.halfClose === false ? socket.write(text) : socket.end(text)));
    socket.on("data", (d) => chunks.push(Buffer.from(d)));
    socket.on("end", resolve);
    socket.on("error", reject);
  });
  const all = Buffer.concat(chunks).toString("utf8");
  const split = all.indexOf("\r\n\r\n");
  const headers = all.slice(0, split);
  const type = /^content-type:\s*(.*)$/im.exec(headers)?.[1]?.trim() ?? "";
  return { status: Number(all.split(" ")[1]), headers, type, body: all.slice(split + 4) };
}

/** `head` (a request line and headers, no Host unless it has one) sent by rawExchange, with the blank line that ends it. */
export function rawRequest(port: number, head: string, opts: { halfClose?: boolean } = {}): Promise<{ status: number; headers: string; type: string; body: string }> {
  return rawExchange(port, head + "\r\n", opts);
}

/** The UsageError `f` throws (the test fails when it throws none, or another error). */
export function usageErrorOf(f: () => unknown): UsageError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(UsageError);
  return caught as UsageError;
}

/** Every direct member of a group, read page by page through the store's `memberPage`. */
export async function allMembers(store: Pick<ResourceStore, "memberPage">, groupId: string, pageSize = 1000): Promise<Member[]> {
  const out: Member[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.memberPage(groupId, cursor, pageSize);
    out.push(...page.members);
    cursor = page.next;
  } while (cursor);
  return out;
}
