/**
 * Bearer-token authentication for every SCIM route. @elysiajs/bearer reads the token from the
 * Authorization header; only the token's SHA-256 hash is looked up. Repeated failures from one address
 * are slowed down with 429, which never applies to a request that carries a valid token.
 *
 * How the plugin is used, and why. Its derive returns what follows `extract.header` when the header
 * starts with it, and otherwise reads `?access_token=` from ctx.query. Neither half can be left as it is:
 * - The scheme test is `startsWith(extract.header)`: one string, compared case-sensitively, so no option
 *   makes it accept `bearer` or `BEARER`, while RFC 9110 §11.1 makes the scheme name case-insensitive.
 * - The query fallback puts tokens in URLs (and so in access logs), and it dereferences ctx.query, which
 *   Elysia only parses on routes where its static analysis of the handlers' source text (sucrose) sees
 *   `query` used. It sees the plugin's `{ query, headers: { authorization } }` in the source, but
 *   minification turns that into `{query:o,headers:{authorization:i}}`, which sucrose does not read:
 *   in dist/scimd every route without a query schema had no ctx.query, and the fallback threw a
 *   TypeError (500 instead of 401, only in the binary).
 * So the one normalisation below runs just before the plugin's derive: the plugin is handed the
 * Authorization header in its own spelling, `Bearer <credentials>` for the Bearer scheme in any case and
 * `Bearer ` (no credentials) for anything else. It then always answers from the header and never
 * reaches its query fallback, whether or not the route parses its query.
 */
import { bearer } from "@elysiajs/bearer";
import { Elysia } from "elysia";
import { tooManyRequests, unauthorized } from "../scim/errors";
import type { Store } from "../store/store";
import { hashToken } from "../tokens";

/** The scheme as the plugin spells it (its `extract.header`). */
const SCHEME = "Bearer";

/**
 * The Authorization header as the plugin is given it: `Bearer ` and the credentials when the scheme is
 * Bearer in any case (RFC 9110 §11.1), followed by spaces or tabs (RFC 9110 §11.4), else `Bearer ` alone.
 */
function inPluginSpelling(authorization: string | undefined): string {
  if (authorization === undefined || authorization.slice(0, SCHEME.length).toLowerCase() !== "bearer") return `${SCHEME} `;
  const rest = authorization.slice(SCHEME.length);
  return rest === "" || rest[0] === " " || rest[0] === "\t" ? `${SCHEME} ${rest.trimStart()}` : `${SCHEME} `;
}

export interface FailureLimiterOptions {
  /** Failures allowed per address within the window before 429. */
  maxFailures: number;
  windowMs: number;
}

/** Counts failed authentications per client address in a sliding window. */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(private readonly opts: FailureLimiterOptions) {}

  /** Seconds to wait when the address is over the limit, else 0. */
  retryAfter(address: string, now = Date.now()): number {
    const list = this.recent(address, now);
    if (list.length < this.opts.maxFailures) return 0;
    return Math.max(1, Math.ceil((list[0]! + this.opts.windowMs - now) / 1000));
  }

  record(address: string, now = Date.now()): void {
    const list = this.recent(address, now);
    list.push(now);
    this.failures.set(address, list);
    if (this.failures.size > 10_000) for (const [k, v] of this.failures) if (!v.length || v[v.length - 1]! < now - this.opts.windowMs) this.failures.delete(k);
  }

  private recent(address: string, now: number): number[] {
    const list = (this.failures.get(address) ?? []).filter((t) => t > now - this.opts.windowMs);
    if (list.length) this.failures.set(address, list);
    else this.failures.delete(address);
    return list;
  }
}

export function authPlugin(store: Store, limiter: FailureLimiter, addressOf: (request: Request) => string) {
  // Transform runs before Elysia validates params and query, so nothing is checked for a stranger. The
  // first transform must come before the plugin's derive, which reads ctx.headers when it runs.
  return new Elysia({ name: "scim-auth" })
    .onTransform({ as: "scoped" }, ({ headers }) => {
      headers.authorization = inPluginSpelling(headers.authorization);
    })
    .use(bearer({ extract: { header: SCHEME } }))
    .onTransform({ as: "scoped" }, async ({ bearer: token, request }) => {
      await authenticate(store, limiter, () => addressOf(request), token || undefined);
    });
}

/**
 * Throws 401 (or 429 after repeated failures) unless `token` (the Bearer credentials of the request,
 * undefined when it has none) is valid. The client address is only looked up for a failure.
 */
async function authenticate(store: Store, limiter: FailureLimiter, addressOf: () => string, token: string | undefined): Promise<void> {
  if (token !== undefined && (await store.findToken(hashToken(token)))) return;
  const address = addressOf();
  const wait = limiter.retryAfter(address);
  if (wait > 0) throw tooManyRequests(`too many failed authentications from this address; retry after ${wait} s`, wait);
  limiter.record(address);
  throw unauthorized(
    token === undefined
      ? "authentication required: send 'Authorization: Bearer <token>' (create a token with `scimd generate-token`)"
      : "the bearer token is not valid (it may have been revoked); create a new one with `scimd generate-token`",
  );
}
