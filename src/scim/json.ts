/**
 * Reading the JSON a client sent: its shapes, and its member names in any case (RFC 7643 §2.1:
 * attribute names are case-insensitive, and so are the members of a request message).
 */

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** "null", "an array", "an object", "a string", … for messages that say what was sent instead. */
export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

/** The key under which `obj` holds the member `name` (lower case), whatever case the client wrote it in; the first such key. */
export function memberKey(obj: Record<string, unknown>, name: string): string | undefined {
  for (const k of Object.keys(obj)) if (k.toLowerCase() === name) return k;
  return undefined;
}

/** The value of `obj`'s member `name` (lower case), whatever case the client wrote it in (see `memberKey`). */
export function memberValue(obj: Record<string, unknown>, name: string): unknown {
  const k = memberKey(obj, name);
  return k === undefined ? undefined : obj[k];
}
