/**
 * Concurrency over real HTTP: uniqueness under racing renames, If-Match under racing writers
 * (RFC 7644 §3.14), no lost update for concurrent PATCHes without If-Match, and the token commands
 * running as separate OS processes against the database of a server under load.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { resolve } from "node:path";
import { ENTERPRISE, expectScimError, groupBody, patchBody, startServer, userBody, type TestResponse, type TestServer } from "../helpers";

const REPO = resolve(import.meta.dir, "../..");

let s: TestServer;
let seq = 0;
const uniq = (tag: string) => `${tag}-${++seq}`;

beforeAll(async () => {
  // Revoked-token checks answer 401; a high limit keeps the failed-auth limiter (429) out of the way.
  s = await startServer({ authFailuresPerMinute: 10_000 });
});
afterAll(async () => {
  await s.close();
});

async function createUser(userName = `${uniq("u")}@example.com`, extra: Record<string, unknown> = {}) {
  const r = await s.req("POST", "/Users", userBody(userName, extra));
  expect(r.status).toBe(201);
  return r.body;
}

async function createGroup(displayName = uniq("g"), members: string[] = []) {
  const r = await s.req("POST", "/Groups", groupBody(displayName, members));
  expect(r.status).toBe(201);
  return r.body;
}

const statuses = (rs: TestResponse[]) => rs.map((r) => r.status).sort();
const count = async (path: string, filter: string) => (await s.req("GET", `${path}?filter=${encodeURIComponent(filter)}`)).body.totalResults as number;

/** Case variants of one name: the same name for a case-insensitive attribute (RFC 7643 §4.1.1, §4.2). */
const variants = (name: string) => [name, name.toLowerCase(), name.toUpperCase(), name.replace(/^./, (c) => c.toLowerCase()).replace(/e/g, "E")];

describe("racing renames into one userName or displayName", () => {
  const userCases: [string, ("PUT" | "PATCH")[]][] = [
    ["PUTs", ["PUT", "PUT", "PUT", "PUT", "PUT", "PUT", "PUT", "PUT"]],
    ["PATCHes", ["PATCH", "PATCH", "PATCH", "PATCH", "PATCH", "PATCH", "PATCH", "PATCH"]],
    ["PUTs and PATCHes", ["PUT", "PATCH", "PUT", "PATCH", "PUT", "PATCH", "PUT", "PATCH"]],
  ];
  it.each(userCases)(
    "concurrent %s renaming different Users into one userName (also differing only in case) let exactly one win and refuse the rest with 409 uniqueness (RFC 7644 §3.5.1, §3.12)",
    async (_t, methods) => {
      for (let round = 0; round < 3; round++) {
        const target = `Taken-${uniq("name")}@Example.com`;
        const names = variants(target);
        const us = await Promise.all(methods.map(() => createUser()));
        const rs = await Promise.all(
          methods.map((m, i) => {
            const wanted = names[i % names.length]!;
            // Each keeps its own email: only userName collides.
            const emails = [{ value: us[i].userName, type: "work", primary: true }];
            return m === "PUT"
              ? s.req("PUT", `/Users/${us[i].id}`, userBody(wanted, { emails }))
              : s.req("PATCH", `/Users/${us[i].id}`, patchBody({ op: "replace", path: "userName", value: wanted }));
          }),
        );
        expect(statuses(rs)).toEqual([200, ...Array(methods.length - 1).fill(409)]);
        for (const r of rs) if (r.status === 409) expectScimError(r, 409, "uniqueness");
        const winner = rs.findIndex((r) => r.status === 200);
        expect(await count("/Users", `userName eq "${target}"`)).toBe(1);
        const found = await s.req("GET", `/Users?filter=${encodeURIComponent(`userName eq "${target.toLowerCase()}"`)}`);
        expect(found.body.Resources.map((u: { id: string }) => u.id)).toEqual([us[winner].id]);
        // The losers kept their own userName.
        for (let i = 0; i < us.length; i++) if (i !== winner) expect((await s.req("GET", `/Users/${us[i].id}`)).body.userName).toBe(us[i].userName);
      }
    },
  );

  const groupCases: [string, ("PUT" | "PATCH")[]][] = [
    ["PATCHes", ["PATCH", "PATCH", "PATCH", "PATCH", "PATCH", "PATCH"]],
    ["PUTs and PATCHes", ["PUT", "PATCH", "PUT", "PATCH", "PUT", "PATCH"]],
  ];
  it.each(groupCases)(
    "concurrent %s renaming different Groups into one displayName (also differing only in case) let exactly one win and refuse the rest with 409 uniqueness",
    async (_t, methods) => {
      for (let round = 0; round < 3; round++) {
        const target = `Engineering ${uniq("team")}`;
        const names = variants(target);
        const gs = await Promise.all(methods.map(() => createGroup()));
        const rs = await Promise.all(
          methods.map((m, i) => {
            const wanted = names[i % names.length]!;
            return m === "PUT"
              ? s.req("PUT", `/Groups/${gs[i].id}`, groupBody(wanted))
              : s.req("PATCH", `/Groups/${gs[i].id}`, patchBody({ op: "replace", path: "displayName", value: wanted }));
          }),
        );
        const ok = rs.filter((r) => r.status === 200 || r.status === 204);
        expect(ok).toHaveLength(1);
        expect(rs.filter((r) => r.status === 409)).toHaveLength(methods.length - 1);
        for (const r of rs) if (r.status === 409) expectScimError(r, 409, "uniqueness");
        expect(await count("/Groups", `displayName eq "${target}"`)).toBe(1);
      }
    },
  );
});

