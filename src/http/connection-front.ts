/**
 * Connection caps (`--max-connections`, `--max-connections-per-client`): a TCP front on the API's
 * port that counts connections and refuses one past a cap as soon as it is accepted, before any of
 * its bytes are read, then relays every accepted connection, bytes as they are (TLS included), to
 * the HTTP server listening on loopback.
 *
 * Bun's HTTP server has no hook where a new connection could be counted or refused (only requests
 * reach the fetch handler), hence a front of its own. It costs a loopback hop per connection and
 * about a third of the requests per second of a minimal handler (measured), which is why it runs only
 * when a cap is set. Established connections are never touched by a cap: it only decides whether a
 * new one is let in. The HTTP server still ends a connection idle for 10 s, which ends its client's
 * connection here too.
 *
 * The server sees each relayed connection as coming from 127.0.0.1 on the port the front connected
 * from; `clientOf` gives the client address behind that port, for the log and the failed-auth limiter.
 * A client is an address as the failed-auth limiter counts it: IPv4 as itself, IPv6 by its /64.
 */
import type { Socket, TCPSocketListener } from "bun";
import { limiterKey } from "./auth";

export interface ConnectionCaps {
  /** Open connections at most, all clients together (0: no cap). */
  max: number;
  /** Open connections from one client (an IPv4 address, an IPv6 /64) at most (0: no cap). */
  perClient: number;
}

export interface FrontOptions extends ConnectionCaps {
  host: string;
  port: number;
  /** The HTTP server the connections are relayed to, on 127.0.0.1. */
  upstreamPort: number;
  /** Told of each connection refused (for the log). */
  onRefused?: (client: string, reason: "max" | "perClient") => void;
}

export interface Front {
  readonly port: number;
  /** The client address behind the relayed connection that the HTTP server sees coming from `port` on 127.0.0.1. */
  clientOf(port: number): string | undefined;
  /** Stops accepting; connections open go on until either side ends them. */
  stop(): void;
  /** Resolves when no connection is open any more, or after `ms`. */
  drained(ms: number): Promise<void>;
  /** Ends every connection at once. */
  closeAll(): void;
}

/** A client's connection and its relay to the server. */
interface Pair {
  client: Socket<Pair>;
  address: string;
  key: string;
  upstream?: Socket<Pair>;
  /** Bytes waiting to be written to the server (before it is connected, or while it is not reading). */
  toUpstream: Uint8Array[];
  /** Bytes waiting to be written to the client (while it is not reading). */
  toClient: Uint8Array[];
  /** The client's side has ended: the server's is ended once its bytes are written. */
  clientEnded: boolean;
  upstreamEnded: boolean;
  closed: boolean;
}

/**
 * How long the client address behind a relayed connection is kept after that connection closed:
 * the HTTP server may still be reading a request the client sent just before it went away.
 */
const KEEP_ADDRESS_MS = 5000;

/** Writes what `queue` holds, then `data`, to `to`; keeps what does not fit and pauses `from` until `to` drains. */
function send(to: Socket<Pair>, from: Socket<Pair> | undefined, queue: Uint8Array[], data?: Uint8Array): void {
  if (data) queue.push(data);
  while (queue.length) {
    const chunk = queue[0]!;
    const n = to.write(chunk);
    if (n < 0) return; // closed: its close handler ends the pair
    if (n < chunk.length) {
      queue[0] = chunk.subarray(n);
      from?.pause();
      return;
    }
    queue.shift();
  }
  from?.resume();
}

