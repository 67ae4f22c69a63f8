import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { ScimService } from "../../src/scim/service";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { ENTERPRISE, tempDir, USER } from "../helpers";

let store: SqliteStore;
let service: ScimService;
let cleanup: () => void;
const BASE = "http://scimd.test/api/v1/scim";

beforeAll(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  store = new SqliteStore(join(t.dir, "db"));
  service = new ScimService(store, { strict: false, maxResults: 100 });
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
          const created = await service.create("User", body, BASE, {});
          const id = created.body.id as string;
          if (u.inGroup) await store.create("Group", { id: `g-${id}`, data: { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: `G ${id}` }, members: [id] });
          const stored = (await store.get("User", id))!;
          const fast = service.splicedJson("User", stored, BASE);
          const slow = await service.render("User", stored, BASE, {});
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
    const member = (await service.create("User", { schemas: [USER], userName: "g-member@example.com", displayName: "Member", emails: [{ value: "m@example.com" }] }, BASE, {})).body.id as string;
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.record({ displayName: tricky, externalId: fc.option(tricky, { nil: undefined }), withMember: fc.boolean() }), async (g) => {
        const body: Record<string, unknown> = { schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: `${g.displayName}#${++n}` };
        if (g.externalId !== undefined) body.externalId = g.externalId;
        if (g.withMember) body.members = [{ value: member }];
        const id = (await service.create("Group", body, BASE, {})).body.id as string;
        const stored = (await store.get("Group", id))!;
        const fast = service.splicedJson("Group", stored, BASE);
        expect(fast).toBeDefined();
        const slow = await service.render("Group", stored, BASE, withoutMembers);
        expect(fast!.json).toBe(JSON.stringify(slow.body));
        expect(fast!.etag).toBe(slow.etag);
        // Through get(): the same text, and the members (if any) come separately.
        const got = await service.get("Group", id, BASE, { excludedAttributes: "members" });
        expect(got.json).toBe(fast!.json);
        expect(got.members).toBeUndefined();
        const full = await service.get("Group", id, BASE, {});
        expect(full.json).toBe(fast!.json);
        expect(full.members).toBeDefined();
      }),
      { seed: 11, numRuns: 100 },
    );
  });
});
