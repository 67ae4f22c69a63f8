/**
 * The activity log's meaning, free of storage and of I/O: what an entry holds, which attributes a
 * write changed (old → new, with writeOnly attributes such as `password` only marked "changed"), and
 * how an entry reads in a terminal. The store records one entry per committed change, inside the
 * same write (src/store/sqlite/activity.ts); `scimd activity` reads and prints them.
 */
import type { Resource } from "./resource";
import type { AttributeDef, ResourceKind, ResourceTypeDef } from "./schema";

/** The SCIM operation a change came from. Membership changes ride on the create, replace or patch of their group. */
export type ActivityOp = "create" | "replace" | "patch" | "delete";
export const ACTIVITY_OPS: readonly ActivityOp[] = ["create", "replace", "patch", "delete"];
/** What `--op` may name: an operation, or an entry that added / removed group members. */
export type ActivityOpFilter = ActivityOp | "member-add" | "member-remove";
export const ACTIVITY_OP_FILTERS: readonly ActivityOpFilter[] = [...ACTIVITY_OPS, "member-add", "member-remove"];

/**
 * One attribute a write changed, by its path (`title`, `name.givenName`,
 * `urn:…:enterprise:2.0:User:department`). `old` is absent when the attribute was added, `new` when
 * it was removed. A writeOnly attribute carries `changed: true` and never a value (nor its hash).
 */
export interface AttributeChange {
  attr: string;
  old?: unknown;
  new?: unknown;
  changed?: true;
}

/** A group a resource left by being deleted. */
export interface LeftGroup {
  value: string;
  display?: string;
}

/** Who made a write, as the activity log names it: "unknown" for a write whose caller gave no origin. */
export type ActivityVia = "scim" | "import" | "unknown";

/** One recorded change, as `scimd activity` and listActivity return it. */
export interface ActivityEntry {
  /** Increasing with commit order: newest first means highest first. */
  seq: number;
  /** When the write was made (ISO 8601 UTC). */
  at: string;
  requestId?: string;
  /** The name of the API token the request authenticated with. */
  token?: string;
  via: ActivityVia;
  op: ActivityOp;
  resourceType: ResourceKind;
  id: string;
  /** userName (Users) or displayName (Groups) at that moment: after the change, before a delete. */
  name?: string;
  changes: AttributeChange[];
  /** Ids of the members a Group gained / lost in this write (one entry however many). */
  membersAdded?: string[];
  membersRemoved?: string[];
  /** For a delete: the groups the resource was a direct member of, which it left. */
  leftGroups?: LeftGroup[];
}

/** What `scimd activity` asks for; every field narrows the answer. */
export interface ActivityQuery {
  /** Entries at or after this ISO time. */
  since?: string;
  /** Entries before this ISO time. */
  until?: string;
  /**
   * A User's id or userName (compared as userNames are): its entries under any name it had, and the
   * entries of groups that added or removed it. A deleted User is found by its last userName.
   */
  user?: string;
  /** A Group's id or displayName (case-insensitive): its entries, and deletes of resources that left it. */
  group?: string;
  token?: string;
  ops?: ActivityOpFilter[];
  /** At most this many entries, newest first. */
  limit: number;
}

const SKIPPED = new Set(["schemas"]);

/** Whether an attribute's value may be kept: writeOnly and never-returned ones are only marked changed. */
const secret = (def: AttributeDef | undefined) => def !== undefined && (def.mutability === "writeOnly" || def.returned === "never");

/** Attribute definitions by lower-cased name, built once per list (a diff runs inside every write). */
const byName = new WeakMap<readonly AttributeDef[], Map<string, AttributeDef>>();
function findDef(defs: readonly AttributeDef[] | undefined, name: string): AttributeDef | undefined {
  if (!defs) return undefined;
  let m = byName.get(defs);
  if (!m) byName.set(defs, (m = new Map(defs.map((d) => [d.name.toLowerCase(), d]))));
  return m.get(name) ?? m.get(name.toLowerCase());
}

/** Equal values: primitives by identity, others by JSON text (stored resources keep a canonical key order, see finalizeResource). */
const same = (a: unknown, b: unknown) =>
  a === b || (typeof a === "object" && a !== null && typeof b === "object" && b !== null && JSON.stringify(a) === JSON.stringify(b));

const isObject = (v: unknown): v is Resource => typeof v === "object" && v !== null && !Array.isArray(v);

const NONE: Resource = Object.freeze({});

function diffLevel(out: AttributeChange[], prefix: string, defs: readonly AttributeDef[] | undefined, before: Resource, after: Resource, nest: boolean, rt: ResourceTypeDef | undefined): void {
  // The keys of `before`, then those only `after` has (a create reads one side alone, without a set of keys).
  for (const key of Object.keys(before)) diffKey(out, prefix, defs, before, after, nest, rt, key);
  if (before === NONE) for (const key of Object.keys(after)) diffKey(out, prefix, defs, before, after, nest, rt, key);
  else for (const key of Object.keys(after)) if (!Object.hasOwn(before, key)) diffKey(out, prefix, defs, before, after, nest, rt, key);
}

