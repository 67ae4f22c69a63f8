/**
 * One controller for a SCIM resource endpoint (/Users or /Groups): handlers destructure the request,
 * call the service and render. `filter` is read from the raw query string, because Elysia's query
 * decoder turns `%2B` into a space.
 */
import { Elysia, t } from "elysia";
import { invalidValue } from "../scim/errors";
import { asksForAttributes } from "../scim/projection";
import { etagOf, type Conditions, type ListParams, type ReadOptions, type ScimService } from "../scim/service";
import type { ResourceKind } from "../scim/schema";
import { NO_STORE, readJsonBody, SCIM_CONTENT_TYPE, scimResponse } from "./scim-plugin";

/** Query parameters SCIM defines; others are ignored. All strings on the wire. */
export const ReadQuery = t.Object(
  { attributes: t.Optional(t.String()), excludedAttributes: t.Optional(t.String()) },
  { additionalProperties: true },
);
export const ListQuery = t.Object(
  {
    filter: t.Optional(t.String()),
    sortBy: t.Optional(t.String()),
    sortOrder: t.Optional(t.String()),
    startIndex: t.Optional(t.String()),
    count: t.Optional(t.String()),
    attributes: t.Optional(t.String()),
    excludedAttributes: t.Optional(t.String()),
  },
  { additionalProperties: true },
);
export const IdParams = t.Object({ id: t.String() });

/** The query parameters SCIM defines (RFC 7644 §3.4.2, §3.9), by lower-cased name; others are ignored. */
const QUERY_NAMES = new Map(["filter", "sortBy", "sortOrder", "startIndex", "count", "cursor", "attributes", "excludedAttributes"].map((n) => [n.toLowerCase(), n]));
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

/** If-Match / If-None-Match (RFC 9110 §13.1) as sent. */
function conditionsOf(request: Request): Conditions {
  return { ifMatch: request.headers.get("if-match"), ifNoneMatch: request.headers.get("if-none-match") };
}

function readOptions(q: Record<string, string>): ReadOptions {
  return { attributes: q.attributes, excludedAttributes: q.excludedAttributes };
}

/** The SearchRequest body of POST …/.search (RFC 7644 §3.4.3), keys matched case-insensitively. */
export function searchParams(body: unknown): ListParams {
  const b = body && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const get = (name: string) => {
    const keys = Object.keys(b).filter((x) => x.toLowerCase() === name.toLowerCase());
    if (keys.length > 1) throw invalidValue(`the SearchRequest names '${name}' more than once (${keys.map((k) => `'${k}'`).join(", ")}); send it once`);
    return keys.length ? b[keys[0]!] : undefined;
  };
  const list = (v: unknown, name: string): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(",");
    throw invalidValue(`'${name}' must be an array of attribute names`);
  };
  return {
    filter: get("filter") as string | undefined,
    sortBy: get("sortBy") as string | undefined,
    sortOrder: get("sortOrder") as string | undefined,
    startIndex: get("startIndex"),
    count: get("count"),
    attributes: list(get("attributes"), "attributes"),
    excludedAttributes: list(get("excludedAttributes"), "excludedAttributes"),
  };
}

/**
 * A 200 SCIM response for a Group whose `members` come in batches after the rest of it (`headText`,
 * a JSON object). A Group whose members fit in one batch is answered as one body; a larger one is
 * streamed batch by batch, so its body is never built as one string. No members: no `members` key.
 */
