/**
 * The SCIM service: what each operation means, composed from the pure domain functions and the store.
 * It knows nothing of HTTP; the HTTP layer passes plain values in and renders what comes back.
 */
import { resolveAttrPath } from "./attributes";
import { invalidValue, notFound, preconditionFailed, ScimError } from "./errors";
import { resolveFilter, type ResolvedFilter, type Target } from "./filter";
import { applyPatch } from "./patch";
import { quirksFor } from "./quirks";
import { parseAttributeList, project, projectionFor, wants, type Projection } from "./projection";
import { checkProductRules, finalizeResource, normalizeBody, type Resource } from "./resource";
import { LIST_RESPONSE_SCHEMA, RESOURCE_TYPES, rtOf, type ResourceKind, type ResourceTypeDef } from "./schema";
import type { GroupRef, Member, ResourceStore, StoredResource } from "../store/store";

export interface ServiceOptions {
  /** No IdP quirks (quirks.ts): answer every request as RFC 7643/7644 say. */
  strict: boolean;
  /** The most resources one page returns (advertised as filter.maxResults). */
  maxResults: number;
  /** Log a line (no secrets). */
  log?: (line: string) => void;
}

export interface ReadOptions {
  attributes?: string;
  excludedAttributes?: string;
}

export interface ListParams extends ReadOptions {
  filter?: string;
  sortBy?: string;
  sortOrder?: string;
  startIndex?: unknown;
  count?: unknown;
}

export interface Rendered {
  body: Resource;
  etag: string;
}

export const MEMBER_PAGE = 1000;

const LIST_HEAD = `{"schemas":${JSON.stringify([LIST_RESPONSE_SCHEMA])},`;

const isDefault = (p: Projection) => p.include === undefined && !p.exclude?.length;
/** The projection leaves out exactly one whole core attribute (`excludedAttributes=members`) and nothing else. */
const onlyExcludes = (p: Projection, name: string) => p.include === undefined && !!p.exclude?.length && p.exclude.every((r) => r.extension === null && !r.sub && !r.filter && r.attr.name === name);

type Writer = (current: StoredResource, precondition?: (current: StoredResource) => void) => Promise<StoredResource>;

function memberJson(m: Member, baseUrl: string): Resource {
  return {
    value: m.value,
    $ref: `${baseUrl}/${m.type === "User" ? "Users" : "Groups"}/${m.value}`,
    type: m.type,
    ...(m.display !== undefined ? { display: m.display } : {}),
  };
}

function groupJson(g: GroupRef, baseUrl: string): Resource {
  return { value: g.value, $ref: `${baseUrl}/Groups/${g.value}`, display: g.display, type: "direct" };
}

