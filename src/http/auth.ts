/**
 * Bearer-token authentication for every SCIM route, resolving the caller: the token record becomes
 * `caller` in the request context (an Elysia derive), for the operations to carry. @elysiajs/bearer
 * reads the token from the Authorization header; only the token's SHA-256 hash is looked up. Repeated
 * failures from one address are slowed down with 429, which never applies to a request that carries a
 * valid token. Derives run in Elysia's transform phase: before validation and before any handler
 * reads a body, so a stranger learns nothing about a route, known or not. A valid token whose scope
 * does not allow the request (a read token's write, scope.ts) is refused there too, with 403.
 *
 * How the plugin is used, and why. Its derive returns what follows `extract.header` (plus one
 * separator character) when the header starts with it, and otherwise reads `?access_token=` from
 * ctx.query. Two things in that cannot be configured away:
 * - The scheme test is `startsWith(extract.header)`: one string, compared case-sensitively, so no option
 *   makes it accept `bearer` or `BEARER`, while RFC 9110 §11.1 makes the scheme name case-insensitive.
 * - The query fallback puts tokens in URLs (and so in access logs), and it dereferences ctx.query, which
 *   Elysia only parses on routes where its static analysis of the handlers' source text (sucrose) sees
 *   `query` used. It sees the plugin's `{ query, headers: { authorization } }` in the source, but
 *   minification turns that into `{query:o,headers:{authorization:i}}`, which sucrose does not read:
 *   in dist/scimd every route without a query schema had no ctx.query, and the fallback threw a
 *   TypeError (500 instead of 401, only in the binary).
 * So one transform, registered just before the plugin's derive, touches the header and only its scheme
 * name: a Bearer scheme in any case (followed by whitespace or nothing, RFC 9110 §11.4) is spelled
 * `Bearer`, as the plugin compares it; any other value (another scheme, a bare token, none) becomes
 * `Bearer` with no credentials. The plugin then always answers from the header, so its query fallback
 * is never reached on any route, in the source and in the binary alike, and the credentials are still
 * cut out by the plugin, not by a second parser here. The only step after it: the plugin skips exactly
 * one character after the scheme, so further spaces or tabs before the token (`Bearer  <token>`) are
 * trimmed from what it returns.
 */
import { bearer } from "@elysiajs/bearer";
import { Elysia } from "elysia";
import { expiredToken, insufficientScope, tooManyRequests, unauthorized } from "../scim/errors";
import type { TokenRecord, TokenRefusalDetail, TokenStore } from "../store/store";
import { hashToken } from "../tokens";
import { formatIp, parseIp } from "./client-address";
import { infoOf, type AuthFailure, type RequestInfo } from "./observe";
import { pathOf } from "./routing";
import { permits, requiredScope } from "./scope";

/** The scheme as the plugin spells it (its `extract.header`). */
const SCHEME = "Bearer";
/** The Bearer scheme in any case, followed by whitespace or the end of the value. */
const BEARER_SCHEME = /^bearer(?![^ \t])/i;

/** The Authorization header as the plugin is given it: the scheme in the plugin's spelling, or `Bearer` alone. */
function inPluginSpelling(authorization: string | undefined): string {
  if (authorization === undefined || !BEARER_SCHEME.test(authorization)) return SCHEME;
  return authorization.startsWith(SCHEME) ? authorization : SCHEME + authorization.slice(SCHEME.length);
}

export interface FailureLimiterOptions {
  /** Failures allowed per address within the window before 429 (0: no limit). */
  maxFailures: number;
  windowMs: number;
  /**
   * How many client addresses (IPv6: /64 networks) it remembers at most (MAX_LIMITED_CLIENTS when
   * absent); past that, the one seen least recently is forgotten.
   */
  maxClients?: number;
}

/** How many client addresses the failed-auth limiter remembers at most (about 500 bytes each, measured: 24 MB for 50,000). */
export const MAX_LIMITED_CLIENTS = 50_000;

/**
 * The key an address is limited under: an IPv4 address as itself (an IPv4-mapped IPv6 address too),
 * an IPv6 address by its /64 network (one site or host is usually given a whole /64, so an attacker
 * can pick a new address for each attempt inside it), anything else (no address known) as it is.
 */
