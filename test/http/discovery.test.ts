/**
 * Discovery describes what the server enforces (RFC 7643 §5, §6, §7).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { patchBody, startServer, userBody, expectScimError, type TestServer } from "../helpers";

let s: TestServer;
let seq = 0;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

describe("/ServiceProviderConfig (RFC 7643 §5)", () => {
  it("has every attribute RFC 7643 §5 requires, with its type", async () => {
    const c = (await s.req("GET", "/ServiceProviderConfig")).body;
    for (const k of ["patch", "bulk", "filter", "changePassword", "sort", "etag"]) expect(typeof c[k].supported).toBe("boolean");
    expect(Number.isInteger(c.bulk.maxOperations)).toBe(true);
    expect(Number.isInteger(c.bulk.maxPayloadSize)).toBe(true);
    expect(Number.isInteger(c.filter.maxResults)).toBe(true);
    expect(Array.isArray(c.authenticationSchemes)).toBe(true);
    expect(c.authenticationSchemes.length).toBeGreaterThan(0);
    for (const a of c.authenticationSchemes) {
      for (const k of ["type", "name", "description"]) expect(typeof a[k]).toBe("string");
      for (const k of ["specUri", "documentationUri"]) if (a[k] !== undefined) expect(a[k]).toMatch(/^https:\/\//);
      if (a.primary !== undefined) expect(typeof a.primary).toBe("boolean");
    }
    if (c.documentationUri !== undefined) expect(c.documentationUri).toMatch(/^https:\/\//);
  });

  it("states in bulk the limits one request really accepts, though Bulk is unsupported: maxOperations PATCH operations and maxPayloadSize bytes", async () => {
    const other = await startServer({ maxBodyBytes: 200_000 });
    try {
      const { bulk } = (await other.req("GET", "/ServiceProviderConfig")).body;
      expect(bulk.supported).toBe(false);
      expect(bulk.maxPayloadSize).toBe(200_000);
      expect(bulk.maxOperations).toBeGreaterThan(0);
      const u = await other.req("POST", "/Users", userBody(`bulk-limits-${++seq}@example.com`));
      const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ op: "replace", path: "title", value: `t${i}` }));
      expect((await other.req("PATCH", `/Users/${u.body.id}`, patchBody(...ops(bulk.maxOperations)))).status).toBe(200);
      expectScimError(await other.req("PATCH", `/Users/${u.body.id}`, patchBody(...ops(bulk.maxOperations + 1))), 400, "invalidValue");
      // JSON whitespace pads a body to an exact size without tripping any per-value limit.
      const padded = (bytes: number) => {
        const body = JSON.stringify(patchBody({ op: "replace", path: "title", value: `padded-${bytes}` }));
        return body + " ".repeat(bytes - body.length);
      };
      expect(Buffer.byteLength(padded(bulk.maxPayloadSize))).toBe(bulk.maxPayloadSize);
      expect((await other.req("PATCH", `/Users/${u.body.id}`, padded(bulk.maxPayloadSize))).status).toBe(200);
      expectScimError(await other.req("PATCH", `/Users/${u.body.id}`, padded(bulk.maxPayloadSize + 1)), 413);
    } finally {
      await other.close();
    }
  });
});
