/**
 * Filter parsing and resolution (RFC 7644 §3.4.2.2) against the schema (src/scim/filter.ts): the
 * resolved tree is rendered to a compact string so that each case is one line of a table.
 */
import { describe, expect, it, test } from "bun:test";
import fc from "fast-check";
import { ScimError } from "../../src/scim/errors";
import { resolveFilter, type ResolvedFilter, type Target } from "../../src/scim/filter";
import { MAX_FILTER_LENGTH, parseFilterText } from "../../src/scim/filter-parser";
import { MAX_FILTER_DEPTH } from "../../src/scim/filter-syntax";
import { ALL_QUIRKS, NO_QUIRKS } from "../../src/scim/quirks";
import { ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE, type ResourceTypeDef } from "../../src/scim/schema";

const ENT = ENTERPRISE_USER_SCHEMA;
const CORE = "urn:ietf:params:scim:schemas:core:2.0:User";

function target(t: Target): string {
  if (t.element) return "." + t.attr.name;
  const ext = t.extension === ENT ? "ent:" : t.extension ? `${t.extension}:` : "";
  return ext + t.attr.name + (t.sub ? "." + t.sub.name : "");
}

/** A compact, exact rendering of a resolved filter: `and(eq(userName,"x"),pr(title))`. */
function shape(f: ResolvedFilter): string {
  switch (f.kind) {
    case "and":
    case "or":
      return `${f.kind}(${f.filters.map(shape).join(",")})`;
    case "not":
      return `not(${shape(f.filter)})`;
    case "compare":
      return `${f.op}(${target(f.target)},${JSON.stringify(f.value)})`;
    case "present":
      return `pr(${target(f.target)})`;
    case "any":
      return `any(${f.extension === ENT ? "ent:" : ""}${f.attr.name}:${shape(f.filter)})`;
  }
}

const resolveUser = (text: string) => shape(resolveFilter(USER_RESOURCE, text));
/** The quirks of a server, and none (--strict). */
const lenient = { quirks: ALL_QUIRKS };
const strict = { quirks: NO_QUIRKS };

/** Refused as a --strict server refuses it (the filter quirks refused here are tested in quirks.test.ts). */
function expectInvalidFilter(rt: ResourceTypeDef, text: string): ScimError {
  let thrown: unknown;
  try {
    resolveFilter(rt, text, strict);
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(ScimError);
  const e = thrown as ScimError;
  expect(e.status).toBe(400);
  expect(e.scimType).toBe("invalidFilter");
  expect(e.detail.length).toBeGreaterThan(0);
  return e;
}

describe("comparison operators (RFC 7644 §3.4.2.2, Table 3)", () => {
  test.each([
    ['userName eq "bjensen"', 'eq(userName,"bjensen")'],
    ['title ne "Boss"', 'ne(title,"boss")'],
    ['title co "Eng"', 'co(title,"eng")'],
    ['title sw "Sen"', 'sw(title,"sen")'],
    ['title ew "ER"', 'ew(title,"er")'],
    ['title gt "M"', 'gt(title,"m")'],
    ['title ge "M"', 'ge(title,"m")'],
    ['title lt "M"', 'lt(title,"m")'],
    ['title le "M"', 'le(title,"m")'],
    ["title pr", "pr(title)"],
    ['meta.lastModified gt "2011-05-13T04:42:34Z"', 'gt(meta.lastModified,"2011-05-13T04:42:34.000Z")'],
    ['meta.created le "2011-05-13T04:42:34Z"', 'le(meta.created,"2011-05-13T04:42:34.000Z")'],
    ["title eq null", "eq(title,null)"],
    ["title ne null", "ne(title,null)"],
    ["title eq 42", 'eq(title,"42")'],
  ])("resolves %s to %s", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });
});

