/**
 * Property-based tests of the PATCH engine (RFC 7644 §3.5.2) with fast-check, fixed seeds:
 * - applyPatch on a valid User and a valid Group, with random op names, paths (valid, mutated, junk)
 *   and values of every JSON type, either returns or throws a 4xx ScimError, never anything else,
 *   and never mutates its input; a no-op replace on the result is accepted and changes nothing;
 * - over HTTP against a real SqliteStore, PATCH /Users/{id} never answers 5xx, and a 4xx leaves the
 *   stored User exactly as it was (RFC 7644 §3.5.2: "the operation MUST be atomic").
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { createApp } from "../../src/app";
import { ScimError } from "../../src/scim/errors";
import { applyPatch, type PatchContext } from "../../src/scim/patch";
import { quirksFor } from "../../src/scim/quirks";
import type { Resource } from "../../src/scim/resource";
import { GROUP_RESOURCE, USER_RESOURCE } from "../../src/scim/schema";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { hashToken, newToken } from "../../src/tokens";
import { ENTERPRISE, GROUP, memoryLogger, PATCH_OP, tempDir, USER, userBody } from "../helpers";

/** Fixed by default; SCIMD_FUZZ_SEED / SCIMD_FUZZ_SCALE explore further without changing the suite. */
const SEED = Number(process.env.SCIMD_FUZZ_SEED ?? 20240531);
const SCALE = Number(process.env.SCIMD_FUZZ_SCALE ?? 1);

function user(): Resource {
  return {
    schemas: [USER, ENTERPRISE],
    userName: "ada@example.com",
    displayName: "Ada Lovelace",
    name: { givenName: "Ada", familyName: "Lovelace", formatted: "Ada Lovelace" },
    active: true,
    title: "Countess",
    emails: [
      { value: "ada@example.com", type: "work", primary: true },
      { value: "ada@home.example", type: "home" },
    ],
    phoneNumbers: [{ value: "+44 20 0000 0000", type: "mobile" }],
    roles: [{ value: "admin", primary: true }, { value: "dev" }],
    [ENTERPRISE]: { department: "Analytical Engines", employeeNumber: "1815", manager: { value: "babbage" } },
  };
}

function group(): Resource {
  return { schemas: [GROUP], displayName: "Engineers", externalId: "eng" };
}

const VALID_PATHS = [
  "userName",
  "displayName",
  "name",
  "name.givenName",
  "name.formatted",
  "emails",
  'emails[type eq "work"].value',
  'emails[type eq "home"]',
  'emails[value eq "ada@example.com"].primary',
  "emails.value",
  'phoneNumbers[type eq "mobile"].value',
  'addresses[type eq "work"].locality',
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
  "urn:ietf:params:scim:schemas:core:2.0:User:title",
  "manager",
  "active",
  "title",
  "password",
  "id",
  "meta",
  "meta.lastModified",
  "groups",
  "externalId",
  "members",
  'members[value eq "x"]',
  'members[type eq "User"]',
  "members.value",
  'roles[primary eq "True"].value',
  'roles[primary eq true]',
  "roles",
  "x509Certificates",
  "photos",
];

const JUNK_PATHS = ["", " ", "[", "]", "emails[", "emails]", "emails[]", "emails[type eq]", "emails[type eq \"work\"].", "emails[type eq \"work\"]x", "a.b.c", "urn:", "urn:x:y", "name..givenName", "emails[type eq \"work\"][value eq \"x\"]", "members[value eq \"x\"].display", "roles[primary eq \"maybe\"].value", "emails[not(type eq \"work\")]", "emails[type pr].value", "emails[value sw \"ada\" or type eq \"home\"]"];

/** Valid paths, in random case, with random edits, and junk strings. */
const pathArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...VALID_PATHS) },
  { weight: 2, arbitrary: fc.mixedCase(fc.constantFrom(...VALID_PATHS)) },
  { weight: 2, arbitrary: fc.constantFrom(...JUNK_PATHS) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...VALID_PATHS), fc.nat(), fc.string({ maxLength: 4 })).map(([p, i, s]) => {
      const at = p.length ? i % p.length : 0;
      return p.slice(0, at) + s + p.slice(at + (i % 3 === 0 ? 1 : 0));
    }),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

const opArb = fc.oneof(
  { weight: 8, arbitrary: fc.mixedCase(fc.constantFrom("add", "replace", "remove")) },
  { weight: 1, arbitrary: fc.constantFrom(" add ", "delete", "update", "", "move", "copy", "test") },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 8 }), fc.constant(null), fc.integer(), fc.boolean(), fc.constant(["add"])) },
);

