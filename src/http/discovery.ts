/** Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas, one line per route. */
import { Elysia } from "elysia";
import { DiscoveryOperations, type DiscoveryOptions } from "../scim/discovery";
import { contextBuilder, IdParams, NO_PROJECTION, type ControllerDeps } from "./resources";
import { respond } from "./scim-plugin";

const BY_ID = { params: IdParams };

export function discoveryController(opts: DiscoveryOptions, deps: Pick<ControllerDeps, "auth" | "baseUrl">) {
  const op = new DiscoveryOperations(opts);
  const at = contextBuilder(deps.baseUrl);
  // Discovery reads no projection: the query string is not read.
  return new Elysia({ name: "scim-discovery" })
    .use(deps.auth)
    .get("/ServiceProviderConfig", ({ request, caller }) => respond(op.serviceProviderConfig(at(request, caller, NO_PROJECTION))))
    .get("/ResourceTypes", ({ request, caller }) => respond(op.resourceTypes(at(request, caller, NO_PROJECTION))))
    .get("/ResourceTypes/:id", ({ request, caller, params: { id } }) => respond(op.resourceType(id, at(request, caller, NO_PROJECTION))), BY_ID)
    .get("/Schemas", ({ request, caller }) => respond(op.schemas(at(request, caller, NO_PROJECTION))))
    .get("/Schemas/:id", ({ request, caller, params: { id } }) => respond(op.schema(id, at(request, caller, NO_PROJECTION))), BY_ID);
}
