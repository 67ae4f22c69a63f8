/**
 * Discovery describes what the server enforces (RFC 7643 §5, §6, §7): a client that builds its bodies
 * from GET /Schemas and /ResourceTypes alone gets them accepted, and every attribute /Schemas calls
 * required is refused when left out. The bodies here are derived from the server's own documents,
 * not written by hand, so a flag that drifts from the validator fails a test.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { ENTERPRISE, GROUP, patchBody, startServer, USER, userBody, expectScimError, type TestServer } from "../helpers";

let s: TestServer;
let seq = 0;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

type Attr = {
  name: string;
  type: string;
  multiValued: boolean;
  required: boolean;
  mutability: string;
  description: string;
  subAttributes?: Attr[];
};
type ResourceTypeDoc = { id: string; endpoint: string; schema: string; schemaExtensions?: { schema: string; required: boolean }[] };

async function discover(): Promise<{ schemas: Map<string, Attr[]>; types: Map<string, ResourceTypeDoc> }> {
  const sc = await s.req("GET", "/Schemas");
  const rt = await s.req("GET", "/ResourceTypes");
  expect([sc.status, rt.status]).toEqual([200, 200]);
  return {
    schemas: new Map(sc.body.Resources.map((x: { id: string; attributes: Attr[] }) => [x.id, x.attributes])),
    types: new Map(rt.body.Resources.map((x: ResourceTypeDoc) => [x.id, x])),
  };
}

const writable = (a: Attr) => a.mutability !== "readOnly";

/** A value of the attribute's type, unique per call (userName and displayName are unique on the server). */
function sample(a: Attr): unknown {
  const n = ++seq;
  switch (a.type) {
    case "string":
      return `req-${n}@example.com`;
    case "boolean":
      return true;
    case "integer":
      return n;
    case "decimal":
      return n + 0.5;
    case "dateTime":
      return "2024-01-31T09:00:00Z";
    case "reference":
      return `https://example.com/r/${n}`;
    case "binary":
      return "AAAA";
    default:
      throw new Error(`no sample for type ${a.type}`);
  }
}

/** One value of `a` holding exactly its required sub-attributes (for a complex attribute with none, its first writable one). */
function sampleValue(a: Attr): unknown {
  if (a.type !== "complex") return sample(a);
  const subs = (a.subAttributes ?? []).filter(writable);
  const required = subs.filter((x) => x.required);
  return Object.fromEntries((required.length ? required : subs.slice(0, 1)).map((x) => [x.name, sample(x)]));
}

const valueOf = (a: Attr) => (a.multiValued ? [sampleValue(a)] : sampleValue(a));

/** Exactly the attributes a schema marks required (writable ones: the client sends them). */
function requiredOf(attrs: Attr[]): Record<string, unknown> {
  return Object.fromEntries(attrs.filter((a) => a.required && writable(a)).map((a) => [a.name, valueOf(a)]));
}

/** The minimal body for a resource type: its core schema's required attributes, and each extension given (or required) with its own. */
async function minimalBody(id: string, withExtensions: "none" | "empty" | "required-only"): Promise<{ endpoint: string; body: Record<string, unknown> }> {
  const { schemas, types } = await discover();
  const rt = types.get(id)!;
  const body: Record<string, unknown> = { schemas: [rt.schema], ...requiredOf(schemas.get(rt.schema)!) };
  for (const ext of rt.schemaExtensions ?? []) {
    if (withExtensions === "none" && !ext.required) continue;
    (body.schemas as string[]).push(ext.schema);
    body[ext.schema] = withExtensions === "empty" && !ext.required ? {} : requiredOf(schemas.get(ext.schema)!);
  }
  return { endpoint: rt.endpoint, body };
}

