/**
 * The log of dist/scimd as a process: every line it writes to stdout over a session with valid,
 * invalid, revoked and expired tokens, malformed headers, passwords in bodies, 401s and 429s is
 * parsed as JSON and holds no token, no Authorization value and no password; each request has
 * exactly one line with the fields the operator needs; --trust-proxy decides the client address.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rawExchange, userBody } from "../helpers";
import { buildBinaryInto, cleanEnv, startServe, stopAll, type Served } from "./harness";

const started = new Set<Bun.Subprocess>();
let tmp = "";
let bin = "";

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-logs-"));
  bin = buildBinaryInto(tmp);
}, 60_000);
afterAll(() => stopAll(started, tmp));

function cli(args: string[]): string {
  const p = Bun.spawnSync([bin, ...args], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`scimd ${args.join(" ")} failed (${p.exitCode}): ${p.stderr.toString()}`);
  return p.stdout.toString().trim();
}

const PASSWORDS = ["Pa55word-create-7Q", "Pa55word-put-8R", "Pa55word-patch-9S", "Pa55word-nopath-0T"];
type Rec = Record<string, unknown>;

/**
 * One session against a server: returns the secrets it used and the requests it sent (with their
 * X-Request-Id) so that the log can be checked against them.
 */
async function session(s: Served, db: string) {
  const good = cli(["generate-token", "--name", "okta", "--db", db]);
  const revoked = cli(["generate-token", "--name", "old", "--db", db]);
  cli(["tokens", "revoke", "old", "--db", db]);
  const expired = cli(["generate-token", "--name", "entra", "--db", db]);
  const rotated = cli(["tokens", "rotate", "entra", "--grace", "0s", "--db", db]);
  const sent: { id: string; status: number }[] = [];
  let n = 0;
  const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const id = `t-${++n}`;
    const res = await fetch(`${s.base}${path}`, {
      method,
      headers: { "X-Request-Id": id, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.headers.get("x-request-id")).toBe(id);
    sent.push({ id, status: res.status });
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const auth = (t: string) => ({ Authorization: `Bearer ${t}` });
  const user = userBody("logged@example.com", { password: PASSWORDS[0] });
  const created = await call("POST", "/Users", auth(good), user);
  expect(created.status).toBe(201);
  const uid = created.body.id as string;
  expect((await call("GET", `/Users/${uid}`, auth(good))).status).toBe(200);
  expect((await call("PUT", `/Users/${uid}`, auth(good), { ...user, password: PASSWORDS[1] })).status).toBe(200);
  const patch = (Operations: unknown[]) => ({ schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations });
  expect((await call("PATCH", `/Users/${uid}`, auth(good), patch([{ op: "replace", path: "password", value: PASSWORDS[2] }]))).status).toBe(200);
  expect((await call("PATCH", `/Users/${uid}`, auth(good), patch([{ op: "replace", value: { PassWord: PASSWORDS[3] } }]))).status).toBe(200);
  expect((await call("GET", `/Users?filter=${encodeURIComponent('userName eq "logged@example.com"')}`, auth(rotated))).status).toBe(200);
  // The refusals, one of each reason, then more failures than the limit (5 a minute): 429.
  expect((await call("GET", "/Users", {})).status).toBe(401);
  expect((await call("GET", "/Users", { Authorization: `Basic ${Buffer.from(`x:${good}`).toString("base64")}` })).status).toBe(401);
  expect((await call("GET", "/Users", auth(expired))).status).toBe(401);
  expect((await call("GET", "/Users", auth(revoked))).status).toBe(401);
  expect((await call("GET", "/Users", auth(`scimd_${"B".repeat(43)}`))).status).toBe(401);
  // The expired secret was not counted (it keeps its 401 saying why): a fifth failure, then 429.
  expect((await call("GET", "/Users", auth(`scimd_${"C".repeat(43)}`))).status).toBe(401);
  expect((await call("GET", "/Users", auth(good.slice(0, -4) + "AAAA"))).status).toBe(429);
  expect((await call("DELETE", `/Users/${uid}`, auth(good))).status).toBe(204);
  return { secrets: [good, revoked, expired, rotated], sent, uid };
}

/** Every line is JSON and holds no secret: no token, no Authorization value, no password. */
function expectNoSecret(s: Served, secrets: string[]) {
  const records = s.records();
  expect(records.length).toBeGreaterThan(5);
  for (const line of s.log().split("\n")) {
    for (const secret of [...secrets, ...PASSWORDS, ...secrets.map((t) => Buffer.from(`x:${t}`).toString("base64"))]) expect(line).not.toContain(secret);
    expect(line).not.toMatch(/authorization|bearer|basic /i);
    expect(line).not.toContain("scimd_");
  }
  return records;
}

describe("dist/scimd's log (info, the default)", () => {
  let s: Served;
  let records: Rec[];
  let run: Awaited<ReturnType<typeof session>>;
  const db = () => join(tmp, "info", "scimd.db");

  beforeAll(async () => {
    s = await startServe(bin, tmp, ["--db", db(), "--auth-failures-per-minute", "5"], started);
    run = await session(s, db());
    expect(await s.stop()).toBe(0);
    records = expectNoSecret(s, run.secrets);
  }, 30_000);

  it("writes the lifecycle: started, migrated and database created (a new database), listening, stopping, stopped", () => {
    const events = records.filter((r) => r.event !== "request" && r.event !== "no token yet").map((r) => r.event);
    expect(events).toEqual(["started", ...events.filter((e) => e === "migrated"), "database created", "listening", "stopping", "stopped"]);
    const created = records.find((r) => r.event === "database created");
    expect(created?.level).toBe("warn");
    expect(String(created?.message)).toStartWith(`created a new database at ${db()}:`);
    expect(events.filter((e) => e === "migrated").length).toBeGreaterThan(0);
    const listening = records.find((r) => r.event === "listening")!;
    expect(listening.apiUrl).toBe(s.base);
    expect(records.find((r) => r.event === "stopping")!.signal).toBe("SIGTERM");
    for (const r of records) {
      expect(typeof r.time).toBe("string");
      expect(["info", "warn", "error"]).toContain(r.level as string);
    }
  });

  it("writes exactly one request line per request, under its X-Request-Id, with status, duration and bytes", () => {
    const lines = records.filter((r) => r.event === "request" && String(r.requestId).startsWith("t-"));
    expect(lines.map((r) => [r.requestId, r.status])).toEqual(run.sent.map((q) => [q.id, q.status]));
    for (const r of lines) {
      expect(r.client).toBe("127.0.0.1");
      expect(typeof r.durationMs).toBe("number");
      expect(r.body).toBeUndefined();
      if (r.status === 204) expect(r.bytes).toBe(0);
      else if (typeof r.bytes !== "number") throw new Error(JSON.stringify(r));
      else expect(r.bytes as number).toBeGreaterThan(0);
    }
  });

  it("names the SCIM operation, resource type and id, and the token's name", () => {
    const ok = records.filter((r) => r.event === "request" && r.path !== "/healthz" && (r.status as number) < 300);
    expect(ok.map((r) => [r.method, r.route, r.operation, r.resourceType, r.tokenName])).toEqual([
      ["POST", "/api/v1/scim/Users", "create", "User", "okta"],
      ["GET", "/api/v1/scim/Users/:id", "get", "User", "okta"],
      ["PUT", "/api/v1/scim/Users/:id", "replace", "User", "okta"],
      ["PATCH", "/api/v1/scim/Users/:id", "patch", "User", "okta"],
      ["PATCH", "/api/v1/scim/Users/:id", "patch", "User", "okta"],
      ["GET", "/api/v1/scim/Users", "query", "User", "entra"],
      ["DELETE", "/api/v1/scim/Users/:id", "delete", "User", "okta"],
    ]);
    for (const r of ok.filter((r) => r.operation !== "query")) expect(r.resourceId).toBe(run.uid);
    expect(ok.find((r) => r.operation === "get")!.path).toBe(`/api/v1/scim/Users/${run.uid}`);
  });

  it("logs each refusal as a warning with its reason, 429 included", () => {
    const refused = records.filter((r) => r.event === "request" && (r.status === 401 || r.status === 429));
    expect(refused.map((r) => [r.status, r.reason, r.level])).toEqual([
      [401, "missing header", "warn"],
      [401, "malformed header", "warn"],
      [401, "expired", "warn"],
      [401, "revoked", "warn"],
      [401, "no such token", "warn"],
      [401, "no such token", "warn"],
      [429, "rate limited", "warn"],
    ]);
    for (const r of refused) expect(r.tokenName).toBeUndefined();
  });
});

describe("dist/scimd's log at --log-level debug", () => {
  it("adds the request bodies with every password redacted, and still no secret", async () => {
    const db = join(tmp, "debug", "scimd.db");
    const s = await startServe(bin, tmp, ["--db", db, "--auth-failures-per-minute", "5", "--log-level", "debug"], started);
    const run = await session(s, db);
    expect(await s.stop()).toBe(0);
    const records = expectNoSecret(s, run.secrets);
    // Bodies are debug lines of their own, under the request's id; the request line never holds one.
    expect(records.filter((r) => r.event === "request" && r.body !== undefined)).toEqual([]);
    const bodyLines = records.filter((r) => r.event === "request body");
    for (const r of bodyLines) expect(r.level).toBe("debug");
    const bodies = bodyLines.map((r) => r.body as Rec);
    expect(bodies.length).toBe(4);
    expect(bodies[0]).toMatchObject({ userName: "logged@example.com", password: "[redacted]" });
    expect(bodies[1]).toMatchObject({ password: "[redacted]" });
    expect(bodies[2]).toMatchObject({ Operations: [{ op: "replace", path: "password", value: "[redacted]" }] });
    expect(bodies[3]).toMatchObject({ Operations: [{ op: "replace", value: { PassWord: "[redacted]" } }] });
    const requestIds = new Set(records.filter((r) => r.event === "request").map((r) => r.requestId));
    for (const r of bodyLines) expect(requestIds.has(r.requestId)).toBe(true);
  }, 30_000);

  it("--log-level error writes no request line for a 200 or a 401, only the start", async () => {
    const db = join(tmp, "error", "scimd.db");
    const s = await startServe(bin, tmp, ["--db", db, "--log-level", "error"], started);
    await fetch(`${s.base}/Users`);
    await fetch(`${s.url}/healthz`);
    expect(await s.stop()).toBe(0);
    expect(s.records()).toEqual([]);
  });
});

describe("dist/scimd --trust-proxy", () => {
  const failing = (s: Served, forwarded: string) => fetch(`${s.base}/Users`, { headers: { "X-Forwarded-For": forwarded, Authorization: "Bearer wrong" } }).then((r) => r.status);

  it("takes the client from X-Forwarded-For behind a trusted proxy, for the log and the failed-auth limit", async () => {
    const s = await startServe(bin, tmp, ["--db", join(tmp, "proxy", "scimd.db"), "--auth-failures-per-minute", "2", "--trust-proxy", "10.0.0.0/8,127.0.0.1"], started);
    try {
      // The leftmost hop is whatever the client wrote; the rightmost untrusted one is the client.
      expect(await failing(s, "192.0.2.66, 203.0.113.7, 10.1.2.3")).toBe(401);
      expect(await failing(s, "203.0.113.7")).toBe(401);
      expect(await failing(s, "203.0.113.7")).toBe(429);
      // Another client behind the same proxy has its own count.
      expect(await failing(s, "198.51.100.9")).toBe(401);
    } finally {
      expect(await s.stop()).toBe(0);
    }
    const clients = s.records().filter((r) => r.event === "request" && r.path !== "/healthz").map((r) => r.client);
    expect(clients).toEqual(["203.0.113.7", "203.0.113.7", "203.0.113.7", "198.51.100.9"]);
  });

  it("ignores X-Forwarded-For without --trust-proxy", async () => {
    const s = await startServe(bin, tmp, ["--db", join(tmp, "noproxy", "scimd.db"), "--auth-failures-per-minute", "2"], started);
    try {
      expect(await failing(s, "203.0.113.1")).toBe(401);
      expect(await failing(s, "203.0.113.2")).toBe(401);
      expect(await failing(s, "203.0.113.3")).toBe(429);
    } finally {
      expect(await s.stop()).toBe(0);
    }
    expect(s.records().filter((r) => r.event === "request" && r.path !== "/healthz").map((r) => r.client)).toEqual(["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
  });

  it("refuses a --trust-proxy value that is no address or range, naming it", () => {
    const p = Bun.spawnSync([bin, "serve", "--trust-proxy", "10.0.0.0/8,proxy.local"], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
    expect(p.exitCode).toBe(2);
    expect(p.stderr.toString()).toContain("scimd: --trust-proxy: 'proxy.local' is not an IP address or CIDR range");
  });
});


describe("dist/scimd without a Host header, or with a short one", () => {
  it("answers /readyz and the API by their routes (HTTP/1.0 without Host, Host: x), and logs the path as sent", async () => {
    const db = join(tmp, "host", "scimd.db");
    const s = await startServe(bin, tmp, ["--db", db], started);
    const token = cli(["generate-token", "--name", "okta", "--db", db]);
    const port = Number(new URL(s.url).port);
    const got: [string, number][] = [];
    try {
      for (const [name, open] of [
        ["HTTP/1.0", (line: string) => `${line} HTTP/1.0\r\n`],
        ["Host: x", (line: string) => `${line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n`],
      ] as const) {
        got.push([`${name} readyz`, (await rawExchange(port, `${open("GET /readyz")}\r\n`)).status]);
        const list = await rawExchange(port, `${open("GET /api/v1/scim/Users?count=0")}Authorization: Bearer ${token}\r\n\r\n`);
        got.push([`${name} list`, list.status]);
        expect(JSON.parse(list.body).totalResults).toBe(0);
      }
    } finally {
      expect(await s.stop()).toBe(0);
    }
    expect(got).toEqual([
      ["HTTP/1.0 readyz", 200],
      ["HTTP/1.0 list", 200],
      ["Host: x readyz", 200],
      ["Host: x list", 200],
    ]);
    const lines = s.records().filter((r) => r.event === "request" && r.path !== "/healthz");
    expect(lines.map((r) => [r.path, r.route, r.status])).toEqual([
      ["/readyz", "/readyz", 200],
      ["/api/v1/scim/Users", "/api/v1/scim/Users", 200],
      ["/readyz", "/readyz", 200],
      ["/api/v1/scim/Users", "/api/v1/scim/Users", 200],
    ]);
  });
});
