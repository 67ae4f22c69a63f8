/**
 * Connection caps on real sockets (issue 13): the listener with `caps` puts a TCP front on its port
 * (src/http/connection-front.ts). A connection past a cap is closed as soon as it is accepted,
 * without a byte read or sent; established connections go on; the cap counts per client address
 * (127.0.0.2, 127.0.0.3… are distinct clients on loopback) and in all; the HTTP server behind it
 * sees each request's real client (`peer`); bytes cross it unchanged in both directions, however
 * slowly the client reads; HTTPS passes through and its certificate reloads.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { listen, type Listener, type ListenOptions } from "../../src/http/listener";
import { hasOpenssl, makeCa, makeLeaf, servedFingerprint, type Ca, type Leaf } from "../e2e/certs";

const open = new Set<Listener>();
const sockets = new Set<Socket>();
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([...open].map((l) => l.stop()));
});

/** A listener whose handler answers with the request's client address as the listener reports it. */
function start(caps: ListenOptions["caps"], o: Partial<ListenOptions> = {}): Listener {
  let l: Listener | undefined = undefined;
  const fetch = (request: Request, server: Server<unknown>) => new Response(l!.peer(request, server) ?? "unknown");
  l = listen({ host: "127.0.0.1", port: 0, maxRequestBodySize: 1 << 30, fetch, caps, ...o });
  open.add(l);
  return l;
}

/** A raw connection from `from` (a loopback address): what it received, and whether the server ended it. */
interface Raw {
  socket: Socket;
  received: () => string;
  ended: () => boolean;
  /** One GET on this connection (keep-alive): the body of its response. */
  get: () => Promise<string>;
}

async function connectFrom(port: number, from: string): Promise<Raw> {
  let text = "";
  let ended = false;
  const socket = connect({ port, host: "127.0.0.1", localAddress: from });
  sockets.add(socket);
  socket.on("data", (d) => (text += d.toString("latin1")));
  socket.on("close", () => (ended = true));
  socket.on("error", () => (ended = true));
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  return {
    socket,
    received: () => text,
    ended: () => ended,
    get: async () => {
      const start = text.length;
      socket.write("GET / HTTP/1.1\r\nHost: scimd.test\r\n\r\n");
      for (const until = Date.now() + 5000; Date.now() < until; await Bun.sleep(5)) {
        const reply = text.slice(start);
        const split = reply.indexOf("\r\n\r\n");
        const length = Number(/content-length:\s*(\d+)/i.exec(reply)?.[1]);
        if (split >= 0 && reply.length >= split + 4 + length) return reply.slice(split + 4, split + 4 + length);
        if (ended) break;
      }
      throw new Error(`no response (received ${JSON.stringify(text.slice(start))}, ended: ${ended})`);
    },
  };
}

/** Waits until `test` holds (or fails after `ms`). */
async function until(test: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; !test() && Date.now() < end; ) await Bun.sleep(5);
  return test();
}

describe("caps", () => {
  it("per client: past the cap a new connection from that client is closed without a byte read or sent; other clients and the established connections go on; a freed place is taken again", async () => {
    const refused: [string, string][] = [];
    const l = start({ max: 0, perClient: 3, onRefused: (c, r) => refused.push([c, r]) });
    const mine = await Promise.all([1, 2, 3].map(() => connectFrom(l.port, "127.0.0.2")));
    for (const c of mine) expect(await c.get()).toBe("127.0.0.2");
    const fourth = await connectFrom(l.port, "127.0.0.2");
    fourth.socket.write("GET / HTTP/1.1\r\nHost: scimd.test\r\n\r\n");
    expect(await until(fourth.ended)).toBe(true);
    expect(fourth.received()).toBe("");
    expect(refused).toEqual([["127.0.0.2", "perClient"]]);
    // Another client is not affected, nor are the three established connections.
    const other = await connectFrom(l.port, "127.0.0.3");
    expect(await other.get()).toBe("127.0.0.3");
    for (const c of mine) expect(await c.get()).toBe("127.0.0.2");
    // One of the three closes: its place is free again.
    mine[0]!.socket.destroy();
    // The front learns of the close a moment later: until then a new one may still be refused.
    let again: Raw | undefined;
    for (const end = Date.now() + 5000; Date.now() < end; ) {
      again = await connectFrom(l.port, "127.0.0.2");
      await Bun.sleep(50);
      if (!again.ended()) break;
    }
    expect(await again!.get()).toBe("127.0.0.2");
  });

  it("in all: past the total a new connection from any client is closed; a client under its own cap is refused too", async () => {
    const refused: [string, string][] = [];
    const l = start({ max: 4, perClient: 3, onRefused: (c, r) => refused.push([c, r]) });
    const held = await Promise.all(["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"].map((a) => connectFrom(l.port, a)));
    for (const c of held) await c.get();
    const fifth = await connectFrom(l.port, "127.0.0.4");
    expect(await until(fifth.ended)).toBe(true);
    expect(fifth.received()).toBe("");
    expect(refused).toEqual([["127.0.0.4", "max"]]);
    for (const c of held) expect(["127.0.0.2", "127.0.0.3"]).toContain(await c.get());
  });

  it("many connections refused in a burst leave the count right: the held ones work, and once they close every place is free", async () => {
    const l = start({ max: 0, perClient: 5 });
    const held = await Promise.all(Array.from({ length: 5 }, () => connectFrom(l.port, "127.0.0.5")));
    const burst = await Promise.all(Array.from({ length: 200 }, () => connectFrom(l.port, "127.0.0.5").catch(() => undefined)));
    expect(await until(() => burst.every((b) => !b || b.ended()))).toBe(true);
    for (const c of held) expect(await c.get()).toBe("127.0.0.5");
    for (const c of held) c.socket.destroy();
    // All five places come back (the front counts each close once).
    await Bun.sleep(200);
    const next = await Promise.all(Array.from({ length: 5 }, () => connectFrom(l.port, "127.0.0.5")));
    for (const c of next) expect(await c.get()).toBe("127.0.0.5");
  });
});

