/**
 * Prometheus metrics (prom-client, on a registry of our own, never the global one): requests by route
 * template, method and status with their latency; authentication failures by reason; the store's
 * users, groups and memberships (kept current by the store, so a scrape counts nothing), database and
 * WAL size; the group commit's batch sizes and COMMIT time; process memory and CPU; the build.
 *
 * Every label is bounded: the route is the template that answered (`/api/v1/scim/Users/:id`), never
 * the path sent; a method outside HTTP's usual ones is `other`; a status is a number below 600.
 */
import { heapStats } from "bun:jsc";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Store } from "../store/store";
import type { AuthFailure, RequestInfo } from "./observe";

export interface Metrics {
  /** Counts a finished request (edgeHandler's onFinish). */
  observe(info: RequestInfo): void;
  /** The scrape: every metric in Prometheus' text format, the store's figures read now. */
  render(): Promise<{ contentType: string; text: string }>;
  /** Stops listening to the store's commits. */
  stop(): void;
}

/** The route label of a request no route answered (a 404 outside the API, a request refused before routing). */
export const UNMATCHED_ROUTE = "unmatched";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Every reason observe.ts knows, so each series exists (at 0) from the first scrape. */
const AUTH_FAILURES = ["missing header", "malformed header", "no such token", "revoked", "expired", "rate limited", "insufficient scope"] as const satisfies readonly AuthFailure[];

/**
 * prom-client's default collectors that mean nothing on Bun (JavaScriptCore, not V8): heap spaces are
 * V8's (Bun reports zeros), active handles/requests/resources are always empty, garbage collections
 * are never reported (no `gc` performance entries), and the version metric names the Node.js
 * version Bun emulates. Two mislead: `process_heap_bytes` is /proc's VmData, which under Bun is
 * gigabytes of address space reserved, not used (6.4 GB measured); `nodejs_heap_size_total_bytes` is
 * at times below the heap in use. scimd_js_heap_bytes and scimd_js_heap_capacity_bytes (JavaScriptCore's
 * own heapStats) replace them. The rest works on Linux in the compiled binary too: process CPU, start
 * time, resident and virtual memory (from /proc/self/status), open and maximum file descriptors,
 * event loop lag, and the heap used and external memory from process.memoryUsage().
 */
const MEANINGLESS_ON_BUN = [
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_version_info",
  "nodejs_gc_duration_seconds",
  "process_heap_bytes",
  // prom-client sets used and external from total's collect: the three go, the two are scimd's own below.
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
];

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(o: { store: Store; version: string }): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  for (const name of MEANINGLESS_ON_BUN) registry.removeSingleMetric(name);

  const requests = new Counter({ name: "scimd_http_requests_total", help: "HTTP requests answered, by route template, method and status", labelNames: ["route", "method", "status"], registers });
  const latency = new Histogram({
    name: "scimd_http_request_duration_seconds",
    help: "Time from a request's arrival until its response body was sent, by route template and method",
    labelNames: ["route", "method"],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const authFailures = new Counter({ name: "scimd_auth_failures_total", help: "Requests refused authentication (401, 429) or, with a valid token, authorization (403: insufficient scope), by reason", labelNames: ["reason"], registers });
  for (const reason of AUTH_FAILURES) authFailures.inc({ reason }, 0);
  const users = new Gauge({ name: "scimd_users", help: "Users stored", registers });
  const groups = new Gauge({ name: "scimd_groups", help: "Groups stored", registers });
  const memberships = new Gauge({ name: "scimd_memberships", help: "Direct group memberships stored (a member of two groups counts twice)", registers });
  const databaseBytes = new Gauge({ name: "scimd_database_bytes", help: "Size of the database file on disk", registers });
  const walBytes = new Gauge({ name: "scimd_wal_bytes", help: "Size of the database's write-ahead log on disk", registers });
  const batchSize = new Histogram({ name: "scimd_commit_batch_size", help: "Writes committed together in one transaction (group commit)", buckets: BATCH_BUCKETS, registers });
  const commitSeconds = new Histogram({ name: "scimd_commit_seconds", help: "Time a COMMIT took (where SQLite syncs the WAL to disk)", buckets: COMMIT_BUCKETS, registers });
  new Gauge({
    name: "nodejs_heap_size_used_bytes",
    help: "Process heap size used, from process.memoryUsage(), in bytes",
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Gauge({
    name: "nodejs_external_memory_bytes",
    help: "Memory of objects outside the JavaScript heap (buffers), from process.memoryUsage(), in bytes",
    registers,
    collect() {
      this.set(process.memoryUsage().external);
    },
  });
  new Gauge({
    name: "scimd_js_heap_bytes",
    help: "Bytes of live objects in the JavaScript heap (JavaScriptCore's heapStats)",
    registers,
    collect() {
      this.set(heapStats().heapSize);
    },
  });
  new Gauge({
    name: "scimd_js_heap_capacity_bytes",
    help: "Bytes the JavaScript heap has allocated for objects, used or not (JavaScriptCore's heapStats)",
    registers,
    collect() {
      this.set(heapStats().heapCapacity);
    },
  });
  new Gauge({ name: "scimd_build_info", help: "The running scimd: its version and the Bun runtime's", labelNames: ["version", "bun"], registers }).set(
    { version: o.version, bun: Bun.version },
    1,
  );

  const stopCommits = o.store.onCommit((b) => {
    batchSize.observe(b.writes);
    commitSeconds.observe(b.commitSeconds);
  });

  // The labelled series of a request, kept by their label values: prom-client hashes a label object
  // on every inc/observe, most of the cost of a request's metrics. Routes are templates, methods
  // and statuses few, so these maps stay small.
  const counted = new Map<string, { inc(): void }>();
  const timed = new Map<string, { observe(v: number): void }>();
  return {
    observe(info) {
      const route = info.route ?? UNMATCHED_ROUTE;
      const method = METHODS.has(info.method) ? info.method : "other";
      const status = String(info.status ?? 0);
      const key = `${method} ${route}`;
      const countKey = `${status} ${key}`;
      let count = counted.get(countKey);
      if (!count) counted.set(countKey, (count = requests.labels({ route, method, status })));
      count.inc();
      if (info.durationMs !== undefined) {
        let time = timed.get(key);
        if (!time) timed.set(key, (time = latency.labels({ route, method })));
        time.observe(info.durationMs / 1000);
      }
      if (info.authFailure !== undefined) authFailures.inc({ reason: info.authFailure });
    },
    async render() {
      const s = o.store.stats();
      users.set(s.users);
      groups.set(s.groups);
      memberships.set(s.memberships);
      databaseBytes.set(s.databaseBytes);
      walBytes.set(s.walBytes);
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
    stop: stopCommits,
  };
}

/** The fetch handler of the metrics listener: GET /metrics, and 404 for anything else. */
export function metricsFetch(metrics: Metrics): (request: Request) => Promise<Response> {
  return async (request) => {
    // A request without a Host header comes with a path-only URL, which `new URL` refuses.
    const url = request.url;
    const path = url.startsWith("/") ? url.replace(/[?#].*$/, "") : new URL(url).pathname;
    if (path !== "/metrics") return new Response("not found: scrape /metrics\n", { status: 404, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    if (request.method !== "GET" && request.method !== "HEAD")
      return new Response("method not allowed: GET /metrics\n", { status: 405, headers: { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" } });
    const { contentType, text } = await metrics.render();
    return new Response(request.method === "HEAD" ? null : text, { headers: { "Content-Type": contentType, "Cache-Control": "no-store" } });
  };
}
