/**
 * The representation of a stored resource (RFC 7643 §3): `id`, `meta`, a User's `groups`, a Group's
 * `members`, projected. Two ways to the same JSON: `Renderer.resource` builds objects; `splicedJson`
 * splices the stored canonical JSON text for the default projection without parsing or serialising it
 * again (the hot path of GET by id and of lists). A Group's members can also come in batches
 * (`memberBatches`) for a response that streams them (GET by id, and lists of large groups).
 */
import { etagOf } from "./conditions";
import { project, wants, type Projection } from "./projection";
import type { Resource } from "./resource";
import { LIST_RESPONSE_SCHEMA, rtOf, type ResourceKind } from "./schema";
import type { GroupRef, Member, ResourceStore, StoredResource } from "../store/store";

/** Members read from the store per page, and written per batch. */
export const MEMBER_PAGE = 1000;

export interface Rendered {
  body: Resource;
  etag: string;
}

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

const isDefault = (p: Projection) => p.include === undefined && !p.exclude?.length;
/** The projection leaves out exactly one whole core attribute (`excludedAttributes=members`) and nothing else. */
const onlyExcludes = (p: Projection, name: string) => p.include === undefined && !!p.exclude?.length && p.exclude.every((r) => r.extension === null && !r.sub && !r.filter && r.attr.name === name);

/**
 * Whether `splicedJson` gives the response under this projection: the default one, and for a Group
 * also "everything but members" (its stored text never holds them).
 */
export function splices(kind: ResourceKind, p: Projection): boolean {
  return isDefault(p) || (kind === "Group" && onlyExcludes(p, "members"));
}

/**
 * The JSON text of a resource under the default projection, spliced from the stored canonical JSON
 * (schemas first, password hash last): the stored attributes are neither parsed nor serialised
 * again. A User needs its groups read with it; a Group's text never holds `members` (the caller
 * leaves them out or writes them after it). Undefined when the stored text is not at hand;
 * `Renderer.resource` gives the same JSON otherwise.
 */
export function splicedJson(kind: ResourceKind, s: StoredResource, baseUrl: string): { json: string; etag: string } | undefined {
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

const LIST_HEAD = `{"schemas":${JSON.stringify([LIST_RESPONSE_SCHEMA])},`;

/** A ListResponse (RFC 7644 §3.4.2) up to the opening of its `Resources` array: the resources and `]}` follow. */
export function listResponseHead(totalResults: number, startIndex: number, itemsPerPage: number): string {
  return `${LIST_HEAD}"totalResults":${totalResults},"startIndex":${startIndex},"itemsPerPage":${itemsPerPage},"Resources":[`;
}

/** A ListResponse (RFC 7644 §3.4.2) around resources given as JSON text. The envelope holds only integers besides the constant schema: written directly. */
export function listResponseJson(totalResults: number, startIndex: number, itemsPerPage: number, resources: readonly string[]): string {
  return `${listResponseHead(totalResults, startIndex, itemsPerPage)}${resources.join(",")}]}`;
}

/** Renders stored resources, reading what the stored row does not hold (a User's groups, a Group's members). */
export class Renderer {
  constructor(private readonly store: Pick<ResourceStore, "groupsOf" | "memberPage">) {}

  /**
   * The groups of a User: those read with it, or a read now (a promise only then, so a row that
   * carries them costs no await); undefined for a Group.
   */
  private groupsOf(kind: ResourceKind, s: StoredResource): GroupRef[] | undefined | Promise<GroupRef[]> {
    return kind === "User" ? (s.groups ?? this.store.groupsOf(s.id)) : undefined;
  }

  /** The current ETag of a stored resource (reads a User's groups when the row came without them). */
  async etag(kind: ResourceKind, s: StoredResource): Promise<string> {
    const groups = this.groupsOf(kind, s);
    return etagOf(s.version, groups instanceof Promise ? await groups : groups);
  }

  /** The representation under a projection, with `groups` (Users) and `members` (Groups) unless it leaves them out. */
  resource(kind: ResourceKind, s: StoredResource, baseUrl: string, p: Projection): Promise<Rendered> {
    return this.render(kind, s, baseUrl, p, true);
  }

  /** As `resource`, but a Group without `members`: the caller writes `memberBatches` after it. */
  head(kind: ResourceKind, s: StoredResource, baseUrl: string, p: Projection): Promise<Rendered> {
    return this.render(kind, s, baseUrl, p, false);
  }

  private async render(kind: ResourceKind, s: StoredResource, baseUrl: string, p: Projection, loadMembers: boolean): Promise<Rendered> {
    const rt = rtOf(kind);
    const { schemas, externalId, password: _password, ...attrs } = s.data as Resource & { password?: unknown };
    const body: Resource = { schemas: schemas ?? [rt.schema.id], id: s.id };
    if (externalId !== undefined) body.externalId = externalId;
    Object.assign(body, attrs);
    // A User's groups are read whether or not they are returned: the ETag covers them.
    const read = this.groupsOf(kind, s);
    const groups = read instanceof Promise ? await read : read;
    if (groups?.length && wants(p, null, "groups")) body.groups = groups.map((g) => groupJson(g, baseUrl));
    if (kind === "Group" && loadMembers && wants(p, null, "members")) {
      const members: Resource[] = [];
      for await (const page of this.memberPages(s.id)) for (const m of page) members.push(memberJson(m, baseUrl));
      if (members.length) body.members = members;
    }
    const etag = etagOf(s.version, groups);
    body.meta = metaOf(kind, s, baseUrl, etag);
    return { body: project(body, p), etag };
  }

  /** A group's members in pages of `MEMBER_PAGE`, rendered and projected as `resource` does. */
  async *memberBatches(groupId: string, baseUrl: string, p: Projection): AsyncGenerator<Resource[]> {
    for await (const page of this.memberPages(groupId)) {
      const projected = project({ schemas: [], id: "", members: page.map((m) => memberJson(m, baseUrl)) }, p).members as Resource[] | undefined;
      if (projected?.length) yield projected;
    }
  }

  /** A group's direct members, page by page (`MEMBER_PAGE` each), following the store's cursor. */
  private async *memberPages(groupId: string): AsyncGenerator<Member[]> {
    let cursor: string | undefined;
    do {
      const page = await this.store.memberPage(groupId, cursor, MEMBER_PAGE);
      yield page.members;
      cursor = page.next;
    } while (cursor);
  }
}
