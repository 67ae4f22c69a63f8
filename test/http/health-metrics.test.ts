/**
 * /healthz, /readyz and the metrics of a real server: the app behind the edge handler (as serve runs
 * it) on a port of 127.0.0.1, a real SQLite file, and for readiness a second process that holds the
 * database's write lock. The metrics are scraped (render) and every line parsed.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createApp, SCIM_BASE_PATH } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import { listen, type Listener } from "../../src/http/listener";
import { createMetrics, UNMATCHED_ROUTE, type Metrics } from "../../src/http/metrics";
import { edgeHandler, infoOf, type RequestInfo } from "../../src/http/observe";
import type { Store } from "../../src/store/store";
import { hashToken, newToken } from "../../src/tokens";
import { VERSION } from "../../src/version";
import { ERROR, groupBody, itSqlite, openTestStore, patchBody, readResponse, userBody, type TestDb, type TestResponse } from "../helpers";
import { holdWriteLock } from "../lock-holder";
import { parseScrape } from "../prometheus";

const READY_TIMEOUT_MS = 400;
let db: TestDb;
const started = new Set<Bun.Subprocess>();
let store: Store;
let metrics: Metrics;
let server: Listener;
let url = "";
const token = newToken();

beforeAll(async () => {
  db = await openTestStore();
  store = db.store;
  await store.createToken("test", hashToken(token));
  const app = createApp({ store, logger: SILENT_LOGGER, addressOf: (r) => infoOf(r)?.client ?? "unknown", readyTimeoutMs: READY_TIMEOUT_MS });
  metrics = createMetrics({ store, version: VERSION });
  const fetch = edgeHandler((r) => app.handle(r), { clientAddress: (r, s) => s?.requestIP(r)?.address ?? "unknown", onFinish: (info) => metrics.observe(info) });
  server = listen({ host: "127.0.0.1", port: 0, fetch, maxRequestBodySize: 4 << 20 });
  url = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  for (const p of started) p.kill("SIGKILL");
  await server.stop();
  metrics.stop();
  await db.cleanup();
});

const get = async (path: string, headers: Record<string, string> = {}) => readResponse(await fetch(`${url}${path}`, { headers }));
const api = async (method: string, path: string, body?: unknown): Promise<TestResponse> =>
  readResponse(
    await fetch(`${url}${SCIM_BASE_PATH}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
const scrape = async () => parseScrape((await metrics.render()).text);

describe("/healthz and /readyz", () => {
  it("GET /healthz answers 200 {status, version} without a token, not to be cached", async () => {
    const r = await get("/healthz");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: "ok", version: VERSION });
    expect(r.headers.get("content-type")).toStartWith("application/json");
    expect(r.headers.get("cache-control")).toBe("no-store");
  });

  it("GET /readyz answers 200 without a token while the database answers", async () => {
    const r = await get("/readyz");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: "ok" });
    expect(r.headers.get("cache-control")).toBe("no-store");
  });

  itSqlite("another process holds SQLite's write lock")("GET /readyz answers 503 with the reason while another process holds the write lock, other requests are answered meanwhile, and 200 after it lets go", async () => {
    // The token's last use is recorded now: a read with it below then writes nothing (a write would wait for the lock).
    expect((await api("GET", "/Users?count=1")).status).toBe(200);
    const holder = await holdWriteLock(db.location, started);
    let released = false;
    try {
      const t0 = performance.now();
      const ready = get("/readyz").then((r) => ({ r, ms: performance.now() - t0 }));
      // Sent while /readyz waits for the lock: each is answered long before it gives up.
      const others = await Promise.all(
        Array.from({ length: 5 }, (_, i) => (i % 2 ? get("/healthz") : api("GET", "/Users?count=1")).then((r) => ({ status: r.status, ms: performance.now() - t0 }))),
      );
      const { r, ms } = await ready;
      expect(r.status).toBe(503);
      expect(r.body.schemas).toEqual([ERROR]);
      expect(r.body.status).toBe("503");
      expect(r.body.detail).toMatch(/^not ready: the database's write lock could not be taken within 400 ms/);
      expect(r.headers.get("retry-after")).toBe("5");
      expect(ms).toBeGreaterThanOrEqual(READY_TIMEOUT_MS - 10);
      for (const o of others) {
        expect(o.status).toBe(200);
        expect(o.ms).toBeLessThan(ms - 150);
      }
      await holder.release();
      released = true;
      const after = await get("/readyz");
      expect(after.status).toBe(200);
    } finally {
      if (!released) await holder.release();
    }
  });

  it("/metrics is not served on the API's port, with or without a token", async () => {
    expect((await get("/metrics")).status).toBe(404);
    const r = await get("/metrics", { Authorization: `Bearer ${token}` });
    expect(r.status).toBe(404);
    expect(r.text).not.toContain("scimd_");
  });
});

describe("metrics", () => {
  it("every line of a scrape parses, and the families are those promised, with process memory", async () => {
    const s = await scrape();
    expect(s.series.length).toBeGreaterThan(30);
    const names = s.families.map((f) => f.name);
    for (const name of [
      "scimd_http_requests_total",
      "scimd_http_request_duration_seconds",
      "scimd_users",
      "scimd_groups",
      "scimd_memberships",
      "scimd_auth_failures_total",
      "scimd_commit_batch_size",
      "scimd_commit_seconds",
      "scimd_database_bytes",
      "scimd_wal_bytes",
      "scimd_build_info",
      "process_resident_memory_bytes",
      "process_cpu_seconds_total",
      "nodejs_heap_size_used_bytes",
      "scimd_js_heap_bytes",
      "scimd_js_heap_capacity_bytes",
    ])
      expect(names).toContain(name);
    // process_heap_bytes (VmData: reserved address space under Bun) and nodejs_heap_size_total_bytes mislead.
    for (const gone of ["nodejs_heap_space_size_used_bytes", "nodejs_active_handles_total", "nodejs_version_info", "nodejs_gc_duration_seconds", "process_heap_bytes", "nodejs_heap_size_total_bytes"])
      expect(names).not.toContain(gone);
    expect(s.value("scimd_js_heap_bytes")).toBeGreaterThan(100_000);
    expect(s.value("nodejs_heap_size_used_bytes")).toBeGreaterThan(100_000);
    expect(s.value("nodejs_external_memory_bytes")).toBeGreaterThan(0);
    expect(s.value("process_virtual_memory_bytes")).toBeGreaterThan(s.value("process_resident_memory_bytes")!);
    expect(s.value("scimd_js_heap_capacity_bytes")).toBeGreaterThanOrEqual(s.value("scimd_js_heap_bytes")!);
    expect(s.value("process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
    expect(s.value("scimd_build_info", { version: VERSION, bun: Bun.version })).toBe(1);
    if (db.sqlite) expect(s.value("scimd_database_bytes")).toBe(Bun.file(db.location).size);
    else expect(s.value("scimd_database_bytes")).toBeGreaterThan(0); // pg_database_size, as of the last /readyz
    for (const reason of ["missing header", "no such token", "revoked", "expired", "rate limited", "insufficient scope"]) expect(s.value("scimd_auth_failures_total", { reason })).toBeDefined();
  });

  it("counters and gauges move with the requests: by route template (never the path), method and status; counts, commits and latency", async () => {
    const before = await scrape();
    const delta = (after: typeof before, name: string, labels: Record<string, string>) => (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);
    const users = before.value("scimd_users")!;
    const a = await api("POST", "/Users", userBody("metrics-a@example.com"));
    const b = await api("POST", "/Users", userBody("metrics-b@example.com"));
    expect([a.status, b.status]).toEqual([201, 201]);
    const g = await api("POST", "/Groups", groupBody("Metrics", [a.body.id]));
    expect(g.status).toBe(201);
    expect((await api("PATCH", `/Groups/${g.body.id}`, patchBody({ op: "add", path: "members", value: [{ value: b.body.id }] }))).status).toBe(204);
    expect((await api("GET", `/Users/${a.body.id}`)).status).toBe(200);
    expect((await api("GET", `/Users/${b.body.id}`)).status).toBe(200);
    const missing = crypto.randomUUID();
    expect((await api("GET", `/Users/${missing}`)).status).toBe(404);
    expect((await get(`${SCIM_BASE_PATH}/Users`)).status).toBe(401);
    expect((await get("/no-such-page-" + missing)).status).toBe(404);
    // Written in another case, answered by the route it names: labelled by that route.
    expect((await api("GET", `/users/${a.body.id}`)).status).toBe(200);

    const after = await scrape();
    const users_ = `${SCIM_BASE_PATH}/Users`;
    const byId = `${SCIM_BASE_PATH}/Users/:id`;
    expect(delta(after, "scimd_http_requests_total", { route: users_, method: "POST", status: "201" })).toBe(2);
    expect(delta(after, "scimd_http_requests_total", { route: `${SCIM_BASE_PATH}/Groups`, method: "POST", status: "201" })).toBe(1);
    expect(delta(after, "scimd_http_requests_total", { route: `${SCIM_BASE_PATH}/Groups/:id`, method: "PATCH", status: "204" })).toBe(1);
    expect(delta(after, "scimd_http_requests_total", { route: byId, method: "GET", status: "200" })).toBe(3);
    expect(delta(after, "scimd_http_requests_total", { route: byId, method: "GET", status: "404" })).toBe(1);
    expect(delta(after, "scimd_http_requests_total", { route: users_, method: "GET", status: "401" })).toBe(1);
    expect(delta(after, "scimd_http_requests_total", { route: UNMATCHED_ROUTE, method: "GET", status: "404" })).toBe(1);
    const latency = (s: typeof before) => s.histogram("scimd_http_request_duration_seconds", { route: byId, method: "GET" })?.count ?? 0;
    expect(latency(after) - latency(before)).toBe(4);
    // Bounded labels: no id and no raw path in any series.
    const { text } = await metrics.render();
    for (const id of [a.body.id, b.body.id, g.body.id, missing]) expect(text).not.toContain(id);
    expect(text).not.toContain("/users/");
    expect(text).not.toContain("no-such-page");

    expect(after.value("scimd_users")).toBe(users + 2);
    expect(after.value("scimd_groups")).toBe(before.value("scimd_groups")! + 1);
    expect(after.value("scimd_memberships")).toBe(before.value("scimd_memberships")! + 2);
    const commits = (s: typeof before) => s.histogram("scimd_commit_batch_size")!;
    const writes = commits(after).sum - commits(before).sum;
    // Two creates of Users, one of a Group, the PATCH; perhaps the token's last use too.
    expect(writes).toBeGreaterThanOrEqual(4);
    expect(writes).toBeLessThanOrEqual(5);
    expect(after.histogram("scimd_commit_seconds")!.count - before.histogram("scimd_commit_seconds")!.count).toBe(commits(after).count - commits(before).count);
    expect(after.value("scimd_database_bytes")).toBeGreaterThan(0);

    // A User deleted leaves the group: both gauges follow.
    expect((await api("DELETE", `/Users/${a.body.id}`)).status).toBe(204);
    const gone = await scrape();
    expect(gone.value("scimd_users")).toBe(users + 1);
    expect(gone.value("scimd_memberships")).toBe(before.value("scimd_memberships")! + 1);
  });

  it("counts each refused request by its reason: a revoked token, a rotated-out one past its grace, one never created", async () => {
    const revoked = newToken();
    const expired = newToken();
    await store.createToken("revoked", hashToken(revoked));
    await store.createToken("expired", hashToken(expired));
    await store.rotateToken("expired", hashToken(newToken()), 0);
    expect(await store.revokeToken("revoked")).toBe(1);
    const failures = (s: Awaited<ReturnType<typeof scrape>>, reason: string) => s.value("scimd_auth_failures_total", { reason }) ?? 0;
    const before = await scrape();
    const as = async (secret: string) => (await get(`${SCIM_BASE_PATH}/Users`, { Authorization: `Bearer ${secret}` })).status;
    expect(await as(revoked)).toBe(401);
    expect(await as(revoked)).toBe(401);
    expect(await as(expired)).toBe(401);
    expect(await as(newToken())).toBe(401);
    const after = await scrape();
    expect(failures(after, "revoked") - failures(before, "revoked")).toBe(2);
    expect(failures(after, "expired") - failures(before, "expired")).toBe(1);
    expect(failures(after, "no such token") - failures(before, "no such token")).toBe(1);
  });

  it("counts a 403 to a valid read token's write under its own reason, insufficient scope", async () => {
    const reader = newToken();
    await store.createToken("metrics-reader", hashToken(reader), { scope: "read" });
    const before = await scrape();
    const r = await fetch(`${url}${SCIM_BASE_PATH}/Users`, {
      method: "POST",
      headers: { Authorization: `Bearer ${reader}`, "Content-Type": "application/scim+json" },
      body: JSON.stringify(userBody("metrics-reader@example.com")),
    });
    expect(r.status).toBe(403);
    // It announced a body that was never read: the connection ends after the answer.
    expect(r.headers.get("connection")).toBe("close");
    const after = await scrape();
    const delta = (reason: string) => (after.value("scimd_auth_failures_total", { reason }) ?? 0) - (before.value("scimd_auth_failures_total", { reason }) ?? 0);
    expect(delta("insufficient scope")).toBe(1);
    expect(delta("no such token")).toBe(0);
  });

  it("observe counts a method outside HTTP's usual ones as `other`", async () => {
    const before = await scrape();
    const info: RequestInfo = { id: "x", start: 0, method: "BREW", path: "/api/v1/scim/Users", client: "127.0.0.1", route: "/api/v1/scim/Users", authFailure: "no such token", status: 401, durationMs: 2 };
    metrics.observe(info);
    const after = await scrape();
    expect((after.value("scimd_auth_failures_total", { reason: "no such token" }) ?? 0) - (before.value("scimd_auth_failures_total", { reason: "no such token" }) ?? 0)).toBe(1);
    expect(after.value("scimd_http_requests_total", { route: "/api/v1/scim/Users", method: "other", status: "401" })).toBeGreaterThanOrEqual(1);
    expect((await metrics.render()).text).not.toContain("BREW");
  });
});

describe("probes in the request record (the request line's and the metrics' source)", () => {
  it("a /healthz or /readyz answer has its byte count, and a 405 on a known path is labelled by its route template, not unmatched", async () => {
    const infos: RequestInfo[] = [];
    const app = createApp({ store, logger: SILENT_LOGGER, addressOf: (r) => infoOf(r)?.client ?? "unknown", readyTimeoutMs: READY_TIMEOUT_MS });
    const own = createMetrics({ store, version: VERSION });
    const fetchEdge = edgeHandler((r) => app.handle(r), {
      clientAddress: (r, s) => s?.requestIP(r)?.address ?? "unknown",
      onFinish: (info) => {
        infos.push(info);
        own.observe(info);
      },
    });
    const l = listen({ host: "127.0.0.1", port: 0, fetch: fetchEdge, maxRequestBodySize: 1 << 20 });
    try {
      const at = `http://127.0.0.1:${l.port}`;
      const bodies: Record<string, string> = {};
      for (const path of ["/healthz", "/readyz"]) bodies[path] = await (await fetch(`${at}${path}`)).text();
      const put = await fetch(`${at}/healthz`, { method: "PUT" });
      expect(put.status).toBe(405);
      await put.text();
      const users = await fetch(`${at}${SCIM_BASE_PATH}/Users`, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
      expect(users.status).toBe(405);
      await users.text();
      const until = Date.now() + 2000;
      while (infos.length < 4 && Date.now() < until) await Bun.sleep(5);
      const of = (method: string, path: string) => infos.find((i) => i.method === method && i.path === path);
      for (const path of ["/healthz", "/readyz"]) {
        expect(of("GET", path)?.bytes).toBe(Buffer.byteLength(bodies[path]!));
        expect(of("GET", path)?.bytes).toBeGreaterThan(10);
      }
      expect(of("PUT", "/healthz")?.route).toBe("/healthz");
      expect(of("DELETE", `${SCIM_BASE_PATH}/Users`)?.route).toBe(`${SCIM_BASE_PATH}/Users`);
      const scraped = parseScrape((await own.render()).text);
      expect(scraped.value("scimd_http_requests_total", { route: "/healthz", method: "PUT", status: "405" })).toBe(1);
      expect(scraped.value("scimd_http_requests_total", { route: UNMATCHED_ROUTE, method: "PUT", status: "405" })).toBeUndefined();
    } finally {
      await l.stop();
      own.stop();
    }
  });
});