function metaOf(kind: ResourceKind, s: StoredResource, baseUrl: string, etag: string): Resource {
  return { resourceType: kind, created: s.created, lastModified: s.lastModified, location: `${baseUrl}${rtOf(kind).endpoint}/${s.id}`, version: etag };
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
export function parseEtags(header: string | null | undefined): "*" | string[] | undefined {
  if (header === null || header === undefined || header.trim() === "") return undefined;
  if (header.trim() === "*") return "*";
  const tags: string[] = [];
  for (const m of header.matchAll(/(?:W\/)?"([^"]*)"/gi)) tags.push(m[1]!);
  return tags;
}

/** Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, W/ or not. */
const etagMatches = (tags: "*" | string[], etag: string) => tags === "*" || tags.includes(etag.replace(/^W\//, "").slice(1, -1));

/** The conditional headers of a request, as sent. */
export interface Conditions {
  ifMatch?: string | null;
  ifNoneMatch?: string | null;
}

/**
 * RFC 9110 §13.1 for a write (and If-Match on a read): If-Match must name the current ETag, and
 * If-None-Match must not (`*` matches any existing resource). Throws 412 otherwise.
 */
function checkConditions(what: string, c: { ifMatch?: "*" | string[]; ifNoneMatch?: "*" | string[] }, etag: string): void {
  if (c.ifMatch && !etagMatches(c.ifMatch, etag)) throw preconditionFailed(`${what} is at version ${etag}, not the one in If-Match; read it again and retry`);
  if (c.ifNoneMatch && etagMatches(c.ifNoneMatch, etag)) throw preconditionFailed(`${what} exists at version ${etag}, which If-None-Match excludes`);
}

function parseInteger(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const n = typeof v === "number" ? v : Number(String(v).trim());
  if (!Number.isFinite(n) || !Number.isInteger(n)) throw invalidValue(`'${name}' must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

export class ScimService {
  /** The write in progress (and those queued behind it) per resource, keyed `${kind}/${id}`. */
  private readonly writing = new Map<string, Promise<void>>();

  constructor(
    readonly store: ResourceStore,
    readonly opts: ServiceOptions,
  ) {}

  private readProjection(types: ResourceTypeDef[], r: ReadOptions): (rt: ResourceTypeDef) => Projection {
    const filters = { quirks: quirksFor(this.opts.strict) };
    const include = parseAttributeList(types, r.attributes, "attributes", filters);
    const exclude = parseAttributeList(types, r.excludedAttributes, "excludedAttributes", filters);
    return (rt) => projectionFor(rt, include, exclude);
  }

  /**
   * The representation of a stored resource under a projection, with `groups` (Users) and `members`
   * (Groups) unless the projection leaves them out or, for members, `loadMembers` is false (the
   * caller then streams them with `memberBatches`).
   */
  async render(kind: ResourceKind, s: StoredResource, baseUrl: string, p: Projection, loadMembers = true): Promise<Rendered> {
    const rt = rtOf(kind);
    const { schemas, externalId, password: _password, ...attrs } = s.data as Resource & { password?: unknown };
    const body: Resource = { schemas: schemas ?? [rt.schema.id], id: s.id };
    if (externalId !== undefined) body.externalId = externalId;
    Object.assign(body, attrs);
    // A User's groups are read whether or not they are returned: the ETag covers them.
    const groups = kind === "User" ? (s.groups ?? (await this.store.groupsOf(s.id))) : undefined;
    if (groups?.length && wants(p, null, "groups")) body.groups = groups.map((g) => groupJson(g, baseUrl));
    if (kind === "Group" && loadMembers && wants(p, null, "members")) {
      const members: Resource[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.store.memberPage(s.id, cursor, MEMBER_PAGE);
        for (const m of page.members) members.push(memberJson(m, baseUrl));
        cursor = page.next;
      } while (cursor);
      if (members.length) body.members = members;
    }
    const etag = etagOf(s.version, groups);
    body.meta = metaOf(kind, s, baseUrl, etag);
    return { body: project(body, p), etag };
  }

  /** The current ETag of a stored resource (reads a User's groups). */
  private async currentEtag(kind: ResourceKind, s: StoredResource): Promise<string> {
    return etagOf(s.version, kind === "User" ? (s.groups ?? (await this.store.groupsOf(s.id))) : undefined);
  }

  /**
   * The JSON text of a resource under the default projection, spliced from the stored canonical JSON
   * (schemas first, password hash last): the stored attributes are neither parsed nor serialised
   * again. A User needs its groups read with it; a Group's text never holds `members` (the caller
   * leaves them out or writes them after it). Undefined when the stored text is not at hand; `render`
   * gives the same JSON otherwise.
   */
  splicedJson(kind: ResourceKind, s: StoredResource, baseUrl: string): { json: string; etag: string } | undefined {
    const text = s.json;
    if (text === undefined || (kind === "User" && !s.groups) || !text.startsWith('{"schemas":[')) return undefined;
    const end = text.indexOf("]"); // schema URNs hold no ']'
    let rest = text.slice(end + 1, -1);
    // The password hash is the last key when present (finalizeResource puts it there); a quote inside
    // a string is escaped, so this sequence can only be the key itself. Anything else: the slow path.
    const password = rest.lastIndexOf(',"password":');
    if (password >= 0) {
      if (!/^,"password":"[^"\\]*"$/.test(rest.slice(password))) return undefined;
      rest = rest.slice(0, password);
    }
    const groups = kind === "User" ? s.groups : undefined;
    const etag = etagOf(s.version, groups);
    const groupsJson = groups?.length ? `,"groups":${JSON.stringify(groups.map((g) => groupJson(g, baseUrl)))}` : "";
    const meta = JSON.stringify(metaOf(kind, s, baseUrl, etag));
    return { json: `${text.slice(0, end + 1)},"id":${JSON.stringify(s.id)}${rest}${groupsJson},"meta":${meta}}`, etag };
  }

  /**
   * `notModified` when If-None-Match names the current version (304); else `json` (spliced from
   * storage, see `splicedJson`) or `body`. For a Group whose members are asked for, `json`/`body` is
   * the Group without them and `members` yields them in pages (projected), to be written after it,
   * so that a 100,000-member group is never held as one string.
   */
  async get(
    kind: ResourceKind,
    id: string,
    baseUrl: string,
    read: ReadOptions,
    conditions: Conditions = {},
  ): Promise<{ notModified?: true; body?: Resource; json?: string; etag: string; members?: AsyncIterable<Resource[]> }> {
    const projection = this.readProjection([rtOf(kind)], read)(rtOf(kind));
    const s = await this.store.get(kind, id);
    if (!s) throw notFound(`${kind} ${id} not found`);
    const ifMatch = parseEtags(conditions.ifMatch);
    const ifNoneMatch = parseEtags(conditions.ifNoneMatch);
    if (ifMatch || ifNoneMatch) {
      const etag = await this.currentEtag(kind, s);
      checkConditions(`${kind} ${id}`, { ifMatch }, etag);
      if (ifNoneMatch && etagMatches(ifNoneMatch, etag)) return { notModified: true, etag };
    }
    const members = kind === "Group" && wants(projection, null, "members") ? this.memberBatches(id, baseUrl, projection) : undefined;
    // The stored text serves the default projection, and for a Group also "everything but members".
    const fast = isDefault(projection) || (kind === "Group" && onlyExcludes(projection, "members")) ? this.splicedJson(kind, s, baseUrl) : undefined;
    const head = fast ?? (await this.render(kind, s, baseUrl, projection, false));
    return members ? { ...head, members } : head;
  }

  /** A group's members in pages of `MEMBER_PAGE`, rendered and projected like `render` does. */
  async *memberBatches(groupId: string, baseUrl: string, p: Projection): AsyncGenerator<Resource[]> {
    let cursor: string | undefined;
    do {
      const page = await this.store.memberPage(groupId, cursor, MEMBER_PAGE);
      const projected = project({ schemas: [], id: "", members: page.members.map((m) => memberJson(m, baseUrl)) }, p).members as Resource[] | undefined;
      if (projected?.length) yield projected;
      cursor = page.next;
    } while (cursor);
  }

  private async hashPassword(password: string | undefined): Promise<string | undefined> {
    return password === undefined ? undefined : Bun.password.hash(password);
  }

  async create(kind: ResourceKind, body: unknown, baseUrl: string, read: ReadOptions): Promise<Rendered> {
    const rt = rtOf(kind);
    const projection = this.readProjection([rt], read)(rt);
    const n = normalizeBody(rt, body, { quirks: quirksFor(this.opts.strict) });
    const data = finalizeResource(rt, n.resource);
    const hash = await this.hashPassword(n.password);
    if (hash) data.password = hash;
    const s = await this.store.create(kind, { id: crypto.randomUUID(), data, members: n.members });
    return this.render(kind, s, baseUrl, projection);
  }

  async replace(kind: ResourceKind, id: string, body: unknown, baseUrl: string, read: ReadOptions, conditions: Conditions = {}): Promise<Rendered> {
    const rt = rtOf(kind);
    const projection = this.readProjection([rt], read)(rt);
    const n = normalizeBody(rt, body, { quirks: quirksFor(this.opts.strict) });
    // A body that breaks the product's rules is 400 whether or not the resource exists.
    checkProductRules(rt, n.resource);
    const hash = await this.hashPassword(n.password);
    const s = await this.withVersion(kind, id, conditions, async (current, precondition) => {
      // A PUT that leaves `active` out keeps the stored value (a disabled account stays disabled), and
      // one that leaves the password out keeps the one set before.
      const data = finalizeResource(rt, n.resource, current.data);
      if (hash) data.password = hash;
      else if (current.data.password !== undefined) data.password = current.data.password;
      return this.store.update(kind, id, { data, expectedVersion: current.version, members: n.members, precondition });
    });
    return this.render(kind, s, baseUrl, projection);
  }

  /** The patched resource and the projection asked for; the caller renders it (or answers 204 for a Group). */
  async patch(kind: ResourceKind, id: string, body: unknown, read: ReadOptions, conditions: Conditions = {}): Promise<{ stored: StoredResource; projection: Projection }> {
    const rt = rtOf(kind);
    const projection = this.readProjection([rt], read)(rt);
    const stored = await this.withVersion(kind, id, conditions, async (current, precondition) => {
      const result = applyPatch({ rt, quirks: quirksFor(this.opts.strict), id }, current.data, body);
      if (!result.changed) return current;
      const data = finalizeResource(rt, result.resource, current.data);
      const hash = await this.hashPassword(result.password);
      if (hash) data.password = hash;
      if (result.memberChanges.some((c) => c.kind === "removeAll")) this.opts.log?.(`PATCH removed every member of Group ${id}`);
      return this.store.update(kind, id, { data, expectedVersion: current.version, memberChanges: result.memberChanges, precondition });
    });
    return { stored, projection };
  }

  async delete(kind: ResourceKind, id: string, conditions: Conditions = {}): Promise<void> {
    const c = { ifMatch: parseEtags(conditions.ifMatch), ifNoneMatch: parseEtags(conditions.ifNoneMatch) };
    // The conditions are checked inside the write, against the resource as it is then.
    const precondition = c.ifMatch || c.ifNoneMatch ? (cur: StoredResource) => checkConditions(`${kind} ${id}`, c, etagOf(cur.version, cur.groups)) : undefined;
    return this.store.delete(kind, id, { precondition });
  }

  /**
   * Read, change, write with an optimistic version check. With If-Match a stale version is 412;
   * without it a concurrent writer only makes us read again and re-apply (no lost update).
   */
  private async withVersion(kind: ResourceKind, id: string, conditions: Conditions, write: Writer): Promise<StoredResource> {
    // Writes to one resource take turns in this process, so concurrent PATCHes of one group do not
    // race each other into version conflicts; the version check stays as the guard across processes.
    const key = `${kind}/${id}`;
    const previous = this.writing.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const chain = previous.then(() => mine);
    this.writing.set(key, chain);
    await previous;
    try {
      return await this.readChangeWrite(kind, id, conditions, write);
    } finally {
      done();
      if (this.writing.get(key) === chain) this.writing.delete(key);
    }
  }

  private async readChangeWrite(kind: ResourceKind, id: string, conditions: Conditions, write: Writer): Promise<StoredResource> {
    const c = { ifMatch: parseEtags(conditions.ifMatch), ifNoneMatch: parseEtags(conditions.ifNoneMatch) };
    const conditional = !!(c.ifMatch || c.ifNoneMatch);
    // Checked once before the work (a clear early 412) and again inside the write, atomically.
    const precondition = conditional ? (cur: StoredResource) => checkConditions(`${kind} ${id}`, c, etagOf(cur.version, cur.groups)) : undefined;
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.get(kind, id);
      if (!current) throw notFound(`${kind} ${id} not found`);
      if (conditional) checkConditions(`${kind} ${id}`, c, await this.currentEtag(kind, current));
      try {
        return await write(current, precondition);
      } catch (e) {
        if (e instanceof ScimError && e.status === 412 && !conditional && attempt < 10) continue;
        throw e;
      }
    }
  }

  /** GET /Users, /Groups, POST …/.search; `kind` undefined searches both (POST /.search). Returns the ListResponse as JSON text. */
  async list(kind: ResourceKind | undefined, params: ListParams, baseUrl: string): Promise<string> {
    const kinds: ResourceKind[] = kind ? [kind] : ["User", "Group"];
    const types = kinds.map(rtOf);
    const projectionOf = this.readProjection(types, params);
    // Below 1 means 1 (RFC 7644 §3.4.2.4); far past any page (beyond 2^53) means an empty page.
    const startIndex = Math.min(Math.max(1, parseInteger(params.startIndex, "startIndex") ?? 1), Number.MAX_SAFE_INTEGER);
    const requested = parseInteger(params.count, "count");
    const count = Math.min(Math.max(0, requested ?? this.opts.maxResults), this.opts.maxResults);
    const descending = this.parseSortOrder(params.sortOrder);

    const hasFilter = params.filter !== undefined && params.filter !== null && String(params.filter).trim() !== "";
    if (hasFilter && typeof params.filter !== "string") throw invalidValue("'filter' must be a string");
    const hasSort = params.sortBy !== undefined && params.sortBy !== null && params.sortBy !== "";
    if (hasSort && typeof params.sortBy !== "string") throw invalidValue("'sortBy' must be a string");
    let filterError: ScimError | undefined;
    const plans: { rt: ResourceTypeDef; filter?: ResolvedFilter; sortBy?: Target }[] = [];
    for (const rt of types) {
      let filter: ResolvedFilter | undefined;
      if (hasFilter) {
        try {
          filter = resolveFilter(rt, params.filter as string, { quirks: quirksFor(this.opts.strict) });
        } catch (e) {
          // At the root (/.search) a filter naming an attribute one type lacks matches nothing of that type.
          if (!(e instanceof ScimError) || types.length === 1) throw e;
          filterError = e;
          continue;
        }
      }
      const r = hasSort ? resolveAttrPath(rt, params.sortBy as string, quirksFor(this.opts.strict)) : undefined;
      plans.push({ rt, filter, sortBy: r ? { extension: r.extension, attr: r.attr, sub: r.sub } : undefined });
    }
    if (plans.length === 0 && filterError) throw filterError;
    if (hasSort && !plans.some((p) => p.sortBy)) throw invalidValue(`'sortBy' names an unknown attribute '${params.sortBy}'`);

    let offset = startIndex - 1;
    let remaining = count;
    let total = 0;
    const resources: string[] = [];
    for (const plan of plans) {
      const k = plan.rt.name;
      const page = await this.store.search(k, { filter: plan.filter, sortBy: plan.sortBy, descending, offset, limit: remaining });
      total += page.total;
      const projection = projectionOf(plan.rt);
      for (const s of page.resources) {
        const fast = k === "User" && isDefault(projection) ? this.splicedJson(k, s, baseUrl) : undefined;
        resources.push(fast ? fast.json : JSON.stringify((await this.render(k, s, baseUrl, projection)).body));
      }
      remaining -= page.resources.length;
      offset = Math.max(0, offset - page.total);
    }
    // The envelope holds only integers besides the constant schema: written directly.
    return `${LIST_HEAD}"totalResults":${total},"startIndex":${startIndex},"itemsPerPage":${count > 0 ? resources.length : 0},"Resources":[${resources.join(",")}]}`;
  }

  private parseSortOrder(v: unknown): boolean {
    if (v === undefined || v === null || v === "") return false;
    if (typeof v === "string" && /^ascending$/i.test(v)) return false;
    if (typeof v === "string" && /^descending$/i.test(v)) return true;
    throw invalidValue(`'sortOrder' must be "ascending" or "descending", got ${JSON.stringify(v)}`);
  }
}

export { RESOURCE_TYPES };