describe("a body built from /Schemas alone (RFC 7643 §7)", () => {
  test.each<[string, "none" | "empty" | "required-only"]>([
    ["User", "none"],
    ["User", "empty"],
    ["User", "required-only"],
    ["Group", "none"],
  ])("a %s with exactly the attributes /Schemas marks required (extensions: %s) is created with 201", async (id, ext) => {
    const { endpoint, body } = await minimalBody(id, ext);
    const r = await s.req("POST", endpoint, body);
    expect(r.status).toBe(201);
    for (const [k, v] of Object.entries(body)) if (k !== "schemas" && !k.startsWith("urn:")) expect(r.body[k]).toEqual(v);
  });

  it("the User's enterprise extension is optional and has no required attribute, so the two extension bodies above are the same", async () => {
    const { schemas, types } = await discover();
    expect(types.get("User")!.schemaExtensions).toEqual([{ schema: ENTERPRISE, required: false }]);
    expect(schemas.get(ENTERPRISE)!.filter((a) => a.required)).toEqual([]);
  });

  it("/Schemas marks required exactly what scimd requires: userName, displayName, emails and emails.value of a User, displayName of a Group", async () => {
    const { schemas } = await discover();
    const required = (attrs: Attr[]) =>
      attrs.flatMap((a) => [...(a.required ? [a.name] : []), ...(a.subAttributes ?? []).filter((x) => x.required).map((x) => `${a.name}.${x.name}`)]);
    expect(required(schemas.get(USER)!).sort()).toEqual(["displayName", "emails", "emails.value", "userName"]);
    expect(required(schemas.get(GROUP)!)).toEqual(["displayName"]);
  });

  test.each(["User", "Group"])("leaving out any attribute /Schemas marks required from a %s is 400 invalidValue naming it", async (id) => {
    const { schemas, types } = await discover();
    const rt = types.get(id)!;
    const attrs = schemas.get(rt.schema)!;
    const walked: string[] = [];
    for (const a of attrs.filter((x) => x.required && writable(x))) {
      // The whole attribute left out.
      const { endpoint, body } = await minimalBody(id, "none");
      expect((await s.req("POST", endpoint, body)).status).toBe(201);
      const { body: without } = await minimalBody(id, "none");
      delete without[a.name];
      const r = await s.req("POST", endpoint, without);
      expectScimError(r, 400, "invalidValue");
      expect(r.body.detail).toContain(`'${a.name}'`);
      walked.push(a.name);
      // Each required sub-attribute left out of a value that keeps another sub-attribute (so the value itself is not empty).
      for (const sub of (a.subAttributes ?? []).filter((x) => x.required && writable(x))) {
        const other = a.subAttributes!.find((x) => !x.required && writable(x) && x.type === "string")!;
        const { body: b } = await minimalBody(id, "none");
        const value = { [other.name]: sample(other) };
        b[a.name] = a.multiValued ? [value] : value;
        const rs = await s.req("POST", endpoint, b);
        expectScimError(rs, 400, "invalidValue");
        expect(rs.body.detail).toContain(`'${a.name}.${sub.name}'`);
        walked.push(`${a.name}.${sub.name}`);
      }
    }
    expect(walked.length).toBeGreaterThan(0);
  });

  it("says in both descriptions that name.formatted may stand in for the required displayName, and accepts it in its place", async () => {
    const { schemas } = await discover();
    const user = schemas.get(USER)!;
    const displayName = user.find((a) => a.name === "displayName")!;
    const formatted = user.find((a) => a.name === "name")!.subAttributes!.find((a) => a.name === "formatted")!;
    expect(displayName.required).toBe(true);
    expect(formatted.required).toBe(false);
    expect(displayName.description).toContain("name.formatted");
    expect(formatted.description).toContain("displayName");
    const { body } = await minimalBody("User", "none");
    delete body.displayName;
    body.name = { formatted: "Ada Lovelace" };
    const r = await s.req("POST", "/Users", body);
    expect(r.status).toBe(201);
    expect(r.body.displayName).toBeUndefined(); // accepted as it is, not derived
    expect(r.body.name).toEqual({ formatted: "Ada Lovelace" });
    delete body.name;
    const refused = await s.req("POST", "/Users", body);
    expectScimError(refused, 400, "invalidValue");
    expect(refused.body.detail).toContain("'displayName'");
    expect(refused.body.detail).toContain("'name.formatted'");
  });

  it("publishes only the RFC 7643 §7 attribute characteristics (scimd's own rule fields stay inside)", async () => {
    const allowed = ["name", "type", "multiValued", "description", "required", "caseExact", "mutability", "returned", "uniqueness", "canonicalValues", "referenceTypes", "subAttributes"];
    const { schemas } = await discover();
    const walk = (attrs: Attr[]) => {
      for (const a of attrs) {
        for (const k of Object.keys(a)) expect(allowed).toContain(k);
        for (const k of allowed.slice(0, 9)) expect(a).toHaveProperty(k);
        if (a.subAttributes) walk(a.subAttributes);
      }
    };
    for (const attrs of schemas.values()) walk(attrs);
  });
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