describe("logical operators, grouping and precedence (RFC 7644 §3.4.2.2: and binds tighter than or)", () => {
  test.each([
    ['userName eq "a" and title pr', 'and(eq(userName,"a"),pr(title))'],
    ['userName eq "a" or title pr', 'or(eq(userName,"a"),pr(title))'],
    ['not (title eq "x")', 'not(eq(title,"x"))'],
    ['title pr and userName eq "a" or displayName eq "b"', 'or(and(pr(title),eq(userName,"a")),eq(displayName,"b"))'],
    ['title pr or userName eq "a" and displayName eq "b"', 'or(pr(title),and(eq(userName,"a"),eq(displayName,"b")))'],
    ['(title pr or userName eq "a") and displayName eq "b"', 'and(or(pr(title),eq(userName,"a")),eq(displayName,"b"))'],
    ['title pr and (userName eq "a" or displayName eq "b")', 'and(pr(title),or(eq(userName,"a"),eq(displayName,"b")))'],
    ['not (title pr) and userName eq "a"', 'and(not(pr(title)),eq(userName,"a"))'],
    ['not (title pr or userName eq "a")', 'not(or(pr(title),eq(userName,"a")))'],
    ['((userName eq "a"))', 'eq(userName,"a")'],
    ['title pr and userName pr and displayName pr', "and(pr(title),pr(userName),pr(displayName))"],
  ])("resolves %s to %s", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });

  test.each([
    ['userName EQ "a"', 'eq(userName,"a")'],
    ['userName Eq "a" And title Pr', 'and(eq(userName,"a"),pr(title))'],
    ['title PR OR userName SW "x"', 'or(pr(title),sw(userName,"x"))'],
    ['NOT (title pr)', "not(pr(title))"],
    ['title GE "a" aNd title LE "z"', 'and(ge(title,"a"),le(title,"z"))'],
  ])("accepts operator keywords in any case: %s (RFC 7644 §3.4.2.2)", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });
});

describe("attribute paths (RFC 7644 §3.10, RFC 7643 §2.1)", () => {
  test.each([
    ['name.familyName eq "Jensen"', 'eq(name.familyName,"jensen")'],
    ['name[givenName eq "Barbara"]', 'eq(name.givenName,"barbara")'],
    ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales"', 'eq(ent:department,"sales")'],
    ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "M1"', 'eq(ent:manager.value,"m1")'],
    ['urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen"', 'eq(userName,"bjensen")'],
    ['urn:ietf:params:scim:schemas:core:2.0:User:name.familyName pr', "pr(name.familyName)"],
    ['URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department eq "x"', 'eq(ent:department,"x")'],
    ['department eq "Sales"', 'eq(ent:department,"sales")'],
    ['manager.value eq "M1"', 'eq(ent:manager.value,"m1")'],
  ])("resolves %s to %s", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });

  test.each([
    ['USERNAME eq "a"', 'eq(userName,"a")'],
    ['username eq "a"', 'eq(userName,"a")'],
    ['Name.FAMILYNAME eq "a"', 'eq(name.familyName,"a")'],
    ['EMAILS[TYPE eq "work"]', 'any(emails:eq(.type,"work"))'],
    ['Emails.Value eq "a@x"', 'any(emails:eq(.value,"a@x"))'],
    ['META.LASTMODIFIED gt "2020-01-01T00:00:00Z"', 'gt(meta.lastModified,"2020-01-01T00:00:00.000Z")'],
    ['ACTIVE eq true', "eq(active,true)"],
  ])("matches attribute names case-insensitively: %s (RFC 7643 §2.1)", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });
});