function diffKey(out: AttributeChange[], prefix: string, defs: readonly AttributeDef[] | undefined, before: Resource, after: Resource, nest: boolean, rt: ResourceTypeDef | undefined, key: string): void {
  if (!prefix && SKIPPED.has(key)) return;
  const old = before[key], now = after[key];
  if (old === undefined ? now === undefined : same(old, now)) return;
  const ext = rt && key.charCodeAt(0) === 117 /* u */ ? rt.extensions.find((e) => e.schema.id.toLowerCase() === key.toLowerCase()) : undefined;
  if (ext && (isObject(old) || old === undefined) && (isObject(now) || now === undefined)) {
    diffLevel(out, `${key}:`, ext.schema.attributes, old ?? NONE, now ?? NONE, true, undefined);
    return;
  }
  const def = findDef(defs, key);
  const path = `${prefix}${key}`;
  if (secret(def)) {
    out.push({ attr: path, changed: true });
    return;
  }
  // A single-valued complex attribute (name, manager) is told by its sub-attributes: name.givenName.
  if (nest && def?.type === "complex" && !def.multiValued && (isObject(old) || old === undefined) && (isObject(now) || now === undefined)) {
    diffLevel(out, `${path}.`, def.subAttributes, old ?? NONE, now ?? NONE, false, undefined);
    return;
  }
  const c: AttributeChange = { attr: path };
  if (old !== undefined) c.old = old;
  if (now !== undefined) c.new = now;
  out.push(c);
}

/**
 * The attributes that differ between two states of a resource (`before` undefined: a create; `after`
 * undefined: a delete), in the order they appear. `schemas` is left out (it follows the attributes).
 * Values of writeOnly attributes never appear: only `{ attr, changed: true }`.
 */
export function diffResources(rt: ResourceTypeDef, before: Resource | undefined, after: Resource | undefined): AttributeChange[] {
  const out: AttributeChange[] = [];
  diffLevel(out, "", rt.schema.attributes, before ?? NONE, after ?? NONE, true, rt);
  return out;
}

/** The longest a value is shown in a terminal line before it is shortened with "…". */
export const SHOWN_VALUE = 60;
/** How many member ids a terminal line shows before "and N more". */
export const SHOWN_MEMBERS = 5;

/** A value as a terminal shows it: JSON, shortened past SHOWN_VALUE characters. */
export function shownValue(v: unknown, max = SHOWN_VALUE): string {
  const text = v === undefined ? "(none)" : JSON.stringify(v);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function shownIds(ids: readonly string[]): string {
  const head = ids.slice(0, SHOWN_MEMBERS).join(", ");
  return ids.length > SHOWN_MEMBERS ? `${head} and ${ids.length - SHOWN_MEMBERS} more` : head;
}

/** A change as a terminal shows it: `title: "Engineer" → "Manager"`, `password: changed`. */
export function formatChange(c: AttributeChange): string {
  if (c.changed) return `${c.attr}: changed`;
  if (c.old === undefined) return `${c.attr}: + ${shownValue(c.new)}`;
  if (c.new === undefined) return `${c.attr}: - ${shownValue(c.old)}`;
  return `${c.attr}: ${shownValue(c.old)} → ${shownValue(c.new)}`;
}

/**
 * One entry as one terminal line: time, operation, type, name and id, who (token, request id), then
 * what changed. A create lists the attributes it set by name only (their values are in --json).
 */
export function formatEntry(e: ActivityEntry): string {
  const who = [e.token !== undefined ? `token ${e.token}` : e.via === "scim" ? "" : `via ${e.via}`, e.requestId !== undefined ? `request ${e.requestId}` : ""].filter(Boolean).join(", ");
  const what: string[] = [];
  if (e.op === "create") {
    if (e.changes.length) what.push(`set ${e.changes.map((c) => c.attr).join(", ")}`);
  } else for (const c of e.changes) what.push(formatChange(c));
  if (e.membersAdded?.length) what.push(`members + ${e.membersAdded.length}: ${shownIds(e.membersAdded)}`);
  if (e.membersRemoved?.length) what.push(`members - ${e.membersRemoved.length}: ${shownIds(e.membersRemoved)}`);
  if (e.leftGroups?.length) what.push(`left ${e.leftGroups.length} group${e.leftGroups.length > 1 ? "s" : ""}: ${e.leftGroups.map((g) => g.display ?? g.value).join(", ")}`);
  const name = e.name !== undefined ? `${JSON.stringify(e.name)} (${e.id})` : e.id;
  return `${e.at}  ${e.op.padEnd(7)} ${e.resourceType.padEnd(5)} ${name}${who ? `  [${who}]` : ""}${what.length ? `  ${what.join("; ")}` : ""}`;
}
