import { describe, expect, it } from "bun:test";
import { DiscoveryOperations } from "../../src/scim/discovery";
import { ScimError } from "../../src/scim/errors";
import type { RequestContext } from "../../src/scim/result";

const ctx: RequestContext = {
  baseUrl: "https://scim.example.com/api/v1/scim",
  caller: { id: "t1", name: "okta", created: "2026-01-01T00:00:00.000Z", lastUsed: null, scope: "write", expires: null, expiresAt: null },
  read: {},
  conditions: {},
};
const op = new DiscoveryOperations({ maxResults: 50, maxPayloadBytes: 4096, maxOperations: 1000 });
const value = (r: ReturnType<DiscoveryOperations["schemas"]>) => (r.body?.type === "object" ? r.body.value : undefined) as Record<string, any>;

describe("discovery operations answer one result, built on the context's base URL (RFC 7644 §4)", () => {
  it("ServiceProviderConfig: 200 with the limits the server was given and its location", () => {
    const r = op.serviceProviderConfig(ctx);
    expect(r.status).toBe(200);
    expect(value(r).filter.maxResults).toBe(50);
    expect(value(r).bulk).toMatchObject({ maxOperations: 1000, maxPayloadSize: 4096 });
    expect(value(r).meta.location).toBe(`${ctx.baseUrl}/ServiceProviderConfig`);
  });

  it("ResourceTypes and Schemas: 200 ListResponses with every entry", () => {
    const types = value(op.resourceTypes(ctx));
    expect(types.totalResults).toBe(2);
    expect(types.Resources.map((t: { name: string }) => t.name)).toEqual(["User", "Group"]);
    const schemas = value(op.schemas(ctx));
    expect(schemas.totalResults).toBe(schemas.Resources.length);
    expect(schemas.itemsPerPage).toBe(schemas.Resources.length);
  });

  it("one ResourceType or Schema by its name in any case, 404 naming what exists otherwise", () => {
    expect(value(op.resourceType("user", ctx)).name).toBe("User");
    expect(value(op.schema("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:GROUP", ctx)).name).toBe("Group");
    for (const f of [() => op.resourceType("Device", ctx), () => op.schema("urn:x", ctx)]) {
      let caught: unknown;
      try {
        f();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ScimError);
      expect((caught as ScimError).status).toBe(404);
    }
  });
});
