/**
 * Export and import, the SCIM side (pure: no I/O). What a resource looks like in an export (the API's
 * representation less what needs a server: no `location`, no `$ref`, never the password hash), the
 * CSV flattening of it (fixed, stable columns; RFC 4180 quoting; spreadsheet formula injection
 * neutralised), and the checks an import record passes: the API's own (normalizeBody,
 * finalizeResource with the product's rules), then what makes a set of records importable (ids and
 * names unique in the file, members that the file holds, groups in an order they can be created in).
 */
import { canonicalDateTime, fold, userNameKey } from "./compare-keys";
import { ScimError } from "./errors";
import { isObject, memberValue, typeName } from "./json";
import type { Quirks } from "./quirks";
import { finalizeResource, normalizeBody, type Resource } from "./resource";
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, rtOf, USER_SCHEMA, type ResourceKind } from "./schema";
import type { Member, StoredResource } from "../store/store";

/** `format` of a JSON export document; `version` says which shape of it. */
export const EXPORT_FORMAT = "scimd-export";
export const EXPORT_VERSION = 1;

/** The JSON key of each type's array in an export document. */
export const EXPORT_KEYS: Record<ResourceKind, "Users" | "Groups"> = { User: "Users", Group: "Groups" };

/**
 * A resource as it is exported: the API's representation (schemas, id, externalId, the attributes,
 * a User's groups, meta with resourceType, created and lastModified), without what only a server's
 * URL gives (meta.location, $ref), without meta.version (an ETag), and without the password hash, which never leaves the
 * database. A Group's members are not in it: they are written after it, page by page (memberRecord).
 */
export function exportRecord(kind: ResourceKind, s: StoredResource): Resource {
  const { schemas, externalId, password: _password, ...attrs } = s.data as Resource & { password?: unknown };
  const out: Resource = { schemas: schemas ?? [rtOf(kind).schema.id], id: s.id };
  if (externalId !== undefined) out.externalId = externalId;
  Object.assign(out, attrs);
  if (kind === "User" && s.groups?.length) out.groups = s.groups.map((g) => ({ value: g.value, display: g.display, type: "direct" }));
  // No meta.version: an ETag is this server's concurrency token, not data; an import starts each resource at version 1.
  out.meta = { resourceType: kind, created: s.created, lastModified: s.lastModified };
  return out;
}

/** A member of a Group as exported: its id, whether it is a User or a Group, and its display name. */
export function memberRecord(m: Member): Resource {
  return m.display === undefined ? { value: m.value, type: m.type } : { value: m.value, type: m.type, display: m.display };
}

// ---------------------------------------------------------------------------------------------
// CSV

/**
 * A value as one CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF (quotes
 * doubled), else as it is. A value a spreadsheet would read as a formula (one beginning with =, +,
 * -, @, a tab or CR: OWASP's "CSV injection") gets a leading apostrophe, which spreadsheets show as
 * text and do not evaluate; so "+49 30 1234" is written as "'+49 30 1234".
 */