describe("the relay", () => {
  it("carries a large upload and a large download unchanged, to a client that stops reading for a while", async () => {
    const big = new Uint8Array(8 << 20).map((_, i) => (i * 7919) & 0xff);
    const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    const l = listen({
      host: "127.0.0.1",
      port: 0,
      maxRequestBodySize: 1 << 30,
      caps: { max: 10, perClient: 0 },
      fetch: async (request) => (request.method === "POST" ? new Response(digest(new Uint8Array(await request.arrayBuffer()))) : new Response(big)),
    });
    open.add(l);
    const up = await fetch(`http://127.0.0.1:${l.port}/`, { method: "POST", body: big });
    expect(await up.text()).toBe(digest(big));
    // A raw client that reads nothing for 500 ms, then everything.
    const socket = connect(l.port, "127.0.0.1");
    sockets.add(socket);
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    socket.pause();
    socket.write("GET / HTTP/1.1\r\nHost: scimd.test\r\n\r\n");
    await Bun.sleep(500);
    socket.resume();
    const all = () => Buffer.concat(chunks);
    expect(await until(() => all().length >= all().indexOf("\r\n\r\n") + 4 + big.length && all().indexOf("\r\n\r\n") > 0, 20_000)).toBe(true);
    const body = all().subarray(all().indexOf("\r\n\r\n") + 4);
    expect(body.length).toBe(big.length);
    expect(digest(body)).toBe(digest(big));
  }, 30_000);

  it("refuses a port another listener holds, and stop() frees the port and ends the relayed connections", async () => {
    const l = start({ max: 10, perClient: 0 });
    expect(() => start({ max: 10, perClient: 0 }, { port: l.port })).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));
    const c = await connectFrom(l.port, "127.0.0.1");
    expect(await c.get()).toBe("127.0.0.1");
    await l.stop();
    open.delete(l);
    expect(await until(c.ended)).toBe(true);
    const again = start({ max: 10, perClient: 0 }, { port: l.port });
    expect(again.port).toBe(l.port);
  });
});

describe("what the review found (each failed before its fix)", () => {
  it("stop() lets the responses in flight reach their clients (a stopping scimd cut them)", async () => {
    const l = listen({
      host: "127.0.0.1",
      port: 0,
      maxRequestBodySize: 1 << 20,
      caps: { max: 100, perClient: 0 },
      fetch: async () => (await Bun.sleep(100), new Response("x".repeat(2048))),
    });
    const replies = Array.from({ length: 20 }, () =>
      fetch(`http://127.0.0.1:${l.port}/`, { keepalive: false }).then(
        (r) => r.text().then((t) => t.length),
        () => -1,
      ),
    );
    await Bun.sleep(30);
    await l.stop();
    expect(await Promise.all(replies)).toEqual(new Array(20).fill(2048));
  });

  it("a client that half-closes (FIN right after its request) still gets its response", async () => {
    const l = start({ max: 10, perClient: 0 });
    const socket = connect(l.port, "127.0.0.1");
    sockets.add(socket);
    let text = "";
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    socket.end("GET / HTTP/1.1\r\nHost: scimd.test\r\n\r\n");
    expect(await until(() => text.includes("127.0.0.1"))).toBe(true);
    expect(text).toStartWith("HTTP/1.1 200");
  });

  it("a request whose client went away right after sending it is still told its client (not 127.0.0.1)", async () => {
    const seen: string[] = [];
    const l = listen({
      host: "127.0.0.1",
      port: 0,
      maxRequestBodySize: 1 << 20,
      caps: { max: 100, perClient: 0 },
      fetch: (request, server) => (seen.push(l.peer(request, server) ?? "unknown"), new Response("ok")),
    });
    open.add(l);
    for (let i = 0; i < 50; i++) {
      const socket = connect({ port: l.port, host: "127.0.0.1", localAddress: "127.0.0.9" });
      socket.on("error", () => {});
      await new Promise<void>((resolve) => socket.once("connect", resolve));
      socket.write("GET / HTTP/1.1\r\nHost: scimd.test\r\n\r\n", () => socket.resetAndDestroy());
    }
    await until(() => seen.length === 50, 3000);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set(["127.0.0.9"]));
  });
});

describe.skipIf(!hasOpenssl)("HTTPS through the front (skipped without openssl: apt-get install openssl)", () => {
  let dir = "";
  let ca: Ca;
  let one: Leaf, two: Leaf;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "scimd-caps-"));
    ca = makeCa(dir);
    [one, two] = ["one", "two"].map((n) => makeLeaf(dir, ca, n)) as [Leaf, Leaf];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("passes TLS through unchanged (the HTTP server behind it holds the certificate) and serves a reloaded certificate to new connections", async () => {
    const l = start({ max: 10, perClient: 5 }, { tls: { cert: one.cert, key: one.key }, drainMs: 100 });
    expect(l.tls).toBe(true);
    expect(l.url).toBe(`https://127.0.0.1:${l.port}`);
    expect(await servedFingerprint(l.port, ca.cert)).toBe(one.fingerprint);
    const res = await fetch(`https://127.0.0.1:${l.port}/`, { tls: { ca: ca.cert, serverName: "localhost" } });
    expect(await res.text()).toBe("127.0.0.1");
    await l.reload({ cert: two.cert, key: two.key });
    expect(await servedFingerprint(l.port, ca.cert)).toBe(two.fingerprint);
  });
});
