/**
 * The listening socket: Bun.serve with the app's fetch handler, plain HTTP or HTTPS through Bun's
 * own TLS. serve starts one; TLS certificate reloads (a renewed file, an ACME renewal) go through
 * `reload`.
 *
 * Bun cannot give a running server a new certificate (oven-sh/bun #43815: `server.reload({ tls })`
 * is accepted and ignored, measured on Bun 1.4.5), so `reload` hands the port over to a second
 * Bun.serve with the new certificate, bound to the same port with SO_REUSEPORT:
 *
 * 1. the new server binds; from now on the kernel spreads new connections over both;
 * 2. the old server answers every request with `Connection: close` for `drainMs`, so that the
 *    keep-alive connections that are in use move to the new server between two requests, each
 *    after a complete response;
 * 3. the old server stops (`stop(false)`): its listening socket closes, its requests in flight are
 *    answered. `stop(false)` also closes its idle keep-alive connections at once, which races with a
 *    client sending on one (a reset request, measured); step 2 leaves only connections idle for the
 *    whole drain, the same race as any idle timeout.
 *
 * One thing only the kernel can fix: connections that completed their TCP handshake but that the old
 * server has not accepted yet are reset when its listening socket closes, unless Linux's
 * `net.ipv4.tcp_migrate_req` is 1 (then they move to the new socket). `reloadWarning` says so.
 *
 * SO_REUSEPORT would also let a second scimd share the port; listen() therefore first binds the port
 * without it, which fails when anything listens there (with or without SO_REUSEPORT).
 */
import { readFileSync } from "node:fs";
import type { Server } from "bun";
import { connectionFront, type ConnectionCaps, type Front } from "./connection-front";

/** A certificate chain and its private key, as PEM text. */
export interface TlsPair {
  cert: string;
  key: string;
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  tls?: TlsPair;
  fetch: (request: Request, server: Server<unknown>) => Response | Promise<Response>;
  /**
   * Bun's own cap on a request body: past it Bun answers a bare 413 (no SCIM body) and closes the
   * connection without calling `fetch`. The API's listener passes UNCAPPED_BODY and enforces its
   * limit itself.
   */
  maxRequestBodySize: number;
  /** How long the old server answers with `Connection: close` during a reload before it stops. */
  drainMs?: number;
  /**
   * Caps on open connections (connection-front.ts): when either is above 0, a TCP front listens on
   * `host:port` and relays to the HTTP server on loopback.
   */
  caps?: ConnectionCaps & { onRefused?: (client: string, reason: "max" | "perClient") => void };
}

export interface Listener {
  readonly port: number;
  readonly hostname: string;
  /** Whether it serves HTTPS. */
  readonly tls: boolean;
  /** `https://0.0.0.0:8443`, `http://127.0.0.1:8080`, `https://[::]:8443`: where it listens. */
  readonly url: string;
  /**
   * Serves `tls` from now on: after it resolves, new connections get the new certificate; requests in
   * flight on the old one are answered. Rejects (and keeps the old certificate) when Bun refuses the
   * pair. Reloads run one after another.
   */
  reload(tls: TlsPair): Promise<void>;
  /** Stops accepting connections and resolves when the requests in flight have been answered. */
  stop(): Promise<void>;
  /** The address of the client that sent `request` (behind a connection cap's front: the front's client), if known. */
  peer(request: Request, server: Server<unknown> | undefined): string | undefined;
}

/** The peer of a request's connection, as Bun.serve sees it. */
const directPeer = (request: Request, server: Server<unknown> | undefined) => server?.requestIP(request)?.address;

/**
 * A body cap Bun never reaches, for a listener whose handlers read bodies with a limit of their own
 * (measured on Bun 1.4.5: with it, a 200 MB body left unread is discarded as it arrives, in constant
 * memory, and the connection carries the next request).
 */
export const UNCAPPED_BODY = Number.MAX_SAFE_INTEGER;

/** Long enough for a busy keep-alive connection to carry one more request and be closed after it. */
export const DEFAULT_DRAIN_MS = 2000;

/** `host:port` in a URL (`[::1]:8443` for IPv6). */
function authority(host: string, port: number): string {
  const h = host.replace(/^\[(.*)\]$/, "$1");
  return `${h.includes(":") ? `[${h}]` : h}:${port}`;
}