export function csvField(value: string): string {
  const v = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/** One CSV record with its CRLF line break (RFC 4180 §2). */
export const csvLine = (fields: readonly string[]): string => fields.map(csvField).join(",") + "\r\n";

type Row = Record<string, string>;

/** The canonical types of emails and phoneNumbers, each a column of its own (`emails.work.value`). */
const EMAIL_TYPES = ["work", "home", "other"] as const;
const PHONE_TYPES = ["work", "home", "mobile", "fax", "pager", "other"] as const;
const NAME_PARTS = ["formatted", "givenName", "middleName", "familyName", "honorificPrefix", "honorificSuffix"] as const;
const SIMPLE = ["nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale", "timezone"] as const;
const ENTERPRISE = ["employeeNumber", "costCenter", "organization", "division", "department"] as const;
/** Multi-valued attributes with no columns of their own: a JSON array, as stored. */
const AS_JSON = ["addresses", "ims", "photos", "entitlements", "roles", "x509Certificates"] as const;

/**
 * The columns of a Users CSV, always all of them and in this order (a stable header whatever the
 * data): for emails and phoneNumbers the primary value, the first value of each canonical type, and
 * the values left over (a second work address, an untyped or other-typed one) as a JSON array.
 */
export const USER_COLUMNS: readonly string[] = [
  "id",
  "externalId",
  "userName",
  "displayName",
  ...NAME_PARTS.map((p) => `name.${p}`),
  ...SIMPLE,
  "active",
  "emails.primary",
  ...EMAIL_TYPES.map((t) => `emails.${t}.value`),
  "emails.more",
  "phoneNumbers.primary",
  ...PHONE_TYPES.map((t) => `phoneNumbers.${t}.value`),
  "phoneNumbers.more",
  ...AS_JSON,
  ...ENTERPRISE.map((a) => `enterprise.${a}`),
  "enterprise.manager.value",
  "enterprise.manager.displayName",
  "groups",
  "meta.created",
  "meta.lastModified",
];

/** The columns of a Groups CSV: member ids separated by spaces, member display names by "; ". */
export const GROUP_COLUMNS: readonly string[] = ["id", "externalId", "displayName", "members.count", "members.value", "members.display", "meta.created", "meta.lastModified"];

const text = (v: unknown): string => (v === undefined || v === null ? "" : typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v));

/**
 * Spreads a multi-valued attribute of {value, type, primary} over its columns: `${name}.primary`
 * (the primary value), `${name}.<type>.value` (the first value of each type in `types`), and
 * `${name}.more` (every value placed in no type column, as a JSON array of the values as stored).
 */
function spread(row: Row, name: string, types: readonly string[], values: unknown): void {
  const list = Array.isArray(values) ? values.filter(isObject) : [];
  const more: Resource[] = [];
  for (const v of list) {
    if (v.primary === true) row[`${name}.primary`] = text(v.value);
    const type = typeof v.type === "string" ? v.type.toLowerCase() : undefined;
    const column = type && types.includes(type) ? `${name}.${type}.value` : undefined;
    if (column && row[column] === undefined) row[column] = text(v.value);
    else more.push(v);
  }
  if (more.length) row[`${name}.more`] = JSON.stringify(more);
}

/** The fields of a User's CSV record, in USER_COLUMNS order, from its export record. */
export function userCsvFields(r: Resource): string[] {
  const row: Row = {};
  for (const k of ["id", "externalId", "userName", "displayName", ...SIMPLE, "active"]) row[k] = text(r[k]);
  const name = isObject(r.name) ? r.name : {};
  for (const p of NAME_PARTS) row[`name.${p}`] = text(name[p]);
  spread(row, "emails", EMAIL_TYPES, r.emails);
  spread(row, "phoneNumbers", PHONE_TYPES, r.phoneNumbers);
  for (const k of AS_JSON) if (Array.isArray(r[k]) && (r[k] as unknown[]).length) row[k] = JSON.stringify(r[k]);
  const ent = isObject(r[ENTERPRISE_USER_SCHEMA]) ? (r[ENTERPRISE_USER_SCHEMA] as Resource) : {};
  for (const a of ENTERPRISE) row[`enterprise.${a}`] = text(ent[a]);
  const manager = isObject(ent.manager) ? ent.manager : {};
  row["enterprise.manager.value"] = text(manager.value);
  row["enterprise.manager.displayName"] = text(manager.displayName);
  const groups = Array.isArray(r.groups) ? (r.groups as Resource[]) : [];
  row.groups = groups.map((g) => text(g.display ?? g.value)).join("; ");
  const meta = isObject(r.meta) ? r.meta : {};
  row["meta.created"] = text(meta.created);
  row["meta.lastModified"] = text(meta.lastModified);
  return USER_COLUMNS.map((c) => row[c] ?? "");
}

/** The fields of a Group's CSV record, in GROUP_COLUMNS order, from its export record and all its members. */
export function groupCsvFields(r: Resource, members: readonly Member[]): string[] {
  const meta = isObject(r.meta) ? r.meta : {};
  return [
    text(r.id),
    text(r.externalId),
    text(r.displayName),
    String(members.length),
    members.map((m) => m.value).join(" "),
    members.map((m) => m.display ?? "").join("; "),
    text(meta.created),
    text(meta.lastModified),
  ];
}

