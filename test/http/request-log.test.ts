/**
 * The request log and its parts: the SCIM meaning of a route (a table), the client address behind a
 * trusted proxy (CIDR v4/v6), password redaction, the Logger's levels and formats, and the line a
 * request gets through the real edge and app on a real SQLite file.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import fc from "fast-check";
import { createApp } from "../../src/app";
import { clientAddressResolver, parseCidr } from "../../src/http/client-address";
import { edgeHandler, infoOf } from "../../src/http/observe";
import { requestLogger, routeMeaning } from "../../src/http/request-log";
import { createLogger, prettyLine, redactPasswords, type LogLevel } from "../../src/log";
import { ScimError } from "../../src/scim/errors";
import { applyPatch } from "../../src/scim/patch";
import { quirksFor } from "../../src/scim/quirks";
import { USER_RESOURCE } from "../../src/scim/schema";
import { hashToken, newToken } from "../../src/tokens";
import { groupBody, memoryLogger, openTestStore, PATCH_OP, patchBody, rawExchange, USER, userBody, type LogRecord } from "../helpers";

/** The stores of the describes below that build their app at once (of the test engine: SQLite, or PostgreSQL under SCIMD_TEST_STORE=postgres). */
const edgeDb = await openTestStore();
const hostDb = await openTestStore();

describe("routeMeaning: the SCIM operation and resource type of a method on a route template", () => {
  const B = "/api/v1/scim";
  it.each([
    ["POST", `${B}/Users`, "create", "User"],
    ["GET", `${B}/Users`, "query", "User"],
    ["POST", `${B}/Users/.search`, "query", "User"],
    ["GET", `${B}/Users/:id`, "get", "User"],
    ["PUT", `${B}/Users/:id`, "replace", "User"],
    ["PATCH", `${B}/Users/:id`, "patch", "User"],
    ["DELETE", `${B}/Users/:id`, "delete", "User"],
    ["POST", `${B}/Groups`, "create", "Group"],
    ["PATCH", `${B}/Groups/:id`, "patch", "Group"],
    ["DELETE", `${B}/Groups/:id`, "delete", "Group"],
    ["GET", B, "query", undefined],
    ["POST", `${B}/.search`, "query", undefined],
    ["GET", `${B}/ServiceProviderConfig`, "discovery", "ServiceProviderConfig"],
    ["GET", `${B}/ResourceTypes/:id`, "discovery", "ResourceType"],
    ["GET", `${B}/Schemas`, "discovery", "Schema"],
    ["POST", `${B}/Bulk`, "bulk", undefined],
    ["GET", `${B}/Me`, "me", undefined],
    ["DELETE", `${B}/Users`, undefined, "User"],
    ["GET", `${B}/*`, undefined, undefined],
    ["GET", "/healthz", undefined, undefined],
    ["GET", undefined, undefined, undefined],
    ["HEAD", `${B}/Users/:id`, "get", "User"],
    ["HEAD", `${B}/Users`, "query", "User"],
    ["HEAD", `${B}/Schemas`, "discovery", "Schema"],
  ])("%s %s is %s of %s", (method, route, operation, resourceType) => {
    const m = routeMeaning(method, route);
    expect([m.operation, m.resourceType]).toEqual([operation, resourceType]);
  });
});