export function connectionFront(o: FrontOptions): Front {
  let open = 0;
  const perClient = new Map<string, number>();
  /** The pair behind each upstream connection, by its local port. */
  const byPort = new Map<number, Pair>();
  const pairs = new Set<Pair>();
  /** Who waits for the last connection to close (drained). */
  const waiters = new Set<() => void>();

  const finish = (p: Pair) => {
    if (p.closed) return;
    p.closed = true;
    pairs.delete(p);
    open--;
    const n = (perClient.get(p.key) ?? 1) - 1;
    if (n > 0) perClient.set(p.key, n);
    else perClient.delete(p.key);
    if (open === 0) for (const done of [...waiters]) done();
  };

  /**
   * Passes the client's end on to the server once what the client sent has been written: a FIN
   * only, so that the server may still answer a request the client sent before it (a half-close).
   */
  const endUpstream = (p: Pair) => {
    if (!p.upstream) return;
    if (!p.toUpstream.length) p.upstream.shutdown();
  };
  const endClient = (p: Pair) => {
    if (!p.toClient.length) p.client.end();
  };

  const connectUpstream = (p: Pair) => {
    Bun.connect<Pair>({
      hostname: "127.0.0.1",
      port: o.upstreamPort,
      data: p,
      allowHalfOpen: true,
      socket: {
        open(s) {
          if (p.closed) return void s.end();
          p.upstream = s;
          byPort.set(s.localPort, p);
          s.setNoDelay(true);
          send(s, p.client, p.toUpstream);
          if (p.clientEnded) endUpstream(p);
        },
        data(s, chunk) {
          send(p.client, s, p.toClient, chunk);
        },
        drain(s) {
          send(s, p.client, p.toUpstream);
          if (p.clientEnded) endUpstream(p);
        },
        end(s) {
          p.upstreamEnded = true;
          endClient(p);
          s.end();
        },
        close(s) {
          const port = s.localPort;
          setTimeout(() => {
            if (byPort.get(port) === p) byPort.delete(port);
          }, KEEP_ADDRESS_MS).unref();
          p.upstreamEnded = true;
          endClient(p);
        },
        error() {},
        connectError() {
          // The HTTP server is not there (stopping): the client's connection ends.
          p.upstreamEnded = true;
          p.client.end();
        },
      },
    }).catch(() => {
      p.upstreamEnded = true;
      p.client.end();
    });
  };

  const listener: TCPSocketListener<Pair> = Bun.listen<Pair>({
    hostname: o.host,
    port: o.port,
    // A client's FIN ends only its sending side: its response still comes (endUpstream).
    allowHalfOpen: true,
    socket: {
      open(s) {
        const address = s.remoteAddress;
        const key = limiterKey(address);
        const mine = perClient.get(key) ?? 0;
        const refused = o.max > 0 && open >= o.max ? "max" : o.perClient > 0 && mine >= o.perClient ? "perClient" : undefined;
        if (refused) {
          // Nothing is read from it, and no state is kept.
          s.terminate();
          o.onRefused?.(address, refused);
          return;
        }
        open++;
        perClient.set(key, mine + 1);
        const p: Pair = { client: s, address, key, toUpstream: [], toClient: [], clientEnded: false, upstreamEnded: false, closed: false };
        s.data = p;
        pairs.add(p);
        s.setNoDelay(true);
        connectUpstream(p);
      },
      data(s, chunk) {
        const p = s.data;
        if (!p || p.closed) return;
        if (!p.upstream) {
          // Held until the server's side is connected: a client may send its request at once.
          p.toUpstream.push(chunk);
          s.pause();
          return;
        }
        send(p.upstream, s, p.toUpstream, chunk);
      },
      drain(s) {
        const p = s.data;
        if (!p || p.closed) return;
        send(s, p.upstream, p.toClient);
        if (p.upstreamEnded) endClient(p);
      },
      end(s) {
        const p = s.data;
        if (!p) return;
        p.clientEnded = true;
        endUpstream(p);
      },
      close(s) {
        const p = s.data;
        if (!p) return;
        p.clientEnded = true;
        finish(p);
        if (p.upstream) p.upstream.end();
      },
      error() {},
    },
  });

  return {
    port: listener.port,
    clientOf: (port) => byPort.get(port)?.address,
    stop: () => listener.stop(false),
    drained: (ms) =>
      open === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              waiters.delete(done);
              resolve();
            };
            const timer = setTimeout(done, ms);
            waiters.add(done);
          }),
    closeAll: () => {
      listener.stop(true);
      for (const p of [...pairs]) {
        p.client.terminate();
        p.upstream?.terminate();
      }
    },
  };
}