export function listen(o: ListenOptions): Listener {
  if (o.caps && (o.caps.max > 0 || o.caps.perClient > 0)) return capped(o, o.caps);
  const drainMs = o.drainMs ?? DEFAULT_DRAIN_MS;
  const start = (port: number, tls: TlsPair | undefined, reusePort: boolean) =>
    Bun.serve({
      port,
      hostname: o.host,
      // Off for plain HTTP (it never reloads), so that a second server on a busy port fails with
      // EADDRINUSE instead of silently sharing its traffic (possibly on another database). With TLS
      // a reload needs it; the probe below refuses a busy port instead.
      reusePort,
      // Bun's development mode answers an exception that escapes the error renderer with an HTML page
      // showing the stack, source lines and working directory.
      development: false,
      maxRequestBodySize: o.maxRequestBodySize,
      tls,
      fetch: o.fetch,
    });
  if (!o.tls) {
    const server = start(o.port, undefined, false);
    const port = server.port!;
    return {
      port,
      hostname: o.host,
      tls: false,
      url: `http://${authority(o.host, port)}`,
      reload: () => Promise.reject(new Error("a plain HTTP listener has no certificate to reload")),
      stop: () => server.stop(false),
      peer: directPeer,
    };
  }
  // The probe: binding without SO_REUSEPORT fails on a port that anything listens on.
  if (o.port !== 0) start(o.port, undefined, false).stop(true);
  let current = start(o.port, o.tls, true);
  // After stop() Bun reports port 0; the port is kept here.
  const port = current.port!;
  /** Old servers in their drain, and the stops of old servers still answering their last requests. */
  const draining = new Set<Server<unknown>>();
  const stopping = new Set<Promise<void>>();
  const retire = (server: Server<unknown>) => {
    const done = server.stop(false);
    stopping.add(done);
    void done.finally(() => stopping.delete(done));
  };
  let stopped: Promise<void> | undefined;
  /** Ends a drain early when the listener stops. */
  let wake = () => {};
  const woken = new Promise<void>((resolve) => (wake = resolve));
  let queue: Promise<void> = Promise.resolve();

  const handOver = async (pair: TlsPair) => {
    if (stopped) throw new Error("the listener is stopped");
    const next = start(port, pair, true);
    const old = current;
    current = next;
    old.reload({
      fetch: async (request: Request, server: Server<unknown>) => {
        const response = await o.fetch(request, server);
        response.headers.set("Connection", "close");
        return response;
      },
    });
    draining.add(old);
    await Promise.race([Bun.sleep(drainMs), woken]);
    // Unless stop() came first and stopped it already.
    if (draining.delete(old)) retire(old);
  };

  return {
    port,
    hostname: o.host,
    tls: true,
    url: `https://${authority(o.host, port)}`,
    reload: (pair) => {
      const run = queue.then(() => handOver(pair));
      queue = run.catch(() => {});
      return run;
    },
    stop: () =>
      (stopped ??= (async () => {
        wake();
        for (const server of [current, ...draining]) retire(server);
        draining.clear();
        await Promise.all(stopping);
      })()),
    peer: directPeer,
  };
}

/** How long a stopping listener lets the front pass on the responses already written, to slow clients. */
const STOP_RELAY_MS = 10_000;

/** The HTTP server on loopback, behind a front that counts and caps connections on `o.host:o.port`. */
function capped(o: ListenOptions, caps: NonNullable<ListenOptions["caps"]>): Listener {
  const inner = listen({ ...o, host: "127.0.0.1", port: 0, caps: undefined });
  let f: Front;
  try {
    f = connectionFront({ host: o.host, port: o.port, upstreamPort: inner.port, max: caps.max, perClient: caps.perClient, onRefused: caps.onRefused });
  } catch (e) {
    void inner.stop();
    throw e;
  }
  let stopped: Promise<void> | undefined;
  return {
    port: f.port,
    hostname: o.host,
    tls: inner.tls,
    url: `${inner.tls ? "https" : "http"}://${authority(o.host, f.port)}`,
    reload: (pair) => inner.reload(pair),
    stop: () =>
      (stopped ??= (async () => {
        f.stop();
        await inner.stop();
        // The last responses may still be on their way through the front to slow clients.
        await f.drained(STOP_RELAY_MS);
        f.closeAll();
      })()),
    peer: (request, server) => {
      const ip = server?.requestIP(request);
      if (!ip) return undefined;
      // Only the front connects from 127.0.0.1 (a local process on another loopback address is itself).
      return (ip.address === "127.0.0.1" ? f.clientOf(ip.port) : undefined) ?? ip.address;
    },
  };
}

/**
 * Why a certificate reload may reset connections being opened at that instant on this machine, or
 * undefined: Linux resets the connections queued on a closing SO_REUSEPORT socket unless
 * net.ipv4.tcp_migrate_req is 1.
 */
export function reloadWarning(read: (path: string) => string = (p) => readFileSync(p, "utf8")): string | undefined {
  let value: string;
  try {
    value = read("/proc/sys/net/ipv4/tcp_migrate_req").trim();
  } catch {
    return undefined; // not Linux, or a kernel before 5.14 (no way to migrate them)
  }
  if (value !== "0") return undefined;
  return (
    "net.ipv4.tcp_migrate_req is 0: when a renewed certificate is loaded, a connection being opened at that instant can be reset " +
    "before its request is sent; set it to 1 to avoid that (echo net.ipv4.tcp_migrate_req=1 > /etc/sysctl.d/90-scimd.conf; sysctl --system)"
  );
}

/** Whether `host` is a loopback address (reachable from this machine only). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

const isWildcard = (host: string) => host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";

/**
 * What a listener on `host` exposes, for the start banner, and a warning when plain HTTP is
 * reachable from other machines (tokens and personal data in clear text).
 */
export function exposure(host: string, tls: boolean): { summary: string; warning?: string } {
  const where = isLoopback(host) ? "on loopback only" : isWildcard(host) ? (host.includes(":") ? "on every interface (IPv6 and IPv4)" : "on every IPv4 interface") : `on ${host}`;
  if (tls) return { summary: `HTTPS ${where}` };
  if (isLoopback(host)) return { summary: `plain HTTP ${where} (put a TLS proxy in front, or serve HTTPS with --tls-cert/--tls-key or --acme-domain)` };
  return {
    summary: `plain HTTP ${where}`,
    warning:
      `plain HTTP is reachable from other machines (--host ${host}): bearer tokens and user data cross the network unencrypted. ` +
      "Listen on 127.0.0.1 behind a TLS proxy, or serve HTTPS with --tls-cert/--tls-key or --acme-domain",
  };
}
