/**
 * What is known about one request, for its log line and its metrics: created when the request
 * arrives (request id, client address), filled in on the way (route template, token name, why
 * authentication failed) and finished when its response is complete (status, bytes, duration).
 * The record is found from the Request (a WeakMap), so no layer has to pass it along.
 */
import type { Server } from "bun";

/** Why a request was refused authentication (401, 429) or, with a valid token, authorization (403); a reason, never the token. */
export type AuthFailure = "missing header" | "malformed header" | "no such token" | "revoked" | "expired" | "rate limited" | "insufficient scope";

export interface RequestInfo {
  /** The incoming X-Request-Id when it is usable, else a generated one; returned as X-Request-Id. */
  readonly id: string;
  /** performance.now() when the request arrived. */
  readonly start: number;
  readonly method: string;
  /** The path as sent (no query string). */
  readonly path: string;
  /** The client address (the peer, or X-Forwarded-For's client behind a trusted proxy). */
  readonly client: string;
  /**
   * The origin the client addressed when the request had to be routed under another one (no Host,
   * or one too short for Elysia): links are built on it. Empty for a request without a Host.
   */
  origin?: string;
  /** The route template that answered (`/api/v1/scim/Users/:id`), when one did. */
  route?: string;
  /** The name of the token the request authenticated with (its name, never its secret). */
  token?: string;
  authFailure?: AuthFailure;
  /** The id in the route (`:id`), or the id a create answered with (its Location). */
  resourceId?: string;
  /** Set when the log wants request bodies (debug): readJsonBody then keeps the parsed body in `body`. */
  readonly captureBody?: boolean;
  /** The parsed request body, only when `captureBody` is set. */
  body?: unknown;
  /** Set when the client went away before a streamed body was complete. */
  aborted?: boolean;
  status?: number;
  /** Bytes of the response body sent (0 for a HEAD, a 204 or a 304). */
  bytes?: number;
  durationMs?: number;
}

// Each record rides on its Request (and a body size on its Response) as a symbol-keyed property:
// measured, a WeakMap entry per request cost 0.2-0.5 µs more, and more garbage-collector work.
const INFO = Symbol("scimd.requestInfo");
const SIZE = Symbol("scimd.bodySize");
const STREAMED = Symbol("scimd.streamed");
type Noted<T, K extends symbol, V> = T & { [key in K]?: V };
const infos = {
  get: (request: Request) => (request as Noted<Request, typeof INFO, RequestInfo>)[INFO],
  set: (request: Request, info: RequestInfo) => void ((request as Noted<Request, typeof INFO, RequestInfo>)[INFO] = info),
};
/** Body sizes of responses whose size is known where they are made (a string body). */
const sizes = {
  get: (response: Response) => (response as Noted<Response, typeof SIZE, number>)[SIZE],
  set: (response: Response, bytes: number) => void ((response as Noted<Response, typeof SIZE, number>)[SIZE] = bytes),
};
/** Responses whose body is a stream to be counted as it is sent. */
const streamed = {
  has: (response: Response) => (response as Noted<Response, typeof STREAMED, true>)[STREAMED] === true,
  add: (response: Response) => void ((response as Noted<Response, typeof STREAMED, true>)[STREAMED] = true),
};

/** Records the size of a response's body where it is made, so that the edge need not read it. */
export function noteBodySize(response: Response, bytes: number): Response {
  sizes.set(response, bytes);
  return response;
}

/** Marks a response whose body is streamed: the edge counts its bytes as they go. */
export function noteStreamed(response: Response): Response {
  streamed.add(response);
  return response;
}

/**
 * Notes on the request's record the size of the error response it is answered with: Elysia may
 * answer an error raised before the handler with a copy of that response, which the size noted on
 * the response would not follow.
 */
export function noteErrorResponse(request: Request, response: Response): Response {
  const info = infos.get(request);
  const bytes = sizes.get(response);
  if (info && bytes !== undefined) info.bytes = bytes;
  return response;
}

export function infoOf(request: Request): RequestInfo | undefined {
  return infos.get(request);
}

/** Makes `info` the record of `request` too (a copy of a request dispatched again). */
export function shareInfo(from: Request, to: Request): void {
  const info = infos.get(from);
  if (info) infos.set(to, info);
}

/** An X-Request-Id a client may choose: short, printable, no spaces (so that it is safe in a log line). */
const USABLE_ID = /^[A-Za-z0-9._:@\/+=-]{1,128}$/;

function pathOfUrl(url: string): string {
  // A request without a usable Host header comes with a path-only URL (`/api/v1/scim/Users`).
  const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}

