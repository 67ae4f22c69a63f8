/**
 * Replays recorded identity-provider sessions (test/fixtures/idp/*.json) against a real server, one
 * fresh server and database per session, one test per step, in order.
 *
 * Fixture format:
 *   { idp, flow, source: [{title, url}], steps: [{ name, request, capture?, expect }] }
 *   request: { method, path, query?: string (sent as written) | {k: v} (encoded), headers?, body? | rawBody?,
 *              auth?: "none" | "invalid" }
 *   capture: a name under which the parsed response body is kept; later steps use "{{name.a.b.0.c}}".
 *            A string that is only a placeholder is replaced by the captured value itself (any type).
 *   expect:  { status, body?: partial deep match, headers?: {name: value | matcher} }
 * Matchers inside `expect`: {"$absent": true}, {"$present": true}, {"$match": "regex"}, {"$length": n},
 * {"$includes": [...]}, {"$excludes": [...]}, {"$type": "boolean"}; plain arrays must have the same
 * length and match element by element in any order; plain objects match the keys they list.
 *
 * Every response is also checked for what every IdP relies on: a body is `application/scim+json`,
 * 201 carries `Location` equal to `meta.location`, 204 has no body, and errors are SCIM Error bodies
 * whose `status` is the HTTP status as a string, with a `detail` (RFC 7644 §3.12).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ERROR, startServer, type TestServer, readResponse } from "../helpers";

interface StepRequest {
  method: string;
  path: string;
  query?: string | Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
  rawBody?: string;
  auth?: "none" | "invalid";
}
interface Step {
  name: string;
  request: StepRequest;
  capture?: string;
  expect: { status: number; body?: unknown; headers?: Record<string, unknown> };
}
interface Session {
  idp: string;
  flow: string;
  source: { title: string; url: string }[];
  steps: Step[];
}

const FIXTURES = join(import.meta.dir, "..", "fixtures", "idp");
const files = readdirSync(FIXTURES)
  .filter((f) => f.endsWith(".json"))
  .sort();
const sessions: [string, Session][] = files.map((f) => [f, JSON.parse(readFileSync(join(FIXTURES, f), "utf8")) as Session]);

// ---------------------------------------------------------------- placeholders

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_$]+(?:\.[A-Za-z0-9_$]+)*)\s*\}\}/g;

function lookup(vars: Map<string, unknown>, expr: string, step: string): unknown {
  const [head, ...rest] = expr.split(".");
  if (!vars.has(head!)) throw new Error(`step "${step}" uses {{${expr}}}, but no earlier step captured "${head}" (did that step fail?)`);
  let v: unknown = vars.get(head!);
  for (const k of rest) {
    if (v === null || typeof v !== "object") throw new Error(`step "${step}" uses {{${expr}}}: "${k}" cannot be read from ${JSON.stringify(v)}`);
    v = (v as Record<string, unknown>)[k];
  }
  if (v === undefined) throw new Error(`step "${step}" uses {{${expr}}}, which is undefined in the captured response`);
  return v;
}

function substitute(value: unknown, vars: Map<string, unknown>, step: string): unknown {
  if (typeof value === "string") {
    const whole = value.match(/^\{\{\s*([A-Za-z0-9_$.]+)\s*\}\}$/);
    if (whole) return lookup(vars, whole[1]!, step);
    return value.replace(PLACEHOLDER, (_, expr: string) => String(lookup(vars, expr, step)));
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars, step));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [substitute(k, vars, step) as string, substitute(v, vars, step)]));
  return value;
}

function placeholdersIn(value: unknown): string[] {
  const text = JSON.stringify(value) ?? "";
  return [...text.matchAll(PLACEHOLDER)].map((m) => m[1]!.split(".")[0]!);
}

// ---------------------------------------------------------------- partial matching

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isMatcher = (v: unknown): v is Record<string, unknown> => isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith("$") && k !== "$ref");

/** The first difference between `expected` (a partial description) and `actual`, or undefined. */
function mismatch(expected: unknown, actual: unknown, at: string): string | undefined {
  if (isMatcher(expected)) {
    for (const [k, arg] of Object.entries(expected)) {
      switch (k) {
        case "$absent":
          if (arg && actual !== undefined) return `${at}: expected to be absent, got ${JSON.stringify(actual)}`;
          break;
        case "$present":
          if (arg && (actual === undefined || actual === null)) return `${at}: expected to be present`;
          break;
        case "$match":
          if (typeof actual !== "string" || !new RegExp(arg as string).test(actual)) return `${at}: expected a string matching /${arg}/, got ${JSON.stringify(actual)}`;
          break;
        case "$type":
          if (typeof actual !== arg) return `${at}: expected a ${arg}, got ${JSON.stringify(actual)}`;
          break;
        case "$length":
          if (!Array.isArray(actual) || actual.length !== arg) return `${at}: expected an array of ${arg}, got ${JSON.stringify(actual)}`;
          break;
        case "$includes":
          if (!Array.isArray(actual)) return `${at}: expected an array, got ${JSON.stringify(actual)}`;
          for (const [i, e] of (arg as unknown[]).entries())
            if (!actual.some((a) => mismatch(e, a, "") === undefined)) return `${at}: no element matches $includes[${i}] ${JSON.stringify(e)}; got ${JSON.stringify(actual)}`;
          break;
        case "$excludes":
          if (actual === undefined) break;
          if (!Array.isArray(actual)) return `${at}: expected an array or nothing, got ${JSON.stringify(actual)}`;
          for (const e of arg as unknown[]) if (actual.some((a) => mismatch(e, a, "") === undefined)) return `${at}: an element matches $excludes ${JSON.stringify(e)}; got ${JSON.stringify(actual)}`;
          break;
        default:
          return `${at}: unknown matcher ${k} in the fixture`;
      }
    }
    return undefined;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${at}: expected an array, got ${JSON.stringify(actual)}`;
    if (actual.length !== expected.length) return `${at}: expected ${expected.length} element(s), got ${actual.length}: ${JSON.stringify(actual)}`;
    const used = new Set<number>();
    for (const [i, e] of expected.entries()) {
      const j = actual.findIndex((a, k) => !used.has(k) && mismatch(e, a, "") === undefined);
      if (j < 0) return `${at}[${i}]: no element matches ${JSON.stringify(e)}; got ${JSON.stringify(actual)}`;
      used.add(j);
    }
    return undefined;
  }
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) return `${at}: expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, e] of Object.entries(expected)) {
      const m = mismatch(e, actual[k], at ? `${at}.${k}` : k);
      if (m) return m;
    }
    return undefined;
  }
  if (expected !== actual) return `${at || "value"}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  return undefined;
}

// ---------------------------------------------------------------- replay

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

async function send(server: TestServer, r: StepRequest): Promise<Reply> {
  let url = `${server.base}${r.path}`;
  if (r.query !== undefined) {
    const qs = typeof r.query === "string" ? r.query : Object.entries(r.query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
    url += `?${qs}`;
  }
  const headers: Record<string, string> = { ...(r.headers ?? {}) };
  if (r.auth === "invalid") headers.Authorization = "Bearer not-a-token-this-server-issued";
  else if (r.auth !== "none" && !Object.keys(headers).some((k) => k.toLowerCase() === "authorization")) headers.Authorization = `Bearer ${server.token}`;
  let payload: string | undefined;
  if (r.rawBody !== undefined) payload = r.rawBody;
  else if (r.body !== undefined) payload = JSON.stringify(r.body);
  if (payload !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) headers["Content-Type"] = "application/scim+json";
  return readResponse(await fetch(url, { method: r.method, headers, body: payload }));
}

/** Everything wrong with a reply, as lines naming the step; empty when it is what the fixture expects. */
function problems(step: Step, request: StepRequest, expected: Step["expect"], reply: Reply): string[] {
  const out: string[] = [];
  if (reply.status !== expected.status) out.push(`status: expected ${expected.status}, got ${reply.status}`);
  const type = reply.headers.get("content-type") ?? "";
  if (reply.text !== "" && !/^application\/scim\+json\b/i.test(type)) out.push(`Content-Type: a body must be application/scim+json (RFC 7644 §3.1), got "${type}"`);
  if (reply.status === 201) {
    const location = reply.headers.get("location");
    if (!location) out.push("Location: 201 Created must carry a Location header (RFC 7644 §3.3)");
    else if (reply.body?.meta?.location !== location) out.push(`Location: "${location}" differs from meta.location ${JSON.stringify(reply.body?.meta?.location)}`);
  }
  if (reply.status === 204 && reply.text !== "") out.push(`204 must have no body, got ${reply.text.slice(0, 200)}`);
  if (reply.status >= 400) {
    const b = reply.body;
    if (!b || !Array.isArray(b.schemas) || !b.schemas.includes(ERROR)) out.push(`error body: expected a SCIM Error (RFC 7644 §3.12), got ${reply.text.slice(0, 300)}`);
    else {
      if (b.status !== String(reply.status)) out.push(`error body: status must be the string "${reply.status}", got ${JSON.stringify(b.status)}`);
      if (typeof b.detail !== "string" || b.detail === "") out.push("error body: detail must be a non-empty string");
    }
  }
  if (expected.body !== undefined) {
    const m = mismatch(expected.body, reply.body, "");
    if (m) out.push(`body: ${m}`);
  }
  for (const [name, want] of Object.entries(expected.headers ?? {})) {
    const got = reply.headers.get(name) ?? undefined;
    const m = typeof want === "string" ? (got === want ? undefined : `expected "${want}", got ${JSON.stringify(got)}`) : mismatch(want, got, "");
    if (m) out.push(`header ${name}: ${m}`);
  }
  if (out.length) out.unshift(`step "${step.name}": ${request.method} ${request.path}${typeof request.query === "string" ? `?${request.query}` : ""} answered ${reply.status} ${reply.text.slice(0, 600)}`);
  return out;
}

// ---------------------------------------------------------------- the fixtures themselves

describe("IdP fixtures are well-formed recorded sessions", () => {
  test.each(sessions)("%s cites its source document and every placeholder refers to an earlier capture", (_file, s) => {
    expect(typeof s.idp).toBe("string");
    expect(typeof s.flow).toBe("string");
    expect(Array.isArray(s.source) && s.source.length > 0).toBe(true);
    for (const src of s.source) {
      expect(src.title.length).toBeGreaterThan(0);
      expect(src.url).toMatch(/^https:\/\//);
    }
    expect(s.steps.length).toBeGreaterThan(0);
    const names = new Set<string>();
    const captured = new Set<string>();
    for (const step of s.steps) {
      expect(names.has(step.name), `duplicate step name "${step.name}"`).toBe(false);
      names.add(step.name);
      expect(typeof step.expect?.status, `step "${step.name}" has no expect.status`).toBe("number");
      for (const name of placeholdersIn(step.request)) expect(captured.has(name), `step "${step.name}" uses {{${name}…}} before it is captured`).toBe(true);
      if (step.capture) captured.add(step.capture);
      for (const name of placeholdersIn(step.expect)) expect(captured.has(name), `step "${step.name}" expects {{${name}…}} before it is captured`).toBe(true);
    }
  });

  // The shapes IdPs are known to send: each must appear in at least one recorded request.
  const requests = sessions.flatMap(([, s]) => s.steps.map((st) => st.request));
  const ops = requests.flatMap((r) => ((r.body as any)?.Operations ?? []) as Record<string, unknown>[]);
  const text = (v: unknown) => JSON.stringify(v ?? "");
  const shapes: [string, () => boolean][] = [
    ["an op name in PascalCase (Replace)", () => ops.some((o) => o.op === "Replace")],
    ["an op name in upper case (ADD)", () => ops.some((o) => o.op === "ADD")],
    ['a boolean sent as the string "False" in a PATCH value', () => ops.some((o) => text(o.value).includes('"False"') || o.value === "False")],
    ['a boolean sent as a string in a POST or PUT body', () => requests.some((r) => (r.method === "POST" || r.method === "PUT") && /"active":"(True|False|true|false)"/.test(text(r.body)))],
    ['the emails[type eq "work"].value path', () => ops.some((o) => o.path === 'emails[type eq "work"].value')],
    ['the roles[primary eq "True"].value path', () => ops.some((o) => o.path === 'roles[primary eq "True"].value')],
    ["a member removal with a value array", () => ops.some((o) => String(o.op).toLowerCase() === "remove" && o.path === "members" && Array.isArray(o.value) && o.value.length > 1)],
    ["the ADSCIM Group schema URN", () => requests.some((r) => text(r.body).includes("ADSCIM"))],
    ["the SCIM 1.0 core schema URN", () => requests.some((r) => text(r.body).includes("urn:scim:schemas:core:1.0"))],
    ["a %2B-encoded plus sign in a filter", () => requests.some((r) => typeof r.query === "string" && r.query.includes("%2B"))],
    ["a request without a token", () => requests.some((r) => r.auth === "none")],
    ["a DELETE carrying a Content-Type", () => requests.some((r) => r.method === "DELETE" && Object.keys(r.headers ?? {}).some((k) => k.toLowerCase() === "content-type"))],
  ];
  test.each(shapes)("the recorded sessions include %s", (_label, present) => {
    expect(present()).toBe(true);
  });
});

// ---------------------------------------------------------------- replay every session

for (const [file, session] of sessions) {
  describe(`${session.idp}: ${session.flow} (${file})`, () => {
    let server: TestServer;
    const vars = new Map<string, unknown>();
    beforeAll(async () => {
      server = await startServer();
    });
    afterAll(async () => {
      await server?.close();
    });
    for (const [i, step] of session.steps.entries()) {
      test(`step ${i + 1}: ${step.name}`, async () => {
        const request = substitute(step.request, vars, step.name) as StepRequest;
        const reply = await send(server, request);
        // Capture first, so that one wrong expectation does not hide the steps after it.
        if (step.capture) vars.set(step.capture, reply.body);
        const expected = substitute(step.expect, vars, step.name) as Step["expect"];
        const found = problems(step, request, expected, reply);
        if (found.length) throw new Error(found.join("\n  "));
        expect(found).toEqual([]);
      });
    }
  });
}
