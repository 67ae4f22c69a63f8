/** Querying resources over HTTP (RFC 7644 §3.4.2, §3.4.3): filters, sorting, paging, .search and query-string encoding. */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { ENTERPRISE, GROUP, groupBody, LIST, startServer, USER, userBody, type TestServer, expectScimError } from "../helpers";

const MAX = 5;
const SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const TAG = "dataset";

let s: TestServer;

interface Person {
  userName: string;
  family: string;
  externalId: string;
  department: string;
  workEmail: string;
}
const people: Person[] = [
  { userName: "alice@example.com", family: "Anderson", externalId: "Ext-A", department: "Sales", workEmail: "alice.work@corp.example" },
  { userName: "bob@example.com", family: "Brown", externalId: "Ext-B", department: "Engineering", workEmail: "bob.work@corp.example" },
  { userName: "carol@example.com", family: "Clark", externalId: "Ext-C", department: "Sales", workEmail: "carol.work@corp.example" },
  { userName: "dave@example.com", family: "Davis", externalId: "Ext-D", department: "Legal", workEmail: "dave.work@corp.example" },
  { userName: "erin@example.com", family: "Evans", externalId: "Ext-E", department: "Engineering", workEmail: "erin.work@corp.example" },
  { userName: "frank@example.com", family: "Foster", externalId: "Ext-F", department: "Sales", workEmail: "frank.work@corp.example" },
  { userName: "grace@example.com", family: "Green", externalId: "Ext-G", department: "Legal", workEmail: "grace.work@corp.example" },
  { userName: "heidi@example.com", family: "Hill", externalId: "Ext-H", department: "Engineering", workEmail: "heidi.work@corp.example" },
];
const ids = new Map<string, string>();
const created = new Map<string, any>();

beforeAll(async () => {
  s = await startServer({ maxResults: MAX });
  // Created in an order that is not the sort order, so sorting is observable.
  const order = [3, 0, 6, 1, 7, 4, 2, 5];
  for (const i of order) {
    const p = people[i]!;
    const r = await s.req(
      "POST",
      "/Users",
      userBody(p.userName, {
        externalId: p.externalId,
        title: TAG,
        name: { familyName: p.family, givenName: p.userName.split("@")[0] },
        emails: [
          { value: `${p.userName.split("@")[0]}.home@home.example`, type: "home" },
          { value: p.workEmail, type: "work", primary: true },
        ],
        [ENTERPRISE]: { department: p.department },
      }),
    );
    if (r.status !== 201) throw new Error(`setup failed: ${r.text}`);
    ids.set(p.userName, r.body.id);
    created.set(p.userName, r.body);
    await Bun.sleep(2); // distinct meta.lastModified values
  }
});
afterAll(async () => {
  await s.close();
});

/** GET /Users with a filter, encoded the ordinary way. */
const find = (filter: string, extra = "") => s.req("GET", `/Users?filter=${encodeURIComponent(filter)}${extra}`);
const userNames = (r: any): string[] => r.body.Resources.map((x: any) => x.userName);
const byTag = `title eq "${TAG}"`;


