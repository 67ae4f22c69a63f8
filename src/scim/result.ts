/**
 * What every SCIM operation takes and gives back, as plain data: a request context in, one result
 * out. The HTTP layer builds the context from a request and turns the result into a Response
 * (src/http/scim-plugin.ts `respond`); Bulk and the activity log can compose operations through the
 * same two types instead of deciding statuses and headers again. Failures are thrown as ScimError.
 */
import type { Conditions } from "./conditions";
import type { Resource } from "./resource";
import type { TokenRecord } from "../store/store";

/** `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) as sent: comma-separated attribute lists. */
export interface ReadOptions {
  attributes?: string;
  excludedAttributes?: string;
}

/** Who asks, where the API lives, and how the answer is to be shaped. */
export interface RequestContext {
  /** The public base URL of the SCIM API (`…/api/v1/scim`, no trailing slash): Location and meta.location are built on it. */
  readonly baseUrl: string;
  /** The token the request authenticated with: its name is recorded with each change in the activity log. */
  readonly caller: TokenRecord;
  /** The request's id (X-Request-Id as sent, or the one the edge gave it): recorded with each change in the activity log. */
  readonly requestId?: string;
  /** The projection asked for, from the query string or from a SearchRequest body. */
  readonly read: ReadOptions;
  /** If-Match / If-None-Match as sent; operations that have no version ignore them. */
  readonly conditions: Conditions;
  /** Aborts when the client goes away: a search still running stops. */
  readonly signal?: AbortSignal;
}

/**
 * The body of a result:
 * - `object`: a value to serialise;
 * - `json`: JSON text already (a resource spliced from its stored text, or a ListResponse);
 * - `members`: a Group as JSON text without `members` (`head`), and its members in batches to be
 *   written after it, so that a 100,000-member group is never held as one string;
 * - `list`: a ListResponse whose Groups carry many members: the envelope up to `"Resources":[`
 *   (`head`), then each resource, as JSON text or as a Group whose members come in batches, so that
 *   a page of large groups is written one member batch at a time.
 */
export type ResultBody =
  | { readonly type: "object"; readonly value: Resource }
  | { readonly type: "json"; readonly text: string }
  | { readonly type: "members"; readonly head: string; readonly batches: AsyncIterable<Resource[]> }
  | { readonly type: "list"; readonly head: string; readonly resources: readonly ListItem[] };

/** One resource of a streamed ListResponse: JSON text, or a Group's JSON text without `members` and its members in batches. */
export type ListItem = string | { readonly head: string; readonly batches: AsyncIterable<Resource[]> };

/** One answer of a SCIM operation. */
export interface ScimResult {
  readonly status: 200 | 201 | 204 | 304;
  /** Response headers by their HTTP names: `ETag`, `Location`. Only those that apply are set. */
  readonly headers: Readonly<Record<string, string>>;
  /** Absent for 204 and 304. */
  readonly body?: ResultBody;
}
