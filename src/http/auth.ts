/**
 * Bearer-token authentication for every SCIM route. @elysiajs/bearer extracts the token; on top of it:
 * the token is taken from the Authorization header only (the plugin would also read
 * `?access_token=`, and URLs end up in logs), the scheme name is matched case-insensitively
 * (RFC 9110 §11.1), and only the token's SHA-256 hash is looked up. Repeated failures from one address
 * are slowed down with 429, which never applies to a request that carries a valid token.
 */
import { bearer } from "@elysiajs/bearer";
import { Elysia } from "elysia";
import { tooManyRequests, unauthorized } from "../scim/errors";
import type { Store } from "../store/store";
import { hashToken } from "../tokens";

/** The token from `Authorization: Bearer <token>`, any case of "Bearer"; never from the URL. */
export function tokenFromHeader(authorization: string | null, fromPlugin: string | undefined): string | undefined {
  if (!authorization) return undefined;
  if (fromPlugin !== undefined && authorization.startsWith("Bearer ")) return fromPlugin.trim() || undefined;
  const m = authorization.match(/^bearer\s+(\S+)\s*$/i);
  return m ? m[1] : undefined;
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
  // Transform runs before Elysia validates params and query, so nothing is checked for a stranger.
  return new Elysia({ name: "scim-auth" }).use(bearer()).onTransform({ as: "scoped" }, async ({ bearer: fromPlugin, request }) => {
    await authenticate(store, limiter, () => addressOf(request), request.headers.get("authorization"), fromPlugin);
  });
}

/**
 * Throws 401 (or 429 after repeated failures) unless the request carries a valid token. The client
 * address is only looked up for a failure.
 */
export async function authenticate(store: Store, limiter: FailureLimiter, addressOf: () => string, authorization: string | null, fromPlugin?: string): Promise<void> {
  const token = tokenFromHeader(authorization, fromPlugin);
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