describe("filter on GET /Users (RFC 7644 §3.4.2.2)", () => {
  const cases: [string, () => string, string[]][] = [
    ["userName eq matches in any case of the value (userName caseExact false)", () => `userName eq "ALICE@Example.COM"`, ["alice@example.com"]],
    ["the attribute name and operator are case-insensitive", () => `USERNAME EQ "bob@example.com"`, ["bob@example.com"]],
    ["externalId eq matches the exact case", () => `externalId eq "Ext-C"`, ["carol@example.com"]],
    ["externalId eq does not match another case (caseExact true)", () => `externalId eq "ext-c"`, []],
    ["id eq finds the resource by id", () => `id eq "${ids.get("dave@example.com")}"`, ["dave@example.com"]],
    ["emails[type eq \"work\"].value eq finds the User by work email", () => `emails[type eq "work"].value eq "erin.work@corp.example"`, ["erin@example.com"]],
    ["emails[type eq \"work\"] does not match a home address", () => `emails[type eq "work"].value eq "erin.home@home.example"`, []],
    ["emails[type eq \"work\" and value co \"frank\"] (both on the same element)", () => `emails[type eq "work" and value co "frank"]`, ["frank@example.com"]],
    ["emails.value eq matches any email value", () => `emails.value eq "grace.home@home.example"`, ["grace@example.com"]],
    ["name.familyName eq", () => `name.familyName eq "hill"`, ["heidi@example.com"]],
    ["name.familyName sw", () => `name.familyName sw "D"`, ["dave@example.com"]],
    ["enterprise department eq (URN-qualified)", () => `${ENTERPRISE}:department eq "Legal"`, ["dave@example.com", "grace@example.com"]],
    ["and / or / not combine", () => `${byTag} and (name.familyName eq "Brown" or name.familyName eq "Clark") and not (externalId eq "Ext-B")`, ["carol@example.com"]],
    ["meta.lastModified gt a date in the past matches all", () => `${byTag} and meta.lastModified gt "2000-01-01T00:00:00Z"`, people.map((p) => p.userName)],
    ["meta.lastModified gt a date in the future matches none", () => `meta.lastModified gt "2999-01-01T00:00:00Z"`, []],
  ];
  test.each(cases)("%s", async (_c, filter, expected) => {
    const r = await find(filter(), "&sortBy=userName");
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.totalResults).toBe(expected.length);
    // pages are capped at MAX; every case here fits except the "all" one
    expect(userNames(r)).toEqual([...expected].sort().slice(0, MAX));
  });

  it("meta.lastModified gt the lastModified of a User finds exactly the Users modified after it", async () => {
    const pivot = created.get("erin@example.com"); // created 6th of 8
    const r = await find(`${byTag} and meta.lastModified gt "${pivot.meta.lastModified}"`, "&sortBy=userName");
    expect(r.status).toBe(200);
    expect(userNames(r)).toEqual(["carol@example.com", "frank@example.com"]);
  });

  it("answers 200 with totalResults 0 for a filter on a random GUID", async () => {
    const r = await find(`id eq "${crypto.randomUUID()}"`);
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(0);
    expect(r.body.Resources ?? []).toEqual([]);
  });

  test.each([
    ["a missing value", `userName eq`],
    ["an unknown operator", `userName zz "x"`],
    ["an unbalanced parenthesis", `(userName eq "x"`],
    ["an unterminated string", `userName eq "x`],
    ["an unknown attribute", `noSuchAttribute eq "x"`],
    ["garbage", `)))`],
  ])("refuses a filter with %s with 400 invalidFilter (RFC 7644 §3.4.2.2)", async (_c, filter) => {
    expectScimError(await find(filter), 400, "invalidFilter");
  });
});

describe("sorting (RFC 7644 §3.4.2.3)", () => {
  it("sorts by userName ascending by default", async () => {
    const r = await find(byTag, "&sortBy=userName&count=5");
    expect(userNames(r)).toEqual(people.map((p) => p.userName).slice(0, 5));
  });

  it("sorts by name.familyName descending", async () => {
    const r = await find(byTag, "&sortBy=name.familyName&sortOrder=descending&count=3");
    expect(r.body.Resources.map((x: any) => x.name.familyName)).toEqual(["Hill", "Green", "Foster"]);
  });

  it("sorts by an enterprise attribute with ties kept in a stable order", async () => {
    const r1 = await find(byTag, `&sortBy=${encodeURIComponent(`${ENTERPRISE}:department`)}&count=5`);
    const r2 = await find(byTag, `&sortBy=${encodeURIComponent(`${ENTERPRISE}:department`)}&count=5`);
    const depts = r1.body.Resources.map((x: any) => x[ENTERPRISE].department);
    expect(depts).toEqual(["Engineering", "Engineering", "Engineering", "Legal", "Legal"]);
    expect(userNames(r1)).toEqual(userNames(r2));
  });

  it("refuses an unknown sortBy attribute with 400", async () => {
    const r = await s.req("GET", "/Users?sortBy=noSuchAttribute");
    expectScimError(r, 400);
  });

  it("refuses a sortOrder other than ascending/descending with 400", async () => {
    expectScimError(await s.req("GET", "/Users?sortBy=userName&sortOrder=sideways"), 400);
  });
});

