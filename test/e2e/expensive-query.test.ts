/**
 * dist/scimd as a process, on a database of 30,000 users: a 4 KB filter of `co` terms runs in the
 * binary's reader worker (an entrypoint of its own in the compiled binary), so /healthz and a
 * `userName eq` lookup answer meanwhile; past --query-timeout the client gets 400 tooMany; and a
 * client that goes away frees the reader for the next search.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { expensiveFilter, populateUsers } from "../expensive-filter";
import { buildBinaryInto, runCli, startServe, stopAll, type Served } from "./harness";

/**
 * Enough users that the expensive filter outlasts the 2 s deadline on a quiet, fast machine too (10,000
 * took 1.9 s there, and the search ended with 200 before its deadline).
 */
const USERS = 30_000;
let tmp = "";
let server: Served;
let token = "";
const started = new Set<Bun.Subprocess>();

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-expensive-"));
  const bin = buildBinaryInto(tmp);
  const db = join(tmp, "scimd.db");
  const store = new SqliteStore(db, { readers: false });
  await populateUsers(store, USERS);
  await store.close();
  const t = runCli(bin, tmp, ["generate-token", "--name", "e2e", "--db", db]);
  expect(t.code).toBe(0);
  token = t.out.trim();
  server = await startServe(bin, tmp, ["--db", db, "--query-timeout", "2s", "--log-level", "error"], started);
  expect(server.exited).toBeUndefined();
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await stopAll(started, tmp);
});

const get = (path: string, signal?: AbortSignal) => fetch(`${server.base}${path}`, { headers: { Authorization: `Bearer ${token}` }, signal });
const filtered = (f: string) => `/Users?filter=${encodeURIComponent(f)}`;

describe("dist/scimd: expensive searches off the event loop, under --query-timeout", () => {
  it("answers /healthz and userName eq at once while the search runs, then stops it at --query-timeout with 400 tooMany", async () => {
    const t0 = performance.now();
    const heavy = get(filtered(expensiveFilter())).then(async (r) => ({ status: r.status, body: (await r.json()) as { scimType?: string; detail?: string }, ms: performance.now() - t0 }));
    await Bun.sleep(100);
    let health = 0, lookup = 0, probes = 0;
    while (performance.now() - t0 < 1500) {
      let p0 = performance.now();
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      health = Math.max(health, performance.now() - p0);
      p0 = performance.now();
      const r = await get(filtered(`userName eq "user${probes}@example.com"`));
      expect(((await r.json()) as { totalResults: number }).totalResults).toBe(1);
      lookup = Math.max(lookup, performance.now() - p0);
      probes++;
      await Bun.sleep(10);
    }
    console.error(`dist/scimd while an expensive search ran: /healthz at most ${health.toFixed(1)} ms, userName eq at most ${lookup.toFixed(1)} ms (${probes} probes)`);
    expect(probes).toBeGreaterThan(10);
    // 50 ms is the aim (under 10 ms on a quiet machine); the rest is room for a shared one. The old code answered nothing for seconds.
    expect(health).toBeLessThan(750);
    expect(lookup).toBeLessThan(750);
    const h = await heavy;
    expect(h.status).toBe(400);
    expect(h.body.scimType).toBe("tooMany");
    expect(h.body.detail).toContain("the filter is too expensive");
    expect(h.ms).toBeGreaterThanOrEqual(1950);
    expect(h.ms).toBeLessThan(2000 + 1500);
  }, 30_000);

  it("frees the reader when the client goes away: two abandoned searches, then one that scans answers at once", async () => {
    const t0 = performance.now();
    const acs = [new AbortController(), new AbortController()];
    // Two: the binary has two readers.
    const heavy = acs.map((ac) => get(filtered(expensiveFilter()), ac.signal).catch(() => undefined));
    await Bun.sleep(300);
    for (const ac of acs) ac.abort();
    await Promise.all(heavy);
    const r = await get(filtered('userName sw "user1"') + "&count=3");
    expect(r.status).toBe(200);
    expect(((await r.json()) as { totalResults: number }).totalResults).toBe(11_111);
    expect(performance.now() - t0).toBeLessThan(300 + 1000);
  }, 30_000);
});