export function limiterKey(address: string): string {
  const bytes = parseIp(address);
  if (!bytes) return address;
  if (bytes.length === 4) return formatIp(bytes);
  const network = new Uint8Array(16);
  network.set(bytes.subarray(0, 8));
  return `${formatIp(network)}/64`;
}

/** How many buckets the window is cut into: a client's record has this fixed size, whatever the limit. */
export const LIMITER_BUCKETS = 16;

/**
 * One client's failures in the last LIMITER_BUCKETS buckets of window/LIMITER_BUCKETS each: `counts[i]`
 * failures in bucket number `stamps[i]` (a bucket number is the time divided by the bucket's length).
 */
interface FailureBuckets {
  counts: Uint32Array;
  stamps: Float64Array;
}

/**
 * Counts failed authentications per client (limiterKey) in a sliding window, at a cost that depends
 * neither on how many clients there are nor on the limit: each client has a fixed-size record of
 * LIMITER_BUCKETS buckets (the window moves a bucket at a time, window/16: 3.75 s of a minute), so a
 * check and a record touch one client's buckets; the map of clients is kept in order of last failure
 * (a Map iterates in insertion order, and a client that fails again is moved to its end) and capped at
 * `maxClients`, the client that failed least recently being dropped first. Nothing is ever scanned.
 */
export class FailureLimiter {
  private readonly clients = new Map<string, FailureBuckets>();
  private readonly maxClients: number;
  private readonly bucketMs: number;
  constructor(private readonly opts: FailureLimiterOptions) {
    this.maxClients = Math.max(1, opts.maxClients ?? MAX_LIMITED_CLIENTS);
    this.bucketMs = Math.max(1, Math.ceil(opts.windowMs / LIMITER_BUCKETS));
  }

  /** How many clients it remembers now (never more than `maxClients`). */
  get size(): number {
    return this.clients.size;
  }

  /** Seconds to wait when the address is over the limit, else 0. */
  retryAfter(address: string, now = Date.now()): number {
    if (this.opts.maxFailures < 1) return 0; // 0 turns the limit off
    const b = this.clients.get(limiterKey(address));
    if (!b) return 0;
    const current = Math.floor(now / this.bucketMs);
    const first = current - LIMITER_BUCKETS + 1;
    let total = 0;
    for (let i = 0; i < LIMITER_BUCKETS; i++) if (b.stamps[i]! >= first) total += b.counts[i]!;
    if (total < this.opts.maxFailures) return 0;
    // Under the limit again once enough of the oldest buckets have left the window.
    for (let bucket = first; bucket <= current; bucket++) {
      const i = bucket % LIMITER_BUCKETS;
      if (b.stamps[i] === bucket) total -= b.counts[i]!;
      if (total < this.opts.maxFailures) return Math.max(1, Math.ceil(((bucket + LIMITER_BUCKETS) * this.bucketMs - now) / 1000));
    }
    return Math.max(1, Math.ceil(this.opts.windowMs / 1000));
  }

  record(address: string, now = Date.now()): void {
    if (this.opts.maxFailures < 1) return;
    const key = limiterKey(address);
    let b = this.clients.get(key);
    if (b) this.clients.delete(key);
    else {
      b = { counts: new Uint32Array(LIMITER_BUCKETS), stamps: new Float64Array(LIMITER_BUCKETS).fill(-Infinity) };
      if (this.clients.size >= this.maxClients) this.clients.delete(this.clients.keys().next().value!);
    }
    // Re-inserted: the map's first entry is always the client that failed least recently.
    this.clients.set(key, b);
    const bucket = Math.floor(now / this.bucketMs);
    const i = bucket % LIMITER_BUCKETS;
    if (b.stamps[i] !== bucket) {
      b.stamps[i] = bucket;
      b.counts[i] = 0;
    }
    b.counts[i]!++;
  }
}

/**
 * The authentication plugin: every route of an instance that uses it (and of the instance that uses
 * that one) answers 401/429 unless the request carries a valid token, and has `caller`, the token's
 * record, in its context. Controllers use the same instance for the type of `caller`; Elysia
 * registers a named plugin once per app, so the hooks run once per request.
 */
