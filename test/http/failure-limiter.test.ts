/**
 * The failed-authentication limiter: a sliding window per client, O(1) per call at any number of
 * clients and any limit (a fixed-size record of buckets per client, a map capped in size, nothing
 * scanned), IPv6 grouped by /64.
 */
import { describe, expect, it } from "bun:test";
import { FailureLimiter, LIMITER_BUCKETS, limiterKey } from "../../src/http/auth";

const WINDOW = 60_000;

describe("limiterKey", () => {
  it.each([
    ["192.0.2.1", "192.0.2.1"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["::ffff:c000:201", "192.0.2.1"],
    ["2001:db8:1:2::1", "2001:db8:1:2::/64"],
    ["2001:DB8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"],
    ["fe80::1%eth0", "fe80::/64"],
    ["::1", "::/64"],
    ["unknown", "unknown"],
  ])("limits %s as %s", (address, key) => {
    expect(limiterKey(address)).toBe(key);
  });
});

describe("FailureLimiter", () => {
  it("allows maxFailures failures in the window, then asks to wait until the oldest leaves it (the window moves by 1/16 of itself)", () => {
    const l = new FailureLimiter({ maxFailures: 3, windowMs: WINDOW });
    const bucket = WINDOW / LIMITER_BUCKETS; // 3.75 s
    const t = 1000 * bucket; // the start of a bucket, so that the expected waits are round
    l.record("192.0.2.1", t);
    l.record("192.0.2.1", t + 10_000);
    expect(l.retryAfter("192.0.2.1", t + 10_000)).toBe(0);
    l.record("192.0.2.1", t + 20_000);
    expect(l.retryAfter("192.0.2.1", t + 20_000)).toBe(40);
    // The oldest failure leaves the window: one more is allowed, and after it the next oldest decides
    // (its bucket began at t + 7.5 s, so it leaves at t + 67.5 s).
    expect(l.retryAfter("192.0.2.1", t + WINDOW)).toBe(0);
    l.record("192.0.2.1", t + WINDOW);
    expect(l.retryAfter("192.0.2.1", t + WINDOW)).toBe(8);
    expect(l.retryAfter("192.0.2.1", t + WINDOW + 7_500)).toBe(0);
    expect(l.retryAfter("192.0.2.2", t + WINDOW)).toBe(0);
  });

  it("keeps the same small record per client however high the limit (a million per minute here)", () => {
    const l = new FailureLimiter({ maxFailures: 1_000_000, windowMs: WINDOW });
    for (let i = 0; i < 1000; i++) l.record("192.0.2.9", 5_000_000 + i);
    expect(l.retryAfter("192.0.2.9", 5_001_000)).toBe(0);
    const b = (l as unknown as { clients: Map<string, { counts: Uint32Array }> }).clients.get("192.0.2.9")!;
    expect(b.counts.length).toBe(LIMITER_BUCKETS);
  });

  it("counts addresses of one IPv6 /64 together", () => {
    const l = new FailureLimiter({ maxFailures: 2, windowMs: WINDOW });
    l.record("2001:db8::1", 1000);
    l.record("2001:db8::2", 1000);
    expect(l.retryAfter("2001:db8::ffff", 1000)).toBeGreaterThan(0);
    expect(l.retryAfter("2001:db8:0:1::1", 1000)).toBe(0);
    expect(l.size).toBe(1);
  });

  it("keeps one fixed-size record per client and at most maxClients of them, whatever the number of addresses (25,000 here)", () => {
    const maxClients = 1000;
    const l = new FailureLimiter({ maxFailures: 20, windowMs: WINDOW, maxClients });
    const rings = (l as unknown as { clients: Map<string, { counts: Uint32Array }> }).clients;
    for (let i = 0; i < 25_000; i++) {
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      for (let k = 0; k < 3; k++) l.record(address, 1000 + i);
      expect(l.size).toBeLessThanOrEqual(maxClients);
    }
    expect(l.size).toBe(maxClients);
    // Each record has its fixed number of buckets, however many failures were recorded.
    for (const ring of rings.values()) expect(ring.counts.length).toBe(LIMITER_BUCKETS);
    // The clients seen least recently were dropped first; the most recent are all still counted.
    const last = 25_000 - 1;
    expect(rings.has(`10.0.${(last >> 8) & 255}.${last & 255}`)).toBe(true);
    expect(rings.has("10.0.0.0")).toBe(false);
  });

  it("keeps a client it sees again at the end of the order, so a busy attacker is not forgotten first", () => {
    const l = new FailureLimiter({ maxFailures: 2, windowMs: WINDOW, maxClients: 3 });
    l.record("192.0.2.1", 1000);
    l.record("192.0.2.2", 1000);
    l.record("192.0.2.3", 1000);
    l.record("192.0.2.1", 1001);
    l.record("192.0.2.4", 1002); // drops 192.0.2.2, the one seen least recently
    expect(l.retryAfter("192.0.2.1", 1002)).toBeGreaterThan(0);
    const rings = (l as unknown as { clients: Map<string, unknown> }).clients;
    expect([...rings.keys()]).toEqual(["192.0.2.3", "192.0.2.1", "192.0.2.4"]);
  });

  it("does the same few steps per call however many clients it holds: retryAfter touches one entry only", () => {
    const l = new FailureLimiter({ maxFailures: 5, windowMs: WINDOW });
    for (let i = 0; i < 25_000; i++) l.record(`2001:db8:${(i >> 8).toString(16)}:${(i & 255).toString(16)}::1`, 1000);
    expect(l.size).toBe(25_000);
    // A Map whose iteration throws: any scan of the clients would fail this test.
    const rings = (l as unknown as { clients: Map<string, unknown> }).clients;
    const iterate = () => {
      throw new Error("the limiter scanned its clients");
    };
    for (const name of ["entries", "keys", "values", "forEach", Symbol.iterator] as const) Object.defineProperty(rings, name, { value: iterate });
    expect(l.retryAfter("2001:db8:0:1::9", 1000)).toBe(0);
    l.record("2001:db8:0:1::9", 1000);
    l.record("198.51.100.7", 1000);
    expect(l.size).toBe(25_001);
  });
});
