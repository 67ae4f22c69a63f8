/**
 * The HTTP edge of SCIM: body reading for application/scim+json and application/json with a size
 * and depth cap, `application/scim+json` responses (`respond` turns an operation's result into one),
 * and one error renderer that turns every failure — ours, Elysia's validation/parse/not-found, or an
 * unexpected exception — into a SCIM Error body.
 */
import { Elysia } from "elysia";
import {
  invalidSyntax,
  methodNotAllowed,
  notFound,
  payloadTooLarge,
  ScimError,
  toErrorBody,
  unsupportedMediaType,
} from "../scim/errors";
import type { Logger } from "../log";
import type { ListItem, ScimResult } from "../scim/result";
import { infoOf, noteBodySize, noteErrorResponse, noteStreamed } from "./observe";
import { pathOf } from "./routing";

export const SCIM_CONTENT_TYPE = "application/scim+json; charset=utf-8";
export const MAX_JSON_DEPTH = 64;

/**
 * Every response under the SCIM base path carries directory data or is about it (errors name users,
 * 304s confirm versions), so none may be stored by a browser, proxy or client cache (RFC 9111
 * §5.2.2.5). Discovery documents too: one rule for the whole API is simpler and costs nothing.
 */
export const NO_STORE = { "Cache-Control": "no-store" } as const;

/** A SCIM response; a string body is JSON text already; `undefined` sends no body (204, 304). */
export function scimResponse(status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): Response {
  const text = body === undefined ? null : typeof body === "string" ? body : JSON.stringify(body);
  const response = new Response(text, {
    status,
    headers: body === undefined ? { ...NO_STORE, ...headers } : { "Content-Type": SCIM_CONTENT_TYPE, ...NO_STORE, ...headers },
  });
  // The size for the request's log line, known here so that the edge never reads a body.
  return noteBodySize(response, text === null ? 0 : Buffer.byteLength(text));
}

export function errorResponse(e: ScimError): Response {
  return scimResponse(e.status, toErrorBody(e), e.headers ?? {});
}

/** The Response for the result of a SCIM operation: the one place a result becomes HTTP. */
export function respond(r: ScimResult): Response | Promise<Response> {
  const b = r.body;
  if (b === undefined) return scimResponse(r.status, undefined, r.headers);
  switch (b.type) {
    case "object":
      return scimResponse(r.status, b.value, r.headers);
    case "json":
      return scimResponse(r.status, b.text, r.headers);
    case "members":
      return respondWithMembers(b.head, b.batches, r.headers, r.status);
    case "list":
      return streamedResponse(listChunks(b.head, b.resources), r.headers, r.status);
  }
}

const batchJson = (b: readonly Record<string, unknown>[]) => b.map((m) => JSON.stringify(m)).join(",");
/** A group's JSON text with its `members` array opened, the first batch to follow. */
const openMembers = (headText: string) => headText.slice(0, -1) + ',"members":[';

/**
 * A SCIM response (200 unless told) for a Group whose `members` come in batches after the rest of it
 * (`headText`, a JSON object). A Group whose members fit in one batch is answered as one body; a
 * larger one is streamed batch by batch, so its body is never built as one string. No members: no
 * `members` key.
 */
export async function respondWithMembers(
  headText: string,
  members: AsyncIterable<Record<string, unknown>[]>,
  headers: Readonly<Record<string, string>>,
  status = 200,
): Promise<Response> {
  const it = members[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return scimResponse(status, headText, headers);
  const second = await it.next();
  if (second.done) return scimResponse(status, `${openMembers(headText)}${batchJson(first.value)}]}`, headers);
  async function* chunks(): AsyncGenerator<string> {
    try {
      yield openMembers(headText) + batchJson(first.value);
      yield "," + batchJson(second.value);
      for (let next = await it.next(); !next.done; next = await it.next()) yield "," + batchJson(next.value);
      yield "]}";
    } finally {
      // A client gone before the end stops the reading of the store.
      await it.return?.();
    }
  }
  return streamedResponse(chunks(), headers, status);
}

/** Small pieces of a streamed list are gathered into chunks of about this many characters. */
const LIST_CHUNK = 64 * 1024;

/**
 * The JSON text of a streamed ListResponse, chunk by chunk: the envelope (`head`), each resource, and
 * each Group's members one batch per chunk, so that only one batch of members is held at a time
 * however large the groups are.
 */
async function* listChunks(head: string, resources: readonly ListItem[]): AsyncGenerator<string> {
  let out = head;
  for (let i = 0; i < resources.length; i++) {
    const r = resources[i]!;
    if (i > 0) out += ",";
    if (typeof r === "string") out += r;
    else {
      let open = false;
      for await (const batch of r.batches) {
        yield out + (open ? "," : openMembers(r.head)) + batchJson(batch);
        out = "";
        open = true;
      }
      out += open ? "]}" : r.head;
    }
    if (out.length >= LIST_CHUNK) {
      yield out;
      out = "";
    }
  }
  yield out + "]}";
}

/** Resolves on a later turn of the event loop, after the I/O waiting meanwhile was served. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A SCIM response whose body is written chunk by chunk as the client takes it. Between two chunks the
 * event loop takes a turn, so other requests (and /healthz) are answered while a long body is being
 * written: the reads behind one chunk (one member page) are the longest the loop is held. A client
 * that goes away ends the reading.
 */
function streamedResponse(chunks: AsyncGenerator<string>, headers: Readonly<Record<string, string>>, status: number): Response {
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await nextTurn();
      const next = await chunks.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
    async cancel() {
      await chunks.return(undefined);
    },
  });
  // Counted by the edge as it is sent, so that the log line has its size and its real duration.
  return noteStreamed(new Response(stream, { status, headers: { "Content-Type": SCIM_CONTENT_TYPE, ...NO_STORE, ...headers } }));
}

