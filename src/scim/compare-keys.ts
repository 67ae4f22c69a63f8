/**
 * Comparison keys: the one normalisation every comparison of values goes through, in the store (SQL
 * over stored search documents) and in memory (match.ts) alike. Strings are NFC and lower case
 * unless the attribute is caseExact; a User's userName is width-mapped first; dateTimes are their
 * canonical UTC text; booleans and numbers are themselves. A filter literal is turned into the same
 * key when the filter is resolved (filter.ts), so comparisons need no per-row conversion.
 */
import type { CompareValue } from "./filter";
import type { AttributeDef, ResourceTypeDef } from "./schema";
import { mapWidth } from "./username";

/** Unicode normalisation used for every case-insensitive comparison: NFC, then lower case. */
export function fold(s: string): string {
  return s.normalize("NFC").toLowerCase();
}

/**
 * The comparison key of a userName (RFC 8265 UsernameCaseMapped without its directionality rule):
 * width mapping (username.ts), NFC, lower case.
 */
export function userNameKey(s: string): string {
  return fold(mapWidth(s));
}

/** True for the attribute whose comparison key is `userNameKey` (the User's userName). */
export function isUserNameAttr(a: AttributeDef): boolean {
  return a.name === "userName";
}

/** The key of a text value of a string, reference or binary attribute. */
export function textKey(a: AttributeDef, s: string): string {
  return a.caseExact ? s.normalize("NFC") : isUserNameAttr(a) ? userNameKey(s) : fold(s);
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/i;

/** Parses an xsd:dateTime into its canonical UTC form, or undefined. */
export function canonicalDateTime(s: string): string | undefined {
  if (!DATE_TIME.test(s)) return undefined;
  // A dateTime without a zone is read as UTC, never as the server's local time.
  const ms = Date.parse(/(Z|[+-]\d{2}:\d{2})$/i.test(s) ? s : `${s}Z`);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

/**
 * The comparable form of a stored value: folded strings unless caseExact, canonical UTC dateTimes,
 * booleans as booleans. Stored search documents hold exactly these keys, so comparisons need no
 * per-row conversion.
 */
export function compareKey(a: AttributeDef, v: unknown): CompareValue | undefined {
  if (v === null || v === undefined) return undefined;
  switch (a.type) {
    case "string":
    case "reference":
    case "binary":
      return typeof v === "string" ? textKey(a, v) : undefined;
    case "dateTime":
      return typeof v === "string" ? (canonicalDateTime(v) ?? v) : undefined;
    case "boolean":
      return typeof v === "boolean" ? v : undefined;
    case "integer":
    case "decimal":
      return typeof v === "number" ? v : undefined;
    default:
      return undefined;
  }
}

/**
 * The search document of a resource: the same shape, every value replaced by its `compareKey`, and
 * write-only attributes left out. Stores keep it beside the resource so that filters and sorting
 * compare prepared keys instead of converting each row.
 */
export function toSearchDoc(rt: ResourceTypeDef, resource: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const walk = (attrs: readonly AttributeDef[], src: Record<string, unknown>, dst: Record<string, unknown>) => {
    for (const a of attrs) {
      const v = src[a.name];
      if (v === undefined || v === null || a.mutability === "writeOnly") continue;
      if (a.type === "complex") {
        const one = (el: unknown) => {
          if (!el || typeof el !== "object") return undefined;
          const o: Record<string, unknown> = {};
          for (const s of a.subAttributes ?? []) {
            const k = compareKey(s, (el as Record<string, unknown>)[s.name]);
            if (k !== undefined) o[s.name] = k;
          }
          return o;
        };
        dst[a.name] = Array.isArray(v) ? v.map(one).filter(Boolean) : one(v);
      } else {
        const k = Array.isArray(v) ? v.map((x) => compareKey(a, x)) : compareKey(a, v);
        if (k !== undefined) dst[a.name] = k;
      }
    }
  };
  walk(rt.schema.attributes, resource, out);
  for (const e of rt.extensions) {
    const v = resource[e.schema.id];
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      walk(e.schema.attributes, v as Record<string, unknown>, o);
      out[e.schema.id] = o;
    }
  }
  return out;
}