export async function respondWithMembers(headText: string, members: AsyncIterable<Record<string, unknown>[]>, headers: Record<string, string>): Promise<Response> {
  const it = members[Symbol.asyncIterator]();
  const open = headText.slice(0, -1) + ',"members":[';
  const batch = (b: Record<string, unknown>[]) => b.map((m) => JSON.stringify(m)).join(",");
  const first = await it.next();
  if (first.done) return scimResponse(200, headText, headers);
  const second = await it.next();
  if (second.done) return scimResponse(200, `${open}${batch(first.value)}]}`, headers);
  const encoder = new TextEncoder();
  let pending: Record<string, unknown>[] | undefined = second.value;
  let done = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(open + batch(first.value)));
    },
    async pull(controller) {
      if (done) return controller.close();
      const next = pending ? { done: false as const, value: pending } : await it.next();
      pending = undefined;
      if (next.done) {
        controller.enqueue(encoder.encode("]}"));
        done = true;
        return controller.close();
      }
      controller.enqueue(encoder.encode("," + batch(next.value)));
    },
    async cancel() {
      await it.return?.();
    },
  });
  return new Response(stream, { status: 200, headers: { "Content-Type": SCIM_CONTENT_TYPE, ...NO_STORE, ...headers } });
}

export interface ControllerDeps {
  service: ScimService;
  baseUrl: (request: Request) => string;
  maxBodyBytes: number;
}

export function resourceController(kind: ResourceKind, deps: ControllerDeps) {
  const { service, baseUrl } = deps;
  const bodyOf = (request: Request) => readJsonBody(request, deps.maxBodyBytes);
  const endpoint = kind === "User" ? "/Users" : "/Groups";
  return new Elysia({ name: `scim-${endpoint}` })
    .get(
      endpoint,
      async ({ request }) => {
        const q = rawQuery(request);
        return scimResponse(200, await service.list(kind, q, baseUrl(request)));
      },
      { query: ListQuery },
    )
    .post(`${endpoint}/.search`, async ({ request }) => scimResponse(200, await service.list(kind, searchParams(await bodyOf(request)), baseUrl(request))), {
      parse: "none",
    })
    .post(
      endpoint,
      async ({ request }) => {
        const r = await service.create(kind, await bodyOf(request), baseUrl(request), readOptions(rawQuery(request)));
        const location = `${baseUrl(request)}${endpoint}/${r.body.id}`;
        return scimResponse(201, r.body, { Location: location, ETag: r.etag });
      },
      { parse: "none", query: ReadQuery },
    )
    .get(
      `${endpoint}/:id`,
      async ({ request, params: { id } }) => {
        const r = await service.get(kind, id, baseUrl(request), readOptions(rawQuery(request)), conditionsOf(request));
        if (r.notModified) return scimResponse(304, undefined, { ETag: r.etag });
        if (r.members) return respondWithMembers(r.json ?? JSON.stringify(r.body), r.members, { ETag: r.etag });
        return scimResponse(200, r.json ?? r.body, { ETag: r.etag });
      },
      { params: IdParams, query: ReadQuery },
    )
    .put(
      `${endpoint}/:id`,
      async ({ request, params: { id } }) => {
        const r = await service.replace(kind, id, await bodyOf(request), baseUrl(request), readOptions(rawQuery(request)), conditionsOf(request));
        return scimResponse(200, r.body, { ETag: r.etag });
      },
      { params: IdParams, parse: "none", query: ReadQuery },
    )
    .patch(
      `${endpoint}/:id`,
      async ({ request, params: { id } }) => {
        const { stored, projection } = await service.patch(kind, id, await bodyOf(request), readOptions(rawQuery(request)), conditionsOf(request));
        // Groups answer 204 unless attributes are asked for (large member lists are not sent back);
        // Users answer 200 with the resource.
        if (kind === "Group" && !asksForAttributes(projection)) return scimResponse(204, undefined, { ETag: etagOf(stored.version) });
        const r = await service.render(kind, stored, baseUrl(request), projection);
        return scimResponse(200, r.body, { ETag: r.etag });
      },
      { params: IdParams, parse: "none", query: ReadQuery },
    )
    .delete(
      `${endpoint}/:id`,
      async ({ request, params: { id } }) => {
        await service.delete(kind, id, conditionsOf(request));
        return scimResponse(204, undefined);
      },
      { params: IdParams },
    );
}
