/**
 * Part of the store contract (run by storeContract in contract.ts): property-based tests of filters
 * (RFC 7644 §3.4.2.2) with fast-check, fixed seeds:
 * - random filter trees over User attributes, rendered to text, resolved and run by the store under
 *   test, give exactly the ids the in-memory reference (src/scim/match.ts) gives;
 * - arbitrary junk text either resolves or fails with a ScimError 400 invalidFilter, never anything else;
 * - any string written as a JSON string literal resolves to that string.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import fc from "fast-check";
import { fold } from "../../src/scim/compare-keys";
import { ScimError } from "../../src/scim/errors";
import { resolveFilter, type ResolvedFilter } from "../../src/scim/filter";
import { matches } from "../../src/scim/match";
import { ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, GROUP_SCHEMA, USER_RESOURCE, USER_SCHEMA } from "../../src/scim/schema";
import type { Store, StoredResource } from "../../src/store/store";
import type { OpenFresh } from "./contract";

const ENT = ENTERPRISE_USER_SCHEMA;
type Data = Record<string, unknown>;

const email = (value: string, type?: string, primary?: boolean, display?: string): Data => ({
  value,
  ...(type !== undefined ? { type } : {}),
  ...(primary !== undefined ? { primary } : {}),
  ...(display !== undefined ? { display } : {}),
});

/** Twelve Users with overlapping values, absent attributes, non-ASCII text and awkward characters. */
const USERS: [string, Data][] = [
  ["f01", { userName: "bjensen@example.com", displayName: "Babs Jensen", title: "Tour Guide", active: true, name: { givenName: "Barbara", familyName: "Jensen" }, emails: [email("bjensen@example.com", "work", true), email("babs@jensen.org", "home")], [ENT]: { department: "Tour Operations" } }],
  ["f02", { userName: "åsa@example.se", displayName: "Åsa Ström", title: "Engineer", active: true, name: { givenName: "Åsa" }, emails: [email("asa@example.se", "work")], [ENT]: { department: "Engineering" } }],
  ["f03", { userName: "ÅSA.LINDQVIST@example.se", displayName: "ÅSA LINDQVIST", title: "ENGINEER", active: false, name: { givenName: "ÅSA" }, emails: [email("Asa.Lindqvist@Example.SE", "work", true)], [ENT]: { department: "engineering" } }],
  ["f04", { userName: "notitle", displayName: "No Title", active: true, emails: [email("a@x.test", "work"), email("b@y.test", "home")] }],
  ["f05", { userName: "o'brien", displayName: 'Quote "Q" O\'Brien', title: "100% _under_score", active: false, emails: [email("under_score@ex%ample.com", "other")] }],
  ["f06", { userName: "bob", displayName: "Bob", title: "Engineer", emails: [email("zed-bob@example.com", "home"), email("bob@work.example", "work", true)], [ENT]: { manager: { value: "f01" } } }],
  ["f07", { userName: "carol", title: "", active: true, name: { formatted: "Carol", familyName: "Jensen" }, emails: [email("carol@example.com")] }],
  ["f08", { userName: "dave", displayName: "Dave", title: "Señor Engineer", active: true }],
  ["f09", { userName: "eve", displayName: "Eve 😀", title: "Engineer", active: true, emails: [email("eve@example.com", "work", false, "Eve Work"), email("EVE@example.com", "Work")] }],
  ["f10", { userName: "frank", displayName: "Frank", title: "Ｆullwidth Keeper", active: false, emails: [email("frank@example.com")], [ENT]: { department: "Zoo" } }],
  ["f11", { userName: "straße", displayName: "Straße", title: "😀 Emoji Officer", active: true, name: { givenName: "ß" }, emails: [email("strasse@example.de", "home", true)], [ENT]: { department: "" } }],
  ["f12", { userName: "x_y%z", displayName: "x_y%z", title: "a'b\"c", emails: [email("x_y%z@example.com", "work"), email("x_y%z@example.com", "home")], [ENT]: { department: "Tour Operations" } }],
];

// ---------------------------------------------------------------------------------------------
// Filter generator

type Kind = "string" | "boolean" | "dateTime";
interface AttrSpec {
  /** Spellings a client may use for the same attribute. */
  names: string[];
  kind: Kind;
}

const ATTRS: AttrSpec[] = [
  { names: ["userName", "USERNAME", "urn:ietf:params:scim:schemas:core:2.0:User:userName"], kind: "string" },
  { names: ["title", "Title"], kind: "string" },
  { names: ["displayName", "displayname"], kind: "string" },
  { names: ["active", "ACTIVE"], kind: "boolean" },
  { names: ["emails.value", "emails", "Emails.Value"], kind: "string" },
  { names: ["emails.type", "EMAILS.TYPE"], kind: "string" },
  { names: ["name.givenName", "NAME.givenname", "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"], kind: "string" },
  { names: [`${ENT}:department`, "department", `${ENT.toUpperCase()}:Department`], kind: "string" },
  { names: ["meta.lastModified", "META.LASTMODIFIED"], kind: "dateTime" },
];