export function authPlugin(tokens: TokenStore, limiter: FailureLimiter, addressOf: (request: Request) => string) {
  // The transform must come before the plugin's derive, which reads ctx.headers when it runs.
  return new Elysia({ name: "scim-auth" })
    .onTransform({ as: "scoped" }, ({ headers }) => {
      headers.authorization = inPluginSpelling(headers.authorization);
    })
    .use(bearer({ extract: { header: SCHEME } }))
    .derive({ as: "scoped" }, async ({ bearer: credentials, request, params }) => {
      // The request's record (absent under app.handle without the edge) learns the id and who asked;
      // app.ts's global transform has given it the route already.
      const info = infoOf(request);
      if (info) {
        const id = (params as Record<string, string | undefined> | undefined)?.id;
        if (id !== undefined) info.resourceId = id;
      }
      const caller = await authenticate(tokens, limiter, () => addressOf(request), credentials?.trimStart() || undefined, request, info);
      if (info) info.token = caller.name;
      const needs = requiredScope(request.method, pathOf(request.url));
      if (!permits(caller.scope, needs)) {
        if (info) info.authFailure = "insufficient scope";
        throw insufficientScope(
          `this token has scope '${caller.scope}'; creating, replacing, patching and deleting need a token with scope '${needs}' (scimd generate-token --scope ${needs})`,
          needs,
        );
      }
      return { caller };
    });
}

/** Why a request without usable credentials was refused: its Authorization header as sent (never kept). */
function headerFailure(request: Request): AuthFailure {
  return request.headers.has("authorization") ? "malformed header" : "missing header";
}

/**
 * The record of `token` (the Bearer credentials of the request, undefined when it has none); throws
 * 401 (or 429 after repeated failures) unless it is valid. The client address is only looked up for a
 * failure.
 */
async function authenticate(
  tokens: TokenStore,
  limiter: FailureLimiter,
  addressOf: () => string,
  token: string | undefined,
  request: Request,
  info: RequestInfo | undefined,
): Promise<TokenRecord> {
  const hash = token === undefined ? undefined : hashToken(token);
  const found = hash === undefined ? undefined : await tokens.findToken(hash);
  if (found) return found;
  // A secret that existed and expired is answered as such before the limiter sees it: whoever sends it
  // held a real secret, and a client retrying with it must keep hearing why (not a 429 after 20 tries).
  const refused = hash === undefined ? undefined : await tokens.refusal(hash);
  if (refused?.reason === "expired") {
    if (info) info.authFailure = refused.reason;
    throw refusalError(refused);
  }
  const address = addressOf();
  const wait = limiter.retryAfter(address);
  if (wait > 0) {
    if (info) info.authFailure = "rate limited";
    throw tooManyRequests(`too many failed authentications from this address; retry after ${wait} s`, wait);
  }
  limiter.record(address);
  if (refused === undefined) {
    if (info) info.authFailure = headerFailure(request);
    throw unauthorized("authentication required: send 'Authorization: Bearer <token>' (create a token with `scimd generate-token`)");
  }
  if (info) info.authFailure = refused.reason;
  throw refusalError(refused);
}

/**
 * The 401 for a secret that was sent and refused. Only a secret that existed and expired is told so
 * (with when): whoever sends it held a real secret. A revoked secret and one never created get the
 * same answer, so a token cannot be probed for having been revoked.
 */
export function refusalError(refused: TokenRefusalDetail) {
  if (refused.reason !== "expired") return unauthorized("the bearer token is not valid (it may have been revoked); create a new one with `scimd generate-token`");
  return expiredToken(
    refused.by === "lifetime"
      ? `the bearer token expired at ${refused.at} (the end of the lifetime it was created with); give it a new secret with \`scimd tokens rotate NAME\` (NAME as \`scimd tokens list\` shows this token) and put that into the client`
      : `the bearer token expired at ${refused.at}: it was replaced by \`scimd tokens rotate\` and its grace period has ended; use the token's new secret`,
  );
}
