/**
 * Part of the store contract (run by storeContract in contract.ts): filters run by the store under
 * test (for SQLite, compiled to SQL by src/store/sqlite/sql-filter.ts), checked two ways: against the
 * ids a human expects, and against the in-memory reference evaluator (src/scim/match.ts) over the same
 * stored resources. Also sortBy (RFC 7644 §3.4.2.3) and paging (RFC 7644 §3.4.2.4).
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { resolveAttrPath } from "../../src/scim/attributes";
import { ScimError } from "../../src/scim/errors";
import { resolveFilter, type ResolvedFilter, type Target } from "../../src/scim/filter";
import { matches } from "../../src/scim/match";
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, rtOf, USER_RESOURCE, USER_SCHEMA } from "../../src/scim/schema";
import type { Store, StoredResource } from "../../src/store/store";
import type { ResourceKind } from "../../src/scim/schema";
import { allMembers } from "../helpers";
import type { OpenFresh } from "./contract";

const ENT = ENTERPRISE_USER_SCHEMA;
const ENT_ = `${ENT}:`;

type Data = Record<string, unknown>;
const user = (data: Data): Data => ({ schemas: [USER_SCHEMA, ...(data[ENT] ? [ENT] : [])], ...data });

/** Ten Users; ids are in creation order. */
const USERS: [string, Data][] = [
  [
    "u01",
    user({
      userName: "bjensen@example.com",
      externalId: "EXT-1",
      name: { givenName: "Barbara", familyName: "Jensen", formatted: "Ms. Barbara J Jensen" },
      displayName: "Babs Jensen",
      title: "Tour Guide",
      active: true,
      emails: [
        { value: "bjensen@example.com", type: "work", primary: true },
        { value: "babs@jensen.org", type: "home" },
      ],
      [ENT]: { department: "Tour Operations", employeeNumber: "701984", manager: { value: "u03" } },
    }),
  ],
  [
    "u02",
    user({
      userName: "åsa@example.se",
      name: { givenName: "Åsa" },
      displayName: "Åsa Ström",
      title: "Engineer",
      active: true,
      emails: [{ value: "asa@example.se", type: "work" }],
      [ENT]: { department: "Engineering" },
    }),
  ],
  [
    "u03",
    user({
      userName: "ÅSA.LINDQVIST@example.se",
      displayName: "ÅSA LINDQVIST",
      title: "ENGINEER",
      active: false,
      emails: [{ value: "Asa.Lindqvist@Example.SE", type: "work", primary: true }],
      [ENT]: { department: "engineering" },
    }),
  ],
  [
    "u04",
    user({
      userName: "notitle",
      displayName: "No Title",
      active: true,
      emails: [
        { value: "a@x.test", type: "work" },
        { value: "b@y.test", type: "home" },
      ],
    }),
  ],
  [
    "u05",
    user({
      userName: "o'brien",
      displayName: 'Quote "Q" O\'Brien',
      title: "100% _under_score",
      active: false,
      emails: [{ value: "under_score@ex%ample.com", type: "other" }],
    }),
  ],
  [
    "u06",
    user({
      userName: "bob",
      displayName: "Bob",
      title: "Engineer",
      emails: [
        { value: "zed-bob@example.com", type: "home" },
        { value: "bob@work.example", type: "work", primary: true },
      ],
      [ENT]: { manager: { value: "u01" } },
    }),
  ],
  [
    "u07",
    user({
      userName: "carol",
      name: { formatted: "Carol Formatted", familyName: "Jensen" },
      title: "",
      active: true,
      emails: [{ value: "carol@example.com" }],
    }),
  ],
  ["u08", user({ userName: "dave", externalId: "ext-1", displayName: "Dave", title: "Señor Engineer", active: true })],
  [
    "u09",
    user({
      userName: "eve",
      externalId: "A\u030Angstr\u00f6m", // Å written decomposed (NFD)
      displayName: "Eve",
      title: "Engineer",
      active: true,
      emails: [{ value: "eve@example.com", type: "work", display: "Eve Work" }],
    }),
  ],
  ["u10", user({ userName: "frank", displayName: "Frank", title: "Zoo Keeper", active: false, emails: [{ value: "frank@example.com" }] })],
];

