/**
 * The SCIM operations (RFC 7644 §3.3–3.6): what each one means, composed from the pure domain
 * functions and the resource store. Each takes what it acts on and a RequestContext, and returns one
 * ScimResult (status, headers, body) or throws a ScimError; none knows of HTTP.
 */
import { qualifyHint, resolveAttrPath } from "./attributes";
import { checkConditions, etagMatches, etagOf, parseConditions, preconditionOf, type ParsedConditions } from "./conditions";
import { invalidValue, notFound, ScimError } from "./errors";
import { resolveFilter, type ResolvedFilter, type Target } from "./filter";
import type { FilterOptions } from "./filter-syntax";
import { applyPatch } from "./patch";
import { quirksFor, type Quirks } from "./quirks";
import { asksForAttributes, parseAttributeList, projectionFor, wants, type Projection } from "./projection";
import { listResponseHead, listResponseJson, MEMBER_PAGE, Renderer, splicedJson, splices } from "./representation";
import { checkProductRules, finalizeResource, normalizeBody } from "./resource";
import type { ListItem, ReadOptions, RequestContext, ScimResult } from "./result";
import { rtOf, type ResourceKind, type ResourceTypeDef } from "./schema";
import type { Logger } from "../log";
import type { ResourceStore, StoredResource, WriteOrigin } from "../store/store";

/** How a User's password is stored: Bun's password hash (argon2id), never the password itself. The API and `scimd import` both use it. */
export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password);
}

export interface OperationsOptions {
  /** No IdP quirks (quirks.ts): answer every request as RFC 7643/7644 say. */
  strict: boolean;
  /** The most resources one page returns (advertised as filter.maxResults). */
  maxResults: number;
  /**
   * The most group members one list response carries (--max-list-members): a page of Groups with
   * their members ends before the Group that would pass it, but always holds its first resource.
   * Absent: no limit.
   */
  maxListMembers?: number;
  /** The operator's log (no secrets). */
  logger?: Logger;
}

/** The parameters of a query (RFC 7644 §3.4.2), as sent in a query string or a SearchRequest body; the projection comes from the context. */
export interface SearchParams {
  filter?: unknown;
  sortBy?: unknown;
  sortOrder?: unknown;
  startIndex?: unknown;
  count?: unknown;
}

type Writer = (current: StoredResource, precondition?: (current: StoredResource) => void) => Promise<StoredResource>;

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** Who makes a write, for the activity log: the request's id and the name of its token. */
const originOf = (ctx: RequestContext): WriteOrigin => ({ via: "scim", requestId: ctx.requestId, token: ctx.caller.name });

