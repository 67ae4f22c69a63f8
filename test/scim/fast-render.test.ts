import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { ScimOperations } from "../../src/scim/operations";
import { Renderer, splicedJson } from "../../src/scim/representation";
import type { ReadOptions, RequestContext, ScimResult } from "../../src/scim/result";
import type { ResourceKind } from "../../src/scim/schema";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import type { TokenRecord } from "../../src/store/store";
import { ENTERPRISE, tempDir, USER } from "../helpers";

let store: SqliteStore;
let operations: ScimOperations;
let renderer: Renderer;
let cleanup: () => void;
const BASE = "http://scimd.test/api/v1/scim";
const CALLER: TokenRecord = { id: "t1", name: "fast-render", created: "2024-01-01T00:00:00.000Z", lastUsed: null, scope: "write", expires: null, expiresAt: null };
const ctx = (read: ReadOptions = {}): RequestContext => ({ baseUrl: BASE, caller: CALLER, read, conditions: {} });
const createdId = (r: ScimResult) => (r.body?.type === "object" ? (r.body.value.id as string) : undefined)!;
const create = async (kind: ResourceKind, body: unknown) => createdId(await operations.create(kind, body, ctx()));

beforeAll(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  store = new SqliteStore(join(t.dir, "db"));
  operations = new ScimOperations(store, { strict: false, maxResults: 100 });
  renderer = new Renderer(store);
});
afterAll(() => {
  store.close();
  cleanup();
});

// Strings that try to confuse a text splice: brackets, quotes, the password key, escapes, non-ASCII.
const tricky = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("]", "],", '","password":"x', ',"password":', "\\", '"', "Åsa", "😀", "urn:x]y", "}"),
);

describe("a User spliced from its stored JSON is exactly the User rendered from objects", () => {
  it("holds for random users with tricky strings, passwords, extensions and groups", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          displayName: tricky,
          title: fc.option(tricky, { nil: undefined }),
          email: tricky,
          // Hashing is slow (argon2id): one user in eight has a password.
          password: fc.constantFrom<string | undefined>(undefined, undefined, undefined, undefined, undefined, undefined, undefined, "pw-1"),
          department: fc.option(tricky, { nil: undefined }),
          externalId: fc.option(tricky, { nil: undefined }),
          inGroup: fc.boolean(),
        }),
        async (u) => {
          const body: Record<string, unknown> = {
            schemas: [USER],
            userName: `fast${++n}@example.com`,
            // Required values must not be blank (resource.ts missingRequired).
            displayName: u.displayName.trim() ? u.displayName : "x",
            emails: [{ value: u.email.trim() ? u.email : "e", type: "work" }],
          };
          if (u.title !== undefined) body.title = u.title;
          if (u.password !== undefined) body.password = u.password;
          if (u.externalId !== undefined) body.externalId = u.externalId;
          if (u.department !== undefined) body[ENTERPRISE] = { department: u.department };
          const id = await create("User", body);
          if (u.inGroup) await store.create("Group", { id: `g-${id}`, data: { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: `G ${id}` }, members: [id] });
          const stored = (await store.get("User", id))!;
          const fast = splicedJson("User", stored, BASE);
          const slow = await renderer.resource("User", stored, BASE, {});
          expect(fast).toBeDefined();
          expect(fast!.json).toBe(JSON.stringify(slow.body));
          expect(fast!.etag).toBe(slow.etag);
          expect(fast!.json).not.toContain("argon2");
        },
      ),
      { seed: 7, numRuns: 120 },
    );
  }, 60_000);
});

describe("a Group spliced from its stored JSON is exactly the Group rendered from objects", () => {
  it("holds with members left out (excludedAttributes=members) and as the head of a default read", async () => {
    const { parseAttributeList, projectionFor } = await import("../../src/scim/projection");
    const { GROUP_RESOURCE } = await import("../../src/scim/schema");
    const withoutMembers = projectionFor(GROUP_RESOURCE, undefined, parseAttributeList([GROUP_RESOURCE], "members", "excludedAttributes"));
    const member = await create("User", { schemas: [USER], userName: "g-member@example.com", displayName: "Member", emails: [{ value: "m@example.com" }] });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.record({ displayName: tricky, externalId: fc.option(tricky, { nil: undefined }), withMember: fc.boolean() }), async (g) => {
        const body: Record<string, unknown> = { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: `${g.displayName}#${++n}` };
        if (g.externalId !== undefined) body.externalId = g.externalId;
        if (g.withMember) body.members = [{ value: member }];
        const id = await create("Group", body);
        const stored = (await store.get("Group", id))!;
        const fast = splicedJson("Group", stored, BASE);
        expect(fast).toBeDefined();
        const slow = await renderer.resource("Group", stored, BASE, withoutMembers);
        expect(fast!.json).toBe(JSON.stringify(slow.body));
        expect(fast!.etag).toBe(slow.etag);
        // Through get(): the same text, and the members (if any) come separately.
        const got = await operations.get("Group", id, ctx({ excludedAttributes: "members" }));
        expect(got.body).toEqual({ type: "json", text: fast!.json });
        expect(got.headers.ETag).toBe(fast!.etag);
        const full = await operations.get("Group", id, ctx());
        expect(full.body?.type).toBe("members");
        expect(full.body?.type === "members" ? full.body.head : undefined).toBe(fast!.json);
      }),
      { seed: 11, numRuns: 100 },
    );
  });
});