const stringArb = fc.oneof(fc.constantFrom("True", "False", "true", "false", "", " ", "work", "home", "mobile", "x", "ada@example.com", "other@example.com", "2024-01-31T09:00:00Z"), fc.string({ maxLength: 12 }));
const elementArb = fc.record(
  {
    value: fc.oneof(stringArb, fc.constant(null), fc.integer()),
    type: fc.oneof(stringArb, fc.constant(null)),
    primary: fc.oneof(fc.boolean(), fc.constantFrom("True", "False", "yes"), fc.constant(null)),
    display: stringArb,
    givenName: stringArb,
    $ref: stringArb,
  },
  { requiredKeys: [] },
);
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: stringArb },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 2, arbitrary: elementArb },
  { weight: 2, arbitrary: fc.array(fc.oneof(elementArb, stringArb, fc.constant(null)), { maxLength: 4 }) },
  {
    weight: 2,
    arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...VALID_PATHS), fc.mixedCase(fc.constantFrom("userName", "title", "active", "name", "emails", "id"))), fc.oneof(stringArb, elementArb, fc.boolean(), fc.constant(null)), { maxKeys: 3 }),
  },
);

const opObjArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ op: opArb, path: pathArb, value: valueArb }, { requiredKeys: ["op"] }) },
  // Keys in odd case (Entra sends "Op", "Path", "Value").
  { weight: 2, arbitrary: fc.record({ Op: opArb, PATH: pathArb, Value: valueArb }, { requiredKeys: ["Op"] }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.record({ op: opArb, path: fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string())), value: valueArb }) },
);

/** Operations an IdP would plausibly send, so that the success path is exercised too. */
const text = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s.trim() !== "");
const mixedOp = (...ops: string[]) => fc.mixedCase(fc.constantFrom(...ops));
const saneUserOpArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ op: mixedOp("add", "replace"), path: fc.constantFrom("title", "displayName", "nickName", "name.givenName", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", 'emails[type eq "work"].value', 'phoneNumbers[type eq "mobile"].value', 'roles[primary eq "True"].value'), value: text }),
  fc.record({ op: mixedOp("replace"), path: fc.constantFrom("active", "emails[type eq \"work\"].primary"), value: fc.oneof(fc.boolean(), fc.constantFrom("True", "False", "true")) }),
  fc.record({ op: mixedOp("add", "replace"), path: fc.constantFrom("emails", "phoneNumbers", "roles"), value: fc.array(fc.record({ value: text, type: fc.constantFrom("work", "home", "mobile"), primary: fc.boolean() }, { requiredKeys: ["value"] }), { minLength: 1, maxLength: 2 }) }),
  fc.record({ op: mixedOp("replace", "add"), path: fc.constantFrom("manager", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"), value: fc.oneof(text, fc.constant(""), fc.constant(null), fc.record({ value: text })) }),
  fc.record({ op: mixedOp("remove"), path: fc.constantFrom("title", "nickName", "name.givenName", "phoneNumbers", 'emails[type eq "home"]', "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", 'roles[value eq "dev"]') }),
  fc.record({ op: mixedOp("replace", "add"), value: fc.record({ title: text, active: fc.constantFrom(true, false, "True", "False"), displayName: text, "emails[type eq \"work\"].value": text }, { requiredKeys: [] }) }),
);
const saneGroupOpArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ op: mixedOp("add", "replace"), path: fc.constantFrom("displayName", "externalId"), value: text }),
  fc.record({ op: mixedOp("add", "replace", "remove"), path: fc.constant("members"), value: fc.array(fc.record({ value: text }), { maxLength: 3 }) }),
  fc.record({ op: mixedOp("remove"), path: fc.constantFrom("members", 'members[value eq "x"]', 'members[type eq "User"]', "externalId") }),
  fc.record({ op: mixedOp("replace"), value: fc.record({ id: fc.constantFrom("g1", "other"), displayName: text, externalId: fc.oneof(text, fc.constant(null)) }, { requiredKeys: [] }) }),
);

const bodyArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.oneof(saneUserOpArb, saneGroupOpArb), { minLength: 1, maxLength: 3 }).map((Operations) => ({ schemas: [PATCH_OP], Operations })) },
  { weight: 4, arbitrary: fc.array(fc.oneof({ weight: 1, arbitrary: opObjArb }, { weight: 2, arbitrary: fc.oneof(saneUserOpArb, saneGroupOpArb) }), { minLength: 1, maxLength: 3 }).map((Operations) => ({ schemas: [PATCH_OP], Operations })) },
  { weight: 6, arbitrary: fc.array(opObjArb, { minLength: 1, maxLength: 4 }).map((Operations) => ({ schemas: [PATCH_OP], Operations })) },
  { weight: 1, arbitrary: fc.array(opObjArb, { maxLength: 2 }).map((operations) => ({ SCHEMAS: [PATCH_OP.toUpperCase()], operations })) },
  { weight: 1, arbitrary: fc.record({ schemas: fc.jsonValue({ maxDepth: 1 }), Operations: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.array(opObjArb, { maxLength: 2 })) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

const userCtx = (strict: boolean): PatchContext => ({ rt: USER_RESOURCE, quirks: quirksFor(strict), id: "u1" });
const groupCtx = (strict: boolean): PatchContext => ({ rt: GROUP_RESOURCE, quirks: quirksFor(strict), id: "g1" });

/** Runs applyPatch and classifies the outcome; any non-ScimError or non-4xx error fails the property. */
function run(ctx: PatchContext, current: Resource, body: unknown) {
  const saved = structuredClone(current);
  let result: ReturnType<typeof applyPatch> | undefined;
  try {
    result = applyPatch(ctx, current, body);
  } catch (e) {
    if (!(e instanceof ScimError)) throw new Error(`applyPatch threw ${e instanceof Error ? e.stack : String(e)} for ${JSON.stringify(body)}`);
    if (e.status < 400 || e.status >= 500) throw new Error(`applyPatch threw a ScimError with status ${e.status} for ${JSON.stringify(body)}`);
  }
  expect(current).toStrictEqual(saved);
  return result;
}

describe("applyPatch under random PatchOp bodies (RFC 7644 §3.5.2)", () => {
  it("on a User either returns or throws a 4xx ScimError, never mutates its input, and accepts a no-op replace afterwards", () => {
    let returned = 0;
    fc.assert(
      fc.property(bodyArb, fc.boolean(), (body, strict) => {
        const current = user();
        const r = run(userCtx(strict), current, body);
        if (!r) return;
        returned++;
        // The result is still a User whose required userName is a string, and replacing it with itself changes nothing.
        expect(typeof r.resource.userName).toBe("string");
        const again = structuredClone(r.resource);
        const second = applyPatch(userCtx(strict), again, { schemas: [PATCH_OP], Operations: [{ op: "replace", path: "userName", value: r.resource.userName }] });
        expect(second.changed).toBe(false);
        expect(again).toEqual(r.resource);
      }),
      { seed: SEED, numRuns: 2500 * SCALE },
    );
    // The generator reaches the success path often enough to mean something.
    if (process.env.SCIMD_FUZZ_DEBUG) console.log("user returned", returned);
    expect(returned).toBeGreaterThan(100);
  });

  it("on a Group either returns or throws a 4xx ScimError, never mutates its input, and accepts a no-op replace afterwards", () => {
    let returned = 0;
    fc.assert(
      fc.property(bodyArb, fc.boolean(), (body, strict) => {
        const current = group();
        const r = run(groupCtx(strict), current, body);
        if (!r) return;
        returned++;
        expect(typeof r.resource.displayName).toBe("string");
        // Members live in memberChanges, never in the resource document.
        expect(r.resource.members).toBeUndefined();
        const second = applyPatch(groupCtx(strict), structuredClone(r.resource), { schemas: [PATCH_OP], Operations: [{ op: "replace", path: "displayName", value: r.resource.displayName }] });
        expect(second.changed).toBe(false);
      }),
      { seed: SEED + 1, numRuns: 1500 * SCALE },
    );
    if (process.env.SCIMD_FUZZ_DEBUG) console.log("group returned", returned);
    expect(returned).toBeGreaterThan(50);
  });
});

describe("PATCH /Users/{id} over HTTP under random bodies (RFC 7644 §3.5.2)", () => {
  const { dir, cleanup } = tempDir();
  const store = new SqliteStore(join(dir, "fuzz.db"));
  const token = newToken();
  const { logger, records: logs } = memoryLogger();
  const app = createApp({ store, logger, authFailuresPerMinute: 1_000_000 });
  let id = "";

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.handle(
      new Request(`http://scimd.test/api/v1/scim${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    await store.createToken("fuzz", hashToken(token));
    const other = await call("POST", "/Users", userBody("other@example.com"));
    expect(other.status).toBe(201);
    const r = await call("POST", "/Users", userBody("ada@example.com", { title: "Countess", phoneNumbers: [{ value: "+1", type: "mobile" }], roles: [{ value: "admin", primary: true }], [ENTERPRISE]: { department: "R&D", manager: { value: "m1" } } }));
    expect(r.status).toBe(201);
    id = JSON.parse(r.text).id;
  });
  afterAll(() => {
    store.close();
    cleanup();
  });

  it("never answers 5xx, and a 4xx leaves the stored User byte-identical", async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(bodyArb, async (body) => {
        const before = await call("GET", `/Users/${id}`);
        expect(before.status).toBe(200);
        const r = await call("PATCH", `/Users/${id}`, body);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status >= 500) throw new Error(`PATCH answered ${r.status} ${r.text} for ${JSON.stringify(body)}`);
        expect([200, 204, 400, 409]).toContain(r.status);
        const after = await call("GET", `/Users/${id}`);
        expect(after.status).toBe(200);
        if (r.status >= 400) {
          expect(JSON.parse(r.text).schemas).toEqual(["urn:ietf:params:scim:api:messages:2.0:Error"]);
          expect(after.text).toBe(before.text);
        } else {
          // A success answers the stored state.
          expect(JSON.parse(r.text)).toEqual(JSON.parse(after.text));
        }
      }),
      { seed: SEED + 2, numRuns: 200 * SCALE },
    );
    if (process.env.SCIMD_FUZZ_DEBUG) console.log("statuses", statuses);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(10);
    expect(logs.filter((l) => l.level === "error")).toEqual([]);
  });
});
