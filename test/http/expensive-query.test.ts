/**
 * Expensive searches run off the event loop, under a deadline (README "Limits": --query-timeout). On
 * a real SQLite file of 30,000 users, a 4 KB `or` chain of `co` terms over multi-valued attributes
 * takes seconds; while it runs, /healthz and an IdP's `userName eq` lookup still answer at once; past
 * the deadline the client gets 400 tooMany (RFC 7644 §3.12) saying how to narrow the filter; a client
 * that goes away frees the reader; and a search through the reader answers as the main connection does.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { createApp, SCIM_BASE_PATH } from "../../src/app";
import { resolveAttrPath } from "../../src/scim/attributes";
import { resolveFilter } from "../../src/scim/filter";
import { rtOf } from "../../src/scim/schema";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { hashToken, newToken } from "../../src/tokens";
import { expensiveFilter, populateUsers } from "../expensive-filter";
import { memoryLogger, onPostgres, tempDir } from "../helpers";

/**
 * Enough users that the expensive filter outlasts the 2 s deadline on a quiet, fast machine too (10,000
 * took 1.9 s there, and the search ended with 200 before its deadline).
 */
const USERS = 30_000;
const TIMEOUT_MS = 2000;
/**
 * The slowest answer allowed meanwhile. 50 ms is the aim, and on a quiet machine the slowest is under
 * 10 ms; the rest is room for a shared machine (at a load average of 14 on 2 vCPUs, 110–240 ms, once
 * 420 ms for a wake-up). The old code stalled the loop for the whole search: 8.8 s here.
 */
const MAX_MS = 750;

const tmp = tempDir("scimd-expensive-");
const dbPath = join(tmp.dir, "scimd.db");
let store: SqliteStore;
let server: ReturnType<typeof Bun.serve>;
let base = "";
let url = "";
const token = newToken();

beforeAll(async () => {
  if (onPostgres) return;
  // One reader, so that a search left running would make the next one wait.
  store = new SqliteStore(dbPath, { readers: { timeoutMs: TIMEOUT_MS, size: 1 } });
  await populateUsers(store, USERS);
  await store.createToken("test", hashToken(token));
  const app = createApp({ store, logger: memoryLogger("info").logger, addressOf: () => "127.0.0.1" });
  app.listen({ port: 0, hostname: "127.0.0.1" });
  server = app.server!;
  url = `http://127.0.0.1:${server.port}`;
  base = `${url}${SCIM_BASE_PATH}`;
}, 60_000);

afterAll(async () => {
  await server?.stop(true);
  await store?.close();
  tmp.cleanup();
});

