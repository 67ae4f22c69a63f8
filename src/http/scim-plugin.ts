/**
 * The HTTP edge of SCIM: body reading for application/scim+json and application/json with a size
 * and depth cap, `application/scim+json` responses, and one error renderer that turns every failure — ours,
 * Elysia's validation/parse/not-found, or an unexpected exception — into a SCIM Error body.
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

export const SCIM_CONTENT_TYPE = "application/scim+json; charset=utf-8";
export const MAX_JSON_DEPTH = 64;

/** A SCIM response; a string body is JSON text already. */
export function scimResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: body === undefined ? headers : { "Content-Type": SCIM_CONTENT_TYPE, ...headers },
  });
}

export function errorResponse(e: ScimError): Response {
  return scimResponse(e.status, toErrorBody(e), e.headers ?? {});
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

const JSON_TYPES = /^application\/(scim\+)?json\s*(;|$)/i;

/** Reads and parses a SCIM request body, or returns undefined when there is none. */
export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  const length = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(length) && length > maxBytes) throw payloadTooLarge(`the request body is ${length} bytes; the limit is ${maxBytes} bytes (--max-body-bytes)`);
  const buf = await request.arrayBuffer();
  if (buf.byteLength > maxBytes) throw payloadTooLarge(`the request body is larger than the limit of ${maxBytes} bytes (--max-body-bytes)`);
  if (buf.byteLength === 0) return undefined;
  const type = request.headers.get("content-type") ?? "";
  if (!JSON_TYPES.test(type))
    throw unsupportedMediaType(`send the body as application/scim+json or application/json${type ? `, not ${type.split(";")[0]}` : " (Content-Type is missing)"}`);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(buf);
  if (text.trim() === "") return undefined;
  checkDepth(text);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidSyntax(`the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export interface RouteShape {
  method: string;
  pattern: RegExp;
}

/**
 * The SCIM plugin: the error renderer for every route of the app. `routes` lets an unknown method on a
 * known path answer 405 instead of 404. Bodies are read by the handlers with `readJsonBody`, after
 * authentication, never by Elysia's parsers (routes declare `parse: "none"`).
 */
export function scimPlugin(opts: {
  basePath: string;
  routes: () => RouteShape[];
  /** Throws 401/429 unless the request is authenticated: unknown SCIM paths answer 404/405 only to a valid token. */
  authenticate: (request: Request) => Promise<void>;
  log: (line: string) => void;
  /** The response of the same request at the route it names in another case (see routing.ts), or undefined. */
  reroute?: (request: Request, path: string) => Promise<Response> | undefined;
}) {
  return new Elysia({ name: "scim" }).onError({ as: "global" }, async ({ code, error, request }) => {
    if (error instanceof ScimError) return errorResponse(error);
    const path = new URL(request.url).pathname;
    switch (code) {
      case "NOT_FOUND": {
        const rerouted = opts.reroute?.(request, path);
        if (rerouted) return rerouted;
        if (path === opts.basePath || path.startsWith(opts.basePath + "/")) {
          try {
            await opts.authenticate(request);
          } catch (e) {
            if (e instanceof ScimError) return errorResponse(e);
            throw e;
          }
        }
        const sameRoute = opts.routes().filter((r) => r.pattern.test(path));
        if (sameRoute.length)
          return errorResponse(methodNotAllowed(`${request.method} is not allowed on ${path}; allowed: ${[...new Set(sameRoute.map((r) => r.method))].join(", ")}`));
        return errorResponse(notFound(`no SCIM endpoint at ${request.method} ${path}`));
      }
      case "VALIDATION":
        return errorResponse(invalidSyntax(`the request does not match what ${request.method} ${path} accepts: ${validationDetail(error)}`));
      case "PARSE":
        return errorResponse(invalidSyntax("the request body could not be parsed"));
      default: {
        // An unexpected failure: log it for the operator, tell the client nothing internal.
        opts.log(`error: ${request.method} ${path}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        return errorResponse(new ScimError(500, "the server could not complete the request; nothing was changed. The operator's log has the details."));
      }
    }
  });
}

function validationDetail(error: unknown): string {
  const all = (error as { all?: { path?: string; message?: string; summary?: string }[] }).all;
  if (Array.isArray(all) && all.length) {
    const e = all[0]!;
    return `${e.path ? `${e.path}: ` : ""}${e.summary ?? e.message ?? "invalid value"}`;
  }
  return "invalid value";
}