describe("multi-valued attributes and value paths (RFC 7644 §3.4.2.2, valuePath)", () => {
  test.each([
    ['emails[type eq "work" and value co "@example.com"]', 'any(emails:and(eq(.type,"work"),co(.value,"@example.com")))'],
    ['emails[type eq "work" or primary eq true]', 'any(emails:or(eq(.type,"work"),eq(.primary,true)))'],
    ['emails[not (type eq "work")]', 'any(emails:not(eq(.type,"work")))'],
    ['emails[value pr]', "any(emails:pr(.value))"],
    ['emails[emails.type eq "work"]', 'any(emails:eq(.type,"work"))'],
    ['emails.value eq "a@x"', 'any(emails:eq(.value,"a@x"))'],
    ['emails eq "a@x"', 'any(emails:eq(.value,"a@x"))'],
    ["emails.type pr", "any(emails:pr(.type))"],
    ["emails pr", "pr(emails)"],
    ['groups.value eq "g1"', 'any(groups:eq(.value,"g1"))'],
    ['emails[type eq "work"] and userName eq "a"', 'and(any(emails:eq(.type,"work")),eq(userName,"a"))'],
  ])("resolves %s to %s", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });

  test.each([
    ['emails[type eq "work"].value eq "x@y"', 'any(emails:and(eq(.type,"work"),eq(.value,"x@y")))'],
    ['emails[type eq "work"].value pr', 'any(emails:and(eq(.type,"work"),pr(.value)))'],
    ['emails[type eq "work" or type eq "home"].value co "@x"', 'any(emails:and(or(eq(.type,"work"),eq(.type,"home")),co(.value,"@x")))'],
    ['emails[type eq "work"].value eq "x@y" and title pr', 'and(any(emails:and(eq(.type,"work"),eq(.value,"x@y"))),pr(title))'],
  ])("rewrites %s into one same-element condition (one `any` node holding both)", (text, expected) => {
    const f = resolveFilter(USER_RESOURCE, text);
    expect(shape(f)).toBe(expected);
  });

  it("gives the rewritten sub-attribute form the same tree as the bracketed form", () => {
    expect(resolveUser('emails[type eq "work"].value eq "b@y"')).toBe(resolveUser('emails[(type eq "work") and value eq "b@y"]'));
    expect(resolveFilter(USER_RESOURCE, 'emails[type eq "work"].value eq "b@y"').kind).toBe("any");
  });

  test.each([
    ['members.value eq "abc"', 'any(members:eq(.value,"abc"))'],
    ['members[value eq "abc" and type eq "User"]', 'any(members:and(eq(.value,"abc"),eq(.type,"user")))'],
    ['displayName eq "Admins"', 'eq(displayName,"admins")'],
  ])("resolves %s on Groups to %s", (text, expected) => {
    expect(shape(resolveFilter(GROUP_RESOURCE, text))).toBe(expected);
  });
});

describe("the enterprise manager (Entra ID sends `manager eq \"id\"`)", () => {
  test.each([
    ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "M1"', 'eq(ent:manager.value,"m1")'],
    ['manager eq "M1"', 'eq(ent:manager.value,"m1")'],
    ['manager pr', "pr(ent:manager)"],
  ])("resolves %s to %s: a singular complex attribute with a value compares that value", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });
});

