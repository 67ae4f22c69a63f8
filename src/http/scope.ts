/**
 * What scope a request needs, decided in the HTTP layer from its method and path alone: GET and HEAD
 * read, and so does POST …/.search (RFC 7644 §3.4.3: a query sent as a body, since a filter can be
 * too long or too sensitive for a URL); every other method writes. The rule fails closed: a method
 * or a route added later needs the write scope unless it is a GET, a HEAD or a .search, and
 * test/http/token-scope-routes.test.ts walks the app's route table so that such a route cannot be
 * added without a decision written down for it.
 *
 * The path is the one requested, not the route template: a request in another case (`/users/.SEARCH`)
 * is answered by its route only after the catch-all dispatches it again, and the last segment is
 * compared case-insensitively, as routing.ts compares endpoint names.
 */
import type { TokenScope } from "../store/store";

const READ_METHODS = new Set(["GET", "HEAD"]);

/** The scope a request with this method and path needs. */
export function requiredScope(method: string, path: string): TokenScope {
  const m = method.toUpperCase();
  if (READ_METHODS.has(m)) return "read";
  if (m === "POST" && /\/\.search\/?$/i.test(path)) return "read";
  return "write";
}

/** Whether a token of scope `has` may make a request that needs `needs` (write includes read). */
export const permits = (has: TokenScope, needs: TokenScope): boolean => has === "write" || needs === "read";
