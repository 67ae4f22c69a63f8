/**
 * The listening socket: Bun.serve with the app's fetch handler, plain HTTP or HTTPS through Bun's
 * own TLS. serve starts one; TLS certificate reloads (a renewed file, an ACME renewal) go through
 * `reload`.
 */
import type { Server } from "bun";

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
  /** Bun's own cap on a request body (above scimd's, which answers 413 itself). */
  maxRequestBodySize: number;
}

export interface Listener {
  readonly port: number;
  readonly hostname: string;
  /** Whether it serves HTTPS. */
  readonly tls: boolean;
  /** Stops accepting connections and resolves when the requests in flight have been answered. */
  stop(): Promise<void>;
}

export function listen(o: ListenOptions): Listener {
  const server = Bun.serve({
    port: o.port,
    hostname: o.host,
    // Off, a second server on a busy port fails with EADDRINUSE instead of silently sharing its
    // traffic (possibly on another database).
    reusePort: false,
    // Bun's development mode answers an exception that escapes the error renderer with an HTML page
    // showing the stack, source lines and working directory.
    development: false,
    maxRequestBodySize: o.maxRequestBodySize,
    tls: o.tls,
    fetch: o.fetch,
  });
  return {
    port: server.port!,
    hostname: o.host,
    tls: o.tls !== undefined,
    stop: () => server.stop(false),
  };
}
