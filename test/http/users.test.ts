/** The /Users endpoint over real HTTP (RFC 7644 §3.3, §3.4.1, §3.5, §3.6) and the product's rules for Users. */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import { ENTERPRISE, ERROR, GROUP, LIST, patchBody, startServer, USER, userBody, type TestServer, expectScimError } from "../helpers";

let s: TestServer;
let seq = 0;
/** A fresh, unique userName for each test. */
const uname = (tag = "u") => `${tag}-${++seq}@example.com`;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

async function createUser(userName = uname(), extra: Record<string, unknown> = {}) {
  const r = await s.req("POST", "/Users", userBody(userName, extra));
  expect(r.status).toBe(201);
  return r.body;
}


describe("POST /Users (RFC 7644 §3.3)", () => {
  it("answers 201 with the full resource, Location equal to meta.location and ETag equal to meta.version (RFC 7644 §3.3, §3.14)", async () => {
    const userName = uname("create");
    const r = await s.req("POST", "/Users", userBody(userName, { name: { givenName: "Ada", familyName: "Lovelace" }, title: "Countess" }));
    expect(r.status).toBe(201);
    expect(r.headers.get("content-type")).toStartWith("application/scim+json");
    const b = r.body;
    expect(b.schemas).toContain(USER);
    expect(typeof b.id).toBe("string");
    expect(b.id.length).toBeGreaterThan(0);
    expect(b.userName).toBe(userName);
    expect(b.displayName).toBe(userName.split("@")[0]);
    expect(b.emails).toEqual([{ value: userName, type: "work", primary: true }]);
    expect(b.name).toEqual({ givenName: "Ada", familyName: "Lovelace" });
    expect(b.title).toBe("Countess");
    expect(b.active).toBe(true);
    expect(b.meta.resourceType).toBe("User");
    expect(b.meta.location).toBe(`${s.base}/Users/${b.id}`);
    expect(r.headers.get("location")).toBe(b.meta.location);
    expect(r.headers.get("etag")).toBe(b.meta.version);
    expect(b.meta.created).toBe(b.meta.lastModified);
    expect(Number.isNaN(Date.parse(b.meta.created))).toBe(false);
  });

  it("ignores a client-supplied id and meta on create (RFC 7643 §3.1: id is readOnly, assigned by the service provider)", async () => {
    const r = await s.req("POST", "/Users", userBody(uname(), { id: "client-chosen", meta: { version: 'W/"99"', resourceType: "Group" } }));
    expect(r.status).toBe(201);
    expect(r.body.id).not.toBe("client-chosen");
    expect(r.body.meta.resourceType).toBe("User");
    expect(r.body.meta.version).not.toBe('W/"99"');
  });

  it("returns the created User from GET by id, identical to the POST response", async () => {
    const created = await createUser();
    const r = await s.req("GET", `/Users/${created.id}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual(created);
    expect(r.headers.get("etag")).toBe(created.meta.version);
  });

  it("answers 404 for a GET of an id that does not exist (RFC 7644 §3.12)", async () => {
    expectScimError(await s.req("GET", `/Users/${crypto.randomUUID()}`), 404);
  });
});

describe("password (RFC 7643 §4.1.1: writeOnly, returned never)", () => {
  it("accepts a password on create and never returns it from POST, GET, list, PUT or PATCH", async () => {
    const userName = uname("pw");
    const c = await s.req("POST", "/Users", userBody(userName, { password: "s3cret-Passw0rd!" }));
    expect(c.status).toBe(201);
    const id = c.body.id;
    const responses = [
      c,
      await s.req("GET", `/Users/${id}`),
      await s.req("GET", `/Users/${id}?attributes=password`),
      await s.req("GET", `/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`),
      await s.req("PATCH", `/Users/${id}`, patchBody({ op: "replace", path: "title", value: "Eng" })),
      await s.req("PATCH", `/Users/${id}`, patchBody({ op: "replace", path: "password", value: "an0ther-Passw0rd" })),
      await s.req("PUT", `/Users/${id}`, userBody(userName, { password: "third-Passw0rd" })),
    ];
    for (const r of responses) {
      expect(r.status).toBeLessThan(300);
      expect(r.text).not.toContain("s3cret");
      expect(r.text).not.toContain("an0ther");
      expect(r.text).not.toContain("third-Passw0rd");
      expect(r.text.toLowerCase()).not.toContain('"password"');
    }
    // the list really found the user (so the check above is not vacuous)
    expect(responses[3]!.body.totalResults).toBe(1);
  });
});

describe("PUT /Users/{id} (RFC 7644 §3.5.1)", () => {
  it("replaces the resource: omitted attributes are removed, readOnly ones in the body are ignored, id is immutable", async () => {
    const created = await createUser(uname("put"), { title: "Engineer", nickName: "Nick", name: { givenName: "A", familyName: "B" } });
    const newName = uname("put-renamed");
    const r = await s.req(
      "PUT",
      `/Users/${created.id}`,
      userBody(newName, {
        id: "another-id",
        meta: { created: "2000-01-01T00:00:00Z", version: 'W/"42"' },
        groups: [{ value: "some-group" }],
        displayName: "Renamed",
      }),
    );
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(created.id);
    expect(r.body.userName).toBe(newName);
    expect(r.body.displayName).toBe("Renamed");
    expect(r.body.title).toBeUndefined();
    expect(r.body.nickName).toBeUndefined();
    expect(r.body.name).toBeUndefined();
    expect(r.body.groups).toBeUndefined();
    expect(r.body.meta.created).toBe(created.meta.created);
    expect(r.body.meta.version).not.toBe('W/"42"');
    expect(r.body.meta.version).not.toBe(created.meta.version);
    expect(r.headers.get("etag")).toBe(r.body.meta.version);
    const g = await s.req("GET", `/Users/${created.id}`);
    expect(g.body).toEqual(r.body);
    expect((await s.req("GET", "/Users/another-id")).status).toBe(404);
  });

  it("keeps active as stored when a PUT leaves it out (product rule: active defaults to true only at creation)", async () => {
    const created = await createUser(uname("active"), { active: false });
    expect(created.active).toBe(false);
    const r = await s.req("PUT", `/Users/${created.id}`, userBody(created.userName));
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
  });

  it("answers 404 for a PUT of an id that does not exist", async () => {
    expectScimError(await s.req("PUT", `/Users/${crypto.randomUUID()}`, userBody(uname())), 404);
  });
});

describe("PATCH /Users/{id} (RFC 7644 §3.5.2)", () => {
  it("answers 200 with the full updated resource and a new ETag", async () => {
    const created = await createUser();
    const r = await s.req("PATCH", `/Users/${created.id}`, patchBody({ op: "replace", path: "title", value: "CTO" }, { op: "add", path: "nickName", value: "Boss" }));
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(created.id);
    expect(r.body.title).toBe("CTO");
    expect(r.body.nickName).toBe("Boss");
    expect(r.body.userName).toBe(created.userName);
    expect(r.body.emails).toEqual(created.emails);
    expect(r.body.meta.version).not.toBe(created.meta.version);
    expect(r.headers.get("etag")).toBe(r.body.meta.version);
    expect((await s.req("GET", `/Users/${created.id}`)).body).toEqual(r.body);
  });

  it("refuses a PATCH that would leave the User without emails with 400 and changes nothing (RFC 7644 §3.5.2.2)", async () => {
    const created = await createUser();
    const r = await s.req("PATCH", `/Users/${created.id}`, patchBody({ op: "remove", path: "emails" }));
    expectScimError(r, 400);
    expect(["mutability", "invalidValue"]).toContain(r.body.scimType);
    expect((await s.req("GET", `/Users/${created.id}`)).body).toEqual(created);
  });
});

describe("DELETE /Users/{id} (RFC 7644 §3.6)", () => {
  it("answers 204, then GET answers 404 and a second DELETE answers 404", async () => {
    const created = await createUser();
    const d = await s.req("DELETE", `/Users/${created.id}`);
    expect(d.status).toBe(204);
    expect(d.text).toBe("");
    expectScimError(await s.req("GET", `/Users/${created.id}`), 404);
    expectScimError(await s.req("DELETE", `/Users/${created.id}`), 404);
  });

  it("frees the userName again after DELETE", async () => {
    const userName = uname("reuse");
    const first = await createUser(userName);
    expect((await s.req("POST", "/Users", userBody(userName))).status).toBe(409);
    expect((await s.req("DELETE", `/Users/${first.id}`)).status).toBe(204);
    const again = await s.req("POST", "/Users", userBody(userName.toUpperCase()));
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(first.id);
  });
});

describe("userName uniqueness (RFC 7643 §4.1.1: uniqueness server, caseExact false; RFC 7644 §3.3 409)", () => {
  test.each([
    ["same case", "Alice.Smith@example.com", "Alice.Smith@example.com"],
    ["different ASCII case", "Bob.Jones@example.com", "bob.jones@EXAMPLE.COM"],
    ["composed vs decomposed Unicode (NFC)", "Zo\u00eb", "Zoe\u0308"],
    ["decomposed then composed Unicode (NFC)", "Rene\u0301", "Ren\u00e9"],
    ["non-ASCII case folding", "\u00c5SA", "\u00e5sa"],
    ["Angstrom sign vs A with ring (NFC)", "\u212bngstr\u00f6m", "\u00e5ngstr\u00f6m"],
  ])("refuses a second User whose userName equals an existing one (%s) with 409 uniqueness", async (_case, first, second) => {
    const a = await s.req("POST", "/Users", userBody(first, { emails: [{ value: "x@example.com" }] }));
    expect(a.status).toBe(201);
    const b = await s.req("POST", "/Users", userBody(second, { emails: [{ value: "y@example.com" }] }));
    expectScimError(b, 409, "uniqueness");
    // the clash stored nothing
    const list = await s.req("GET", `/Users?filter=${encodeURIComponent(`userName eq "${first}"`)}`);
    expect(list.body.totalResults).toBe(1);
  });

  it("refuses a PUT that renames a User to another User's userName (any case) with 409 uniqueness", async () => {
    const a = await createUser(uname("taken"));
    const b = await createUser(uname("renamer"));
    const r = await s.req("PUT", `/Users/${b.id}`, userBody(a.userName.toUpperCase()));
    expectScimError(r, 409, "uniqueness");
    expect((await s.req("GET", `/Users/${b.id}`)).body.userName).toBe(b.userName);
  });

  it("refuses a PATCH that renames a User to another User's userName with 409 uniqueness", async () => {
    const a = await createUser(uname("taken2"));
    const b = await createUser(uname("renamer2"));
    const r = await s.req("PATCH", `/Users/${b.id}`, patchBody({ op: "replace", path: "userName", value: a.userName.toUpperCase() }));
    expectScimError(r, 409, "uniqueness");
  });

  it("lets a User change the case of its own userName", async () => {
    const a = await createUser(uname("self"));
    const r = await s.req("PUT", `/Users/${a.id}`, userBody(a.userName.toUpperCase()));
    expect(r.status).toBe(200);
    expect(r.body.userName).toBe(a.userName.toUpperCase());
  });

  it("creates exactly one User when 50 POSTs of the same userName (in varying case) race; the rest answer 409 uniqueness", async () => {
    const base = "Race.Condition@Example.com";
    const variants = Array.from({ length: 50 }, (_, i) => (i % 3 === 0 ? base : i % 3 === 1 ? base.toLowerCase() : base.toUpperCase()));
    const results = await Promise.all(variants.map((v) => s.req("POST", "/Users", userBody(v))));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((x) => x === 201).length).toBe(1);
    expect(statuses.filter((x) => x === 409).length).toBe(49);
    for (const r of results.filter((r) => r.status === 409)) expect(r.body.scimType).toBe("uniqueness");
    const list = await s.req("GET", `/Users?filter=${encodeURIComponent(`userName eq "${base}"`)}`);
    expect(list.body.totalResults).toBe(1);
  });
});

describe("product rules for Users (400 invalidValue)", () => {
  const cases: [string, Record<string, unknown>][] = [
    ["no displayName and no name.formatted", { schemas: [USER], userName: "rule-1@example.com", emails: [{ value: "rule-1@example.com" }] }],
    [
      "a blank displayName and only name.givenName",
      { schemas: [USER], userName: "rule-2@example.com", displayName: "  ", name: { givenName: "G" }, emails: [{ value: "rule-2@example.com" }] },
    ],
    ["no emails", { schemas: [USER], userName: "rule-3@example.com", displayName: "R3" }],
    ["an empty emails list", { schemas: [USER], userName: "rule-4@example.com", displayName: "R4", emails: [] }],
    ["no userName", { schemas: [USER], displayName: "R5", emails: [{ value: "rule-5@example.com" }] }],
  ];
  test.each(cases)("refuses a User with %s with 400 invalidValue and stores nothing", async (_case, body) => {
    const r = await s.req("POST", "/Users", body);
    expectScimError(r, 400, "invalidValue");
    if (typeof body.userName === "string") {
      const list = await s.req("GET", `/Users?filter=${encodeURIComponent(`userName eq "${body.userName}"`)}`);
      expect(list.body.totalResults).toBe(0);
    }
  });

  it("accepts a User with name.formatted and no displayName", async () => {
    const r = await s.req("POST", "/Users", { schemas: [USER], userName: uname("fmt"), name: { formatted: "Ada Lovelace" }, emails: [{ value: "ada@example.com" }] });
    expect(r.status).toBe(201);
    expect(r.body.name.formatted).toBe("Ada Lovelace");
    expect(r.body.displayName).toBeUndefined();
  });

  it("refuses a PUT without emails with 400 invalidValue and keeps the stored User", async () => {
    const created = await createUser();
    const r = await s.req("PUT", `/Users/${created.id}`, { schemas: [USER], userName: created.userName, displayName: "X" });
    expectScimError(r, 400, "invalidValue");
    expect((await s.req("GET", `/Users/${created.id}`)).body).toEqual(created);
  });
});

describe("attributes / excludedAttributes on every response (RFC 7644 §3.4.2.5, §3.9)", () => {
  let user: any;
  beforeAll(async () => {
    user = await createUser(uname("proj"), { title: "Dr", name: { givenName: "Pro", familyName: "Jection" }, [ENTERPRISE]: { department: "R&D" } });
  });

  /** Keys present in a response, besides the always-returned id and schemas. */
  const keys = (b: any) => Object.keys(b).filter((k) => k !== "id" && k !== "schemas").sort();

  it("GET with attributes returns only those (plus id and schemas)", async () => {
    const r = await s.req("GET", `/Users/${user.id}?attributes=userName,name.familyName`);
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(user.id);
    expect(r.body.schemas).toBeDefined();
    expect(keys(r.body)).toEqual(["name", "userName"]);
    expect(r.body.name).toEqual({ familyName: "Jection" });
  });

  it("GET with attributes naming an extension attribute returns it under the extension URN", async () => {
    const r = await s.req("GET", `/Users/${user.id}?attributes=${encodeURIComponent(`${ENTERPRISE}:department`)}`);
    expect(r.status).toBe(200);
    expect(keys(r.body)).toEqual([ENTERPRISE]);
    expect(r.body[ENTERPRISE]).toEqual({ department: "R&D" });
  });

  it("GET with excludedAttributes leaves those out and keeps the rest", async () => {
    const r = await s.req("GET", `/Users/${user.id}?excludedAttributes=emails,title,meta`);
    expect(r.status).toBe(200);
    expect(r.body.emails).toBeUndefined();
    expect(r.body.title).toBeUndefined();
    expect(r.body.meta).toBeUndefined();
    expect(r.body.userName).toBe(user.userName);
    expect(r.body.name).toEqual(user.name);
  });

  it("never excludes id (returned always, RFC 7643 §7) even when excludedAttributes names it", async () => {
    const r = await s.req("GET", `/Users/${user.id}?excludedAttributes=id,userName`);
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(user.id);
    expect(r.body.schemas).toBeDefined();
    expect(r.body.userName).toBeUndefined();
  });

  it("POST with attributes returns only those in the 201 body", async () => {
    const r = await s.req("POST", "/Users?attributes=userName", userBody(uname("proj-post"), { title: "T" }));
    expect(r.status).toBe(201);
    expect(keys(r.body)).toEqual(["userName"]);
    expect(r.headers.get("location")).toContain(`/Users/${r.body.id}`);
  });

  it("PUT with excludedAttributes leaves those out of the 200 body", async () => {
    const u = await createUser(uname("proj-put"));
    const r = await s.req("PUT", `/Users/${u.id}?excludedAttributes=emails,meta`, userBody(u.userName, { title: "New" }));
    expect(r.status).toBe(200);
    expect(r.body.emails).toBeUndefined();
    expect(r.body.meta).toBeUndefined();
    expect(r.body.title).toBe("New");
  });

  it("PATCH with attributes returns only those in the 200 body", async () => {
    const u = await createUser(uname("proj-patch"));
    const r = await s.req("PATCH", `/Users/${u.id}?attributes=title`, patchBody({ op: "replace", path: "title", value: "Patched" }));
    expect(r.status).toBe(200);
    expect(keys(r.body)).toEqual(["title"]);
    expect(r.body.title).toBe("Patched");
  });

  it("refuses an attributes list naming an unknown attribute with 400 invalidValue", async () => {
    expectScimError(await s.req("GET", `/Users/${user.id}?attributes=noSuchAttribute`), 400, "invalidValue");
  });
});

describe("groups of a User (RFC 7643 §4.1.2: readOnly, computed from Group membership)", () => {
  it("lists the Groups a User is a member of, with value, $ref, display and type direct", async () => {
    const u = await createUser(uname("member"));
    const g1 = await s.req("POST", "/Groups", { schemas: [GROUP], displayName: `grp-a-${seq}`, members: [{ value: u.id }] });
    const g2 = await s.req("POST", "/Groups", { schemas: [GROUP], displayName: `grp-b-${seq}`, members: [{ value: u.id }] });
    expect(g1.status).toBe(201);
    expect(g2.status).toBe(201);
    const r = await s.req("GET", `/Users/${u.id}`);
    expect(r.body.groups).toEqual([
      { value: g1.body.id, $ref: `${s.base}/Groups/${g1.body.id}`, display: g1.body.displayName, type: "direct" },
      { value: g2.body.id, $ref: `${s.base}/Groups/${g2.body.id}`, display: g2.body.displayName, type: "direct" },
    ]);
    // excludedAttributes=groups leaves them out
    expect((await s.req("GET", `/Users/${u.id}?excludedAttributes=groups`)).body.groups).toBeUndefined();
    // removing the user from a group shows in groups
    const p = await s.req("PATCH", `/Groups/${g1.body.id}`, patchBody({ op: "remove", path: `members[value eq "${u.id}"]` }));
    expect(p.status).toBe(204);
    expect((await s.req("GET", `/Users/${u.id}`)).body.groups.map((g: any) => g.value)).toEqual([g2.body.id]);
  });

  it("ignores groups sent by the client on POST and PUT: membership changes only through /Groups", async () => {
    const g = await s.req("POST", "/Groups", { schemas: [GROUP], displayName: `grp-ro-${seq}` });
    expect(g.status).toBe(201);
    const c = await s.req("POST", "/Users", userBody(uname("ro"), { groups: [{ value: g.body.id }] }));
    expect(c.status).toBe(201);
    expect(c.body.groups).toBeUndefined();
    const p = await s.req("PUT", `/Users/${c.body.id}`, userBody(c.body.userName, { groups: [{ value: g.body.id }] }));
    expect(p.status).toBe(200);
    expect(p.body.groups).toBeUndefined();
    const members = await s.req("GET", `/Groups/${g.body.id}`);
    expect(members.body.members).toBeUndefined();
  });

  it("refuses a PATCH that writes groups (readOnly) with 400 and changes nothing (RFC 7644 §3.5.2 mutability)", async () => {
    const g = await s.req("POST", "/Groups", { schemas: [GROUP], displayName: `grp-patch-ro-${seq}` });
    const u = await createUser(uname("ro-patch"));
    const r = await s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "add", path: "groups", value: [{ value: g.body.id }] }));
    expect(r.status).toBe(400);
    expect(r.body.schemas).toEqual([ERROR]);
    expect(["mutability", "invalidPath", "invalidValue"]).toContain(r.body.scimType);
    expect((await s.req("GET", `/Users/${u.id}`)).body.groups).toBeUndefined();
  });
});

describe("list responses of /Users contain Users", () => {
  it("returns a ListResponse whose Resources are Users with meta.location", async () => {
    const u = await createUser(uname("listed"));
    const r = await s.req("GET", `/Users?filter=${encodeURIComponent(`id eq "${u.id}"`)}`);
    expect(r.status).toBe(200);
    expect(r.body.schemas).toEqual([LIST]);
    expect(r.body.Resources).toEqual([u]);
  });
});
