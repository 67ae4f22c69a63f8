/**
 * Versions and conditional requests (RFC 7644 §3.14, RFC 9110 §8.8.3 and §13.1): the weak ETag of a
 * resource, the If-Match / If-None-Match headers parsed, and the checks the operations make with them.
 */
import { preconditionFailed } from "./errors";
import type { GroupRef, StoredResource } from "../store/store";

/** The conditional headers of a request, as sent (absent: undefined or null). */
export interface Conditions {
  ifMatch?: string | null;
  ifNoneMatch?: string | null;
}

/** The entity tags a conditional header lists: `*` for any, else the opaque tags. */
export type EtagList = "*" | string[];

/** The conditions of a request, parsed. */
export interface ParsedConditions {
  ifMatch?: EtagList;
  ifNoneMatch?: EtagList;
}

/**
 * The weak ETag (and meta.version) of a resource: its row version and, for a User in groups, a digest
 * of the group ids, so that joining or leaving a group changes the User's version too. It does not
 * cover display names of related resources.
 */
export function etagOf(version: number, groups?: readonly GroupRef[]): string {
  if (!groups?.length) return `W/"${version}"`;
  const digest = Bun.hash(groups.map((g) => g.value).sort().join(",")).toString(36);
  return `W/"${version}-${digest}"`;
}

/** Parses If-Match / If-None-Match: undefined when absent, "*" for any, else the opaque tags listed. */
export function parseEtags(header: string | null | undefined): EtagList | undefined {
  if (header === null || header === undefined || header.trim() === "") return undefined;
  if (header.trim() === "*") return "*";
  const tags: string[] = [];
  for (const m of header.matchAll(/(?:W\/)?"([^"]*)"/gi)) tags.push(m[1]!);
  return tags;
}

/** Both headers parsed; undefined when the request sets neither (the common case costs nothing more). */
export function parseConditions(c: Conditions): ParsedConditions | undefined {
  const ifMatch = parseEtags(c.ifMatch);
  const ifNoneMatch = parseEtags(c.ifNoneMatch);
  return ifMatch || ifNoneMatch ? { ifMatch, ifNoneMatch } : undefined;
}

/** Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, W/ or not. */
export const etagMatches = (tags: EtagList, etag: string) => tags === "*" || tags.includes(etag.replace(/^W\//, "").slice(1, -1));

/**
 * RFC 9110 §13.1 for a write (and If-Match on a read): If-Match must name the current ETag, and
 * If-None-Match must not (`*` matches any existing resource). Throws 412 otherwise; `what` names the
 * resource in the detail.
 */
export function checkConditions(what: string, c: ParsedConditions, etag: string): void {
  if (c.ifMatch && !etagMatches(c.ifMatch, etag)) throw preconditionFailed(`${what} is at version ${etag}, not the one in If-Match; read it again and retry`);
  if (c.ifNoneMatch && etagMatches(c.ifNoneMatch, etag)) throw preconditionFailed(`${what} exists at version ${etag}, which If-None-Match excludes`);
}

/**
 * The same check as a store precondition, run inside the write against the resource as it is at that
 * moment (a User with its groups), so no other write can slip in between check and write.
 */
export function preconditionOf(what: string, c: ParsedConditions | undefined): ((current: StoredResource) => void) | undefined {
  return c ? (current) => checkConditions(what, c, etagOf(current.version, current.groups)) : undefined;
}
