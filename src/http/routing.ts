/**
 * Endpoint names in any case (`/users`, `/GROUPS/{id}`, `/serviceproviderconfig`): Microsoft's SCIM
 * test collection and some clients write them so. Elysia's router is case-sensitive, and registering
 * every casing is not an option, so a request that matched no route lands on the authenticated
 * catch-all route (app.ts), which maps it once to the registered route whose literal segments equal
 * its own ignoring case and dispatches it again. A request in the canonical case never pays for this.
 * The base path itself (`/api/v1/scim`) and the dynamic segments (resource ids) stay case-exact.
 *
 * `routedMethods` answers which methods the router serves a path with, for a 405: it asks Elysia's own
 * route table, so it can never name a method the router would not have served, or miss one it would.
 *
 * The URL helpers below cut the URL string as Bun gives it (already normalised) instead of building a
 * URL object per request. A request without a usable Host header (HTTP/1.0 without one, `Host: a b`)
 * has a path-only URL such as `/nothing`, which `new URL` refuses with a TypeError: none of them fails
 * on it.
 */

/** The end of the origin in `url` (the index of the path's `/`), or -1 for a path-only URL or one without a path. */
function originEnd(url: string): number {
  const scheme = url.indexOf("://");
  return scheme < 0 ? -1 : url.indexOf("/", scheme + 3);
}

/** The origin (`scheme://host[:port]`) of a request URL; "" for a path-only URL, so links are relative. */
export function originOf(url: string): string {
  if (url.indexOf("://") < 0) return "";
  const end = originEnd(url);
  return end < 0 ? url : url.slice(0, end);
}

/** The path of a request URL: `/api/v1/scim/Users` of `http://host/api/v1/scim/Users?count=1`. */
export function pathOf(url: string): string {
  const start = url.indexOf("://") < 0 ? 0 : originEnd(url);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return url.slice(start, q < 0 ? undefined : q) || "/";
}

/**
 * Builds the mapper from a request path to the canonical path of a route registered under
 * `basePath` whose literal segments match it case-insensitively (`:param` segments match anything
 * and are kept as sent). Undefined when no route matches, or the path is already canonical.
 */
export function caseInsensitiveRoutes(basePath: string, routePaths: readonly string[]): (path: string) => string | undefined {
  const prefix = basePath + "/";
  const shapes = [...new Set(routePaths)]
    .filter((p) => p.startsWith(prefix) && p.length > prefix.length)
    .map((p) => p.slice(prefix.length).replace(/\/$/, "").split("/"))
    // Literal segments win over parameters: `/users/.SEARCH` is `/Users/.search`, not an id.
    .sort((a, b) => a.filter((s) => s.startsWith(":")).length - b.filter((s) => s.startsWith(":")).length);
  return (path) => {
    if (!path.startsWith(prefix) || path.length === prefix.length) return undefined;
    const trailing = path.endsWith("/") ? "/" : "";
    const segments = path.slice(prefix.length, trailing ? -1 : undefined).split("/");
    for (const shape of shapes) {
      if (shape.length !== segments.length) continue;
      const out: string[] = [];
      for (let k = 0; k < shape.length; k++) {
        const literal = shape[k]!;
        const sent = segments[k]!;
        if (literal.startsWith(":")) out.push(sent);
        else if (literal.toLowerCase() === sent.toLowerCase()) out.push(literal);
        else break;
      }
      if (out.length !== shape.length) continue;
      const canonical = prefix + out.join("/") + trailing;
      return canonical === path ? undefined : canonical;
    }
    return undefined;
  };
}

/**
 * The same request at another path (method, headers, body and query kept), or undefined when the
 * request URL has no origin to build it on (a request without a usable Host header).
 */
export function withPath(request: Request, path: string): Request | undefined {
  const url = request.url;
  const end = originEnd(url);
  if (end < 0) return undefined;
  const q = url.indexOf("?", end);
  return new Request(url.slice(0, end) + path + (q < 0 ? "" : url.slice(q)), request);
}

/** What `routedMethods` reads of Elysia's route table (`app.router`): static paths by method, and the router for the others. */
export interface RouteTable {
  static: Readonly<Record<string, Readonly<Record<string, number>>>>;
  http: { find(method: string, path: string): unknown };
}

/**
 * The methods among `methods` that Elysia's router serves `path` with, in that order: the "allowed"
 * of a 405. `path` is the path as Elysia routed the request (its context's `path`), and the question
 * goes to the same table it routed by, so a 405 never names a method the router would have served.
 * A static route also answers its path with or without a trailing slash, as Elysia's router does.
 */
export function routedMethods(table: RouteTable, methods: readonly string[], path: string): string[] {
  const loose = path.endsWith("/") ? path.slice(0, -1) : `${path}/`;
  const statics = [table.static[path], table.static[loose]];
  return methods.filter((m) => statics.some((s) => s?.[m] !== undefined) || table.http.find(m, path) !== null);
}