describe("the client address behind --trust-proxy", () => {
  it.each([
    ["no trusted proxy: the peer, whatever the header says", [], "203.0.113.9", "198.51.100.1", "203.0.113.9"],
    ["an untrusted peer: the peer", ["10.0.0.0/8"], "203.0.113.9", "198.51.100.1", "203.0.113.9"],
    ["a trusted peer without the header: the peer", ["10.0.0.0/8"], "10.0.0.5", null, "10.0.0.5"],
    ["a trusted peer: the header's hop", ["10.0.0.0/8"], "10.0.0.5", "198.51.100.1", "198.51.100.1"],
    ["the rightmost untrusted hop, not what the client wrote on the left", ["10.0.0.0/8"], "10.0.0.5", "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"],
    ["every hop trusted: the leftmost", ["10.0.0.0/8"], "10.0.0.5", "10.1.1.1, 10.2.2.2", "10.1.1.1"],
    ["a hop with a port", ["127.0.0.1"], "127.0.0.1", "198.51.100.1:4711", "198.51.100.1"],
    ["a bracketed IPv6 hop with a port", ["127.0.0.1"], "127.0.0.1", "[2001:db8::7]:443", "2001:db8::7"],
    ["an IPv6 range", ["fd00::/8"], "fd12:3456::1", "2001:db8::1", "2001:db8::1"],
    ["an IPv6 peer outside the range", ["fd00::/8"], "fe80::1", "2001:db8::1", "fe80::1"],
    ["an IPv4-mapped peer (dual-stack socket) in an IPv4 range", ["127.0.0.0/8"], "::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"],
    ["an IPv4-mapped peer reported as IPv4 when untrusted", ["10.0.0.0/8"], "::ffff:192.0.2.1", "198.51.100.1", "192.0.2.1"],
    ["a hop that is no address ends at the last trusted one", ["10.0.0.0/8"], "10.0.0.5", "198.51.100.1, garbage", "10.0.0.5"],
    ["a /32 is one address", ["10.0.0.5/32"], "10.0.0.6", "198.51.100.1", "10.0.0.6"],
    ["a /0 trusts everything", ["0.0.0.0/0"], "192.0.2.1", "198.51.100.1", "198.51.100.1"],
    ["a /12 boundary", ["172.16.0.0/12"], "172.31.255.255", "198.51.100.1", "198.51.100.1"],
    ["just outside a /12", ["172.16.0.0/12"], "172.32.0.0", "198.51.100.1", "172.32.0.0"],
  ] as [string, string[], string, string | null, string][])("%s", (_t, trusted, peer, xff, client) => {
    expect(clientAddressResolver(trusted)(peer, xff)).toBe(client);
  });

  it.each([
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["[2001:DB8:0:0::1]:443", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["fe80::1%eth0", "fe80::1"],
    ["::ffff:C000:0201", "192.0.2.1"],
    ["2001:db8::192.0.2.1", "2001:db8::c000:201"],
  ])("the client %p is written %p (RFC 5952), so that the limiter counts one address once", (hop, client) => {
    expect(clientAddressResolver(["10.0.0.0/8"])("10.0.0.5", hop)).toBe(client);
    // A peer outside the trusted ranges too.
    if (!hop.startsWith("[")) expect(clientAddressResolver(["10.0.0.0/8"])(hop, null)).toBe(client);
  });

  it("says the valid prefix lengths of an IPv4-mapped range", () => {
    expect(() => parseCidr("::ffff:10.0.0.0/95")).toThrow("'::ffff:10.0.0.0/95': the prefix length of an IPv4-mapped range must be 96..128");
    expect(parseCidr("::ffff:10.0.0.0/104")).toEqual({ bytes: new Uint8Array([10, 0, 0, 0]), bits: 8 });
    expect(() => parseCidr("::/129")).toThrow("'::/129': the prefix length must be 0..128");
  });

  it.each(["proxy.local", "10.0.0.0/33", "::/129", "1.2.3", "1.2.3.4/8/9", "01.2.3.4", "1::2::3", "", "10.0.0.0/x"])("refuses %p as a range", (v) => {
    expect(() => parseCidr(v)).toThrow(/not an IP address|prefix length/);
  });
});

describe("redactPasswords", () => {
  it("takes out a password in any case, at any depth, in a PATCH value and in a filter", () => {
    const body = {
      userName: "a",
      password: "s1",
      nested: [{ PASSWORD: "s2", ok: 1 }],
      "urn:x:ext": { userPassword: "s3" },
      Operations: [
        { op: "replace", path: "password", value: "s4" },
        { op: "replace", Path: "urn:ietf:params:scim:schemas:core:2.0:User:password", Value: "s5" },
        { op: "replace", path: "title", value: "kept" },
        { op: "replace", value: { passWord: "s6", title: "kept" } },
      ],
      filter: 'password eq "s7"',
    };
    const out = JSON.stringify(redactPasswords(body));
    for (const s of ["s1", "s2", "s3", "s4", "s5", "s6", "s7"]) expect(out).not.toContain(`"${s}"`);
    expect(out).not.toContain("s7");
    expect(out.match(/"kept"/g)?.length).toBe(2);
    expect(body.password).toBe("s1"); // a copy: the body itself is untouched
  });

  it("redacts the value when any spelling of `path` names a password: the PATCH reader keeps the last one", () => {
    const text = `{"schemas":["${PATCH_OP}"],"Operations":[{"op":"replace","Path":"x","path":"password","value":"SECRETPW25"}]}`;
    const body = JSON.parse(text);
    expect(applyPatch({ rt: USER_RESOURCE, quirks: quirksFor(false), id: "u1" }, { schemas: [USER], userName: "a" }, body).password).toBe("SECRETPW25");
    expect(JSON.stringify(redactPasswords(body))).not.toContain("SECRETPW25");
  });

  it("redacts the value when a path that is not a string mentions a password", () => {
    for (const path of [["password"], { a: "Password" }, [{ b: "urn:x:PASSWORD" }]]) {
      const out = JSON.stringify(redactPasswords({ Operations: [{ op: "replace", path, value: "SECRETPW26" }] }));
      expect(out).not.toContain("SECRETPW26");
    }
    expect(redactPasswords({ op: "replace", path: ["title"], value: "kept" })).toEqual({ op: "replace", path: ["title"], value: "kept" });
  });

  it("property: whenever applyPatch sets a password, the redacted body does not hold it (any key spelling, duplicates, either quirk mode)", () => {
    const spellings = (name: string) => fc.constantFrom(name, name.toUpperCase(), name[0]!.toUpperCase() + name.slice(1), name.slice(0, -1) + name.at(-1)!.toUpperCase());
    const path = fc.constantFrom<unknown>("password", "PASSWORD", "Password", " password", "urn:ietf:params:scim:schemas:core:2.0:User:password", "x", "title", "userName", "", null, ["password"], { p: "password" });
    let n = 0;
    const secret = () => `SECRETPW${++n}z`;
    // The value: a secret, or an object that may hold one; each run gets fresh secrets (below).
    const value = fc.constantFrom("secret", "object", "ext", "core", "plain", "null");
    const member = fc.oneof(fc.tuple(spellings("op"), fc.constantFrom("replace", "add", "Replace", "ADD", "remove")), fc.tuple(spellings("path"), path), fc.tuple(spellings("value"), value));
    const op = fc.array(member, { minLength: 1, maxLength: 6 });
    const valueOf = (kind: string): unknown => {
      switch (kind) {
        case "secret": return secret();
        case "object": return { PassWord: secret() };
        case "ext": return { "urn:ietf:params:scim:schemas:core:2.0:User:password": secret() };
        case "core": return { "urn:ietf:params:scim:schemas:core:2.0:User": { password: secret() } };
        case "plain": return `plain${++n}`; // unique too: a leak is never a title that equals the password
        default: return null;
      }
    };
    let set = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 3 }), fc.boolean(), (ops, strict) => {
        // Written as JSON text, so that a key sent twice in the same spelling is a duplicate JSON.parse resolves, as for a request.
        const opText = (members: [string, unknown][]) => `{${members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(k.toLowerCase() === "value" ? valueOf(v as string) : v)}`).join(",")}}`;
        const body = JSON.parse(`{"schemas":["${PATCH_OP}"],"Operations":[${ops.map(opText).join(",")}]}`);
        let password: string | undefined;
        try {
          password = applyPatch({ rt: USER_RESOURCE, quirks: quirksFor(strict), id: "u1" }, { schemas: [USER], userName: "a" }, body).password;
        } catch (e) {
          if (!(e instanceof ScimError)) throw e;
        }
        if (password === undefined) return;
        set++;
        expect(JSON.stringify(redactPasswords(body))).not.toContain(password);
      }),
      { seed: 20250611, numRuns: 4000 },
    );
    // The property was tested on many bodies that do set a password, not vacuously.
    expect(set).toBeGreaterThan(100);
  });
});

describe("createLogger", () => {
  const lines = (level: LogLevel, format: "json" | "pretty" = "json") => {
    const out: string[] = [];
    const l = createLogger({ level, format, write: (line) => out.push(line) });
    l.debug("d", { a: 1 });
    l.info("i", { a: 2 });
    l.warn("w", { a: 3 });
    l.error("e", { a: 4 });
    return { out, l };
  };
  it.each([
    ["debug", ["d", "i", "w", "e"]],
    ["info", ["i", "w", "e"]],
    ["warn", ["w", "e"]],
    ["error", ["e"]],
  ] as [LogLevel, string[]][])("at %s writes %p, each one JSON object with time, level and event", (level, events) => {
    const { out, l } = lines(level);
    const parsed = out.map((x) => JSON.parse(x));
    expect(parsed.map((p) => p.event)).toEqual(events);
    for (const p of parsed) expect(Object.keys(p).sort()).toEqual(["a", "event", "level", "time"]);
    expect(parsed.map((p) => p.level)).toEqual(events.map((e) => ({ d: "debug", i: "info", w: "warn", e: "error" })[e]));
    expect(l.enabled("debug")).toBe(level === "debug");
    expect(l.enabled("error")).toBe(true);
  });

  it("pretty: one readable line per event, a request as method, path, status, duration and size", () => {
    const out: string[] = [];
    const l = createLogger({ level: "info", format: "pretty", write: (line) => out.push(line) });
    l.info("request", { requestId: "r1", method: "GET", path: "/api/v1/scim/Users", status: 200, durationMs: 1.5, bytes: 42, tokenName: "okta" });
    l.warn("no token yet", { message: "create one with", command: "scimd generate-token --name okta" });
    expect(out[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  request GET \/api\/v1\/scim\/Users 200 1\.5 ms 42 B requestId=r1 tokenName=okta$/);
    expect(out[1]).toMatch(/WARN  no token yet message="create one with" command="scimd generate-token --name okta"$/);
    expect(prettyLine('{"level":"error","time":"2026-01-01T00:00:00.000Z","error":"a\\nb","event":"unexpected error"}')).toBe("00:00:00.000 ERROR unexpected error\n  error:\n    a\n    b");
  });
});

describe("prettyLine: nothing a client sent reaches the terminal as a control character", () => {
  // ESC, BEL, CR, DEL and the C1 controls (0x9b is CSI on many terminals): any of them would let a path or id drive the terminal.
  const CONTROLS = [
    ["ESC", "\x1b[2J"],
    ["BEL", "\x07"],
    ["CR", "a\rb"],
    ["DEL", "\x7f"],
    ["CSI (C1)", "\x9b2J"],
    ["NUL", "\x00"],
    ["LINE SEPARATOR", "\u2028"],
  ];
  const hasControl = (s: string) => /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]/.test(s);
  it.each(CONTROLS)("%s: quoted and escaped in a field, in the request head and in a multi-line tail", (_name, c) => {
    const line = (fields: Record<string, unknown>) => prettyLine(JSON.stringify({ time: "2026-01-01T00:00:00.000Z", level: "info", event: "request", ...fields }));
    for (const out of [
      line({ resourceId: `x${c}y` }),
      line({ method: "GET", path: `/Users/${c}`, status: 200 }),
      line({ error: `first\nsecond ${c} line` }),
      line({ detail: { nested: c } }),
    ]) {
      expect(hasControl(out)).toBe(false);
    }
    expect(line({ resourceId: `x${c}y` })).toContain(`resourceId="x`);
  });

  it("keeps plain words bare and a multi-line field on indented lines", () => {
    expect(prettyLine('{"time":"2026-01-01T00:00:00.000Z","level":"info","event":"e","a":"plain","b":"é-ü"}')).toBe("00:00:00.000 INFO  e a=plain b=é-ü");
  });
});