describe("If-Match under racing writers (RFC 7644 §3.14)", () => {
  const cases: [string, "User" | "Group", "PATCH" | "PUT", number][] = [
    ["two PATCHes of a User", "User", "PATCH", 2],
    ["six PATCHes of a User", "User", "PATCH", 6],
    ["two PUTs of a User", "User", "PUT", 2],
    ["two PATCHes of a Group", "Group", "PATCH", 2],
  ];
  it.each(cases)("of %s sent with the same If-Match version, exactly one succeeds, the others get 412 and their change is not stored", async (_t, kind, method, clients) => {
    for (let round = 0; round < 3; round++) {
      const created = kind === "User" ? await createUser() : await createGroup();
      const path = `/${kind}s/${created.id}`;
      const read = await s.req("GET", path);
      const etag = read.headers.get("etag")!;
      expect(etag).toBe(read.body.meta.version);
      const values = Array.from({ length: clients }, (_, i) => `value-${i}-${uniq("v")}`);
      const attr = kind === "User" ? "title" : "displayName";
      const rs = await Promise.all(
        values.map((v) => {
          if (method === "PATCH") return s.req("PATCH", path, patchBody({ op: "replace", path: attr, value: v }), { "If-Match": etag });
          return s.req("PUT", path, userBody(created.userName, { title: v }), { "If-Match": etag });
        }),
      );
      const winners = rs.map((r, i) => [r, i] as const).filter(([r]) => r.status === 200 || r.status === 204);
      expect(winners).toHaveLength(1);
      for (const r of rs) if (!winners.some(([w]) => w === r)) expectScimError(r, 412);
      const after = await s.req("GET", path);
      expect(after.body[attr]).toBe(values[winners[0]![1]]);
      // Exactly one write happened: the version moved by one, and it is the winner's ETag.
      expect(after.headers.get("etag")).toBe(winners[0]![0].headers.get("etag"));
      expect(after.headers.get("etag")).not.toBe(etag);
      const v0 = Number(/"(\d+)"/.exec(etag)![1]);
      expect(after.headers.get("etag")).toBe(`W/"${v0 + 1}"`);
    }
  });
});

describe("concurrent PATCHes without If-Match lose no update", () => {
  it("applies every one of concurrent PATCHes of different attributes of one User, each exactly once (writes to one resource take turns)", async () => {
    const ops: [string, unknown, (u: any) => unknown][] = [
      ["title", "Engineer", (u) => u.title],
      ["nickName", "Ada", (u) => u.nickName],
      ["profileUrl", "https://example.com/ada", (u) => u.profileUrl],
      ["userType", "Employee", (u) => u.userType],
      ["preferredLanguage", "en-GB", (u) => u.preferredLanguage],
      ["locale", "en-GB", (u) => u.locale],
      ["timezone", "Europe/London", (u) => u.timezone],
      ["displayName", "Ada Lovelace", (u) => u.displayName],
      ["name.givenName", "Ada", (u) => u.name?.givenName],
      ["name.familyName", "Lovelace", (u) => u.name?.familyName],
      ["active", false, (u) => u.active],
      [`${ENTERPRISE}:employeeNumber`, "1815", (u) => u[ENTERPRISE]?.employeeNumber],
      [`${ENTERPRISE}:department`, "Analytical Engines", (u) => u[ENTERPRISE]?.department],
    ];
    // Observe (not replace) the store: count the writes refused for a stale version.
    const update = s.store.update.bind(s.store);
    let conflicts = 0;
    s.store.update = async (...args) => {
      try {
        return await update(...args);
      } catch (e) {
        if ((e as { status?: number }).status === 412) conflicts++;
        throw e;
      }
    };
    try {
      for (let round = 0; round < 3; round++) {
        const u = await createUser();
        // A password change hashes for a while between its read and its write: the others overtake it.
        const password = `Pw-${uniq("secret")}-x9!`;
        const rs = await Promise.all([
          s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path: "password", value: password })),
          ...ops.map(([path, value]) => s.req("PATCH", `/Users/${u.id}`, patchBody({ op: "replace", path, value }))),
        ]);
        expect(statuses(rs)).toEqual(Array(ops.length + 1).fill(200));
        const after = await s.req("GET", `/Users/${u.id}`);
        expect(Object.fromEntries(ops.map(([path, , get]) => [path, get(after.body)]))).toEqual(Object.fromEntries(ops.map(([path, value]) => [path, value])));
        expect(after.body.userName).toBe(u.userName);
        expect(after.body.meta.version).toBe(`W/"${1 + ops.length + 1}"`);
        const stored = await s.store.get("User", u.id);
        expect(await Bun.password.verify(password, String(stored!.data.password))).toBe(true);
      }
    } finally {
      delete (s.store as { update?: unknown }).update; // back to the prototype method
    }
    // Writes to one resource take turns in the service: none was refused for a stale version.
    expect(conflicts).toBe(0);
  });

  it("keeps every member added by concurrent PATCHes of one Group (RFC 7644 §3.5.2.1)", async () => {
    const us = await Promise.all(Array.from({ length: 24 }, () => createUser()));
    const g = await createGroup();
    const batches = Array.from({ length: 12 }, (_, i) => [us[2 * i]!.id, us[2 * i + 1]!.id]);
    const rs = await Promise.all([
      ...batches.map((ids) => s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "add", path: "members", value: ids.map((value) => ({ value })) }))),
      s.req("PATCH", `/Groups/${g.id}`, patchBody({ op: "replace", path: "externalId", value: "ext-team" })),
    ]);
    expect(statuses(rs)).toEqual(Array(batches.length + 1).fill(204));
    const after = await s.req("GET", `/Groups/${g.id}`);
    expect(after.body.members.map((m: { value: string }) => m.value).sort()).toEqual(us.map((u) => u.id).sort());
    expect(after.body.externalId).toBe("ext-team");
  });
});