const get = (path: string, signal?: AbortSignal) => fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` }, signal });
const filtered = (f: string) => `/Users?filter=${encodeURIComponent(f)}`;

/** Probes /healthz and a `userName eq` lookup one after the other for `ms`: the slowest answer of each. */
async function probe(ms: number): Promise<{ health: number; lookup: number; probes: number }> {
  let health = 0, lookup = 0, probes = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    let t0 = performance.now();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    health = Math.max(health, performance.now() - t0);
    t0 = performance.now();
    const r = await get(filtered(`userName eq "User${probes % USERS}@example.com"`));
    expect(((await r.json()) as { totalResults: number }).totalResults).toBe(1);
    lookup = Math.max(lookup, performance.now() - t0);
    probes++;
    await Bun.sleep(10);
  }
  return { health, lookup, probes };
}

// SQLite's reader workers: the PostgreSQL run of the HTTP tests skips them (test/store/postgres/query-timeout.test.ts covers its deadline).
(onPostgres ? describe.skip : describe)("expensive searches run in a reader, under --query-timeout", () => {
  it("answers /healthz and a userName eq lookup within 50 ms (a loaded machine's margin aside) while a 4 KB filter of 'co' terms runs", async () => {
    const ac = new AbortController();
    let settled = false;
    // The client runs in this process too: a stalled event loop shows as a late wake-up from a sleep.
    const sent = performance.now();
    const heavy = get(filtered(expensiveFilter()), ac.signal).then(
      () => (settled = true),
      () => (settled = true),
    );
    await Bun.sleep(100);
    const lag = performance.now() - sent - 100;
    const m = await probe(1200);
    console.error(`while an expensive search ran: /healthz at most ${m.health.toFixed(1)} ms, userName eq at most ${m.lookup.toFixed(1)} ms (${m.probes} probes), event loop late by ${lag.toFixed(1)} ms`);
    // The expensive search was still running all along (it needs seconds, the deadline is 2 s).
    expect(settled).toBe(false);
    expect(m.probes).toBeGreaterThan(10);
    expect(lag).toBeLessThan(MAX_MS);
    expect(m.health).toBeLessThan(MAX_MS);
    expect(m.lookup).toBeLessThan(MAX_MS);
    ac.abort();
    await heavy;
  }, 30_000);

  it("stops a search at the deadline with 400 tooMany whose detail says the filter is too expensive and how to narrow it (RFC 7644 §3.12)", async () => {
    const t0 = performance.now();
    const r = await get(filtered(expensiveFilter()));
    const ms = performance.now() - t0;
    const body = (await r.json()) as { status: string; scimType: string; detail: string };
    expect(r.status).toBe(400);
    expect(body.status).toBe("400");
    expect(body.scimType).toBe("tooMany");
    expect(body.detail).toContain("the filter is too expensive");
    expect(body.detail).toContain("--query-timeout");
    expect(body.detail).toContain("userName");
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(TIMEOUT_MS + 1500);
  }, 30_000);

  it("frees the reader when the client goes away: the next search that scans starts at once", async () => {
    const ac = new AbortController();
    const t0 = performance.now();
    const heavy = get(filtered(expensiveFilter()), ac.signal).catch(() => undefined);
    await Bun.sleep(300);
    ac.abort();
    await heavy;
    // `sw` on userName is read from every row (no index answers it): it goes to the one reader.
    const r = await get(filtered('userName sw "user1"') + "&count=5");
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(((await r.json()) as { totalResults: number }).totalResults).toBe(11_111);
    // Had the abandoned search gone on, this one would have waited for the deadline (2 s) and got 503 (every reader busy).
    expect(ms).toBeLessThan(300 + 1000);
  }, 30_000);

  it("gives the same totals, pages, order and groups through the reader as on the main connection", async () => {
    const direct = new SqliteStore(dbPath, { readers: false });
    try {
      const rt = rtOf("User");
      const sort = (p: string) => {
        const r = resolveAttrPath(rt, p)!;
        return { extension: r.extension, attr: r.attr, sub: r.sub };
      };
      const cases = [
        { filter: 'userName sw "user1"', offset: 0, limit: 50 },
        { filter: 'userName sw "user1"', offset: 1100, limit: 50 },
        { filter: 'emails co "home"', sortBy: "userName", descending: true, offset: 5000, limit: 20 },
        { filter: 'name.givenName co "Given4"', offset: 0, limit: 0 },
        { filter: 'addresses[locality eq "Springfield"] and displayName co "99"', sortBy: "displayName", offset: 3, limit: 10 },
        { filter: 'not (phoneNumbers co "555 0000")', sortBy: "name.familyName", offset: 0, limit: 7 },
      ];
      for (const c of cases) {
        const q = { filter: resolveFilter(rt, c.filter), sortBy: c.sortBy ? sort(c.sortBy) : undefined, descending: c.descending, offset: c.offset, limit: c.limit };
        const shape = (p: Awaited<ReturnType<SqliteStore["search"]>>) => ({ total: p.total, rows: p.resources.map((s) => [s.id, s.version, s.json, s.groups]) });
        const [viaReader, onMain] = await Promise.all([store.search("User", q), direct.search("User", q)]);
        expect(shape(viaReader)).toEqual(shape(onMain));
      }
    } finally {
      await direct.close();
    }
  }, 60_000);
});
