/**
 * The listener on real sockets (127.0.0.1, ephemeral ports): plain HTTP and HTTPS, a busy port
 * refused, and certificate reloads: new connections get the new certificate, a request in flight and
 * a busy keep-alive connection are answered across the hand-over.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exposure, listen, reloadWarning, type Listener } from "../../src/http/listener";
import { hasOpenssl, makeCa, makeLeaf, servedFingerprint, type Ca, type Leaf } from "../e2e/certs";

let dir = "";
let ca: Ca;
let one: Leaf, two: Leaf, three: Leaf;
const open = new Set<Listener>();

beforeAll(() => {
  if (!hasOpenssl) return;
  dir = mkdtempSync(join(tmpdir(), "scimd-listener-"));
  ca = makeCa(dir);
  [one, two, three] = ["one", "two", "three"].map((n) => makeLeaf(dir, ca, n)) as [Leaf, Leaf, Leaf];
});
afterAll(async () => {
  await Promise.all([...open].map((l) => l.stop()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const start = (o: Partial<Parameters<typeof listen>[0]> = {}) => {
  const l = listen({ host: "127.0.0.1", port: 0, maxRequestBodySize: 1 << 20, fetch: () => new Response("ok"), ...o });
  open.add(l);
  return l;
};

/** A GET over node's https client (optionally on a keep-alive agent); resolves with status, body and the Connection header. */
function get(port: number, path: string, agent?: https.Agent): Promise<{ status: number; body: string; connection: string | undefined; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, path, servername: "localhost", ca: ca.cert, agent: agent ?? false }, (res) => {
      let body = "";
      const localPort = res.socket.localPort!;
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, body, connection: res.headers.connection, localPort }));
    });
    req.on("error", reject);
  });
}

describe("plain HTTP", () => {
  it("listens, says where (url), has no certificate to reload, and refuses a port another listener holds", async () => {
    const l = start();
    expect(l.tls).toBe(false);
    expect(l.url).toBe(`http://127.0.0.1:${l.port}`);
    expect(await (await fetch(`${l.url}/x`)).text()).toBe("ok");
    await expect(l.reload({ cert: "", key: "" })).rejects.toThrow(/plain HTTP/);
    expect(() => start({ port: l.port })).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));
    await l.stop();
  });
});

