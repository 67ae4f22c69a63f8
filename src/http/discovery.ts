/** Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas. */
import { Elysia } from "elysia";
import { findResourceType, findSchemaDoc, resourceTypeDoc, schemaDoc, serviceProviderConfig, type DiscoveryOptions } from "../scim/discovery";
import { notFound } from "../scim/errors";
import { LIST_RESPONSE_SCHEMA, RESOURCE_TYPES, SCHEMAS } from "../scim/schema";
import { IdParams } from "./resources";
import { scimResponse } from "./scim-plugin";

const list = (resources: unknown[]) => ({
  schemas: [LIST_RESPONSE_SCHEMA],
  totalResults: resources.length,
  startIndex: 1,
  itemsPerPage: resources.length,
  Resources: resources,
});

export function discoveryController(opts: DiscoveryOptions, baseUrl: (request: Request) => string) {
  return new Elysia({ name: "scim-discovery" })
    .get("/ServiceProviderConfig", ({ request }) => scimResponse(200, serviceProviderConfig(baseUrl(request), opts)))
    .get("/ResourceTypes", ({ request }) => scimResponse(200, list(RESOURCE_TYPES.map((rt) => resourceTypeDoc(rt, baseUrl(request))))))
    .get(
      "/ResourceTypes/:id",
      ({ request, params: { id } }) => {
        const rt = findResourceType(id);
        if (!rt) throw notFound(`no resource type '${id}'; this server has User and Group`);
        return scimResponse(200, resourceTypeDoc(rt, baseUrl(request)));
      },
      { params: IdParams },
    )
    .get("/Schemas", ({ request }) => scimResponse(200, list(SCHEMAS.map((s) => schemaDoc(s, baseUrl(request))))))
    .get(
      "/Schemas/:id",
      ({ request, params: { id } }) => {
        const s = findSchemaDoc(id);
        if (!s) throw notFound(`no schema '${id}'; see GET /Schemas for the list`);
        return scimResponse(200, schemaDoc(s, baseUrl(request)));
      },
      { params: IdParams },
    );
}
