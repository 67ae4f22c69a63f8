/**
 * Request bodies must be UTF-8 (RFC 7644 §3.8, RFC 8259 §8.1): invalid bytes are 400 invalidSyntax
 * naming the byte, never silently replaced by U+FFFD. Raw bytes through a real server.
 */
import { afterAll, beforeAll, describe, expect, it, test } from "bun:test";
import fc from "fast-check";
import { invalidUtf8At } from "../../src/http/scim-plugin";
import { expectScimError, GROUP, groupBody, PATCH_OP, readResponse, startServer, USER, type TestServer } from "../helpers";

let s: TestServer;
beforeAll(async () => (s = await startServer()));
afterAll(() => s.close());

const enc = new TextEncoder();
/** The bytes of `before`, then `bad`, then `after`, all but `bad` UTF-8. */
const bytes = (before: string, bad: number[], after: string) => new Uint8Array([...enc.encode(before), ...bad, ...enc.encode(after)]);
const send = async (method: string, path: string, body: Uint8Array) =>
  readResponse(await fetch(`${s.base}${path}`, { method, headers: { Authorization: `Bearer ${s.token}`, "Content-Type": "application/scim+json" }, body }));
const userCount = async () => (await s.req("GET", "/Users?count=0")).body.totalResults as number;

const prefix = `{"schemas":["${USER}"],"userName":"jos`;
const suffix = `@example.com","displayName":"José","emails":[{"value":"jose@example.com"}]}`;

describe("request bodies that are not valid UTF-8", () => {
  test.each([
    ["a Latin-1 é", [0xe9]],
    ["a stray continuation byte", [0x80]],
    ["an overlong encoding of '/'", [0xc0, 0xaf]],
    ["an overlong three-byte sequence", [0xe0, 0x80, 0xaf]],
    ["a UTF-8-encoded surrogate (CESU-8)", [0xed, 0xa0, 0x80]],
    ["a code point beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["the byte 0xFF", [0xff]],
    ["a sequence cut short", [0xe2, 0x82]],
  ])("refuses POST /Users with %s with 400 invalidSyntax naming the byte offset, and stores nothing", async (_case, bad) => {
    const before = await userCount();
    const r = await send("POST", "/Users", bytes(prefix, bad, suffix));
    expectScimError(r, 400, "invalidSyntax");
    expect(r.body.detail).toContain(`not valid UTF-8 at byte ${enc.encode(prefix).length} (0x${bad[0]!.toString(16).toUpperCase()}`);
    expect(await userCount()).toBe(before);
  });

  it("refuses a body cut off inside a multi-byte character at its very end", async () => {
    const body = bytes(`{"schemas":["${GROUP}"],"displayName":"x"}`, [0xf0, 0x9f], "");
    const r = await send("POST", "/Groups", body);
    expectScimError(r, 400, "invalidSyntax");
    expect(r.body.detail).toContain(`at byte ${body.length - 2} (0xF0`);
  });

  it("refuses invalid UTF-8 on PUT, PATCH and every .search route too, and the stored user stays as it was", async () => {
    const created = await s.req("POST", "/Users", { schemas: [USER], userName: "utf8-put@example.com", displayName: "P", emails: [{ value: "p@example.com" }] });
    expect(created.status).toBe(201);
    const put = bytes(`{"schemas":["${USER}"],"userName":"utf8-put@example.com","displayName":"`, [0xe9], `","emails":[{"value":"p@example.com"}]}`);
    expectScimError(await send("PUT", `/Users/${created.body.id}`, put), 400, "invalidSyntax");
    const patch = bytes(`{"schemas":["${PATCH_OP}"],"Operations":[{"op":"replace","path":"displayName","value":"`, [0xe9], `"}]}`);
    expectScimError(await send("PATCH", `/Users/${created.body.id}`, patch), 400, "invalidSyntax");
    const search = bytes(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"displayName eq \\"`, [0xe9], `\\""}`);
    for (const path of ["/Users/.search", "/Groups/.search", "/.search"]) expectScimError(await send("POST", path, search), 400, "invalidSyntax");
    const now = (await s.req("GET", `/Users/${created.body.id}`)).body;
    expect(now.displayName).toBe("P");
    expect(now.meta.version).toBe(created.body.meta.version);
  });

  it("accepts a body that starts with a UTF-8 byte order mark and ignores the mark (RFC 8259 §8.1)", async () => {
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(JSON.stringify(groupBody("BOM Group ✓")))]);
    const r = await send("POST", "/Groups", body);
    expect(r.status).toBe(201);
    expect(r.body.displayName).toBe("BOM Group ✓");
  });

  it("accepts every valid UTF-8 character class: ASCII, two-, three- and four-byte sequences", async () => {
    const r = await send("POST", "/Groups", enc.encode(JSON.stringify(groupBody("Ærø 日本 😀 grp"))));
    expect(r.status).toBe(201);
    expect(r.body.displayName).toBe("Ærø 日本 😀 grp");
  });
});

describe("invalidUtf8At", () => {
  it("agrees with a fatal TextDecoder on random bytes, and the bytes before the offset decode", () => {
    const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const valid = (b: Uint8Array) => {
      try {
        fatal.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    const mixed = fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0x80, 0xbf, 0xa0, 0x9f, 0x90, 0x8f)), { maxLength: 12 });
    const withText = fc.tuple(fc.string({ unit: "binary", maxLength: 6 }), mixed).map(([t, b]) => new Uint8Array([...enc.encode(t), ...b]));
    fc.assert(
      fc.property(withText, (b) => {
        const at = invalidUtf8At(b);
        expect(at === -1).toBe(valid(b));
        if (at >= 0) expect(valid(b.subarray(0, at))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