describe.skipIf(!hasOpenssl)("HTTPS and certificate reloads", () => {
  it("Bun 1.4.5 still ignores server.reload({ tls }) (oven-sh/bun #43815): the reason reload hands the port over (if this fails, Bun can swap certificates in place)", async () => {
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", tls: { cert: one.cert, key: one.key }, fetch: () => new Response("ok") });
    try {
      server.reload({ fetch: () => new Response("ok"), tls: { cert: two.cert, key: two.key } } as Parameters<typeof server.reload>[0]);
      expect(await servedFingerprint(server.port!, ca.cert)).toBe(one.fingerprint);
    } finally {
      await server.stop(true);
    }
  });

  it("serves HTTPS with the pair, and refuses a port another scimd holds although it listens with SO_REUSEPORT", async () => {
    const l = start({ tls: { cert: one.cert, key: one.key } });
    expect([l.tls, l.url]).toEqual([true, `https://127.0.0.1:${l.port}`]);
    expect(await servedFingerprint(l.port, ca.cert)).toBe(one.fingerprint);
    expect((await get(l.port, "/")).body).toBe("ok");
    expect(() => start({ port: l.port, tls: { cert: two.cert, key: two.key } })).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));
    expect(() => start({ port: l.port })).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));
    // The refused second listener left the first one serving its own certificate.
    for (let i = 0; i < 5; i++) expect(await servedFingerprint(l.port, ca.cert)).toBe(one.fingerprint);
    await l.stop();
  });

  it("reload: new connections get the new certificate, on the same port; a request in flight on the old one is answered", async () => {
    let release = () => {};
    const slow = new Promise<void>((r) => (release = r));
    const l = start({
      tls: { cert: one.cert, key: one.key },
      drainMs: 50,
      fetch: async (r) => {
        if (new URL(r.url).pathname === "/slow") await slow;
        return new Response(new URL(r.url).pathname);
      },
    });
    const inFlight = get(l.port, "/slow");
    await Bun.sleep(50);
    await l.reload({ cert: two.cert, key: two.key });
    for (let i = 0; i < 10; i++) expect(await servedFingerprint(l.port, ca.cert)).toBe(two.fingerprint);
    release();
    expect(await inFlight).toMatchObject({ status: 200, body: "/slow" });
    await l.reload({ cert: three.cert, key: three.key });
    for (let i = 0; i < 10; i++) expect(await servedFingerprint(l.port, ca.cert)).toBe(three.fingerprint);
    expect((await get(l.port, "/after")).body).toBe("/after");
    await l.stop();
  });

  it("reload refuses a pair Bun cannot use and keeps serving the old certificate", async () => {
    const l = start({ tls: { cert: one.cert, key: one.key }, drainMs: 10 });
    await expect(l.reload({ cert: one.cert, key: "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n" })).rejects.toThrow();
    expect(await servedFingerprint(l.port, ca.cert)).toBe(one.fingerprint);
    await l.reload({ cert: two.cert, key: two.key });
    expect(await servedFingerprint(l.port, ca.cert)).toBe(two.fingerprint);
    await l.stop();
  });

  it("stop during a reload's drain stops the old server too, at once (not after the drain), and both listening sockets are closed", async () => {
    const l = start({ tls: { cert: one.cert, key: one.key }, drainMs: 10_000 });
    const reloaded = l.reload({ cert: two.cert, key: two.key });
    await Bun.sleep(50);
    const t0 = performance.now();
    await l.stop();
    await reloaded;
    expect(performance.now() - t0).toBeLessThan(2000);
    await expect(servedFingerprint(l.port, ca.cert)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(l.reload({ cert: three.cert, key: three.key })).rejects.toThrow(/stopped/);
    await l.stop();
  }, 15_000);

  it("a busy keep-alive connection moves to the new server between two requests: the old one answers with Connection: close during the drain, no request fails", async () => {
    const l = start({ tls: { cert: one.cert, key: one.key }, drainMs: 300 });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(l.port, "/", agent);
      expect((await get(l.port, "/", agent)).localPort).toBe(first.localPort);
      const reloaded = l.reload({ cert: two.cert, key: two.key });
      let done = false;
      void reloaded.then(() => (done = true));
      const during: Awaited<ReturnType<typeof get>>[] = [];
      while (!done) during.push(await get(l.port, "/", agent));
      const after: Awaited<ReturnType<typeof get>>[] = [];
      for (let i = 0; i < 20; i++) after.push(await get(l.port, "/", agent));
      expect([...during, ...after].every((a) => a.status === 200)).toBe(true);
      // The old connection was closed after a complete response, then one connection (kept alive) carried the rest.
      expect(during.find((a) => a.localPort === first.localPort)?.connection).toBe("close");
      expect(new Set(after.map((a) => a.localPort)).size).toBe(1);
      expect(after.every((a) => a.connection !== "close" && a.localPort !== first.localPort)).toBe(true);
    } finally {
      agent.destroy();
      await l.stop();
    }
  });
});

describe("exposure: what the start banner says is reachable", () => {
  const cases: [string, boolean, string, boolean][] = [
    ["127.0.0.1", false, "plain HTTP on loopback only (put a TLS proxy in front, or serve HTTPS with --tls-cert/--tls-key or --acme-domain)", false],
    ["::1", false, "plain HTTP on loopback only (put a TLS proxy in front, or serve HTTPS with --tls-cert/--tls-key or --acme-domain)", false],
    ["localhost", true, "HTTPS on loopback only", false],
    ["0.0.0.0", true, "HTTPS on every IPv4 interface", false],
    ["::", true, "HTTPS on every interface (IPv6 and IPv4)", false],
    ["10.0.0.5", true, "HTTPS on 10.0.0.5", false],
    ["0.0.0.0", false, "plain HTTP on every IPv4 interface", true],
    ["192.168.1.20", false, "plain HTTP on 192.168.1.20", true],
  ];
  it.each(cases)("%s, TLS %p: %s", (host, tls, summary, warns) => {
    const e = exposure(host, tls);
    expect(e.summary).toBe(summary);
    expect(e.warning !== undefined).toBe(warns);
    if (warns) expect(e.warning).toMatch(/unencrypted.*127\.0\.0\.1.*--tls-cert/);
  });

  it("reloadWarning names net.ipv4.tcp_migrate_req when it is 0, and is silent when it is 1 or the kernel has none", () => {
    expect(reloadWarning(() => "0\n")).toMatch(/net\.ipv4\.tcp_migrate_req=1/);
    expect(reloadWarning(() => "1\n")).toBeUndefined();
    expect(
      reloadWarning(() => {
        throw Object.assign(new Error("no such file"), { code: "ENOENT" });
      }),
    ).toBeUndefined();
  });
});