describe("paging (RFC 7644 §3.4.2.4)", () => {
  it("pages with 1-based startIndex and count, in a stable order, covering every resource exactly once", async () => {
    const seen: string[] = [];
    for (const startIndex of [1, 4, 7]) {
      const r = await find(byTag, `&startIndex=${startIndex}&count=3`);
      expect(r.status).toBe(200);
      expect(r.body.totalResults).toBe(8);
      expect(r.body.startIndex).toBe(startIndex);
      expect(r.body.itemsPerPage).toBe(r.body.Resources.length);
      expect(r.body.Resources.length).toBe(startIndex === 7 ? 2 : 3);
      seen.push(...userNames(r));
    }
    expect([...seen].sort()).toEqual(people.map((p) => p.userName).sort());
    expect(new Set(seen).size).toBe(8);
    // the same pages again come back identical
    const again = await find(byTag, "&startIndex=4&count=3");
    expect(userNames(again)).toEqual(seen.slice(3, 6));
  });

  it("returns integers (not strings) for totalResults, startIndex and itemsPerPage (RFC 7644 §3.4.2)", async () => {
    const r = await find(byTag, "&startIndex=2&count=2");
    expect(r.text).toContain('"totalResults":8');
    expect(r.text).toContain('"startIndex":2');
    expect(r.text).toContain('"itemsPerPage":2');
  });

  it("answers count=0 with only totalResults and an empty Resources", async () => {
    const r = await find(byTag, "&count=0");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(8);
    expect(r.body.Resources ?? []).toEqual([]);
    expect(r.body.itemsPerPage ?? 0).toBe(0);
  });

  it("caps a count above maxResults at maxResults", async () => {
    const r = await find(byTag, "&count=1000");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(8);
    expect(r.body.Resources.length).toBe(MAX);
    expect(r.body.itemsPerPage).toBe(MAX);
  });

  it("returns at most maxResults when no count is given", async () => {
    const r = await find(byTag);
    expect(r.body.Resources.length).toBe(MAX);
  });

  test.each(["0", "-3"])("treats startIndex=%s (below 1) as 1", async (startIndex) => {
    const first = await find(byTag, "&count=2");
    const r = await find(byTag, `&startIndex=${startIndex}&count=2`);
    expect(r.status).toBe(200);
    expect(r.body.startIndex).toBe(1);
    expect(userNames(r)).toEqual(userNames(first));
  });

  it("treats a negative count as 0", async () => {
    const r = await find(byTag, "&count=-1");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(8);
    expect(r.body.Resources ?? []).toEqual([]);
  });

  test.each(["100000000000000000000", "9007199254740993", "1e300"])("returns an empty page for startIndex=%s far past the end (no 500)", async (startIndex) => {
    for (const extra of ["", "&sortBy=userName"]) {
      const r = await find(byTag, `&startIndex=${startIndex}&count=2${extra}`);
      expect(r.status).toBe(200);
      expect(r.body.totalResults).toBe(8);
      expect(r.body.Resources ?? []).toEqual([]);
    }
    const all = await s.req("GET", `/Users?startIndex=${startIndex}`);
    expect(all.status).toBe(200);
  });

  it("returns an empty page past the end", async () => {
    const r = await find(byTag, "&startIndex=100");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(8);
    expect(r.body.Resources ?? []).toEqual([]);
  });

  it("refuses a non-integer count with 400 invalidValue", async () => {
    expectScimError(await find(byTag, "&count=abc"), 400, "invalidValue");
  });
});

