/**
 * IdP quirks, each a named normaliser applied at the edge of the PATCH engine so the RFC logic stays
 * clean. Every function names the wire shape it accepts.
 */
import type { ResolvedFilter } from "./filter";
import type { AttributeDef } from "./schema";
import { ENTERPRISE_USER_SCHEMA } from "./schema";
import { memberValue } from "./json";

/** `"op": "Replace"`, `"ADD"` (Entra ID, OneLogin): operation names in any case. */
export function normalizeOpName(op: unknown): "add" | "replace" | "remove" | undefined {
  if (typeof op !== "string") return undefined;
  const lower = op.trim().toLowerCase();
  return lower === "add" || lower === "replace" || lower === "remove" ? lower : undefined;
}

/**
 * Entra ID sends the enterprise `manager` as a bare id string, as `{"value": id}` or as
 * `[{"$ref": …, "value": id}]`, and removes it with `""`, `{"value": ""}` or `null`.
 * Returns the canonical `{value: id}` object, or null for "remove the manager".
 */
export function normalizeManagerValue(v: unknown): unknown {
  if (Array.isArray(v)) {
    if (v.length > 1) return v; // several managers: not a quirk, refused as an array for a single value
    v = v.length ? v[0] : null;
  }
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v.trim() === "" ? null : { value: v };
  if (typeof v === "object") {
    const value = memberValue(v as Record<string, unknown>, "value");
    if (value === "" || value === null) return null;
    return v;
  }
  return v;
}

export function isManager(extension: string | null, a: AttributeDef): boolean {
  return extension === ENTERPRISE_USER_SCHEMA && a.name === "manager";
}

/**
 * Entra ID's "null update": `replace` with `""` clears a simple string attribute, the same as `null`.
 */
export function emptyStringMeansNull(a: AttributeDef, v: unknown): unknown {
  return v === "" && a.type !== "complex" && !a.multiValued ? null : v;
}

/**
 * Okta renames a group with a path-less replace of `{"id": "<same id>", "displayName": "…"}`:
 * an `id` equal to the resource's own id is no change at all.
 */
export function isOwnIdEcho(key: string, value: unknown, ownId: string | undefined): boolean {
  return key.toLowerCase() === "id" && ownId !== undefined && value === ownId;
}

/**
 * Entra ID's and Okta's upsert through a value filter: `add` or `replace` of
 * `emails[type eq "work"].value` on a user with no work email, or of `roles[primary eq "True"].value`
 * on a user with no role, creates the element the filter describes:
 *
 *   {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada@example.com"}
 *     on {"emails": [{"type": "home", …}]}  →  appends {"type": "work", "value": "ada@example.com"}
 *
 * RFC 7644 §3.5.2.3 (and §3.12 noTarget) make a filter that matches nothing a 400; this leniency
 * applies only where the request stays idempotent: the filter is one equality, or equalities joined
 * by `and`, on sub-attributes other than the one being written, so the created element matches the
 * filter and a retried request finds and updates it instead of appending another copy. Returns the
 * seed element (the filter's literals, booleans sent as "True"/"False" made booleans), or a reason
 * the filter does not qualify.
 */
export function upsertSeed(f: ResolvedFilter, written: AttributeDef | undefined): { seed: Record<string, unknown> } | { refused: string } {
  const seed: Record<string, unknown> = {};
  const walk = (x: ResolvedFilter): string | undefined => {
    if (x.kind === "and") {
      for (const part of x.filters) {
        const why = walk(part);
        if (why) return why;
      }
      return undefined;
    }
    if (x.kind !== "compare" || x.op !== "eq" || !x.target.element || x.raw === null || x.raw === undefined)
      return "only equalities joined by 'and' describe a value to create";
    const a = x.target.attr;
    if (written && a.name === written.name) return `the filter compares '${a.name}', the sub-attribute being written, so the new value would not match it`;
    if (a.name in seed) return `the filter compares '${a.name}' more than once`;
    seed[a.name] = a.type === "boolean" && typeof x.raw === "string" ? x.raw.toLowerCase() === "true" : x.raw;
    return undefined;
  };
  const why = walk(f);
  return why ? { refused: why } : { seed };
}