/** The Content-Length a response declares, if any (asked only when its size was not noted). */
function contentLength(response: Response): number | undefined {
  const length = response.headers.get("content-length");
  return length === null ? undefined : Number(length);
}

/**
 * A request id of scimd's own: this process's random prefix and a counter, unique across restarts
 * with overwhelming probability and far cheaper than a random UUID per request.
 */
const ID_PREFIX = crypto.randomUUID().slice(0, 8);
let idCounter = 0;
export function newRequestId(): string {
  return `${ID_PREFIX}-${(++idCounter).toString(36)}`;
}

/**
 * A copy of `request` whose URL Elysia routes by the right path. Elysia takes the path from the
 * first `/` at index 11 or later (just past `http://a.b`), so a path-only URL (no usable Host:
 * HTTP/1.0 without one) or a shorter origin (`Host: x`, `Host: lb`) was routed by another path. The
 * copy is addressed to `http://localhost`, which Elysia and routing.ts read right; the origin the
 * client addressed (empty for none, so that links stay relative) is kept in the record's `origin`,
 * which the app builds Location and meta.location on.
 */
function routable(request: Request, url: string, info: RequestInfo): Request {
  if (url.charCodeAt(0) === 47) {
    info.origin = "";
    return new Request(`http://localhost${url}`, request);
  }
  const end = url.indexOf("/", url.indexOf("://") + 3);
  info.origin = end < 0 ? url : url.slice(0, end);
  return new Request(`http://localhost${end < 0 ? "/" : url.slice(end)}`, request);
}

export interface EdgeOptions {
  /** The client address of a request on this server. */
  clientAddress: (request: Request, server: Server<unknown> | undefined) => string;
  /** Called once per request, when its response body has been sent (or the client went away). */
  onFinish?: (info: RequestInfo) => void;
  /** Keep each request's parsed body in its record (for a debug log line). */
  captureBodies?: boolean;
}

/**
 * The server's fetch handler around the app's: creates the request's record, answers with
 * X-Request-Id, and finishes the record when the body is complete.
 */
export function edgeHandler(handle: (request: Request) => Promise<Response>, o: EdgeOptions) {
  const captureBody = o.captureBodies === true;
  return async (request: Request, server?: Server<unknown>): Promise<Response> => {
    const incoming = request.headers.get("x-request-id");
    const info: RequestInfo = {
      id: incoming !== null && USABLE_ID.test(incoming) ? incoming : newRequestId(),
      start: performance.now(),
      method: request.method,
      path: pathOfUrl(request.url),
      client: o.clientAddress(request, server),
      captureBody,
    };
    infos.set(request, info);
    // One check for a normal URL: a path-only one, or a `/` within `http://a.b`'s 11 characters (past `https://`).
    const url = request.url;
    let handled = request;
    if (url.charCodeAt(0) === 47 || url.lastIndexOf("/", 10) > 7) infos.set((handled = routable(request, url, info)), info);
    const response = await handle(handled);
    response.headers.set("X-Request-Id", info.id);
    info.status = response.status;
    if (info.status === 201 && info.resourceId === undefined) {
      const location = response.headers.get("location");
      if (location !== null) info.resourceId = location.slice(location.lastIndexOf("/") + 1);
    }
    let finished = false;
    const finish = (bytes: number | undefined) => {
      if (finished) return;
      finished = true;
      info.bytes = bytes;
      info.durationMs = performance.now() - info.start;
      o.onFinish?.(info);
    };
    // No body goes out for a HEAD, a 204 or a 304 (RFC 9110 §9.3.2, §15.3.5, §15.4.5), whatever size the response was made with.
    if (info.status === 204 || info.status === 304 || info.method === "HEAD") finish(0);
    else if (!streamed.has(response) || response.body === null) {
      finish(sizes.get(response) ?? info.bytes ?? contentLength(response));
    } else {
      // A streamed body (a large group): counted as it goes, finished when it ends.
      let bytes = 0;
      // `cancel` (a transformer member Bun implements, missing from the DOM types) runs when the client goes away.
      const counter: Transformer<Uint8Array, Uint8Array> & { cancel(): void } = {
        transform(chunk, controller) {
          bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
        flush() {
          finish(bytes);
        },
        // The client went away before the end: the record says so, with the bytes sent until then.
        cancel() {
          info.aborted = true;
          finish(bytes);
        },
      };
      const counted = response.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>(counter));
      return new Response(counted, { status: response.status, statusText: response.statusText, headers: response.headers });
    }
    return response;
  };
}
