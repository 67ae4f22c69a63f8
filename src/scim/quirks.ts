/**
 * IdP quirks, each a named normaliser applied at the edge of the PATCH engine so the RFC logic stays
 * clean. Every function names the wire shape it accepts.
 */
import type { AttributeDef } from "./schema";
import { ENTERPRISE_USER_SCHEMA } from "./schema";

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
    const entries = Object.entries(v as Record<string, unknown>);
    const valueKey = entries.find(([k]) => k.toLowerCase() === "value");
    if (valueKey && (valueKey[1] === "" || valueKey[1] === null)) return null;
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
