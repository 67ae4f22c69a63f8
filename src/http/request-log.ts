/**
 * The one log line of a request, written when its response is complete (edgeHandler's onFinish):
 * what was asked (method, route template, path, SCIM operation, resource type and id), by whom
 * (token name, client address), what came of it (status, bytes, duration; why authentication
 * failed). Never a token, an Authorization header or a body; at debug the request body, with its
 * passwords redacted, goes on a `request body` line of its own (level debug, the same requestId).
 */
import { redactPasswords, type Logger, type LogLevel } from "../log";
import type { RequestInfo } from "./observe";

export type ScimOperation = "create" | "get" | "query" | "replace" | "patch" | "delete" | "discovery" | "bulk" | "me";

export interface RouteMeaning {
  operation?: ScimOperation;
  resourceType?: string;
}

const BASE = "/api/v1/scim";
const TYPES: Record<string, string> = { Users: "User", Groups: "Group", ServiceProviderConfig: "ServiceProviderConfig", ResourceTypes: "ResourceType", Schemas: "Schema" };
const BY_ID: Record<string, ScimOperation> = { GET: "get", PUT: "replace", PATCH: "patch", DELETE: "delete" };
const NOTHING: RouteMeaning = Object.freeze({});

/**
 * What a request on a route template means in SCIM terms: `GET /api/v1/scim/Users/:id` is a `get`
 * of a User, `POST …/Groups/.search` a `query` of Groups, `GET …/Schemas` `discovery`. Nothing for a
 * route outside the API or the catch-all of unknown paths.
 */
export function routeMeaning(method: string, route: string | undefined): RouteMeaning {
  if (route === undefined || !route.startsWith(BASE)) return NOTHING;
  // HEAD is a GET without the body (RFC 9110 §9.3.2), and is served by the GET route.
  if (method === "HEAD") method = "GET";
  const parts = route.slice(BASE.length).split("/").filter(Boolean);
  const [first, second] = parts;
  if (first === undefined) return method === "GET" ? { operation: "query" } : NOTHING;
  if (first === ".search") return method === "POST" ? { operation: "query" } : NOTHING;
  if (first === "Bulk") return { operation: "bulk" };
  if (first === "Me") return { operation: "me" };
  const resourceType = TYPES[first];
  if (resourceType === undefined) return NOTHING;
  if (resourceType !== "User" && resourceType !== "Group") return { operation: "discovery", resourceType };
  if (second === undefined) return method === "GET" ? { operation: "query", resourceType } : method === "POST" ? { operation: "create", resourceType } : { resourceType };
  if (second === ".search") return method === "POST" ? { operation: "query", resourceType } : { resourceType };
  const operation = BY_ID[method];
  return operation ? { operation, resourceType } : { resourceType };
}

/**
 * The level of a request's line: an error for a server failure (5xx but 501, which answers a
 * feature scimd does not offer), a warning for a refused authentication or a 429.
 */
function levelOf(info: RequestInfo): LogLevel {
  const s = info.status ?? 0;
  if (s >= 500 && s !== 501) return "error";
  if (info.authFailure !== undefined || s === 429) return "warn";
  return "info";
}

/** onFinish for edgeHandler: writes the request's line, building nothing when its level is off. */
export function requestLogger(logger: Logger): (info: RequestInfo) => void {
  const debug = logger.enabled("debug");
  // Route templates are few: each one's meaning is worked out once per method.
  const meanings = new Map<string | undefined, Map<string, RouteMeaning>>();
  const meaningOf = (method: string, route: string | undefined): RouteMeaning => {
    let byMethod = meanings.get(route);
    if (!byMethod) meanings.set(route, (byMethod = new Map()));
    let m = byMethod.get(method);
    if (!m) byMethod.set(method, (m = routeMeaning(method, route)));
    return m;
  };
  return (info) => {
    // The body is a debug line of its own: the request line keeps its status's level, and a pipeline
    // that keeps info and above must not get bodies.
    if (debug && info.body !== undefined) logger.debug("request body", { requestId: info.id, body: redactPasswords(info.body) });
    const level = levelOf(info);
    if (!logger.enabled(level)) return;
    const m = meaningOf(info.method, info.route);
    logger[level]("request", {
      requestId: info.id,
      method: info.method,
      route: info.route,
      path: info.path,
      status: info.status,
      durationMs: info.durationMs === undefined ? undefined : Math.round(info.durationMs * 100) / 100,
      bytes: info.bytes,
      operation: m.operation,
      resourceType: m.resourceType,
      // Only once a token was accepted: before that the id is whatever a stranger put in the path.
      resourceId: info.token === undefined ? undefined : info.resourceId,
      tokenName: info.token,
      client: info.client,
      reason: info.authFailure,
      aborted: info.aborted,
    });
  };
}