function parseInteger(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const n = typeof v === "number" ? v : Number(String(v).trim());
  if (!Number.isFinite(n) || !Number.isInteger(n)) throw invalidValue(`'${name}' must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

function parseSortOrder(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return false;
  if (typeof v === "string" && /^ascending$/i.test(v)) return false;
  if (typeof v === "string" && /^descending$/i.test(v)) return true;
  throw invalidValue(`'sortOrder' must be "ascending" or "descending", got ${JSON.stringify(v)}`);
}

export class ScimOperations {
  /** The write in progress (and those queued behind it) per resource, keyed `${kind}/${id}`. */
  private readonly writing = new Map<string, Promise<void>>();
  private readonly view: Renderer;
  /** The IdP quirks this server accepts (none under --strict), handed to every domain function. */
  private readonly quirks: Quirks;
  private readonly filterOptions: FilterOptions;

  constructor(
    readonly store: ResourceStore,
    readonly opts: OperationsOptions,
  ) {
    this.view = new Renderer(store);
    this.quirks = quirksFor(opts.strict);
    this.filterOptions = { quirks: this.quirks };
  }

  /** The projection per resource type that `read` asks for (400 for an attribute no type has). */
  private projections(types: ResourceTypeDef[], read: ReadOptions): (rt: ResourceTypeDef) => Projection {
    const include = parseAttributeList(types, read.attributes, "attributes", this.filterOptions);
    const exclude = parseAttributeList(types, read.excludedAttributes, "excludedAttributes", this.filterOptions);
    return (rt) => projectionFor(rt, include, exclude);
  }

  private projection(rt: ResourceTypeDef, read: ReadOptions): Projection {
    return this.projections([rt], read)(rt);
  }

  /**
   * GET /{Users|Groups}/{id} (RFC 7644 §3.4.1): 200 with the resource and its ETag, 304 when
   * If-None-Match names the current version, 412 when If-Match does not. The default projection is
   * spliced from the stored text; a Group whose members are asked for comes as its head and the
   * members in batches.
   */
  async get(kind: ResourceKind, id: string, ctx: RequestContext): Promise<ScimResult> {
    const rt = rtOf(kind);
    const projection = this.projection(rt, ctx.read);
    const s = await this.store.get(kind, id);
    if (!s) throw notFound(`${kind} ${id} not found`);
    const c = parseConditions(ctx.conditions);
    if (c) {
      const etag = await this.view.etag(kind, s);
      if (c.ifMatch) checkConditions(`${kind} ${id}`, { ifMatch: c.ifMatch }, etag);
      if (c.ifNoneMatch && etagMatches(c.ifNoneMatch, etag)) return { status: 304, headers: { ETag: etag } };
    }
    const withMembers = kind === "Group" && wants(projection, null, "members");
    const fast = splices(kind, projection) ? splicedJson(kind, s, ctx.baseUrl) : undefined;
    if (!withMembers) {
      if (fast) return { status: 200, headers: { ETag: fast.etag }, body: { type: "json", text: fast.json } };
      const r = await this.view.head(kind, s, ctx.baseUrl, projection);
      return { status: 200, headers: { ETag: r.etag }, body: { type: "object", value: r.body } };
    }
    const head = fast ?? (await this.view.head(kind, s, ctx.baseUrl, projection));
    const text = "json" in head ? head.json : JSON.stringify(head.body);
    return { status: 200, headers: { ETag: head.etag }, body: { type: "members", head: text, batches: this.view.memberBatches(id, ctx.baseUrl, projection) } };
  }

  /** POST /{Users|Groups} (RFC 7644 §3.3): 201 with the resource, its Location and ETag. */
  async create(kind: ResourceKind, body: unknown, ctx: RequestContext): Promise<ScimResult> {
    const rt = rtOf(kind);
    const projection = this.projection(rt, ctx.read);
    const n = normalizeBody(rt, body, { quirks: this.quirks });
    const data = finalizeResource(rt, n.resource);
    const hash = await this.hashPassword(n.password);
    if (hash) data.password = hash;
    const s = await this.store.create(kind, { id: crypto.randomUUID(), data, members: n.members, origin: originOf(ctx) });
    const r = await this.view.resource(kind, s, ctx.baseUrl, projection);
    return { status: 201, headers: { Location: `${ctx.baseUrl}${rt.endpoint}/${s.id}`, ETag: r.etag }, body: { type: "object", value: r.body } };
  }

  /** PUT /{Users|Groups}/{id} (RFC 7644 §3.5.1): 200 with the replaced resource and its ETag. */
  async replace(kind: ResourceKind, id: string, body: unknown, ctx: RequestContext): Promise<ScimResult> {
    const rt = rtOf(kind);
    const projection = this.projection(rt, ctx.read);
    const n = normalizeBody(rt, body, { quirks: this.quirks });
    // A body that breaks the product's rules is 400 whether or not the resource exists.
    checkProductRules(rt, n.resource);
    const hash = await this.hashPassword(n.password);
    const s = await this.withVersion(kind, id, ctx, async (current, precondition) => {
      // A PUT that leaves `active` out keeps the stored value (a disabled account stays disabled), and
      // one that leaves the password out keeps the one set before.
      const data = finalizeResource(rt, n.resource, current.data);
      if (hash) data.password = hash;
      else if (current.data.password !== undefined) data.password = current.data.password;
      return this.store.update(kind, id, { data, expectedVersion: current.version, members: n.members, precondition, origin: originOf(ctx), op: "replace", before: current.data });
    });
    const r = await this.view.resource(kind, s, ctx.baseUrl, projection);
    return { status: 200, headers: { ETag: r.etag }, body: { type: "object", value: r.body } };
  }

  /**
   * PATCH /{Users|Groups}/{id} (RFC 7644 §3.5.2): 200 with the patched resource, or for a Group 204
   * unless attributes are asked for (its member list can be large); the ETag either way.
   */
  async patch(kind: ResourceKind, id: string, body: unknown, ctx: RequestContext): Promise<ScimResult> {
    const rt = rtOf(kind);
    const projection = this.projection(rt, ctx.read);
    const s = await this.withVersion(kind, id, ctx, async (current, precondition) => {
      const result = applyPatch({ rt, quirks: this.quirks, id }, current.data, body);
      if (!result.changed) return current;
      const data = finalizeResource(rt, result.resource, current.data);
      const hash = await this.hashPassword(result.password);
      if (hash) data.password = hash;
      if (result.memberChanges.some((c) => c.kind === "removeAll")) this.opts.logger?.info("group emptied", { groupId: id, by: "PATCH remove members" });
      return this.store.update(kind, id, { data, expectedVersion: current.version, memberChanges: result.memberChanges, precondition, origin: originOf(ctx), op: "patch", before: current.data });
    });
    if (kind === "Group" && !asksForAttributes(projection)) return { status: 204, headers: { ETag: etagOf(s.version) } };
    const r = await this.view.resource(kind, s, ctx.baseUrl, projection);
    return { status: 200, headers: { ETag: r.etag }, body: { type: "object", value: r.body } };
  }

  /** DELETE /{Users|Groups}/{id} (RFC 7644 §3.6): 204; the conditions are checked inside the write, against the resource as it is then. */
  async delete(kind: ResourceKind, id: string, ctx: RequestContext): Promise<ScimResult> {
    const precondition = preconditionOf(`${kind} ${id}`, parseConditions(ctx.conditions));
    await this.store.delete(kind, id, { precondition, origin: originOf(ctx) });
    return { status: 204, headers: NO_HEADERS };
  }

  /**
   * GET /Users, /Groups, POST …/.search (RFC 7644 §3.4.2, §3.4.3); `kind` undefined searches both
   * (the service root, POST /.search). 200 with the ListResponse as JSON text, or, when its Groups
   * carry more than one member page in all, as a `list` body whose Groups' members come in batches.
   * Groups with their members count against `maxListMembers`: the page ends before the one that
   * would pass it (its first resource always comes).
   */
  async search(kind: ResourceKind | undefined, params: SearchParams, ctx: RequestContext): Promise<ScimResult> {
    const types = kind ? [rtOf(kind)] : [rtOf("User"), rtOf("Group")];
    const projectionOf = this.projections(types, ctx.read);
    // Below 1 means 1 (RFC 7644 §3.4.2.4); far past any page (beyond 2^53) means an empty page.
    const startIndex = Math.min(Math.max(1, parseInteger(params.startIndex, "startIndex") ?? 1), Number.MAX_SAFE_INTEGER);
    const requested = parseInteger(params.count, "count");
    const count = Math.min(Math.max(0, requested ?? this.opts.maxResults), this.opts.maxResults);
    const descending = parseSortOrder(params.sortOrder);

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
          filter = resolveFilter(rt, params.filter as string, this.filterOptions);
        } catch (e) {
          // At the root (/.search) a filter naming an attribute one type lacks matches nothing of that type.
          if (!(e instanceof ScimError) || types.length === 1) throw e;
          filterError = e;
          continue;
        }
      }
      const r = hasSort ? resolveAttrPath(rt, params.sortBy as string, this.quirks) : undefined;
      plans.push({ rt, filter, sortBy: r ? { extension: r.extension, attr: r.attr, sub: r.sub } : undefined });
    }
    if (plans.length === 0 && filterError) throw filterError;
    if (hasSort && !plans.some((p) => p.sortBy))
      throw invalidValue(`'sortBy' names an unknown attribute '${params.sortBy}'${types.map((t) => qualifyHint(t, params.sortBy as string, this.quirks)).find(Boolean) ?? ""}`);

    let offset = startIndex - 1;
    let remaining = count;
    let total = 0;
    // The resources of the page, chosen first and rendered after: whether Groups' members are
    // streamed depends on how many the whole page carries.
    const picked: { kind: ResourceKind; s: StoredResource; projection: Projection; withMembers: boolean }[] = [];
    let budget = this.opts.maxListMembers ?? Number.MAX_SAFE_INTEGER;
    let members = 0;
    let large = false;
    let ended = false;
    for (const plan of plans) {
      const k = plan.rt.name;
      const page = await this.store.search(k, { filter: plan.filter, sortBy: plan.sortBy, descending, offset, limit: ended ? 0 : remaining, signal: ctx.signal });
      total += page.total;
      const projection = projectionOf(plan.rt);
      const withMembers = k === "Group" && wants(projection, null, "members");
      for (const s of page.resources) {
        if (withMembers) {
          // The member budget ends the page before a Group that would pass it (RFC 7644 §3.4.2.4
          // lets a page hold fewer than `count`); a page's first resource always comes, so paging on
          // by itemsPerPage always advances.
          const room = Math.max(0, budget);
          const n = await this.store.memberCount(s.id, Math.max(room, MEMBER_PAGE) + 1);
          if (n > room && picked.length > 0) {
            ended = true;
            break;
          }
          budget -= n;
          members += n;
          large ||= n > MEMBER_PAGE;
        }
        picked.push({ kind: k, s, projection, withMembers });
      }
      remaining -= page.resources.length;
      offset = Math.max(0, offset - page.total);
    }
    const itemsPerPage = count > 0 ? picked.length : 0;
    // Up to one member page in all, the page is built as one body; more, and each Group's members
    // are written batch by batch after its other attributes.
    const stream = large || members > MEMBER_PAGE;
    const resources: ListItem[] = [];
    for (const { kind: k, s, projection, withMembers } of picked) {
      if (withMembers && stream) {
        const fast = splices(k, projection) ? splicedJson(k, s, ctx.baseUrl) : undefined;
        const head = fast ? fast.json : JSON.stringify((await this.view.head(k, s, ctx.baseUrl, projection)).body);
        resources.push({ head, batches: this.view.memberBatches(s.id, ctx.baseUrl, projection) });
        continue;
      }
      // Users, and Groups without members, under the default projection are spliced from their
      // stored text; a Group with members carries them inline, which its stored text does not hold.
      const fast = !withMembers && splices(k, projection) ? splicedJson(k, s, ctx.baseUrl) : undefined;
      resources.push(fast ? fast.json : JSON.stringify((await this.view.resource(k, s, ctx.baseUrl, projection)).body));
    }
    if (stream) return { status: 200, headers: NO_HEADERS, body: { type: "list", head: listResponseHead(total, startIndex, itemsPerPage), resources } };
    return { status: 200, headers: NO_HEADERS, body: { type: "json", text: listResponseJson(total, startIndex, itemsPerPage, resources as string[]) } };
  }

  private async hashPassword(password: string | undefined): Promise<string | undefined> {
    return password === undefined ? undefined : hashPassword(password);
  }

  /**
   * Read, change, write with an optimistic version check. With If-Match a stale version is 412;
   * without it a concurrent writer only makes us read again and re-apply (no lost update).
   */
  private async withVersion(kind: ResourceKind, id: string, ctx: RequestContext, write: Writer): Promise<StoredResource> {
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
      return await this.readChangeWrite(kind, id, parseConditions(ctx.conditions), write);
    } finally {
      done();
      if (this.writing.get(key) === chain) this.writing.delete(key);
    }
  }

  private async readChangeWrite(kind: ResourceKind, id: string, c: ParsedConditions | undefined, write: Writer): Promise<StoredResource> {
    const what = `${kind} ${id}`;
    // Checked once before the work (a clear early 412) and again inside the write, atomically.
    const precondition = preconditionOf(what, c);
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.get(kind, id);
      if (!current) throw notFound(`${kind} ${id} not found`);
      if (c) checkConditions(what, c, await this.view.etag(kind, current));
      try {
        return await write(current, precondition);
      } catch (e) {
        if (e instanceof ScimError && e.status === 412 && !c && attempt < 10) continue;
        throw e;
      }
    }
  }
}