describe("literal normalisation", () => {
  test.each([
    ['active eq "True"', "eq(active,true)"],
    ['active eq "FALSE"', "eq(active,false)"],
    ['active ne "true"', "ne(active,true)"],
    ["active eq true", "eq(active,true)"],
    ['emails[primary eq "True"]', "any(emails:eq(.primary,true))"],
  ])("coerces a boolean written as a string for a boolean attribute: %s", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });

  test.each([
    ['meta.created gt "2011-05-13T06:42:34+02:00"', 'gt(meta.created,"2011-05-13T04:42:34.000Z")'],
    ['meta.created gt "2011-05-13T04:42:34.5Z"', 'gt(meta.created,"2011-05-13T04:42:34.500Z")'],
    ['meta.created gt "2011-05-13t04:42z"', 'gt(meta.created,"2011-05-13T04:42:00.000Z")'],
    ['meta.lastModified eq "2011-05-12T23:00:00-05:00"', 'eq(meta.lastModified,"2011-05-13T04:00:00.000Z")'],
  ])("canonicalises a dateTime literal to UTC: %s (RFC 7643 §2.3.5)", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });

  test.each([
    ['externalId eq "AbC"', 'eq(externalId,"AbC")'],
    ['id eq "AbC"', 'eq(id,"AbC")'],
    ['userName eq "AbC"', 'eq(userName,"abc")'],
    ['meta.resourceType eq "User"', 'eq(meta.resourceType,"User")'],
  ])("folds case only for attributes that are not caseExact: %s (RFC 7643 §2.2)", (text, expected) => {
    expect(resolveUser(text)).toBe(expected);
  });

  it("folds beyond ASCII and normalises to NFC (Å written decomposed equals Å precomposed)", () => {
    expect(resolveUser('userName eq "ÅSA"')).toBe('eq(userName,"åsa")');
    expect(resolveUser('userName eq "A\u030ASA"')).toBe('eq(userName,"åsa")');
  });

  test.each([
    [String.raw`userName eq "say \"hi\""`, 'say "hi"'],
    [String.raw`userName eq "C:\\temp"`, "C:\\temp"],
    [String.raw`userName eq "ends\\"`, "ends\\"],
    [String.raw`userName eq "line\nbreak"`, "line\nbreak"],
    [String.raw`userName eq "tab\there"`, "tab\there"],
    [String.raw`userName eq "\u00c5sa"`, "Åsa"],
    [String.raw`userName eq "a\/b"`, "a/b"],
  ])("decodes JSON escapes in a string literal (RFC 7644 §3.4.2.2: compValue is a JSON string, RFC 7159 §7): %s", (text, decoded) => {
    const f = resolveFilter(USER_RESOURCE, text);
    expect(f).toMatchObject({ kind: "compare", value: decoded.normalize("NFC").toLowerCase(), raw: decoded });
  });
});