/** Sub-attributes of emails, for value paths. */
const EMAIL_ATTRS: AttrSpec[] = [
  { names: ["value", "VALUE", "emails.value"], kind: "string" },
  { names: ["type", "Type"], kind: "string" },
  { names: ["display"], kind: "string" },
  { names: ["primary"], kind: "boolean" },
];

const OPS: Record<Kind, string[]> = {
  string: ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"],
  boolean: ["eq", "ne"],
  dateTime: ["eq", "ne", "gt", "ge", "lt", "le"],
};

/** Every string value present in the data, to draw literals from. */
function stringsIn(v: unknown, out: Set<string>): Set<string> {
  if (typeof v === "string") out.add(v);
  else if (Array.isArray(v)) v.forEach((x) => stringsIn(x, out));
  else if (v && typeof v === "object") Object.values(v).forEach((x) => stringsIn(x, out));
  return out;
}
const EXISTING = [...stringsIn(USERS.map(([, d]) => d), new Set<string>())];
const AWKWARD = ["%", "_", "'", '"', "' OR 1=1 --", '" OR ""="', "", "Å", "å", "ß", "SS", "İ", "😀", "Ｆ", "\uFFFF", "engineer", "@example.com"];

const ORDERING = new Set(["gt", "ge", "lt", "le"]);
/** True when every character is below U+D800 (no astral and no U+E000–U+FFFF characters). */
const lowPlane = (s: string) => !/[\uD800-\uFFFF]/.test(s);
const clean = (s: string) => !s.includes("\\") && !/[\u0000-\u001f]/.test(s);

const caseOf = fc.constantFrom<(s: string) => string>(
  (s) => s,
  (s) => s.toUpperCase(),
  (s) => s.toLowerCase(),
);

const stringValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...EXISTING), caseOf).map(([s, c]) => c(s)) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...EXISTING), fc.nat(), fc.nat(), caseOf).map(([s, a, b, c]) => {
      const cps = [...s];
      const i = a % (cps.length + 1);
      const j = i + (b % (cps.length - i + 1));
      return c(cps.slice(i, j).join(""));
    }),
  },
  { weight: 2, arbitrary: fc.constantFrom(...AWKWARD) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }).filter(clean) },
);