/** Throws when JSON nests deeper than the limit (checked on the text, before parsing). */
function checkDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > MAX_JSON_DEPTH) throw invalidSyntax(`the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`);
    } else if (c === 125 || c === 93) depth--;
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a body as UTF-8 (RFC 7644 §3.8, RFC 8259 §8.1), refusing invalid bytes instead of turning
 * them into U+FFFD: a Latin-1 "é" silently stored as "\uFFFD" would be lost data. A leading byte
 * order mark is accepted and dropped (RFC 8259 §8.1 allows a parser to ignore it).
 */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    const at = invalidUtf8At(bytes);
    const b = bytes[at];
    const where = b === undefined ? "" : ` at byte ${at} (0x${b.toString(16).toUpperCase().padStart(2, "0")}, counting from 0)`;
    throw invalidSyntax(`the request body is not valid UTF-8${where}; send it encoded as UTF-8`);
  }
}

/** The offset of the first byte that does not begin a well-formed UTF-8 sequence (RFC 3629 §4), or -1. */
export function invalidUtf8At(b: Uint8Array): number {
  const cont = (x: number | undefined, lo = 0x80, hi = 0xbf) => x !== undefined && x >= lo && x <= hi;
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0; // overlong
      if (c === 0xed) hi = 0x9f; // UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90; // overlong
      if (c === 0xf4) hi = 0x8f; // beyond U+10FFFF
    } else return i;
    if (!cont(b[i + 1], lo, hi)) return i;
    for (let k = 2; k <= need; k++) if (!cont(b[i + k])) return i;
    i += need + 1;
  }
  return -1;
}

const JSON_TYPES = /^application\/(scim\+)?json\s*(;|$)/i;

/** The limit's 413: names the limit and the setting, so that the client's operator knows what to ask for. */
function tooLarge(size: string, maxBytes: number) {
  return payloadTooLarge(`the request body is ${size}; the limit is ${maxBytes} bytes (--max-body-bytes): send a smaller body (fewer attributes or members per request, PATCH instead of PUT)`);
}

/**
 * The body's bytes, at most `maxBytes` of them: a Content-Length above the limit is refused before
 * anything is read, and a body without one (chunked) is counted as it arrives and refused as soon as
 * it passes the limit, so that no more than the limit is ever held. Bun's own cap is set far above
 * (listener.ts), so that every body over the limit gets this SCIM 413, not Bun's bare one.
 */
async function readCapped(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const length = Number(declared);
    if (Number.isFinite(length) && length > maxBytes) throw tooLarge(`${length} bytes`, maxBytes);
    return new Uint8Array(await request.arrayBuffer());
  }
  const body = request.body;
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      // The rest is not read here; Bun discards it as it arrives, and the connection stays usable.
      await reader.cancel().catch(() => {});
      throw tooLarge(`larger than ${maxBytes} bytes`, maxBytes);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Reads and parses a SCIM request body, or returns undefined when there is none. */
