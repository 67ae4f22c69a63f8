/**
 * Discovery documents (RFC 7644 §4, RFC 7643 §5–§7), generated from the same schema data the server
 * validates with, advertising exactly what is implemented.
 */
import { notFound } from "./errors";
import type { Resource } from "./resource";
import type { RequestContext, ScimResult } from "./result";
import {
  COMMON_ATTRIBUTES,
  LIST_RESPONSE_SCHEMA,
  RESOURCE_TYPE_SCHEMA,
  RESOURCE_TYPES,
  SCHEMA_SCHEMA,
  SCHEMAS,
  SERVICE_PROVIDER_CONFIG_SCHEMA,
  type AttributeDef,
  type ResourceTypeDef,
  type SchemaDef,
} from "./schema";

export interface DiscoveryOptions {
  maxResults: number;
  /** The largest request body accepted, in bytes (`--max-body-bytes`). */
  maxPayloadBytes: number;
  /** The most operations one PATCH request accepts. */
  maxOperations: number;
}

export function serviceProviderConfig(baseUrl: string, o: DiscoveryOptions) {
  return {
    schemas: [SERVICE_PROVIDER_CONFIG_SCHEMA],
    documentationUri: "https://datatracker.ietf.org/doc/html/rfc7644",
    patch: { supported: true },
    // Bulk is not implemented (501), but RFC 7643 §5 requires both limits, and some clients size their
    // PATCH batches from maxOperations (0 would break them): these are the limits one request accepts.
    bulk: { supported: false, maxOperations: o.maxOperations, maxPayloadSize: o.maxPayloadBytes },
    filter: { supported: true, maxResults: o.maxResults },
    // The password attribute can be set with PUT and PATCH (stored only as a hash).
    changePassword: { supported: true },
    sort: { supported: true },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: "oauthbearertoken",
        name: "OAuth Bearer Token",
        description: "Authentication with a bearer token created by `scimd generate-token`, sent as 'Authorization: Bearer <token>'.",
        specUri: "https://datatracker.ietf.org/doc/html/rfc6750",
        primary: true,
      },
    ],
    meta: { resourceType: "ServiceProviderConfig", location: `${baseUrl}/ServiceProviderConfig` },
  };
}

export function resourceTypeDoc(rt: ResourceTypeDef, baseUrl: string) {
  return {
    schemas: [RESOURCE_TYPE_SCHEMA],
    id: rt.name,
    name: rt.name,
    endpoint: rt.endpoint,
    description: rt.description,
    schema: rt.schema.id,
    ...(rt.extensions.length ? { schemaExtensions: rt.extensions.map((e) => ({ schema: e.schema.id, required: e.required })) } : {}),
    meta: { resourceType: "ResourceType", location: `${baseUrl}/ResourceTypes/${rt.name}` },
  };
}

/** The attribute's description with what the product enforces beyond the RFC 7643 flags, in words. */
function describe(a: AttributeDef, siblings: readonly AttributeDef[], what: string, parent?: AttributeDef): string {
  const words = [a.description];
  if (a.required && a.alternative !== undefined)
    words.push(`Required: a ${what} needs ${a.name}, or ${a.alternative} in its place when ${a.name} is absent (the alternative is accepted as it is; ${a.name} is not derived from it).`);
  else if (a.required && parent) words.push(`Required in every value of ${parent.name}.`);
  else if (a.required) words.push(a.multiValued ? `Required: at least one value.` : `Required.`);
  for (const other of siblings)
    if (other.alternative !== undefined && other.alternative.toLowerCase() === `${parent ? `${parent.name}.` : ""}${a.name}`.toLowerCase())
      words.push(`Accepted in place of the required ${other.name}: a ${what} needs ${other.name}, or ${other.alternative} when ${other.name} is absent.`);
  if (a.createDefault !== undefined)
    words.push(
      `Defaults to ${JSON.stringify(a.createDefault)} when a ${what} is created without it; it is never unassigned afterwards: a PUT that leaves it out keeps the stored value, and a PATCH that removes it or sets it to null or "" is refused with 400 mutability (send ${a.type === "boolean" ? "true or false" : "a value"}).`,
    );
  return words.join(" ");
}

