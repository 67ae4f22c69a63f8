/**
 * createApp(deps) builds the Elysia app; it never listens (serve does; tests use app.handle or port 0).
 * Layers: HTTP (this, src/http) → SCIM domain (src/scim) → store interface (src/store).
 */
import { Elysia, NotFoundError } from "elysia";
import { DEFAULTS } from "./config";
import { createLogger, type Logger } from "./log";
import { authPlugin, FailureLimiter } from "./http/auth";
import { discoveryController } from "./http/discovery";
import { resourceController, rootSearchController } from "./http/resources";
import { infoOf, noteBodySize, shareInfo } from "./http/observe";
import { caseInsensitiveRoutes, originOf, pathOf, routedMethods, withPath } from "./http/routing";
import { errorResponse, NO_STORE, scimPlugin } from "./http/scim-plugin";
import { ScimError } from "./scim/errors";
import { ScimOperations } from "./scim/operations";
import { MAX_OPERATIONS } from "./scim/patch";
import type { Store } from "./store/store";
import { VERSION } from "./version";

export const SCIM_BASE_PATH = "/api/v1/scim";

/** The paths answered without authentication, outside the SCIM base path: the probes. */
export const PROBE_PATHS: readonly string[] = ["/healthz", "/readyz"];

/** How long /readyz waits for the database's write lock before answering 503 (a probe's own timeout is often 1 s). */
export const READY_TIMEOUT_MS = 800;

export interface AppOptions {
  store: Store;
  /** Public base URL of the SCIM API (ending in /api/v1/scim); derived from each request when absent. */
  baseUrl?: string;
  strict?: boolean;
  maxResults?: number;
  /** The most group members one list response carries (--max-list-members). */
  maxListMembers?: number;
  maxBodyBytes?: number;
  /** Failed authentications per address per minute before 429. */
  authFailuresPerMinute?: number;
  /** The operator's log; lines at warn and above on stdout when absent. */
  logger?: Logger;
  /** The client address of a request (the edge's record: the peer, or X-Forwarded-For's client behind a trusted proxy), for the failed-auth limiter. */
  addressOf?: (request: Request) => string;
  /** How long /readyz waits for the database's write lock (READY_TIMEOUT_MS). */
  readyTimeoutMs?: number;
}

/** A probe's answer, its size noted for the request line (as scimResponse notes a SCIM body's). */
const json = (status: number, body: unknown) => {
  const text = JSON.stringify(body);
  return noteBodySize(new Response(text, { status, headers: { "Content-Type": "application/json", ...NO_STORE } }), Buffer.byteLength(text));
};

export function createApp(o: AppOptions) {
  const logger = o.logger ?? createLogger({ level: "warn", format: "json" });
  const maxResults = o.maxResults ?? DEFAULTS.maxResults;
  const maxBodyBytes = o.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const operations = new ScimOperations(o.store, { strict: o.strict ?? false, maxResults, maxListMembers: o.maxListMembers ?? DEFAULTS.maxListMembers, logger });
  // A Location header holds ASCII only: a base URL with other characters (an internationalised host
  // name, a path in another script) is taken in its ASCII form (punycode, percent-encoding).
  const configured = (o.baseUrl !== undefined && /[^\x20-\x7e]/.test(o.baseUrl) ? new URL(o.baseUrl).href : o.baseUrl)?.replace(/\/+$/, "");
  // A request the edge had to route under another origin (no Host, a very short one) keeps the one it addressed.
  const baseUrl = (request: Request) => configured ?? `${infoOf(request)?.origin ?? originOf(request.url)}${SCIM_BASE_PATH}`;
  const limiter = new FailureLimiter({ maxFailures: o.authFailuresPerMinute ?? DEFAULTS.authFailuresPerMinute, windowMs: 60_000 });
  const addressOf = o.addressOf ?? (() => "local");
  const auth = authPlugin(o.store, limiter, addressOf);
  const deps = { operations, auth, baseUrl, maxBodyBytes };

  // The methods the router serves a path with (for 405), set once the app exists (below).
  let allowedMethods: (path: string) => string[] = () => [];
  let routeOf: (path: string) => string | undefined = () => undefined;
  // Both set once the app exists (below): the catch-all route dispatches a request again through it.
  let canonicalPath: ((path: string) => string | undefined) | undefined;
  let dispatch: ((request: Request) => Promise<Response>) | undefined;
  // Any other path under the base is authenticated like a route first. Then an endpoint name written
  // in another case (`/users`) is answered by its route (routing.ts), and anything else is told 404 or
  // 405 by the error renderer, so a stranger cannot probe which endpoints exist.
  const noRoute = ({ request }: { request: Request }) => {
    const canonical = canonicalPath?.(pathOf(request.url));
    const copy = canonical === undefined ? undefined : withPath(request, canonical);
    if (!copy || !dispatch) throw new NotFoundError();
    shareInfo(request, copy);
    return dispatch(copy);
  };
  const scim = new Elysia({ prefix: SCIM_BASE_PATH })
    .use(auth)
    .use(discoveryController({ maxResults, maxPayloadBytes: maxBodyBytes, maxOperations: MAX_OPERATIONS }, deps))
    .use(resourceController("User", deps))
    .use(resourceController("Group", deps))
    .use(rootSearchController(deps))
    .post("/Bulk", () => {
      throw new ScimError(501, "bulk operations are not supported (see /ServiceProviderConfig)");
    })
    .all("/Me", () => {
      throw new ScimError(501, "/Me is not supported: tokens identify a provisioning client, not a user");
    })
    .all("", noRoute, { parse: "none" })
    .all("/*", noRoute, { parse: "none" });

  const readyTimeoutMs = o.readyTimeoutMs ?? READY_TIMEOUT_MS;
  const app = new Elysia()
    .use(scimPlugin({ allowedMethods: (path) => allowedMethods(path), routeOf: (path) => routeOf(path), logger }))
    // The request's record gets the template of the route that answers (metrics and logs label by it, never by the path).
    .onTransform({ as: "global" }, ({ route, request }) => {
      const info = infoOf(request);
      if (info) info.route = route;
    })
    // Both without authentication: a probe has no token. /healthz: the process answers; /readyz: so does the database.
    .get("/healthz", () => json(200, { status: "ok", version: VERSION }))
    .get("/readyz", async () => {
      const r = await o.store.ready(readyTimeoutMs);
      if (r.ok) return json(200, { status: "ok" });
      return errorResponse(new ScimError(503, `not ready: ${r.reason}`, undefined, { "Retry-After": "5" }));
    })
    .use(scim);

  const real = app.routes.filter((r) => r.handler !== noRoute);
  canonicalPath = caseInsensitiveRoutes(SCIM_BASE_PATH, real.map((r) => r.path));
  dispatch = (request) => app.handle(request);
  // An ALL route serves every method, so it never leaves one to refuse: the methods a 405 can name are the others.
  const methods = [...new Set(real.map((r) => r.method))].filter((m) => m !== "ALL");
  allowedMethods = (path) => routedMethods(app.router, methods, path);
  // Templates as patterns (`:id` one segment), a trailing slash either way; the catch-alls are not templates of a path.
  const templates = real
    .filter((r) => r.method !== "ALL" && !r.path.includes("*"))
    .sort((a, b) => Number(a.path.includes(":")) - Number(b.path.includes(":")))
    .map((r) => ({ template: r.path, re: new RegExp(`^${r.path.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+")}/?$`) }));
  routeOf = (path) => templates.find((t) => t.re.test(path))?.template;
  return app;
}
