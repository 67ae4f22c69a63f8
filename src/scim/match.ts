/**
 * In-memory evaluation of a resolved filter against a resource or one element of a multi-valued
 * attribute: used by PATCH value paths and as the reference the SQL compiler is tested against.
 * Absent values never match a comparison, except `ne`, which holds when the value is absent.
 */
import { containerOf } from "./attributes";
import { compareKey } from "./compare-keys";
import { leafOf, type CompareOp, type CompareValue, type ResolvedFilter, type Target } from "./filter";

type Obj = Record<string, unknown>;

function readTarget(scope: Obj, t: Target): unknown {
  if (t.element) return scope[t.attr.name];
  const container = containerOf(scope, t.extension, false);
  if (!container) return undefined;
  const v = container[t.attr.name];
  if (!t.sub) return v;
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Obj)[t.sub.name] : undefined;
}

/** Orders strings by Unicode code point (as SQLite's BINARY collation on UTF-8 does), numbers numerically. */
function order(a: string | number | boolean, b: string | number | boolean): number {
  if (typeof a === "string" && typeof b === "string") return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : a > b ? 1 : 0;
}

function compare(op: CompareOp, actual: CompareValue | undefined, expected: CompareValue): boolean {
  if (expected === null) return op === "eq" ? actual === undefined : actual !== undefined;
  if (actual === undefined || actual === null) return op === "ne";
  switch (op) {
    case "eq":
      return actual === expected;
    case "ne":
      return actual !== expected;
    case "co":
      return typeof actual === "string" && actual.includes(expected as string);
    case "sw":
      return typeof actual === "string" && actual.startsWith(expected as string);
    case "ew":
      return typeof actual === "string" && actual.endsWith(expected as string);
    case "gt":
      return typeof actual === typeof expected && order(actual, expected) > 0;
    case "ge":
      return typeof actual === typeof expected && order(actual, expected) >= 0;
    case "lt":
      return typeof actual === typeof expected && order(actual, expected) < 0;
    case "le":
      return typeof actual === typeof expected && order(actual, expected) <= 0;
  }
}

function present(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "string") return v !== "";
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as Obj).length > 0;
  return true;
}

export function matches(f: ResolvedFilter, scope: Obj): boolean {
  switch (f.kind) {
    case "and":
      return f.filters.every((x) => matches(x, scope));
    case "or":
      return f.filters.some((x) => matches(x, scope));
    case "not":
      return !matches(f.filter, scope);
    case "present":
      return present(readTarget(scope, f.target));
    case "compare":
      return compare(f.op, compareKey(leafOf(f.target), readTarget(scope, f.target)), f.value);
    case "any": {
      const list = containerOf(scope, f.extension, false)?.[f.attr.name];
      return Array.isArray(list) && list.some((el) => el && typeof el === "object" && matches(f.filter, el as Obj));
    }
  }
}