/** An attribute as RFC 7643 §7 publishes it: its characteristics only (scimd's own fields are said in words). */
function attributeDoc(a: AttributeDef, top: readonly AttributeDef[], what: string, parent?: AttributeDef): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    name: a.name,
    type: a.type,
    multiValued: a.multiValued,
    description: describe(a, top, what, parent),
    required: a.required,
    caseExact: a.caseExact,
    mutability: a.mutability,
    returned: a.returned,
    uniqueness: a.uniqueness,
  };
  if (a.canonicalValues) doc.canonicalValues = a.canonicalValues;
  if (a.referenceTypes) doc.referenceTypes = a.referenceTypes;
  if (a.subAttributes) doc.subAttributes = a.subAttributes.map((sub) => attributeDoc(sub, top, what, a));
  return doc;
}

/** Each schema's published attribute list, built once (schema data never changes at run time). */
const attributeDocs = new Map<string, Record<string, unknown>[]>();

export function schemaDoc(s: SchemaDef, baseUrl: string) {
  // Core schemas list the common attributes they carry too (id is implied; externalId is writable).
  const core = RESOURCE_TYPES.some((rt) => rt.schema.id === s.id);
  const externalId = COMMON_ATTRIBUTES.find((a) => a.name === "externalId")!;
  return {
    schemas: [SCHEMA_SCHEMA],
    id: s.id,
    name: s.name,
    description: s.description,
    attributes: publishedAttributes(s, core ? [...s.attributes, externalId] : s.attributes),
    meta: { resourceType: "Schema", location: `${baseUrl}/Schemas/${s.id}` },
  };
}

function publishedAttributes(s: SchemaDef, attrs: readonly AttributeDef[]): Record<string, unknown>[] {
  let docs = attributeDocs.get(s.id);
  if (!docs) {
    // The resource type's name ("User"), for an extension the one it extends.
    const what = RESOURCE_TYPES.find((rt) => rt.schema.id === s.id || rt.extensions.some((e) => e.schema.id === s.id))?.name ?? s.name;
    attributeDocs.set(s.id, (docs = attrs.map((a) => attributeDoc(a, attrs, what))));
  }
  return docs;
}

export function findSchemaDoc(id: string) {
  return SCHEMAS.find((s) => s.id.toLowerCase() === id.toLowerCase());
}

export function findResourceType(id: string) {
  return RESOURCE_TYPES.find((rt) => rt.name.toLowerCase() === id.toLowerCase());
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const ok = (value: Resource): ScimResult => ({ status: 200, headers: NO_HEADERS, body: { type: "object", value } });
const listOf = (resources: Resource[]): Resource => ({
  schemas: [LIST_RESPONSE_SCHEMA],
  totalResults: resources.length,
  startIndex: 1,
  itemsPerPage: resources.length,
  Resources: resources,
});

/**
 * The discovery endpoints as operations: a RequestContext in, one ScimResult out, like the resource
 * operations (operations.ts), so the HTTP layer answers them with the same `respond`.
 */
export class DiscoveryOperations {
  constructor(private readonly o: DiscoveryOptions) {}

  /** GET /ServiceProviderConfig (RFC 7644 §4, RFC 7643 §5). */
  serviceProviderConfig(ctx: RequestContext): ScimResult {
    return ok(serviceProviderConfig(ctx.baseUrl, this.o));
  }

  /** GET /ResourceTypes (RFC 7643 §6). */
  resourceTypes(ctx: RequestContext): ScimResult {
    return ok(listOf(RESOURCE_TYPES.map((rt) => resourceTypeDoc(rt, ctx.baseUrl))));
  }

  /** GET /ResourceTypes/{name}: 404 naming the types this server has. */
  resourceType(id: string, ctx: RequestContext): ScimResult {
    const rt = findResourceType(id);
    if (!rt) throw notFound(`no resource type '${id}'; this server has User and Group`);
    return ok(resourceTypeDoc(rt, ctx.baseUrl));
  }

  /** GET /Schemas (RFC 7643 §7). */
  schemas(ctx: RequestContext): ScimResult {
    return ok(listOf(SCHEMAS.map((s) => schemaDoc(s, ctx.baseUrl))));
  }

  /** GET /Schemas/{urn}: 404 pointing at the list. */
  schema(id: string, ctx: RequestContext): ScimResult {
    const s = findSchemaDoc(id);
    if (!s) throw notFound(`no schema '${id}'; see GET /Schemas for the list`);
    return ok(schemaDoc(s, ctx.baseUrl));
  }
}