// ---------------------------------------------------------------------------------------------
// Import

/** A record an import refuses: `where` names it (line 12, Users[3]), `message` says what is wrong. */
export class ImportError extends Error {
  constructor(
    readonly where: string,
    readonly problem: string,
  ) {
    super(`${where}: ${problem}`);
  }
}

/** One record of an import, checked as the API checks a POST, with the id and timestamps it keeps. */
export interface ImportRecord {
  kind: ResourceKind;
  id: string;
  /** The canonical resource, as finalizeResource makes it for a POST. */
  data: Resource;
  /** A Group's member ids, in order. */
  members?: string[];
  meta: { created: string; lastModified: string };
  /** A cleartext password the record carried (another server's export may); the caller hashes it. */
  password?: string;
  /** Where the record is in the file, for messages. */
  where: string;
}

/** The type a record says it is: meta.resourceType, else its core schema in `schemas`; undefined when it says neither. */
export function recordKind(raw: unknown): ResourceKind | undefined {
  if (!isObject(raw)) return undefined;
  const meta = memberValue(raw, "meta");
  const rt = isObject(meta) ? memberValue(meta, "resourcetype") : undefined;
  if (typeof rt === "string" && /^(user|group)$/i.test(rt)) return rt.toLowerCase() === "user" ? "User" : "Group";
  const schemas = memberValue(raw, "schemas");
  if (Array.isArray(schemas)) {
    const lower = schemas.map((s) => String(s).toLowerCase());
    if (lower.includes(USER_SCHEMA.toLowerCase())) return "User";
    if (lower.includes(GROUP_SCHEMA.toLowerCase())) return "Group";
  }
  return undefined;
}

