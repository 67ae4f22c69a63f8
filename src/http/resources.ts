/**
 * The controllers of the SCIM operations: one for a resource endpoint (/Users or /Groups), one for
 * queries on the service root. A handler reads the request into what the operation acts on and a
 * RequestContext, calls the operation and answers its result (`respond`). Query parameters are read
 * from the raw query string (`rawQuery`), because Elysia's query decoder turns `%2B` into a space;
 * no route declares a query schema.
 */
import { Elysia, t } from "elysia";
import { invalidValue } from "../scim/errors";
import type { ScimOperations, SearchParams } from "../scim/operations";
import type { ReadOptions, RequestContext } from "../scim/result";
import { rtOf, type ResourceKind } from "../scim/schema";
import type { TokenRecord } from "../store/store";
import type { authPlugin } from "./auth";
import { infoOf } from "./observe";
import { readJsonBody, respond } from "./scim-plugin";

/**
 * The id in a resource path. Not a formality: the router gives a segment whose percent-encoding is
 * malformed (`/Users/%E0`) as null, and this makes that a 400 instead of an id of null.
 */
export const IdParams = t.Object({ id: t.String() });

/** The query parameters SCIM defines (RFC 7644 §3.4.2, §3.9), by lower-cased name; others are ignored. */
const QUERY_NAMES = new Map(["filter", "sortBy", "sortOrder", "startIndex", "count", "cursor", "attributes", "excludedAttributes"].map((n) => [n.toLowerCase(), n]));
/** The members of a SearchRequest (RFC 7644 §3.4.3) that scimd reads, by lower-cased name. */
const SEARCH_REQUEST_NAMES = new Map(["filter", "sortBy", "sortOrder", "startIndex", "count", "attributes", "excludedAttributes"].map((n) => [n.toLowerCase(), n]));
const isAttributeList = (name: string) => name === "attributes" || name === "excludedAttributes";

/**
 * The SCIM query parameters of a request, decoded by URLSearchParams (`+` is a space, `%2B` a plus).
 * Names are matched case-insensitively, as the same names are in a SearchRequest body. A repeated
 * `attributes` or `excludedAttributes` (`?attributes=userName&attributes=emails`) joins its values
 * as one comma-separated list; any other parameter given twice is 400 invalidValue, since keeping
 * either value would silently answer a different query than the one sent.
 */
export function rawQuery(request: Request): Record<string, string> {
  const out: Record<string, string> = {};
  const q = request.url.indexOf("?");
  if (q < 0) return out;
  for (const [key, value] of new URLSearchParams(request.url.slice(q + 1))) {
    const name = QUERY_NAMES.get(key.toLowerCase());
    if (name === undefined) continue;
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (isAttributeList(name)) out[name] = seen.trim() === "" ? value : value.trim() === "" ? seen : `${seen},${value}`;
    else throw invalidValue(`the query parameter '${name}' is given more than once; send it once`);
  }
  return out;
}

/**
 * The SearchRequest body of POST …/.search (RFC 7644 §3.4.3): its query parameters and the projection
 * it asks for. Member names are matched case-insensitively; a name given twice (in two spellings) is
 * 400 invalidValue. `attributes` and `excludedAttributes` are arrays of names (a string is taken as a
 * comma-separated list). A body that is not an object names nothing: the default query.
 */
export function searchRequest(body: unknown): { params: SearchParams; read: ReadOptions } {
  const found: Record<string, { value: unknown; keys: string[] }> = {};
  if (typeof body === "object" && body !== null) {
    // An array's keys are indices, which name no member.
    for (const [key, value] of Object.entries(body)) {
      const name = SEARCH_REQUEST_NAMES.get(key.toLowerCase());
      if (name === undefined) continue;
      const seen = found[name];
      if (seen) seen.keys.push(key);
      else found[name] = { value, keys: [key] };
    }
  }
  const get = (name: string) => {
    const f = found[name];
    if (f && f.keys.length > 1) throw invalidValue(`the SearchRequest names '${name}' more than once (${f.keys.map((k) => `'${k}'`).join(", ")}); send it once`);
    return f?.value;
  };
  const list = (name: string): string | undefined => {
    const v = get(name);
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(",");
    throw invalidValue(`'${name}' must be an array of attribute names`);
  };
  return {
    params: { filter: get("filter"), sortBy: get("sortBy"), sortOrder: get("sortOrder"), startIndex: get("startIndex"), count: get("count") },
    read: { attributes: list("attributes"), excludedAttributes: list("excludedAttributes") },
  };
}