describe("token commands as separate processes while the server is under load", () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const p = Bun.spawn([process.execPath, "src/main.ts", ...args, "--db", s.db], { cwd: REPO, env: { ...process.env }, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  }

  const withToken = async (token: string) =>
    (await fetch(`${s.base}/Users?count=1`, { headers: { Authorization: `Bearer ${token}` } })).status;

  it("generate-token and tokens revoke never make a request fail with 5xx or SQLITE_BUSY; a new token works at once and a revoked one is refused with 401 at once", async () => {
    const seeded = await Promise.all(Array.from({ length: 8 }, () => createUser()));
    const responses: TestResponse[] = [];
    const failures: string[] = [];
    let done = false;
    let n = 0;
    const loader = async (w: number) => {
      while (!done || n < 320) {
        const i = n++;
        const kind = i % 3;
        let r: TestResponse;
        if (kind === 0) r = await s.req("POST", "/Users", userBody(`load-${w}-${i}-${uniq("l")}@example.com`));
        else if (kind === 1) r = await s.req("GET", `/Users?filter=${encodeURIComponent('userName sw "load-"')}&count=5`);
        else r = await s.req("PATCH", `/Users/${seeded[i % seeded.length].id}`, patchBody({ op: "replace", path: "title", value: `t${i}` }));
        responses.push(r);
      }
    };
    const load = Promise.all(Array.from({ length: 24 }, (_, w) => loader(w)));

    try {
      for (let i = 0; i < 10; i++) {
        const name = `t${i}-${uniq("tok")}`;
        const g = await cli(["generate-token", "--name", name]);
        if (g.code !== 0) failures.push(`generate-token ${name}: exit ${g.code}: ${g.err}`);
        const token = g.out.trim();
        expect(token).toMatch(/^scimd_/);
        const accepted = await withToken(token);
        if (accepted !== 200) failures.push(`${name}: new token answered ${accepted}, not 200`);
        const rv = await cli(["tokens", "revoke", name]);
        if (rv.code !== 0) failures.push(`tokens revoke ${name}: exit ${rv.code}: ${rv.err}`);
        const refused = await withToken(token);
        if (refused !== 401) failures.push(`${name}: revoked token answered ${refused}, not 401`);
        for (const out of [g.err, rv.err]) if (/SQLITE_BUSY|database is locked/i.test(out)) failures.push(`${name}: ${out}`);
      }
    } finally {
      done = true;
      await load;
    }
    expect(failures).toEqual([]);
    expect(responses.length).toBeGreaterThanOrEqual(320);
    const bad = responses.filter((r) => r.status >= 500 || /SQLITE_BUSY|database is locked/i.test(r.text)).map((r) => `${r.status} ${r.text.slice(0, 200)}`);
    expect(bad).toEqual([]);
    // Every load request succeeded: a writer in another process only makes requests wait.
    expect(responses.filter((r) => ![200, 201].includes(r.status)).map((r) => `${r.status} ${r.text.slice(0, 200)}`)).toEqual([]);
    // The server's own token still works and only it is not revoked (revoked ones are kept, revoked).
    expect((await s.req("GET", "/Users?count=0")).status).toBe(200);
    expect((await s.store.listTokens()).filter((t) => t.revoked === undefined).map((t) => t.name)).toEqual(["test"]);
    expect(await s.store.tokenCount()).toBe(1);
  }, 30_000);
});