/** Groups: g2 holds a Group; g4's only member has no displayName, only name.formatted. */
const GROUPS: [string, string, string[]][] = [
  ["g1", "Admins", ["u01", "u02"]],
  ["g2", "Engineers", ["u02", "u03", "g1"]],
  ["g3", "Empty", []],
  ["g4", "Formatted", ["u07"]],
];

/** Filters, sortBy and paging of `search` over one seeded database, opened by `open`. */
export function filterContract(open: OpenFresh): void {
  describe("search: filters, sortBy and paging", () => {
    let store: Store;
    /** The creation time of the last User, before u05 is modified. */
    let lastCreated = "";

    beforeAll(async () => {
      store = (await open()).store;
      for (const [id, data] of USERS) await store.create("User", { id, data });
      for (const [id, displayName, members] of GROUPS) await store.create("Group", { id, data: { schemas: [GROUP_SCHEMA], displayName }, members });
      lastCreated = (await store.get("User", "u10"))!.lastModified;
      await Bun.sleep(15);
      const u05 = (await store.get("User", "u05"))!;
      await store.update("User", "u05", { data: { ...u05.data, timezone: "Europe/Paris" } });
    });

    afterAll(async () => {
      await store.close();
    });

    /** The resource as `matches` sees it: canonical data plus id, meta, and derived groups/members. */
    async function scopeOf(kind: ResourceKind, s: StoredResource): Promise<Data> {
      const scope: Data = { ...s.data, id: s.id, meta: { resourceType: kind, created: s.created, lastModified: s.lastModified } };
      if (kind === "User") {
        const groups = await store.groupsOf(s.id);
        if (groups.length) scope.groups = groups.map((g) => ({ value: g.value, display: g.display, type: "direct" }));
      } else {
        const members = (await allMembers(store, s.id));
        if (members.length) scope.members = members.map((m) => ({ value: m.value, type: m.type, ...(m.display !== undefined ? { display: m.display } : {}) }));
      }
      return scope;
    }

    async function all(kind: ResourceKind): Promise<StoredResource[]> {
      return (await store.search(kind, { offset: 0, limit: 1000 })).resources;
    }

    async function storeIds(kind: ResourceKind, f: ResolvedFilter | undefined): Promise<string[]> {
      const page = await store.search(kind, { filter: f, offset: 0, limit: 1000 });
      expect(page.total).toBe(page.resources.length);
      return page.resources.map((r) => r.id);
    }

    async function referenceIds(kind: ResourceKind, f: ResolvedFilter): Promise<string[]> {
      const out: string[] = [];
      for (const s of await all(kind)) if (matches(f, await scopeOf(kind, s))) out.push(s.id);
      return out;
    }


    /** Runs one case: the store's result equals the expected ids and the in-memory reference. */
    async function check(kind: ResourceKind, text: string, expected: string[]) {
      const f = resolveFilter(rtOf(kind), text);
      const got = await storeIds(kind, f);
      const ref = await referenceIds(kind, f);
      expect({ filter: text, store: got }).toEqual({ filter: text, store: ref });
      expect({ filter: text, store: got }).toEqual({ filter: text, store: expected });
    }

    const ALL_USERS = USERS.map(([id]) => id);
    const except = (...ids: string[]) => ALL_USERS.filter((x) => !ids.includes(x));

    describe("User filters: the store's result equals the expected ids and the in-memory reference (RFC 7644 §3.4.2.2)", () => {
      test.each([
        ['userName eq "bjensen@example.com"', ["u01"]],
        ['userName eq "BJENSEN@EXAMPLE.COM"', ["u01"]],
        ['userName sw "ÅSA"', ["u02", "u03"]],
        ['userName co "åsa"', ["u02", "u03"]],
        ['displayName eq "åsa ström"', ["u02"]],
        ['displayName eq "åsa lindqvist"', ["u03"]],
        ['name.givenName eq "ÅSA"', ["u02"]],
        ['name.givenName sw "å"', ["u02"]],
        ['title eq "engineer"', ["u02", "u03", "u06", "u09"]],
        ['title ew "ENGINEER"', ["u02", "u03", "u06", "u08", "u09"]],
        ['title co "engineer"', ["u02", "u03", "u06", "u08", "u09"]],
        ['title gt "s"', ["u01", "u08", "u10"]],
        ['title le "engineer"', ["u02", "u03", "u05", "u06", "u07", "u09"]],
        ['userName eq "nobody"', []],
      ])("string comparison, case-insensitive beyond ASCII: %s (RFC 7643 §2.2)", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ['title ne "Engineer"', ["u01", "u04", "u05", "u07", "u08", "u10"]],
        ['not (title eq "Engineer")', ["u01", "u04", "u05", "u07", "u08", "u10"]],
        ["title pr", except("u04", "u07")],
        ["not (title pr)", ["u04", "u07"]],
        ['title eq ""', ["u07"]],
        ["title eq null", ["u04"]],
        ["title ne null", except("u04")],
        ['title sw ""', except("u04")],
        ['title ew ""', except("u04")],
        ['title co ""', except("u04")],
        ['not (title ne "Engineer")', ["u02", "u03", "u06", "u09"]],
        ['not (not (title eq "Engineer"))', ["u02", "u03", "u06", "u09"]],
        ['not (title eq "x" or userName eq "bob")', except("u06")],
        ['not (title eq "x" and userName eq "bob")', ALL_USERS],
        ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department ne "Engineering"', except("u02", "u03")],
      ])("absent values: ne and not hold when the value is absent, other operators do not: %s (RFC 7644 §3.4.2.2)", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ["emails pr", except("u08")],
        ["not (emails pr)", ["u08"]],
        ["emails.type pr", except("u07", "u08", "u10")],
        ["emails.display pr", ["u09"]],
        ["name pr", ["u01", "u02", "u07"]],
        ["name.familyName pr", ["u01", "u07"]],
        ["active pr", except("u06")],
        ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr", ["u01", "u06"]],
        ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr", ["u01", "u02", "u03"]],
        ["externalId pr", ["u01", "u08", "u09"]],
        ["groups pr", ["u01", "u02", "u03", "u07"]],
        ["not (groups pr)", ["u04", "u05", "u06", "u08", "u09", "u10"]],
      ])("pr on strings, complex and multi-valued attributes: %s (RFC 7644 §3.4.2.2)", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ['title co "%"', ["u05"]],
        ['title co "_"', ["u05"]],
        ['title sw "100%"', ["u05"]],
        ['title ew "_score"', ["u05"]],
        ['title co "0% _u"', ["u05"]],
        ['title sw "1_0"', []],
        ['title co "%%"', []],
        ['emails.value co "%"', ["u05"]],
        ['emails.value sw "under_"', ["u05"]],
        ['displayName co "\\"q\\""', ["u05"]],
        ['displayName co "o\'brien"', ["u05"]],
        ['userName eq "o\'brien"', ["u05"]],
        ['userName eq "x\' OR 1=1 --"', []],
        ['userName eq "x\\" OR 1=1 --"', []],
        ['title co "\') OR 1=1 --"', []],
        ['userName eq "\'; DROP TABLE users; --"', []],
        ['userName co "\'"', ["u05"]],
        ['emails[value eq "\') OR (\'1\'=\'1"]', []],
      ])("treats %%, _, quotes and SQL in literals as plain characters: %s", async (text, expected) => {
        await check("User", text, expected);
        expect((await store.search("User", { offset: 0, limit: 0 })).total).toBe(USERS.length);
      });

      test.each([
        ['emails[type eq "work" and value eq "b@y.test"]', []],
        ['emails[type eq "work"].value eq "b@y.test"', []],
        ['emails[type eq "home" and value eq "b@y.test"]', ["u04"]],
        ['emails[type eq "home"].value eq "b@y.test"', ["u04"]],
        ['emails[type eq "work" and value co "@example.com"]', ["u01", "u09"]],
        ['emails[type eq "work"].value ew "@example.com"', ["u01", "u09"]],
        ['emails[not (type eq "work")]', ["u01", "u04", "u05", "u06", "u07", "u10"]],
        ['emails[type ne "work"]', ["u01", "u04", "u05", "u06", "u07", "u10"]],
        ["emails[primary eq true]", ["u01", "u03", "u06"]],
        ['emails[primary eq true and value co "work"]', ["u06"]],
        ['emails.value eq "ASA.LINDQVIST@example.se"', ["u03"]],
        ['emails eq "zed-bob@example.com"', ["u06"]],
        ['emails.value ew "@example.com"', ["u01", "u06", "u07", "u09", "u10"]],
        ['emails.value eq "b@y.test" and emails.type eq "work"', ["u04"]],
      ])("value paths hold within one element (RFC 7644 §3.4.2.2 valuePath): %s", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ["active eq true", ["u01", "u02", "u04", "u07", "u08", "u09"]],
        ["active eq false", ["u03", "u05", "u10"]],
        ['active eq "False"', ["u03", "u05", "u10"]],
        ["active ne true", ["u03", "u05", "u06", "u10"]],
        ["not (active eq true)", ["u03", "u05", "u06", "u10"]],
      ])("booleans: %s", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering"', ["u02", "u03"]],
        ['department eq "ENGINEERING"', ["u02", "u03"]],
        ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "u01"', ["u06"]],
        ['manager eq "u03"', ["u01"]],
        ['urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob"', ["u06"]],
      ])("extension and URN-qualified attributes: %s", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ['id eq "u03"', ["u03"]],
        ['id eq "U03"', []],
        ['externalId eq "EXT-1"', ["u01"]],
        ['externalId eq "ext-1"', ["u08"]],
        ['meta.resourceType eq "User"', ALL_USERS],
        ["meta.created pr", ALL_USERS],
        ['meta.created lt "2000-01-01T00:00:00Z"', []],
        ['meta.created gt "2000-01-01T00:00:00+01:00"', ALL_USERS],
      ])("id, externalId (caseExact) and meta read their columns: %s (RFC 7643 §3.1)", async (text, expected) => {
        await check("User", text, expected);
      });

      it("compares externalId after NFC normalisation on both sides, as it does for every other string (externalId stored decomposed)", async () => {
        await check("User", 'externalId eq "Ångström"', ["u09"]);
      });

      it("finds only the User modified after a given time with meta.lastModified gt, whatever offset the literal uses", async () => {
        await check("User", `meta.lastModified gt "${lastCreated}"`, ["u05"]);
        const ms = Date.parse(lastCreated);
        const plus2 = new Date(ms + 2 * 3600_000).toISOString().replace(/\.(\d{3})Z$/, ".$1+02:00");
        await check("User", `meta.lastModified gt "${plus2}"`, ["u05"]);
        await check("User", `meta.lastModified le "${lastCreated}"`, except("u05"));
      });

      test.each([
        ['groups.value eq "g1"', ["u01", "u02"]],
        ['groups[value eq "g2"]', ["u02", "u03"]],
        ['groups[display eq "engineers"]', ["u02", "u03"]],
        ['groups.type eq "direct"', ["u01", "u02", "u03", "u07"]],
      ])("groups on Users is the direct membership: %s (RFC 7643 §4.1.2)", async (text, expected) => {
        await check("User", text, expected);
      });

      test.each([
        ['title eq "Engineer" and active eq false', ["u03"]],
        ['(title eq "engineer" or department eq "tour operations") and not (active eq false)', ["u01", "u02", "u06", "u09"]],
        ['title eq "engineer" or userName eq "bob" and active eq false', ["u02", "u03", "u06", "u09"]],
        ['(title eq "engineer" or userName eq "notitle") and active eq true', ["u02", "u04", "u09"]],
        ['emails[type eq "home"] and not (title pr)', ["u04"]],
      ])("logical combinations and precedence: %s", async (text, expected) => {
        await check("User", text, expected);
      });
    });

    describe("Group filters (RFC 7643 §4.2)", () => {
      test.each([
        ['displayName eq "admins"', ["g1"]],
        ['members.value eq "u02"', ["g1", "g2"]],
        ['members[value eq "u02"]', ["g1", "g2"]],
        ['members[value eq "g1"]', ["g2"]],
        ['members eq "u07"', ["g4"]],
        ["members pr", ["g1", "g2", "g4"]],
        ["not (members pr)", ["g3"]],
        ['members.display eq "Babs Jensen"', ["g1"]],
        ['members[display eq "admins"]', ["g2"]],
        ['members[value eq "u02"] and displayName sw "E"', ["g2"]],
      ])("%s", async (text, expected) => {
        await check("Group", text, expected);
      });

      test.each([
        ['members[type eq "Group"]', ["g2"]],
        ['members[type eq "User" and value eq "u03"]', ["g2"]],
        ['members.type eq "user"', ["g1", "g2", "g4"]],
      ])("members.type matches the member's resource type case-insensitively: %s (RFC 7643 §4.2: members.type is not caseExact)", async (text, expected) => {
        await check("Group", text, expected);
      });

      it("members.display filters on the same display the Group shows (name.formatted when the User has no displayName)", async () => {
        expect(((await allMembers(store, "g4")))[0]!.display).toBe("Carol Formatted");
        await check("Group", 'members[display eq "Carol Formatted"]', ["g4"]);
      });
    });

    describe("filters the store cannot run are refused with 400, not a crash", () => {
      test.each(['meta.location eq "x"', 'meta.version eq "W/\\"1\\""', 'groups.$ref eq "x"'])("%s", async (text) => {
        let thrown: unknown;
        try {
          await store.search("User", { filter: resolveFilter(USER_RESOURCE, text), offset: 0, limit: 10 });
        } catch (e) {
          thrown = e;
        }
        expect(thrown).toBeInstanceOf(ScimError);
        expect((thrown as ScimError).status).toBe(400);
      });
    });

    const sortTarget = (path: string): Target => {
      const r = resolveAttrPath(USER_RESOURCE, path);
      if (!r) throw new Error(`bad sort path ${path}`);
      return { extension: r.extension, attr: r.attr, sub: r.sub };
    };

    async function sorted(path: string, descending: boolean, offset = 0, limit = 1000): Promise<string[]> {
      const page = await store.search("User", { sortBy: sortTarget(path), descending, offset, limit });
      expect(page.total).toBe(USERS.length);
      return page.resources.map((r) => r.id);
    }

    describe("sortBy (RFC 7644 §3.4.2.3)", () => {
      test.each([
        // folded keys: "" < "100% …" < "engineer"×4 < "señor engineer" < "tour guide" < "zoo keeper", then unassigned
        ["title", ["u07", "u05", "u02", "u03", "u06", "u09", "u08", "u01", "u10", "u04"]],
        ["userName", ["u01", "u06", "u07", "u08", "u09", "u10", "u04", "u05", "u03", "u02"]],
        ["USERNAME", ["u01", "u06", "u07", "u08", "u09", "u10", "u04", "u05", "u03", "u02"]],
        ["name.familyName", ["u01", "u07", "u02", "u03", "u04", "u05", "u06", "u08", "u09", "u10"]],
        [`${ENT_}department`, ["u02", "u03", "u01", "u04", "u05", "u06", "u07", "u08", "u09", "u10"]],
        ["emails", ["u04", "u03", "u02", "u01", "u06", "u07", "u09", "u10", "u05", "u08"]],
        ["emails.value", ["u04", "u03", "u02", "u01", "u06", "u07", "u09", "u10", "u05", "u08"]],
        ["active", ["u03", "u05", "u10", "u01", "u02", "u04", "u07", "u08", "u09", "u06"]],
      ])("ascending by %s puts unassigned values last and keeps creation order among ties", async (path, expected) => {
        expect(await sorted(path, false)).toEqual(expected);
      });

      test.each(["title", "userName", "name.familyName", `${ENT_}department`, "emails", "active"])(
        "descending by %s puts unassigned values first: the exact reverse of ascending",
        async (path) => {
          const asc = await sorted(path, false);
          expect(await sorted(path, true)).toEqual([...asc].reverse());
        },
      );

      it("sorts by the primary email when there is one, else by the first (RFC 7644 §3.4.2.3: multi-valued sorts by primary)", async () => {
        const order = await sorted("emails.value", false);
        // u06's first email zed-bob@… sorts last; its primary (second) email bob@work.example sorts between bjensen@… and carol@…
        expect(order.indexOf("u06")).toBeGreaterThan(order.indexOf("u01"));
        expect(order.indexOf("u06")).toBeLessThan(order.indexOf("u07"));
      });

      it("sorts by meta.lastModified descending with the most recently modified first", async () => {
        expect((await sorted("meta.lastModified", true))[0]).toBe("u05");
        expect(await sorted("meta.created", false)).toEqual(ALL_USERS);
      });

      it("sorts a filtered result", async () => {
        const page = await store.search("User", { filter: resolveFilter(USER_RESOURCE, 'title eq "engineer"'), sortBy: sortTarget("userName"), descending: true, offset: 0, limit: 10 });
        expect(page.total).toBe(4);
        expect(page.resources.map((r) => r.id)).toEqual(["u02", "u03", "u09", "u06"]);
      });

      test.each(["name", "groups"])("refuses to sort by %s with 400", async (path) => {
        let thrown: unknown;
        try {
          await store.search("User", { sortBy: sortTarget(path), offset: 0, limit: 10 });
        } catch (e) {
          thrown = e;
        }
        expect(thrown).toBeInstanceOf(ScimError);
        expect((thrown as ScimError).status).toBe(400);
      });
    });

    describe("paging (RFC 7644 §3.4.2.4)", () => {
      it("returns consecutive, non-overlapping pages that together are the whole sorted result", async () => {
        const full = await sorted("title", false);
        const pages: string[] = [];
        for (let offset = 0; offset < USERS.length; offset += 3) pages.push(...(await sorted("title", false, offset, 3)));
        expect(pages).toEqual(full);
      });

      test.each([
        [0, 3, ["u01", "u02", "u03"]],
        [8, 5, ["u09", "u10"]],
        [10, 5, []],
        [100, 5, []],
        [2, 0, []],
      ])("offset %d, limit %d gives %j and the full total", async (offset, limit, expected) => {
        const page = await store.search("User", { offset, limit });
        expect(page.total).toBe(USERS.length);
        expect(page.resources.map((r) => r.id)).toEqual(expected);
      });

      it("counts the whole filtered result in total while returning one page", async () => {
        const page = await store.search("User", { filter: resolveFilter(USER_RESOURCE, "title pr"), sortBy: sortTarget("title"), offset: 1, limit: 2 });
        expect(page.total).toBe(8);
        expect(page.resources.map((r) => r.id)).toEqual(["u02", "u03"]);
      });
    });
  });
}