export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  let buf: Uint8Array;
  try {
    buf = await readCapped(request, maxBytes);
  } catch (e) {
    if (e instanceof ScimError) throw e;
    // The body stopped before its end (the client closed the connection mid-body, or its chunked
    // framing broke): an incomplete message (RFC 9112 §6.3), the client's fault, not a server failure.
    throw invalidSyntax("the request body ended before it was complete; send the whole body");
  }
  if (buf.byteLength > maxBytes) throw tooLarge(`${buf.byteLength} bytes`, maxBytes);
  if (buf.byteLength === 0) return undefined;
  const type = request.headers.get("content-type") ?? "";
  if (!JSON_TYPES.test(type))
    throw unsupportedMediaType(`send the body as application/scim+json or application/json${type ? `, not ${type.split(";")[0]}` : " (Content-Type is missing)"}`);
  const text = decodeUtf8(buf);
  if (text.trim() === "") return undefined;
  checkDepth(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw invalidSyntax(`the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Kept for the request's debug line only (which redacts passwords); at other levels not at all.
  const info = infoOf(request);
  if (info?.captureBody) info.body = parsed;
  return parsed;
}

/**
 * A refusal before the body is read ends the connection (`Connection: close`, so that Bun closes it
 * right after the response instead of first reading and discarding whatever body was announced):
 * always for 401 and 429, whose client has no usable token (an unauthenticated client gets no
 * keep-alive connection to hold, and its body is never read), and for a 403 when the request
 * declares a body. A 413 keeps the connection: Bun discards the rest of the body in constant memory,
 * and the (authenticated) client reads its SCIM error cleanly instead of a reset mid-upload.
 */
export function closingAfterRefusal(request: Request, response: Response): Response {
  const status = response.status;
  if (status === 401 || status === 429 || (status === 403 && declaresBody(request))) response.headers.set("Connection", "close");
  return response;
}

/** Whether a request announces a body (a Content-Length above 0, or a chunked one). */
function declaresBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return (length !== null && length !== "0") || request.headers.has("transfer-encoding");
}

/**
 * The SCIM plugin: the error renderer for every route of the app. `allowedMethods` (the methods the
 * app's router serves a path with) lets an unknown method on a known path answer 405 instead of 404;
 * under the SCIM base path that answer comes only after authentication (app.ts routes unknown paths
 * there through the auth plugin). Bodies are read by the handlers with `readJsonBody`, after
 * authentication, never by Elysia's parsers (routes declare `parse: "none"`).
 */
export function scimPlugin(opts: {
  allowedMethods: (path: string) => string[];
  /** The route template of a path some route serves (for the 405's route label), when one does. */
  routeOf?: (path: string) => string | undefined;
  logger: Logger;
}) {
  return new Elysia({ name: "scim" }).onError({ as: "global" }, ({ code, error, request, path: routed }) =>
    noteErrorResponse(request, closingAfterRefusal(request, renderError(code, error, request, routed))),
  );

  function renderError(code: unknown, error: unknown, request: Request, routed: string | undefined): Response {
    if (error instanceof ScimError) return errorResponse(error);
    const path = pathOf(request.url);
    switch (code) {
      case "NOT_FOUND": {
        // Asked of the router with the path it routed by (the context's `path`), so the answer cannot
        // contradict it; the request's own path only if a context should come without one.
        const allowed = opts.allowedMethods(routed ?? path);
        if (allowed.length) {
          // A known path: metrics and logs label it by its template, not as unmatched (nor as a catch-all's).
          const info = infoOf(request), template = opts.routeOf?.(routed ?? path);
          if (info && template !== undefined) info.route = template;
          return errorResponse(methodNotAllowed(`${request.method} is not allowed on ${path}; allowed: ${allowed.join(", ")}`));
        }
        return errorResponse(notFound(`no SCIM endpoint at ${request.method} ${path}`));
      }
      case "VALIDATION":
        return errorResponse(invalidSyntax(`the request does not match what ${request.method} ${path} accepts: ${validationDetail(error)}`));
      case "PARSE":
        return errorResponse(invalidSyntax("the request body could not be parsed"));
      default: {
        // An unexpected failure: log it for the operator, tell the client nothing internal.
        opts.logger.error("unexpected error", {
          requestId: infoOf(request)?.id,
          method: request.method,
          path,
          error: error instanceof Error ? error.stack || error.message || error.name : String(error),
        });
        return errorResponse(new ScimError(500, "the server could not complete the request; nothing was changed. The operator's log has the details."));
      }
    }
  }
}

function validationDetail(error: unknown): string {
  const all = (error as { all?: { path?: string; message?: string; summary?: string }[] }).all;
  if (Array.isArray(all) && all.length) {
    const e = all[0]!;
    return `${e.path ? `${e.path}: ` : ""}${e.summary ?? e.message ?? "invalid value"}`;
  }
  return "invalid value";
}
