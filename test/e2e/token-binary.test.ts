/**
 * Token scopes and expiry through the compiled binary (dist/scimd, the product): tokens made by its
 * generate-token, a read token's write refused with 403 by its serve, an expired token's 401 saying
 * when (and the request's log line saying "expired"), serve's start-up warning about a token expiring
 * within 14 days, and tokens list's columns and warning.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userBody } from "../helpers";
import { buildBinaryInto, runCli, startServe, stopAll, type Served } from "./harness";

let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-token-binary-"));
  bin = buildBinaryInto(tmp);
}, 60_000);
afterAll(() => stopAll(started, tmp));

const cli = (args: string[]) => runCli(bin, tmp, args);
function secret(args: string[]): string {
  const r = cli(args);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^scimd_[A-Za-z0-9_-]{43}\n$/);
  return r.out.trim();
}
const call = (s: Served, token: string, method: string, path: string, body?: unknown) =>
  fetch(`${s.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe("dist/scimd: token scopes and expiry", () => {
  it("a read token reads and gets 403 insufficient_scope for a write; an expired token gets 401 saying when; serve and tokens list warn about a token expiring within 14 days", async () => {
    const db = join(tmp, "scimd.db");
    const idp = secret(["generate-token", "--name", "idp", "--db", db, "--create"]);
    const reader = secret(["generate-token", "--name", "reader", "--scope", "read", "--db", db]);
    const short = secret(["generate-token", "--name", "short", "--expires-in", "1s", "--db", db]);
    secret(["generate-token", "--name", "soon", "--expires-in", "10d", "--db", db]);
    const s = await startServe(bin, tmp, ["--db", db], started);

    // serve's start-up warning, through its logger (one JSON line), with the command that rotates it.
    await s.waitForLog(/"token expiring"/);
    const warning = s.records().find((r) => r.event === "token expiring" && r.token === "soon");
    expect(warning).toMatchObject({ level: "warn", command: expect.stringContaining("tokens rotate soon --db") });
    expect(String(warning!.message)).toMatch(/^token 'soon' expires at \S+ \(in 9d 23h\)/);

    // The read token reads and searches; its write is refused and writes nothing.
    expect((await call(s, reader, "GET", "/Users")).status).toBe(200);
    expect((await call(s, reader, "POST", "/Users/.search", { filter: 'userName eq "x"' })).status).toBe(200);
    const refused = await call(s, reader, "POST", "/Users", userBody("eve@example.com"));
    expect(refused.status).toBe(403);
    expect(refused.headers.get("www-authenticate")).toBe('Bearer realm="scimd", error="insufficient_scope", scope="write"');
    const body = (await refused.json()) as { schemas: string[]; detail: string };
    expect(body.schemas).toEqual(["urn:ietf:params:scim:api:messages:2.0:Error"]);
    expect(body.detail).toContain("this token has scope 'read'");
    expect((await call(s, idp, "POST", "/Users", userBody("bob@example.com"))).status).toBe(201);
    const users = (await (await call(s, reader, "GET", "/Users")).json()) as { totalResults: number };
    expect(users.totalResults).toBe(1);

    // The 1-second token, once its lifetime ended: 401 with when.
    await Bun.sleep(1100);
    const expired = await call(s, short, "GET", "/Users");
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { detail: string }).detail).toMatch(/^the bearer token expired at \d{4}-\d\d-\d\dT[\d:.]+Z \(the end of the lifetime it was created with\)/);
    await s.waitForLog(/"reason":"expired"/);
    const line = s.records().find((r) => r.reason === "expired");
    expect(line).toMatchObject({ status: 401, level: "warn" });
    // No secret in the log.
    for (const t of [idp, reader, short]) expect(s.log()).not.toContain(t);

    // tokens list: scope and expiry columns; the warnings on stderr (the expired one first).
    const list = cli(["tokens", "list", "--db", db]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^NAME +ID +SCOPE +STATE +EXPIRES +CREATED +LAST USED$/m);
    expect(list.out).toMatch(/^reader +\S+ +read +active +never /m);
    expect(list.out).toMatch(/^short +\S+ +write +expired /m);
    expect(list.err).toMatch(/^warning: token 'short' expired at .*\n {2}.*tokens rotate short --db .*\nwarning: token 'soon' expires at .* \(in 9d 23h\)/);
    expect(await s.stop()).toBe(0);
  }, 30_000);
});