describe("POST .search (RFC 7644 §3.4.3)", () => {
  it("POST /Users/.search takes a SearchRequest with filter, sortBy, startIndex, count and attributes", async () => {
    const r = await s.req("POST", "/Users/.search", {
      schemas: [SEARCH_REQUEST],
      filter: `${ENTERPRISE}:department eq "Sales"`,
      sortBy: "name.familyName",
      sortOrder: "descending",
      startIndex: 1,
      count: 2,
      attributes: ["userName", "name.familyName"],
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toStartWith("application/scim+json");
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.totalResults).toBe(3);
    expect(r.body.Resources).toEqual([
      { schemas: expect.any(Array), id: ids.get("frank@example.com"), userName: "frank@example.com", name: { familyName: "Foster" } },
      { schemas: expect.any(Array), id: ids.get("carol@example.com"), userName: "carol@example.com", name: { familyName: "Clark" } },
    ]);
  });

  it("POST /.search at the root accepts a filter on an attribute only Users have and finds the User (false for Groups)", async () => {
    const r = await s.req("POST", "/.search", { schemas: [SEARCH_REQUEST], filter: `userName eq "bob@example.com"` });
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(1);
    expect(r.body.Resources[0].id).toBe(ids.get("bob@example.com"));
  });

  it("POST /.search at the root refuses a filter on an attribute no resource type has with 400 invalidFilter", async () => {
    expectScimError(await s.req("POST", "/.search", { schemas: [SEARCH_REQUEST], filter: `noSuchAttribute eq "x"` }), 400, "invalidFilter");
  });

  it("POST /.search at the root refuses a sortBy that no resource type knows with 400", async () => {
    expectScimError(await s.req("POST", "/.search", { schemas: [SEARCH_REQUEST], sortBy: "noSuchAttribute" }), 400);
  });

  it("POST /Users/.search refuses an invalid filter with 400 invalidFilter", async () => {
    expectScimError(await s.req("POST", "/Users/.search", { schemas: [SEARCH_REQUEST], filter: "userName eq" }), 400, "invalidFilter");
  });

  it("POST /.search at the root searches Users and Groups together", async () => {
    const shared = "Shared Display Name";
    const u = await s.req("POST", "/Users", userBody("shared-user@example.com", { displayName: shared, title: "other" }));
    const g = await s.req("POST", "/Groups", groupBody(shared));
    expect(u.status).toBe(201);
    expect(g.status).toBe(201);
    const r = await s.req("POST", "/.search", { schemas: [SEARCH_REQUEST], filter: `displayName eq "shared display name"` });
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(2);
    const found = r.body.Resources.map((x: any) => [x.meta.resourceType, x.id]).sort();
    expect(found).toEqual([["Group", g.body.id], ["User", u.body.id]].sort());
    const schemas = r.body.Resources.map((x: any) => x.schemas[0]).sort();
    expect(schemas).toEqual([GROUP, USER].sort());
  });
});

describe("paging across resource types in POST /.search (RFC 7644 §3.4.3)", () => {
  it("pages Users then Groups as one list: the page at the boundary holds the last User and the first Group", async () => {
    for (const name of ["paging-group-1", "paging-group-2", "paging-group-3"]) expect((await s.req("POST", "/Groups", groupBody(name))).status).toBe(201);
    const users = (await s.req("GET", "/Users?count=0")).body.totalResults as number;
    const groups = (await s.req("GET", "/Groups?count=0")).body.totalResults as number;
    expect(groups).toBeGreaterThanOrEqual(3);
    const search = (startIndex: number, count: number) =>
      s.req("POST", "/.search", { schemas: [SEARCH_REQUEST], startIndex, count, attributes: ["id"] });
    const boundary = await search(users, 2);
    expect(boundary.status).toBe(200);
    expect(boundary.body.totalResults).toBe(users + groups);
    expect(boundary.body.Resources.map((x: any) => x.schemas[0])).toEqual([USER, GROUP]);
    const seen: string[] = [];
    for (let start = 1; start <= users + groups; start += 2) {
      const page = await search(start, 2);
      expect(page.body.startIndex).toBe(start);
      seen.push(...page.body.Resources.map((x: any) => x.id));
    }
    expect(seen.length).toBe(users + groups);
    expect(new Set(seen).size).toBe(users + groups);
  });
});

describe("query-string encoding of filter (RFC 3986, application/x-www-form-urlencoded)", () => {
  beforeAll(async () => {
    for (const userName of ["a@b.c", "a+tag@b.c"]) {
      const r = await s.req("POST", "/Users", userBody(userName, { title: "encoding" }));
      if (r.status !== 201) throw new Error(r.text);
    }
  });

  test.each([
    ["'+' as a space and %40 for '@'", `filter=userName+eq+"a%40b.c"`, "a@b.c"],
    ["%20 as a space", `filter=userName%20eq%20%22a%40b.c%22`, "a@b.c"],
    ["%2B as a literal plus inside the value", `filter=userName+eq+"a%2Btag%40b.c"`, "a+tag@b.c"],
    ["%2B with %20 spaces", `filter=userName%20eq%20%22a%2Btag%40b.c%22`, "a+tag@b.c"],
  ])("decodes %s", async (_c, query, expected) => {
    const r = await s.req("GET", `/Users?${query}`);
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(1);
    expect(r.body.Resources[0].userName).toBe(expected);
  });
});

describe("repeated and differently-cased query parameters (RFC 7644 §3.4.2, §3.9)", () => {
  const alice = () => ids.get("alice@example.com")!;

  it("joins repeated attributes values as one comma-separated list (?attributes=userName&attributes=emails)", async () => {
    const r = await s.req("GET", `/Users/${alice()}?attributes=userName&attributes=emails`);
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(["emails", "id", "schemas", "userName"]);
    expect(r.body.emails).toHaveLength(2);
    const list = await find(`userName eq "alice@example.com"`, "&attributes=userName&attributes=name.familyName");
    expect(list.body.Resources).toEqual([{ schemas: expect.any(Array), id: alice(), userName: "alice@example.com", name: { familyName: "Anderson" } }]);
  });

  it("joins repeated excludedAttributes values the same way", async () => {
    const r = await s.req("GET", `/Users/${alice()}?excludedAttributes=emails&excludedAttributes=name&excludedAttributes=`);
    expect(r.status).toBe(200);
    expect(r.body.emails).toBeUndefined();
    expect(r.body.name).toBeUndefined();
    expect(r.body.userName).toBe("alice@example.com");
  });

  test.each([
    ["filter", `filter=${encodeURIComponent('userName eq "a"')}&filter=${encodeURIComponent("userName pr")}`],
    ["sortBy", "sortBy=userName&sortBy=title"],
    ["sortOrder", "sortOrder=ascending&sortOrder=descending"],
    ["startIndex", "startIndex=1&startIndex=3"],
    ["count", "count=1&count=2"],
    ["cursor", "cursor=&cursor=abc"],
    ["filter", `filter=${encodeURIComponent("userName pr")}&Filter=${encodeURIComponent("title pr")}`],
    ["count", "count=1&COUNT=1"],
  ])("refuses a repeated %s with 400 invalidValue naming it, instead of keeping one of the values", async (name, query) => {
    const r = await s.req("GET", `/Users?${query}`);
    expectScimError(r, 400, "invalidValue");
    expect(r.body.detail).toContain(`'${name}'`);
  });

  it("reads the parameter names in any case, as in a SearchRequest body", async () => {
    const r = await s.req("GET", `/Users?FILTER=${encodeURIComponent('userName eq "bob@example.com"')}&Attributes=userName`);
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(1);
    expect(r.body.Resources).toEqual([{ schemas: expect.any(Array), id: ids.get("bob@example.com"), userName: "bob@example.com" }]);
    const page = await find(byTag, "&SortBy=userName&sortorder=DESCENDING&STARTINDEX=2&Count=2");
    expect(userNames(page)).toEqual(["grace@example.com", "frank@example.com"]);
  });

  it("refuses a SearchRequest that names one parameter twice in different case with 400 invalidValue", async () => {
    const r = await s.req("POST", "/Users/.search", { schemas: [SEARCH_REQUEST], filter: "userName pr", Filter: "title pr" });
    expectScimError(r, 400, "invalidValue");
    expect(r.body.detail).toContain("filter");
  });
});

describe("attributes with a value filter (attributes=emails[type eq \"work\"], as Microsoft's SCIM test collection sends)", () => {
  const work = (p: string) => people.find((x) => x.userName === p)!.workEmail;
  const q = (v: string) => encodeURIComponent(v);

  it("answers GET by id with the attribute narrowed to the matching elements", async () => {
    const id = ids.get("carol@example.com")!;
    const whole = await s.req("GET", `/Users/${id}?attributes=${q('emails[type eq "work"]')}`);
    expect(whole.status).toBe(200);
    expect(whole.body.emails).toEqual([{ value: work("carol@example.com"), type: "work", primary: true }]);
    expect(whole.body.userName).toBeUndefined();
    const value = await s.req("GET", `/Users/${id}?attributes=${q('emails[type eq "work"].value')},userName`);
    expect(value.body.emails).toEqual([{ value: work("carol@example.com") }]);
    expect(value.body.userName).toBe("carol@example.com");
  });

  it("narrows every resource of a list, and of a .search whose attributes are an array", async () => {
    const list = await find(`${ENTERPRISE}:department eq "Legal"`, `&sortBy=userName&attributes=${q('emails[type eq "work"].value')}`);
    expect(list.status).toBe(200);
    expect(list.body.Resources.map((r: any) => r.emails)).toEqual([[{ value: work("dave@example.com") }], [{ value: work("grace@example.com") }]]);
    const search = await s.req("POST", "/Users/.search", {
      schemas: [SEARCH_REQUEST],
      filter: `${ENTERPRISE}:department eq "Legal"`,
      sortBy: "userName",
      attributes: ["userName", 'emails[type eq "home" or value co ","].value'],
    });
    expect(search.status).toBe(200);
    expect(search.body.Resources).toEqual([
      { schemas: expect.any(Array), id: ids.get("dave@example.com"), userName: "dave@example.com", emails: [{ value: "dave.home@home.example" }] },
      { schemas: expect.any(Array), id: ids.get("grace@example.com"), userName: "grace@example.com", emails: [{ value: "grace.home@home.example" }] },
    ]);
  });

  it("leaves the matching elements out with excludedAttributes", async () => {
    const r = await s.req("GET", `/Users/${ids.get("erin@example.com")}?excludedAttributes=${q('emails[type eq "home"]')}`);
    expect(r.status).toBe(200);
    expect(r.body.emails).toEqual([{ value: work("erin@example.com"), type: "work", primary: true }]);
    expect(r.body.userName).toBe("erin@example.com");
  });

  test.each([
    ["GET by id", () => `/Users/${ids.get("alice@example.com")}?attributes=${q('emails[type eqq "work"]')}`],
    ["a list", () => `/Users?attributes=${q('emails[type eq "work"')}`],
    ["a list's excludedAttributes", () => `/Users?excludedAttributes=${q("emails[type eq]")}`],
  ])("refuses an invalid filter inside attributes on %s with 400 invalidFilter", async (_c, path) => {
    const r = await s.req("GET", path());
    expectScimError(r, 400, "invalidFilter");
    expect(r.body.detail).toMatch(/at position \d+/);
  });
});

describe("unquoted values in filters (a named leniency; --strict refuses it)", () => {
  test.each([
    ["userName sw bo", ["bob@example.com"]],
    ["name.familyName eq Brown", ["bob@example.com"]],
    [`${byTag} and meta.created gt 2015-10-10T14:38:21.8617979-07:00 and ${ENTERPRISE}:department eq Legal`, ["dave@example.com", "grace@example.com"]],
    ["emails[type eq work].value eq heidi.work@corp.example", ["heidi@example.com"]],
  ])("reads the bare value in %s as a string", async (filter, expected) => {
    const r = await find(filter, "&sortBy=userName");
    expect(r.status).toBe(200);
    expect(userNames(r)).toEqual(expected);
  });

  it("keeps true, false, null and numbers as literals: userName eq true is a comparison with the boolean", async () => {
    const r = await find("userName eq true");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(0);
  });

  it("is refused with 400 invalidFilter by a --strict server, which asks for quotes", async () => {
    const strict = await startServer({ strict: true });
    try {
      const r = await strict.req("GET", `/Users?filter=${encodeURIComponent("userName sw O")}`);
      expectScimError(r, 400, "invalidFilter");
      expect(r.body.detail).toBe(`expected a quoted value after 'sw' at position 13, found 'O': write strings in double quotes, as in "O"`);
      expect((await strict.req("GET", `/Users?filter=${encodeURIComponent('userName sw "O"')}`)).status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});

describe("invalidFilter details over HTTP are scimd's own words with a position", () => {
  test.each([
    ['userName eq "a" "b"', "at position 17"],
    ["userName eq and", "after 'eq' at position 13, found the keyword 'and'"],
    ['userName eqq "x"', "unknown operator 'eqq' at position 10"],
    ['(userName eq "x"', "unclosed '(' at position 1"],
    ['emails[type eq "work"', "unclosed '[' at position 7"],
  ])("%s", async (filter, detail) => {
    const r = await find(filter);
    expectScimError(r, 400, "invalidFilter");
    expect(r.body.detail).toContain(detail);
    expect(r.body.detail).not.toMatch(/\((Word|Quoted|Bracket|EOT)\)|is not json|Unexpected token/);
  });
});

describe("a query on the service root (RFC 7644 §3.4.2.1): GET {base}?filter=… answers like POST /.search", () => {
  let userId = "";
  let groupId = "";
  beforeAll(async () => {
    const u = await s.req("POST", "/Users", userBody("root-query@example.com", { displayName: "Root Query Name", title: "root" }));
    const g = await s.req("POST", "/Groups", groupBody("Root Query Name"));
    if (u.status !== 201 || g.status !== 201) throw new Error(`setup failed: ${u.text} ${g.text}`);
    userId = u.body.id;
    groupId = g.body.id;
  });

  test.each(["", "/"])("GET {base}%s?filter= finds Users and Groups together", async (slash) => {
    const filter = encodeURIComponent('displayName eq "root query name"');
    const r = await s.req("GET", `${slash}?filter=${filter}&attributes=displayName`);
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.totalResults).toBe(2);
    expect(r.body.Resources.map((x: any) => [x.schemas[0], x.id, x.displayName]).sort()).toEqual([[GROUP, groupId, "Root Query Name"], [USER, userId, "Root Query Name"]].sort());
    const post = await s.req("POST", "/.search", { schemas: [SEARCH_REQUEST], filter: 'displayName eq "root query name"', attributes: ["displayName"] });
    expect(r.body).toEqual(post.body);
  });

  it("GET {base} without a query lists every resource of both types, paged", async () => {
    const users = (await s.req("GET", "/Users?count=0")).body.totalResults as number;
    const groups = (await s.req("GET", "/Groups?count=0")).body.totalResults as number;
    const r = await s.req("GET", "");
    expect(r.status).toBe(200);
    expect(r.body.totalResults).toBe(users + groups);
    expect(r.body.Resources).toHaveLength(MAX);
  });

  it("refuses an invalid root filter with 400 invalidFilter, and other methods on the root with 405", async () => {
    expectScimError(await s.req("GET", `?filter=${encodeURIComponent("noSuchAttribute eq 1")}`), 400, "invalidFilter");
    const post = await s.req("POST", "", {});
    expectScimError(post, 405);
    expect(post.body.detail).toContain("GET");
  });
});