describe("the request line, through the real edge and app", () => {
  const store = edgeDb.store;
  const token = newToken();
  const memory = memoryLogger("debug");
  const app = createApp({ store, logger: memory.logger, authFailuresPerMinute: 2, addressOf: (r) => infoOf(r)?.client ?? "unknown" });
  let peer = "192.0.2.10";
  const fetch = edgeHandler((r) => app.handle(r), { clientAddress: () => peer, onFinish: requestLogger(memory.logger), captureBodies: true });
  const send = async (method: string, path: string, body?: unknown, headers: Record<string, string> = { Authorization: `Bearer ${token}` }) => {
    const before = memory.records.length;
    const res = await fetch(
      new Request(`http://scimd.test/api/v1/scim${path}`, {
        method,
        headers: { ...headers, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
    const text = await res.text();
    const lines = memory.records.slice(before).filter((r) => r.event === "request");
    expect(lines.length).toBe(1);
    return { res, text, line: lines[0]! as LogRecord };
  };
  beforeAll(async () => void (await store.createToken("okta", hashToken(token))));
  afterAll(() => edgeDb.cleanup());

  it("a create: operation, type, the new id, the token's name, the client, the size sent", async () => {
    const { res, text, line } = await send("POST", "/Users", userBody("edge@example.com", { password: "hunter2-secret" }));
    expect(res.status).toBe(201);
    const id = JSON.parse(text).id;
    expect(line).toMatchObject({ level: "info", method: "POST", route: "/api/v1/scim/Users", operation: "create", resourceType: "User", resourceId: id, tokenName: "okta", client: "192.0.2.10", status: 201, bytes: Buffer.byteLength(text) });
    expect(res.headers.get("x-request-id")).toBe(line.requestId as string);
    // The body is a debug line of its own: a pipeline that keeps info and above never sees it.
    expect(line.body).toBeUndefined();
    const bodyLines = memory.records.filter((r) => r.event === "request body" && r.requestId === line.requestId);
    expect(bodyLines.length).toBe(1);
    expect(bodyLines[0]).toMatchObject({ level: "debug", body: { userName: "edge@example.com", password: "[redacted]" } });
    expect(JSON.stringify(memory.records)).not.toContain("hunter2-secret");
  });

  it("at debug, only the `request body` line carries a body: a 409's request line does not", async () => {
    const before = memory.records.length;
    const { line } = await send("POST", "/Users", userBody("dup@example.com"), { Authorization: `Bearer ${token}` });
    const again = await send("POST", "/Users", userBody("dup@example.com"), { Authorization: `Bearer ${token}` });
    expect(again.res.status).toBe(409);
    expect(line.body).toBeUndefined();
    for (const r of memory.records.slice(before)) if (r.level !== "debug") expect(r.body).toBeUndefined();
    expect(memory.records.slice(before).filter((r) => r.event === "request body").map((r) => r.requestId)).toEqual([line.requestId, again.line.requestId]);
  });

  it("HEAD: no body is sent, so its line says 0 bytes, and it is a get like GET", async () => {
    const created = await send("POST", "/Users", userBody("head@example.com"));
    const id = JSON.parse(created.text).id;
    const head = await send("HEAD", `/Users/${id}`);
    expect(head.res.status).toBe(200);
    expect(head.text).toBe("");
    expect(head.line).toMatchObject({ method: "HEAD", status: 200, bytes: 0, operation: "get", resourceType: "User", resourceId: id });
    const list = await send("HEAD", "/Users?count=1");
    expect(list.line).toMatchObject({ status: 200, bytes: 0, operation: "query" });
  });

  it("a 304 and a 204 are logged with 0 bytes", async () => {
    const created = await send("POST", "/Users", userBody("etag304@example.com"));
    const { id } = JSON.parse(created.text);
    const etag = created.res.headers.get("etag")!;
    const notModified = await send("GET", `/Users/${id}`, undefined, { Authorization: `Bearer ${token}`, "If-None-Match": etag });
    expect(notModified.res.status).toBe(304);
    expect(notModified.line.bytes).toBe(0);
    const deleted = await send("DELETE", `/Users/${id}`);
    expect(deleted.res.status).toBe(204);
    expect(deleted.line.bytes).toBe(0);
  });

  it("a miscased path is logged under the route that answered it", async () => {
    const { line } = await send("GET", "/users?count=1");
    expect(line).toMatchObject({ route: "/api/v1/scim/Users", operation: "query", path: "/api/v1/scim/users", status: 200 });
  });

  it("a large group streamed: its line comes once the body is sent, with every byte counted", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 1200; i += 300) {
      const batch = await Promise.all(Array.from({ length: 300 }, (_, k) => store.create("User", { id: crypto.randomUUID(), data: { userName: `m${i + k}@example.com` } })));
      ids.push(...batch.map((u) => u.id));
    }
    const g = await send("POST", "/Groups", groupBody("big"));
    const gid = JSON.parse(g.text).id;
    await send("PATCH", `/Groups/${gid}`, patchBody({ op: "add", path: "members", value: ids.map((value) => ({ value })) }));
    const before = memory.records.length;
    const res = await fetch(new Request(`http://scimd.test/api/v1/scim/Groups/${gid}`, { headers: { Authorization: `Bearer ${token}` } }));
    expect(res.body).not.toBeNull();
    // Nothing is logged before the body has been read to its end.
    expect(memory.records.length).toBe(before);
    const text = await res.text();
    expect(JSON.parse(text).members.length).toBe(1200);
    const line = memory.records.slice(before).find((r) => r.event === "request")!;
    expect(line).toMatchObject({ operation: "get", resourceType: "Group", resourceId: gid, status: 200, bytes: Buffer.byteLength(text) });
  });

  it("a streamed group whose client goes away mid-body: one line, marked aborted, with the bytes sent until then", async () => {
    const gid = (await store.search("Group", { offset: 0, limit: 1 })).resources[0]!.id;
    const before = memory.records.length;
    const res = await fetch(new Request(`http://scimd.test/api/v1/scim/Groups/${gid}`, { headers: { Authorization: `Bearer ${token}` } }));
    const reader = res.body!.getReader();
    const first = await reader.read();
    await reader.cancel();
    const lines = memory.records.slice(before).filter((r) => r.event === "request");
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatchObject({ status: 200, aborted: true });
    expect(lines[0]!.bytes as number).toBeGreaterThanOrEqual(first.value!.byteLength);
  });

  it("refusals carry their reason and no token name; the third failure from one address is 429", async () => {
    const wrong = await send("GET", "/Users/%1B%5B2J", undefined, { Authorization: `Bearer ${newToken()}` });
    expect(wrong.line).toMatchObject({ level: "warn", status: 401, reason: "no such token" });
    expect(wrong.line.tokenName).toBeUndefined();
    const malformed = await send("GET", "/Users", undefined, { Authorization: "Bearer" });
    expect(malformed.line).toMatchObject({ status: 401, reason: "malformed header" });
    const limited = await send("GET", "/Users", undefined, {});
    expect(limited.line).toMatchObject({ level: "warn", status: 429, reason: "rate limited" });
    // An id in the path of a refused request is not logged: a stranger chooses it (control characters and all).
    expect(wrong.line.resourceId).toBeUndefined();
    // Another address has its own count.
    peer = "192.0.2.11";
    expect((await send("GET", "/Users", undefined, {})).line).toMatchObject({ status: 401, reason: "missing header", client: "192.0.2.11" });
  });

  it("a request without a Host header (a path-only URL) is logged with its path as sent", async () => {
    const m = memoryLogger("info");
    const f = edgeHandler(async () => new Response("x"), { clientAddress: () => "192.0.2.13", onFinish: requestLogger(m.logger) });
    const req = new Request("http://placeholder/api/v1/scim/Users?count=1");
    Object.defineProperty(req, "url", { value: "/api/v1/scim/Users?count=1" });
    await (await f(req)).text();
    expect(m.records[0]).toMatchObject({ path: "/api/v1/scim/Users", status: 200 });
  });

  it("at info the line has no body; with the level at error, a 200 writes nothing", async () => {
    const info = memoryLogger("info");
    const quiet = memoryLogger("error");
    for (const [m, expectLines] of [
      [info, 1],
      [quiet, 0],
    ] as const) {
      const f = edgeHandler((r) => createApp({ store, logger: m.logger }).handle(r), { clientAddress: () => "192.0.2.12", onFinish: requestLogger(m.logger), captureBodies: m.logger.enabled("debug") });
      const r = await f(new Request("http://scimd.test/api/v1/scim/Users", { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" }, body: JSON.stringify(userBody(`q${expectLines}@example.com`, { password: "pw-secret-1" })) }));
      expect(r.status).toBe(201);
      await r.text();
      expect(m.records.length).toBe(expectLines);
      for (const rec of m.records) expect(rec.body).toBeUndefined();
    }
  });
});


describe("a request without a Host header, or with a short one, through the edge on a real server", () => {
  // Elysia reads the path from the first "/" at index 11 on: `http://x/readyz` or a path-only URL
  // (HTTP/1.0 without Host) was answered 404, and a path-only `/api/v1/scim/Users` was routed as `/Users`.
  const store = hostDb.store;
  const token = newToken();
  const memory = memoryLogger("info");
  const app = createApp({ store, logger: memory.logger, addressOf: (r) => infoOf(r)?.client ?? "unknown" });
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: edgeHandler((r) => app.handle(r), { clientAddress: (r, srv) => srv?.requestIP(r)?.address ?? "unknown", onFinish: requestLogger(memory.logger) }),
  });
  const B = "/api/v1/scim";
  const head = (line: string, host: string | undefined, extra = "") =>
    host === undefined ? `${line} HTTP/1.0\r\n${extra}\r\n` : `${line} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${extra}\r\n`;
  const auth = () => `Authorization: Bearer ${token}\r\n`;
  // Each request makes the server close (HTTP/1.0, or Connection: close); the client's side stays open
  // until it does: Bun drops an answer not ready when the client half-closes (the store's I/O on PostgreSQL).
  const exchange = (port: number, text: string) => rawExchange(port, text, { halfClose: false });
  beforeAll(async () => void (await store.createToken("okta", hashToken(token))));
  afterAll(async () => {
    await server.stop(true);
    await hostDb.cleanup();
  });

  it.each([
    ["no Host (HTTP/1.0)", undefined],
    ["Host: x", "x"],
    ["Host: lb", "lb"],
    ["Host: abc", "abc"],
    ["Host: lb:80 (the default port, dropped from the URL)", "lb:80"],
  ])("%s: /readyz, /healthz, a list, a create and a get are answered by their routes, and logged with the path as sent", async (_t, host) => {
    const port = server.port!;
    expect((await exchange(port, head("GET /readyz", host))).status).toBe(200);
    expect(JSON.parse((await exchange(port, head("GET /healthz", host))).body).status).toBe("ok");
    const list = await exchange(port, head(`GET ${B}/Users?count=1`, host, auth()));
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body).schemas).toEqual(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]);
    const body = JSON.stringify(userBody(`host-${host ?? "none"}@example.com`));
    const created = await exchange(port, head(`POST ${B}/Users`, host, `${auth()}Content-Type: application/scim+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`) + body);
    expect(created.status).toBe(201);
    const user = JSON.parse(created.body);
    // Links are built on the Host the client sent; without one they are relative (no origin to name).
    const origin = host === undefined ? "" : `http://${host.replace(/:80$/, "")}`;
    expect(user.meta.location).toBe(`${origin}${B}/Users/${user.id}`);
    expect(created.headers.toLowerCase()).toContain(`\r\nlocation: ${origin}${B}/Users/${user.id}`.toLowerCase());
    expect((await exchange(port, head(`GET ${B}/Users/${user.id}`, host, auth()))).status).toBe(200);
    expect((await exchange(port, head(`GET ${B}/Users/${user.id}`, host))).status).toBe(401);
    const lines = memory.records.filter((r) => r.event === "request").slice(-6);
    expect(lines.map((r) => [r.path, r.route, r.status])).toEqual([
      ["/readyz", "/readyz", 200],
      ["/healthz", "/healthz", 200],
      [`${B}/Users`, `${B}/Users`, 200],
      [`${B}/Users`, `${B}/Users`, 201],
      [`${B}/Users/${user.id}`, `${B}/Users/:id`, 200],
      [`${B}/Users/${user.id}`, `${B}/Users/:id`, 401],
    ]);
    expect(lines[3]).toMatchObject({ operation: "create", resourceId: user.id, tokenName: "okta", client: "127.0.0.1" });
    // An endpoint name in another case is answered by its route too, and a 404 names the path as sent.
    const miscased = await exchange(port, head(`GET ${B}/users/${user.id}`, host, auth()));
    expect(miscased.status).toBe(200);
    expect(JSON.parse(miscased.body).meta.location).toBe(`${origin}${B}/Users/${user.id}`);
    const missing = await exchange(port, head(`GET ${B}/Nothing`, host, auth()));
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).detail).toBe(`no SCIM endpoint at GET ${B}/Nothing`);
  });
});