/** An id an import keeps: the API's ids are UUIDs; another server's may be any text that works as one URL path segment. */
function checkId(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "string") throw new Error(`'id' must be a string, got ${typeName(raw)}`);
  if (raw === "" || raw.length > 1024 || /[\s/\\?#%\p{Cc}]/u.test(raw))
    throw new Error(`'id' ${JSON.stringify(raw.slice(0, 100))} cannot be kept: an id must be 1 to 1024 characters without whitespace, control characters, '/', '\\', '?', '#' or '%'`);
  return raw;
}

/** meta.created / meta.lastModified of a record, as the store writes times (ISO 8601 UTC, milliseconds). */
function metaTime(meta: Record<string, unknown>, name: "created" | "lastModified"): string | undefined {
  const v = memberValue(meta, name.toLowerCase());
  if (v === undefined || v === null) return undefined;
  const t = typeof v === "string" ? canonicalDateTime(v) : undefined;
  if (!t) throw new Error(`'meta.${name}' must be an xsd:dateTime such as "2024-01-31T09:00:00Z", got ${JSON.stringify(v)}`);
  return t;
}

/**
 * Checks one record as the API checks a POST body (normalizeBody, then finalizeResource with the
 * product's rules), keeping its `id` (a new UUID when it has none) and its meta.created and
 * meta.lastModified (`now` when absent). Read-only parts (groups, meta.location, members' display)
 * are ignored as the API ignores them. Throws ImportError naming `where`.
 */
export function importRecord(kind: ResourceKind, raw: unknown, where: string, quirks: Quirks, now: string): ImportRecord {
  try {
    if (!isObject(raw)) throw new Error(`a ${kind} must be a JSON object, got ${typeName(raw)}`);
    const said = recordKind(raw);
    if (said !== undefined && said !== kind) throw new Error(`a ${said} where a ${kind} is expected`);
    const rt = rtOf(kind);
    const id = checkId(memberValue(raw, "id")) ?? crypto.randomUUID();
    const meta = memberValue(raw, "meta");
    if (meta !== undefined && meta !== null && !isObject(meta)) throw new Error(`'meta' must be an object, got ${typeName(meta)}`);
    const created = meta ? metaTime(meta, "created") : undefined;
    const lastModified = (meta ? metaTime(meta, "lastModified") : undefined) ?? created ?? now;
    const n = normalizeBody(rt, raw, { quirks });
    const data = finalizeResource(rt, n.resource);
    const record: ImportRecord = { kind, id, data, meta: { created: created ?? lastModified, lastModified }, where };
    if (record.meta.lastModified < record.meta.created) throw new Error(`'meta.lastModified' (${lastModified}) is before 'meta.created' (${record.meta.created})`);
    if (kind === "Group") record.members = n.members ?? [];
    if (n.password !== undefined) record.password = n.password;
    return record;
  } catch (e) {
    if (e instanceof ScimError) throw new ImportError(where, e.detail);
    if (e instanceof Error && !(e instanceof ImportError)) throw new ImportError(where, e.message);
    throw e;
  }
}

/** A Group of an import as its order needs it: its id, where it is, its member ids. */
type GroupEdges = { id: string; where: string; members: string[] };

/**
 * What makes a set of checked records importable, seen one record at a time (so the records
 * themselves need not be kept): ids unique across Users and Groups, userName and Group displayName
 * unique as the store compares them, every member in the file. `groupOrder` then gives an order in
 * which each Group's member Groups exist before it.
 */
export class ImportSet {
  private readonly ids = new Map<string, { kind: ResourceKind; where: string }>();
  private readonly names = new Map<string, string>();
  private readonly groups: GroupEdges[] = [];
  users = 0;

  add(r: ImportRecord): void {
    const seen = this.ids.get(r.id);
    if (seen) throw new ImportError(r.where, `id '${r.id}' is already the id of the ${seen.kind} at ${seen.where}`);
    this.ids.set(r.id, { kind: r.kind, where: r.where });
    const nameKey = r.kind === "User" ? `u:${userNameKey(String(r.data.userName))}` : `g:${fold(String(r.data.displayName))}`;
    const named = this.names.get(nameKey);
    const attr = r.kind === "User" ? "userName" : "displayName";
    if (named) throw new ImportError(r.where, `${attr} "${String(r.data[attr])}" is already the ${attr} of the ${r.kind} at ${named} (${attr} is compared case-insensitively)`);
    this.names.set(nameKey, r.where);
    if (r.kind === "User") this.users++;
    else this.groups.push({ id: r.id, where: r.where, members: r.members ?? [] });
  }

  /**
   * The Groups' ids in an order to create them in (file order, except that a Group comes after the
   * Groups among its members). Throws ImportError for a member id the file does not hold, a Group
   * among its own members, or Groups that are members of each other (created one at a time with
   * their members, such Groups cannot be).
   */
  groupOrder(): string[] {
    for (const g of this.groups)
      for (const m of g.members) {
        const target = this.ids.get(m);
        if (!target) throw new ImportError(g.where, `member '${m}' is neither a User nor a Group in the file (members must be imported with the group)`);
        if (m === g.id) throw new ImportError(g.where, `a Group cannot be a member of itself ('${m}')`);
      }
    const byId = new Map(this.groups.map((g) => [g.id, g]));
    const state = new Map<string, "visiting" | "done">();
    const order: string[] = [];
    // Depth-first over member Groups, iteratively (a deep chain of nested Groups must not overflow the stack).
    for (const root of this.groups) {
      if (state.has(root.id)) continue;
      const stack: { g: GroupEdges; next: number }[] = [{ g: root, next: 0 }];
      state.set(root.id, "visiting");
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const m = top.g.members[top.next++];
        if (m === undefined) {
          state.set(top.g.id, "done");
          order.push(top.g.id);
          stack.pop();
          continue;
        }
        const child = byId.get(m);
        if (!child) continue;
        const s = state.get(m);
        if (s === "visiting")
          throw new ImportError(top.g.where, `Group '${top.g.id}' and Group '${m}' (${child.where}) are members of each other, directly or through other Groups: scimd import cannot create such a cycle`);
        if (s === undefined) {
          state.set(m, "visiting");
          stack.push({ g: child, next: 0 });
        }
      }
    }
    return order;
  }
}