describe("refused filters answer 400 invalidFilter (RFC 7644 §3.4.2.2, §3.12)", () => {
  test.each([
    'nosuch eq "x"',
    'name.nosuch eq "x"',
    'emails[nosuch eq "x"]',
    'emails.nosuch eq "x"',
    'userName.sub eq "x"',
    'name.givenName.more eq "x"',
    'urn:example:unknown:1.0:User:department eq "x"',
    'urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"',
    'members.value eq "x"',
  ])("refuses an unknown attribute: %s", (text) => {
    expectInvalidFilter(USER_RESOURCE, text);
  });

  it("refuses an unterminated string full of line breaks at once: the scanner never backtracks exponentially", () => {
    // An ambiguous string pattern (a raw line break matched by two alternatives) doubles its work
    // with each line break: about 0.45 s of blocked event loop per request before JavaScriptCore's
    // backtracking limit gives up. Eight such filters must take a few milliseconds, not seconds.
    const texts = [26, 30, 100, 4000].flatMap((n) => ['userName eq "' + "\n".repeat(n), 'title eq "x" or userName eq "a' + "\n ".repeat(n / 2)]);
    const started = performance.now();
    for (const text of texts) expect(expectInvalidFilter(USER_RESOURCE, text).detail).toContain("unterminated string at position");
    expect(performance.now() - started).toBeLessThan(250);
  });

  it("refuses an attribute that only Users have in a Group filter", () => {
    expectInvalidFilter(GROUP_RESOURCE, 'userName eq "x"');
    expectInvalidFilter(GROUP_RESOURCE, 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"');
  });

  test.each(["gt", "ge", "lt", "le", "co", "sw", "ew"])("refuses '%s' on a boolean attribute", (op) => {
    expectInvalidFilter(USER_RESOURCE, `active ${op} true`);
    expectInvalidFilter(USER_RESOURCE, `emails[primary ${op} true]`);
  });

  test.each(['active eq "yes"', "active eq 1", 'emails[primary eq "1"]'])("refuses a non-boolean literal for a boolean attribute: %s", (text) => {
    expectInvalidFilter(USER_RESOURCE, text);
  });

  test.each(["co", "sw", "ew"])("refuses '%s' on a dateTime attribute", (op) => {
    expectInvalidFilter(USER_RESOURCE, `meta.created ${op} "2020-01-01T00:00:00Z"`);
  });

  test.each(['meta.created gt "yesterday"', "meta.created gt 5", 'meta.lastModified eq "2020-13-45T99:00:00Z"', 'meta.created eq "2020-01-01"'])(
    "refuses a literal that is not an xsd:dateTime for a dateTime attribute: %s",
    (text) => {
      expectInvalidFilter(USER_RESOURCE, text);
    },
  );

  test.each([
    'name eq "x"',
    'name co "x"',
    'meta eq "x"',
  ])("refuses a comparison with a complex attribute that names no sub-attribute: %s", (text) => {
    expect(expectInvalidFilter(USER_RESOURCE, text).detail).toContain("complex");
  });

  test.each(['password eq "secret"', "password pr", 'password sw "s"', 'PASSWORD ne "x"'])("refuses a filter on the write-only password: %s (RFC 7643 §4.1.1)", (text) => {
    expectInvalidFilter(USER_RESOURCE, text);
  });

  test.each([
    'userName[value eq "x"]',
    'name.givenName[value eq "x"]',
    'emails[value[type eq "x"]]',
  ])("refuses a value path on an attribute that cannot hold one, or nested value paths: %s", (text) => {
    expectInvalidFilter(USER_RESOURCE, text);
  });

  test.each(["gt", "ge", "lt", "le", "co", "sw", "ew"])("refuses '%s' with null", (op) => {
    expectInvalidFilter(USER_RESOURCE, `title ${op} null`);
  });

  test.each([
    "userName eq",
    'userName xx "a"',
    'userName "a"',
    '(userName eq "a"',
    'userName eq "a")',
    '((userName eq "a")',
    'emails[type eq "work"',
    'emails type eq "work"]',
    'emails[type eq "work"]]',
    'emails[type eq "work")',
    'userName eq "a" and',
    'and userName eq "a"',
    'userName eq "a" or or title pr',
    'userName eq "a" userName eq "b"',
    "userName eq 'a'",
    "userName eq bare",
    'userName eq "unterminated',
    'userName pr "x"',
    'emails[type eq "work"].value',
    'emails[type eq "work"].',
    'emails[type eq "work"].value eq',
    '"userName" eq "a"',
    "not",
    "()",
    "[]",
    "]",
    "].",
    "",
    "   ",
    'userName eq "a" ; drop table users',
  ])("refuses a syntax error: %j", (text) => {
    expectInvalidFilter(USER_RESOURCE, text);
  });

  it(`refuses a filter longer than MAX_FILTER_LENGTH (${MAX_FILTER_LENGTH}) characters and accepts one of exactly that length`, () => {
    const prefix = 'userName eq "';
    const exact = prefix + "a".repeat(MAX_FILTER_LENGTH - prefix.length - 1) + '"';
    expect(exact.length).toBe(MAX_FILTER_LENGTH);
    expect(resolveFilter(USER_RESOURCE, exact).kind).toBe("compare");
    const long = prefix + "a".repeat(MAX_FILTER_LENGTH - prefix.length) + '"';
    expect(expectInvalidFilter(USER_RESOURCE, long).detail).toContain(String(MAX_FILTER_LENGTH));
  });

  it(`refuses parentheses nested deeper than MAX_FILTER_DEPTH (${MAX_FILTER_DEPTH}) and accepts exactly that depth`, () => {
    const nest = (n: number) => "(".repeat(n) + "title pr" + ")".repeat(n);
    expect(resolveUser(nest(MAX_FILTER_DEPTH))).toBe("pr(title)");
    expectInvalidFilter(USER_RESOURCE, nest(MAX_FILTER_DEPTH + 1));
  });

  it("counts each 'not' as a nesting level", () => {
    const nots = (n: number) => "not (".repeat(n) + "title pr" + ")".repeat(n);
    expect(resolveFilter(USER_RESOURCE, nots(MAX_FILTER_DEPTH / 2)).kind).toBe("not");
    expectInvalidFilter(USER_RESOURCE, nots(MAX_FILTER_DEPTH / 2 + 1));
  });

  it("refuses a very deeply nested filter with 400 rather than overflowing the stack", () => {
    expectInvalidFilter(USER_RESOURCE, "(".repeat(2000) + "title pr" + ")".repeat(2000));
    expectInvalidFilter(USER_RESOURCE, "not ".repeat(1000) + "title pr");
  });

  it("does not count brackets inside a quoted literal as nesting", () => {
    const brackets = "(([[".repeat(MAX_FILTER_DEPTH);
    expect(resolveUser(`title eq "${brackets}"`)).toBe(`eq(title,"${brackets}")`);
  });

  it("does not count the word 'not' inside a quoted literal as nesting", () => {
    const words = "not ".repeat(MAX_FILTER_DEPTH + 8).trim();
    expect(resolveUser(`title eq "${words}"`)).toBe(`eq(title,"${words}")`);
  });
});

describe("parseFilterText", () => {
  it("returns scim2-parse-filter's AST for a valid filter", () => {
    expect(parseFilterText('userName eq "a" and title pr')).toEqual({
      op: "and",
      filters: [
        { op: "eq", attrPath: "userName", compValue: "a" },
        { op: "pr", attrPath: "title" },
      ],
    });
  });

  it("resolves names against the core schema whether or not the core URN prefixes them", () => {
    expect(resolveUser(`${CORE}:emails[type eq "work"]`)).toBe(resolveUser('emails[type eq "work"]'));
  });
});

describe("the fast path for one-comparison filters gives the general parser's tree", () => {
  const parseFast = (text: string) => parseFilterText(text, strict);
  test.each([
    'userName eq "ada@example.com"',
    'userName Eq "ADA@Example.com"',
    '  externalId eq "00u1ab2C3d"  ',
    'id eq "2819c223-7f76-453a-919d-413861904646"',
    'name.familyName sw "Love"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1"',
    'active eq true',
    'active EQ false',
    'title eq null',
    'displayName co "a \\"quoted\\" word"',
    'userName eq "tab\\there"',
    'userName eq "unicode \\u00c5sa"',
    'meta.lastModified gt "2024-01-01T00:00:00Z"',
  ])("%s", (text) => {
    // Parentheses add no node but take the general parser's path.
    expect(parseFast(text)).toEqual(parseFast(`(${text})`));
  });

  it("leaves upper-case literals to the general parser, which refuses them", () => {
    expect(() => parseFast("active eq FALSE")).toThrow();
  });

  test.each(['manager.$ref eq "x"', 'members.$ref eq "x"', 'user$Name eq "x"', 'not eq "x"'])("answers %s exactly as the general parser does (refused)", (text) => {
    expect(() => parseFast(text)).toThrow();
    expect(() => parseFast(`(${text})`)).toThrow();
  });
});

describe("unquoted comparison values: a named leniency, refused under --strict (RFC 7644 §3.4.2.2 values are JSON)", () => {
  const resolveLenient = (text: string) => shape(resolveFilter(USER_RESOURCE, text, lenient));

  test.each([
    ["userName sw O", 'sw(userName,"o")'],
    ["name.familyName eq Employee", 'eq(name.familyName,"employee")'],
    ["meta.created gt 2015-10-10T14:38:21.8617979-07:00", 'gt(meta.created,"2015-10-10T21:38:21.861Z")'],
    ["userName eq bjensen@example.com", 'eq(userName,"bjensen@example.com")'],
    ["userName eq O'Brien", `eq(userName,"o'brien")`],
    ["externalId eq 00123", 'eq(externalId,"00123")'],
    ["active eq True", "eq(active,true)"],
    ["emails[type eq work].value eq a@b.example", 'any(emails:and(eq(.type,"work"),eq(.value,"a@b.example")))'],
    ["(userName sw O) and not (title eq Boss)", 'and(sw(userName,"o"),not(eq(title,"boss")))'],
    ["userName eq Müller", 'eq(userName,"müller")'],
  ])("reads the bare value in %s as a string (a dateTime where the attribute is one)", (text, expected) => {
    expect(resolveLenient(text)).toBe(expected);
  });

  test.each([
    ["userName sw O", 'userName sw "O"'],
    ["name.familyName eq Employee", 'name.familyName eq "Employee"'],
    ["externalId eq 00u1ab2C3d", 'externalId eq "00u1ab2C3d"'],
  ])("gives %s the tree of the quoted filter %s, which takes the fast path", (bare, quoted) => {
    expect(parseFilterText(bare, lenient)).toEqual(parseFilterText(quoted, strict));
  });

  test.each([
    ["userName eq true", true],
    ["userName eq false", false],
    ["title eq null", null],
    ["title eq 42", 42],
    ["title eq -1.5e3", -1500],
  ])("keeps JSON's literals as literals: %s", (text, value) => {
    expect(parseFilterText(text, lenient)).toEqual({ op: "eq", attrPath: text.split(" ")[0]!, compValue: value } as never);
    expect(parseFilterText(`(${text})`, lenient)).toEqual(parseFilterText(text, strict));
  });

  test.each(["userName eq and", "userName eq OR", "userName eq not", "userName eq pr", "userName eq Eq", "title pr and userName eq and title pr"])(
    "refuses a keyword where the value belongs, even leniently: %s",
    (text) => {
      let e: ScimError | undefined;
      try {
        resolveFilter(USER_RESOURCE, text, lenient);
      } catch (x) {
        e = x as ScimError;
      }
      expect(e?.scimType).toBe("invalidFilter");
      expect(e?.detail).toMatch(/keyword '\w+'/);
    },
  );

  test.each(["userName sw O", "name.familyName eq Employee", "meta.created gt 2015-10-10T14:38:21.8617979-07:00", "emails[type eq work]", "active eq True"])(
    "refuses %s without the leniency (--strict) with 400 invalidFilter asking for quotes",
    (text) => {
      expect(expectInvalidFilter(USER_RESOURCE, text).detail).toMatch(/expected a quoted value after '\w+' at position \d+/);
    },
  );

  it("refuses a value in single quotes in either mode, saying that strings take double quotes", () => {
    expect(expectInvalidFilter(USER_RESOURCE, "userName eq 'bob'").detail).toContain("double quotes");
    expect(() => resolveFilter(USER_RESOURCE, "userName eq 'bob'", lenient)).toThrow(/double quotes/);
  });
});

describe("invalidFilter details are scimd's own words and say where the problem is", () => {
  /** Text only scim2-parse-filter (or a JavaScript runtime) would write. */
  const LIBRARY_TEXT = /\((Word|Quoted|Bracket|Number|EOT)\)|is not json|Unexpected token|unexpected token|valFilter|un supported|\bat \S+ \(|Error:|undefined|\[object /;

  test.each([
    ["userName eq", "expected a value after 'eq' at position 12 (the end of the filter)"],
    ['userName eqq "x"', "unknown operator 'eqq' at position 10"],
    ['(userName eq "x"', "unclosed '(' at position 1"],
    ['emails[type eq "work"', "unclosed '[' at position 7"],
    ['userName eq "x', "unterminated string at position 13"],
    ["userName eq bob", "expected a quoted value after 'eq' at position 13"],
    ['emails[type eq "work")', "')' at position 22 does not close the '[' at position 7"],
    ['userName eq "a")', "')' at position 16 has no matching '('"],
    ['userName = "x"', "after 'userName' at position 10, found '='"],
    ['emails[value[type eq "x"]]', "value filters cannot be nested: the '[' at position 13 is inside the '[' at position 7"],
    ['title eq "ü" and ñ eq "x"', "at position 18, found 'ñ'"],
  ])("%s: %s", (text, detail) => {
    expect(expectInvalidFilter(USER_RESOURCE, text).detail).toContain(detail);
  });

  test.each([
    "userName eq",
    'userName zz "x"',
    'userName "x"',
    '(userName eq "x"',
    '((userName eq "x")',
    'userName eq "x")',
    'userName eq "x',
    "userName eq bare",
    "userName sw O",
    "userName eq 'a'",
    'userName eq "bad \\x escape"',
    'userName eq "raw\ncontrol"',
    'userName eq "a" "b"',
    'userName eq "a" userName eq "b"',
    'userName eq "a" and',
    'userName eq "a" or or title pr',
    "and userName pr",
    "title pr not title pr",
    "not",
    "not not",
    "()",
    "[]",
    "]",
    "].",
    ")))",
    '"userName" eq "x"',
    'emails[type eq "work"',
    'emails type eq "work"]',
    'emails[type eq "work"]]',
    'emails[type eq "work")',
    'emails[type eq "work"].',
    'emails[type eq "work"].value',
    'emails[type eq "work"].value eq',
    'emails[type eq "work"].value[type eq "x"]',
    'emails[value[type eq "x"]]',
    'emails[type eq "work"] [',
    'userName pr "x"',
    "userName pr pr",
    "userName eq and",
    "user$Name eq 1",
    "manager.$ref eq 1",
    'userName eq "a" ; drop table users',
    'userName eq "a" && title pr',
    'userName == "x"',
    "userName eq {}",
    "-1 eq 1",
    "(".repeat(MAX_FILTER_DEPTH + 1) + "title pr" + ")".repeat(MAX_FILTER_DEPTH + 1),
    "not (".repeat(MAX_FILTER_DEPTH) + "title pr" + ")".repeat(MAX_FILTER_DEPTH),
  ])("refuses %j in scimd's words with a position, in strict and lenient reading alike", (text) => {
    for (const opts of [strict, lenient]) {
      let thrown: unknown;
      try {
        resolveFilter(USER_RESOURCE, text, opts);
      } catch (e) {
        thrown = e;
      }
      if (thrown === undefined) continue; // "userName sw O", "userName eq bare" and "userName eq {}" are fine leniently
      expect(thrown).toBeInstanceOf(ScimError);
      const e = thrown as ScimError;
      expect(e.scimType).toBe("invalidFilter");
      expect(e.detail).not.toMatch(LIBRARY_TEXT);
      expect(e.detail).toMatch(/at position \d+/);
    }
  });

  it("answers arbitrary text with a result or a positioned invalidFilter in scimd's words, never anything else", () => {
    const pieces = ["userName", "emails", "type", "value", "eq", "pr", "and", "or", "not", "(", ")", "[", "]", "].", '"x"', '"', "\\", "true", "42", "O", " ", " ", "'", "=", "ñ", "\n"];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 12 }), fc.boolean(), (parts, withQuirks) => {
        const text = parts.join("");
        try {
          resolveFilter(USER_RESOURCE, text, withQuirks ? lenient : strict);
        } catch (e) {
          expect(e).toBeInstanceOf(ScimError);
          const detail = (e as ScimError).detail;
          expect((e as ScimError).scimType).toBe("invalidFilter");
          expect(detail).not.toMatch(LIBRARY_TEXT);
          // Resolution errors name the attribute or the rule; syntax errors name a position.
          if (!/attribute|sub-attribute|compare|cannot be used|not defined|is (boolean|numeric|a dateTime|complex)|filter is empty/.test(detail)) expect(detail).toMatch(/at position \d+/);
        }
      }),
      { seed: 9, numRuns: 3000 },
    );
  });
});