export interface ControllerDeps {
  operations: ScimOperations;
  /** The authentication plugin of the app (one instance): it puts `caller` in each handler's context. */
  auth: ReturnType<typeof authPlugin>;
  baseUrl: (request: Request) => string;
  maxBodyBytes: number;
}

/** Builds the RequestContext of a request: base URL, caller, request id, projection, and If-Match / If-None-Match (RFC 9110 §13.1) as sent. */
export function contextBuilder(baseUrl: (request: Request) => string) {
  return (request: Request, caller: TokenRecord, query: Record<string, string> | ReadOptions = rawQuery(request)): RequestContext => ({
    baseUrl: baseUrl(request),
    caller,
    requestId: infoOf(request)?.id,
    read: { attributes: query.attributes, excludedAttributes: query.excludedAttributes },
    conditions: { ifMatch: request.headers.get("if-match"), ifNoneMatch: request.headers.get("if-none-match") },
    // Read only by a search (a getter: no other request creates its AbortSignal).
    get signal() {
      return request.signal;
    },
  });
}

/** The read options of a request whose query string is not read (DELETE, discovery). */
export const NO_PROJECTION: ReadOptions = Object.freeze({});

// Bodies are read by the handlers (`readJsonBody`), after authentication, never by Elysia's parsers.
// A handler reads the body before the query string, so a request with both wrong is told about the body.
const OWN_BODY = { parse: "none" } as const;
const BY_ID = { params: IdParams };
const BY_ID_OWN_BODY = { params: IdParams, parse: "none" } as const;

export function resourceController(kind: ResourceKind, deps: ControllerDeps) {
  const { operations: op } = deps;
  const at = contextBuilder(deps.baseUrl);
  const bodyOf = (request: Request) => readJsonBody(request, deps.maxBodyBytes);
  const { endpoint } = rtOf(kind);
  return new Elysia({ name: `scim-${endpoint}` })
    .use(deps.auth)
    .get(endpoint, async ({ request, caller }) => {
      const q = rawQuery(request);
      return respond(await op.search(kind, q, at(request, caller, q)));
    })
    .post(
      `${endpoint}/.search`,
      async ({ request, caller }) => {
        const s = searchRequest(await bodyOf(request));
        return respond(await op.search(kind, s.params, at(request, caller, s.read)));
      },
      OWN_BODY,
    )
    .post(endpoint, async ({ request, caller }) => respond(await op.create(kind, await bodyOf(request), at(request, caller))), OWN_BODY)
    .get(`${endpoint}/:id`, async ({ request, caller, params: { id } }) => respond(await op.get(kind, id, at(request, caller))), BY_ID)
    .put(`${endpoint}/:id`, async ({ request, caller, params: { id } }) => respond(await op.replace(kind, id, await bodyOf(request), at(request, caller))), BY_ID_OWN_BODY)
    .patch(`${endpoint}/:id`, async ({ request, caller, params: { id } }) => respond(await op.patch(kind, id, await bodyOf(request), at(request, caller))), BY_ID_OWN_BODY)
    // A DELETE returns no representation: its query string is not read.
    .delete(`${endpoint}/:id`, async ({ request, caller, params: { id } }) => respond(await op.delete(kind, id, at(request, caller, NO_PROJECTION))), BY_ID);
}

/** A query on the service root (RFC 7644 §3.4.2.1, §3.4.3) covers every resource type. */
export function rootSearchController(deps: ControllerDeps) {
  const { operations: op } = deps;
  const at = contextBuilder(deps.baseUrl);
  return new Elysia({ name: "scim-root-search" })
    .use(deps.auth)
    .get("", async ({ request, caller }) => {
      const q = rawQuery(request);
      return respond(await op.search(undefined, q, at(request, caller, q)));
    })
    .post(
      "/.search",
      async ({ request, caller }) => {
        const s = searchRequest(await readJsonBody(request, deps.maxBodyBytes));
        return respond(await op.search(undefined, s.params, at(request, caller, s.read)));
      },
      OWN_BODY,
    );
}