function dateLiteral(times: number[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...times), fc.integer({ min: -20, max: 20 }), fc.constantFrom(0, 0, 60, -300, 330), fc.boolean())
    .map(([t, delta, offsetMin, fraction]) => {
      const ms = t + delta;
      const local = new Date(ms + offsetMin * 60_000).toISOString();
      const body = fraction ? local.slice(0, 23) : local.slice(0, 19);
      if (offsetMin === 0) return `${body}Z`;
      const sign = offsetMin < 0 ? "-" : "+";
      const abs = Math.abs(offsetMin);
      return `${body}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
    });
}

const keyword = (k: string) => fc.constantFrom(k, k.toUpperCase(), k[0]!.toUpperCase() + k.slice(1));

/** One comparison or presence test over `attrs`, rendered as filter text. */
function leafOver(attrs: AttrSpec[], times: number[]): fc.Arbitrary<string> {
  const dates = dateLiteral(times);
  return fc.constantFrom(...attrs).chain((a) => {
    const name = fc.constantFrom(...a.names);
    const present = fc.tuple(name, keyword("pr")).map(([n, pr]) => `${n} ${pr}`);
    let literal: fc.Arbitrary<string>;
    if (a.kind === "boolean") literal = fc.constantFrom("true", "false", '"True"', '"FALSE"', "TRUE".toLowerCase());
    else if (a.kind === "dateTime") literal = dates.map((d) => JSON.stringify(d));
    else literal = stringValue.map((s) => JSON.stringify(s));
    // String ordering of astral vs U+E000–U+FFFF characters is a known divergence with its own test below.
    const orderLiteral = a.kind === "string" ? stringValue.filter(lowPlane).map((s) => JSON.stringify(s)) : literal;
    const compare = fc
      .tuple(name, fc.constantFrom(...OPS[a.kind]))
      .chain(([n, op]) => fc.tuple(fc.constant(n), keyword(op), ORDERING.has(op) ? orderLiteral : literal))
      .map(([n, op, v]) => `${n} ${op} ${v}`);
    const nullCompare = fc.tuple(name, fc.constantFrom("eq", "ne")).map(([n, op]) => `${n} ${op} null`);
    return fc.oneof({ weight: 6, arbitrary: compare }, { weight: 2, arbitrary: present }, { weight: 1, arbitrary: nullCompare });
  });
}

/** and / or / not over `leaf`, fully parenthesised where the structure needs it. */
function tree(leaf: fc.Arbitrary<string>, maxDepth: number): fc.Arbitrary<string> {
  const { expr } = fc.letrec<{ expr: string; and: string; or: string; not: string }>((tie) => ({
    expr: fc.oneof({ maxDepth, depthSize: "small" }, leaf, tie("and"), tie("or"), tie("not")),
    and: fc.tuple(fc.array(tie("expr"), { minLength: 2, maxLength: 3 }), keyword("and")).map(([xs, kw]) => xs.map((x) => `(${x})`).join(` ${kw} `)),
    or: fc.tuple(fc.array(tie("expr"), { minLength: 2, maxLength: 3 }), keyword("or")).map(([xs, kw]) => xs.map((x) => `(${x})`).join(` ${kw} `)),
    not: fc.tuple(tie("expr"), keyword("not")).map(([x, kw]) => `${kw} (${x})`),
  }));
  return expr;
}

function filterText(times: number[]): fc.Arbitrary<string> {
  const elem = tree(leafOver(EMAIL_ATTRS, times), 3);
  const valuePath = elem.map((f) => `emails[${f}]`);
  const valuePathSub = fc
    .tuple(elem, leafOver(EMAIL_ATTRS.filter((a) => !a.names[0]!.includes(".")), times))
    .map(([f, sub]) => `emails[${f}].${sub}`);
  const leaf = fc.oneof({ weight: 6, arbitrary: leafOver(ATTRS, times) }, { weight: 2, arbitrary: valuePath }, { weight: 1, arbitrary: valuePathSub });
  return tree(leaf, 4);
}

function expectScim400(e: unknown, input: string) {
  if (!(e instanceof ScimError)) throw new Error(`input ${JSON.stringify(input)} threw a non-SCIM error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  expect(e.status).toBe(400);
  expect(e.scimType).toBe("invalidFilter");
}

// ---------------------------------------------------------------------------------------------

/** The property tests, over one seeded database opened by `open`. */
export function filterFuzzContract(open: OpenFresh): void {
  describe("search: random and junk filters against the in-memory reference", () => {
    let store: Store;
    /** Each User's stored form and its in-memory scope, in creation order. */
    let stored: { s: StoredResource; scope: Data }[] = [];

    beforeAll(async () => {
      store = (await open()).store;
      for (const [id, data] of USERS) await store.create("User", { id, data: { schemas: [USER_SCHEMA, ...(data[ENT] ? [ENT] : [])], ...data } });
      await store.create("Group", { id: "g1", data: { schemas: [GROUP_SCHEMA], displayName: "Admins" }, members: ["f01", "f02"] });
      // Spread lastModified over time so that dateTime comparisons see distinct values.
      for (const id of ["f04", "f09", "f02"]) {
        await Bun.sleep(4);
        const cur = (await store.get("User", id))!;
        await store.update("User", id, { data: cur.data });
      }
      stored = [];
      for (const s of (await store.search("User", { offset: 0, limit: 1000 })).resources) {
        const groups = await store.groupsOf(s.id);
        const scope: Data = { ...s.data, id: s.id, meta: { resourceType: "User", created: s.created, lastModified: s.lastModified } };
        if (groups.length) scope.groups = groups.map((g) => ({ value: g.value, display: g.display, type: "direct" }));
        stored.push({ s, scope });
      }
    });

    afterAll(async () => {
      await store.close();
    });

    async function storeIds(f: ResolvedFilter): Promise<string[]> {
      return (await store.search("User", { filter: f, offset: 0, limit: 1000 })).resources.map((r) => r.id);
    }
    const referenceIds = (f: ResolvedFilter): string[] => stored.filter((x) => matches(f, x.scope)).map((x) => x.s.id);

    describe("random filters: the store equals the in-memory reference (RFC 7644 §3.4.2.2)", () => {
      it("gives the same Users from the store as from evaluating the resolved filter in memory, for 1000 random filters", async () => {
        const times = [...new Set(stored.flatMap((x) => [Date.parse(x.s.created), Date.parse(x.s.lastModified)]))];
        let nonEmpty = 0;
        let notAll = 0;
        await fc.assert(
          fc.asyncProperty(filterText(times), async (text) => {
            const f = resolveFilter(USER_RESOURCE, text);
            const got = await storeIds(f);
            expect({ filter: text, ids: got }).toEqual({ filter: text, ids: referenceIds(f) });
            if (got.length) nonEmpty++;
            if (got.length < USERS.length) notAll++;
          }),
          { seed: 7644, numRuns: 1000 },
        );
        // The generator is worth something only if it produces both selective and matching filters.
        expect(nonEmpty).toBeGreaterThan(200);
        expect(notAll).toBeGreaterThan(200);
        // 1000 queries: a second or two on PostgreSQL, far more on a loaded machine (it timed out at 5 s there).
      }, 60_000);

      it("orders string comparisons (gt/ge/lt/le) the same way in the store and in memory, beyond the Basic Multilingual Plane", async () => {
        for (const text of ['title gt "😀"', 'title lt "😀"', 'title ge "\uFFFF"', 'displayName gt "eve \uFFFF"']) {
          const f = resolveFilter(USER_RESOURCE, text);
          expect({ filter: text, ids: await storeIds(f) }).toEqual({ filter: text, ids: referenceIds(f) });
        }
      });
    });

    const JUNK_TOKENS = [
      "userName", "title", "emails", "emails.value", "name.givenName", "active", "meta.lastModified", "department",
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "urn:ietf:params:scim:schemas:core:2.0:User:",
      "value", "type", "primary", "password", "name", "nosuch",
      "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not", "AND", "Or", "NOT",
      "(", ")", "[", "]", "].", ".", '"', "'", "\\", '\\"', '"x"', '"Åsa"', '"engineer"', '"2024-01-01T00:00:00Z"', '""',
      "true", "false", "null", "1", "-1.5e3", " ", " ", " ", "\t", "\n", ":", "%", "_",
    ];

    describe("junk filter text never escapes as anything but 400 invalidFilter (RFC 7644 §3.12)", () => {
      const junk = fc.oneof(
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.string({ unit: "grapheme", maxLength: 40 }),
        fc.string({ unit: fc.constantFrom('"', "[", "]", "(", ")", " ", "\\", ".", "a", "e", "q"), maxLength: 40 }),
        fc.array(fc.constantFrom(...JUNK_TOKENS), { maxLength: 14 }).map((xs) => xs.join(" ")),
        fc.array(fc.constantFrom(...JUNK_TOKENS), { maxLength: 14 }).map((xs) => xs.join("")),
      );

      it("either resolves or throws ScimError 400 invalidFilter for 2000 junk strings, and whatever resolves runs in the store like in memory", async () => {
        const times = [...new Set(stored.map((x) => Date.parse(x.s.lastModified)))];
        // Valid filters with one token or character inserted, deleted or replaced: mostly near misses.
        const mutated = fc
          .tuple(filterText(times), fc.nat(), fc.nat({ max: 3 }), fc.constantFrom(...JUNK_TOKENS))
          .map(([f, at, how, tok]) => {
            const i = at % (f.length + 1);
            if (how === 0) return f.slice(0, i) + tok + f.slice(i);
            if (how === 1) return f.slice(0, i) + f.slice(i + 1);
            if (how === 2) return f.slice(0, i) + tok + f.slice(i + tok.length);
            return f;
          });
        let resolved = 0;
        await fc.assert(
          fc.asyncProperty(fc.oneof(junk, mutated), async (text) => {
            for (const rt of [USER_RESOURCE, GROUP_RESOURCE]) {
              let f: ResolvedFilter | undefined;
              try {
                f = resolveFilter(rt, text);
              } catch (e) {
                expectScim400(e, text);
                continue;
              }
              if (rt !== USER_RESOURCE) continue;
              resolved++;
              let got: string[];
              try {
                got = await storeIds(f);
              } catch (e) {
                if (!(e instanceof ScimError)) throw new Error(`filter ${JSON.stringify(text)} failed in the store with ${String(e)}`);
                expect(e.status).toBe(400);
                continue;
              }
              expect({ filter: text, ids: got }).toEqual({ filter: text, ids: referenceIds(f) });
            }
          }),
          { seed: 3422, numRuns: 2000 },
        );
        expect(resolved).toBeGreaterThan(100);
      }, 60_000);
    });

    describe("string literals are JSON strings (RFC 7644 §3.4.2.2, RFC 7159 §7)", () => {
      it("resolves any string written with JSON.stringify to exactly that string", () => {
        const s = fc.oneof(
          fc.string({ unit: "grapheme", maxLength: 12 }),
          fc.string({ unit: fc.constantFrom("\\", '"', "/", "a", "Å", "\n", "\t", "\u0001", "😀"), maxLength: 8 }),
        );
        fc.assert(
          fc.property(s, (value) => {
            const text = `title eq ${JSON.stringify(value)}`;
            const f = resolveFilter(USER_RESOURCE, text);
            expect(f).toMatchObject({ kind: "compare", op: "eq", raw: value, value: fold(value) });
          }),
          { seed: 7159, numRuns: 500 },
        );
      });

      it("finds every stored User by its exact userName written as a JSON string literal", async () => {
        for (const { s } of stored) {
          const text = `userName eq ${JSON.stringify(s.data.userName)}`;
          expect({ text, ids: await storeIds(resolveFilter(USER_RESOURCE, text)) }).toEqual({ text, ids: [s.id] });
        }
      });
    });
  });
}
