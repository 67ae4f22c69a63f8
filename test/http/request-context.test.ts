/**
 * The request context every SCIM operation is called with: the controllers hand each operation the
 * token record the request authenticated with (resolved by the auth plugin), the base URL, the
 * projection asked for and the conditional headers as sent. The operations here are the real ones on
 * a real store; a subclass only records the context of each call.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Elysia } from "elysia";
import { createApp, SCIM_BASE_PATH } from "../../src/app";
import { SILENT_LOGGER } from "../../src/log";
import { authPlugin, FailureLimiter } from "../../src/http/auth";
import { resourceController, rootSearchController } from "../../src/http/resources";
import { scimPlugin } from "../../src/http/scim-plugin";
import { ScimOperations, type SearchParams } from "../../src/scim/operations";
import type { RequestContext, ScimResult } from "../../src/scim/result";
import type { ResourceKind } from "../../src/scim/schema";
import type { Store } from "../../src/store/store";
import type { TokenRecord } from "../../src/store/store";
import { hashToken, newToken } from "../../src/tokens";
import { groupBody, openTestStore, patchBody, readResponse, userBody } from "../helpers";

const BASE = `https://scim.example.com${SCIM_BASE_PATH}`;

/** The real operations, recording the context of every call. */
class Recording extends ScimOperations {
  readonly calls: { op: string; ctx: RequestContext }[] = [];
  private seen(op: string, ctx: RequestContext) {
    this.calls.push({ op, ctx });
  }
  override get(kind: ResourceKind, id: string, ctx: RequestContext): Promise<ScimResult> {
    this.seen("get", ctx);
    return super.get(kind, id, ctx);
  }
  override create(kind: ResourceKind, body: unknown, ctx: RequestContext): Promise<ScimResult> {
    this.seen("create", ctx);
    return super.create(kind, body, ctx);
  }
  override replace(kind: ResourceKind, id: string, body: unknown, ctx: RequestContext): Promise<ScimResult> {
    this.seen("replace", ctx);
    return super.replace(kind, id, body, ctx);
  }
  override patch(kind: ResourceKind, id: string, body: unknown, ctx: RequestContext): Promise<ScimResult> {
    this.seen("patch", ctx);
    return super.patch(kind, id, body, ctx);
  }
  override delete(kind: ResourceKind, id: string, ctx: RequestContext): Promise<ScimResult> {
    this.seen("delete", ctx);
    return super.delete(kind, id, ctx);
  }
  override search(kind: ResourceKind | undefined, params: SearchParams, ctx: RequestContext): Promise<ScimResult> {
    this.seen("search", ctx);
    return super.search(kind, params, ctx);
  }
}

let store: Store;
let cleanup: () => Promise<void>;
let ops: Recording;
let app: { handle: (r: Request) => Promise<Response> };
const tokens: Record<"okta" | "entra", { secret: string; record?: TokenRecord }> = { okta: { secret: newToken() }, entra: { secret: newToken() } };

beforeAll(async () => {
  const t = await openTestStore();
  cleanup = t.cleanup;
  store = t.store;
  for (const [name, tok] of Object.entries(tokens)) tok.record = await store.createToken(name, hashToken(tok.secret));
  ops = new Recording(store, { strict: false, maxResults: 100 });
  const auth = authPlugin(store, new FailureLimiter({ maxFailures: 1000, windowMs: 60_000 }), () => "test");
  const deps = { operations: ops, auth, baseUrl: () => BASE, maxBodyBytes: 1 << 20 };
  app = new Elysia()
    .use(scimPlugin({ allowedMethods: () => [], logger: SILENT_LOGGER }))
    .use(new Elysia({ prefix: SCIM_BASE_PATH }).use(auth).use(resourceController("User", deps)).use(resourceController("Group", deps)).use(rootSearchController(deps)));
});
afterAll(async () => {
  await cleanup();
});

async function call(as: keyof typeof tokens, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const h: Record<string, string> = { Authorization: `Bearer ${tokens[as].secret}`, ...headers };
  if (body !== undefined) h["Content-Type"] = "application/scim+json";
  const before = ops.calls.length;
  const r = await readResponse(await app.handle(new Request(`http://scimd.test${SCIM_BASE_PATH}${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) })));
  expect(ops.calls.length).toBe(before + 1);
  return { r, call: ops.calls[ops.calls.length - 1]! };
}

describe("the caller reaches every operation's context", () => {
  it("hands each operation the token record the request authenticated with, on every resource route", async () => {
    const created = await call("okta", "POST", "/Users", userBody("ctx@example.com"));
    expect(created.r.status).toBe(201);
    const id = created.r.body.id;
    const group = await call("entra", "POST", "/Groups", groupBody("Ctx Group"));
    const steps: [keyof typeof tokens, string, string, string, unknown?][] = [
      ["okta", "get", "GET", `/Users/${id}`],
      ["entra", "replace", "PUT", `/Users/${id}`, userBody("ctx@example.com", { title: "T" })],
      ["okta", "patch", "PATCH", `/Users/${id}`, patchBody({ op: "replace", path: "title", value: "U" })],
      ["entra", "patch", "PATCH", `/Groups/${group.r.body.id}`, patchBody({ op: "add", path: "members", value: [{ value: id }] })],
      ["okta", "search", "GET", "/Users?count=1"],
      ["entra", "search", "POST", "/Groups/.search", { count: 1 }],
      ["okta", "search", "GET", "?count=0"],
      ["entra", "search", "POST", "/.search", { count: 0 }],
      ["okta", "delete", "DELETE", `/Users/${id}`],
    ];
    expect(created.call.ctx.caller).toMatchObject({ id: tokens.okta.record!.id, name: "okta" });
    expect(group.call.ctx.caller).toMatchObject({ id: tokens.entra.record!.id, name: "entra" });
    for (const [as, op, method, path, body] of steps) {
      const { r, call: c } = await call(as, method, path, body);
      expect({ path, method, status: r.status < 300 }).toEqual({ path, method, status: true });
      expect({ path, method, op: c.op, caller: c.ctx.caller.name, id: c.ctx.caller.id }).toEqual({ path, method, op, caller: as, id: tokens[as].record!.id });
    }
  });

  it("hands the operation the base URL, the projection asked for, the conditional headers as sent and the request's abort signal", async () => {
    const { call: c } = await call("okta", "GET", "/Users/nobody?attributes=userName&excludedAttributes=emails", undefined, { "If-Match": 'W/"1"', "If-None-Match": 'W/"2"' });
    expect(c.ctx).toEqual({
      baseUrl: BASE,
      // The record as found (lastUsed is when the token was last used, so not compared here).
      caller: { ...tokens.okta.record!, lastUsed: c.ctx.caller.lastUsed },
      read: { attributes: "userName", excludedAttributes: "emails" },
      conditions: { ifMatch: 'W/"1"', ifNoneMatch: 'W/"2"' },
      signal: c.ctx.signal,
    });
    // The request's own signal, which aborts when the client goes away (a search stops then).
    expect(c.ctx.signal).toBeInstanceOf(AbortSignal);
    expect(c.ctx.signal!.aborted).toBe(false);
  });

  it("takes a search's projection from the SearchRequest body, not the query string (RFC 7644 §3.4.3)", async () => {
    const { call: c } = await call("entra", "POST", "/Users/.search?attributes=emails", { attributes: ["userName", "displayName"], excludedAttributes: "title" });
    expect(c.ctx.read).toEqual({ attributes: "userName,displayName", excludedAttributes: "title" });
  });

  it("calls no operation for a request that fails authentication", async () => {
    const before = ops.calls.length;
    const r = await app.handle(new Request(`http://scimd.test${SCIM_BASE_PATH}/Users`, { headers: { Authorization: `Bearer ${newToken()}` } }));
    expect(r.status).toBe(401);
    expect(ops.calls.length).toBe(before);
  });
});

describe("authentication runs once per request", () => {
  it("looks the token up once, though the SCIM base and every controller use the auth plugin", async () => {
    let lookups = 0;
    // The real store; only findToken is counted on its way through.
    const counted = new Proxy(store, {
      get(target, key) {
        if (key === "findToken")
          return (hash: string) => {
            lookups++;
            return target.findToken(hash);
          };
        const v = Reflect.get(target, key, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const whole = createApp({ store: counted, logger: SILENT_LOGGER });
    const auth = { Authorization: `Bearer ${tokens.okta.secret}` };
    for (const path of ["/Users?count=0", `/Users/${crypto.randomUUID()}`, "/Groups?count=0", "/ServiceProviderConfig", "?count=0", "/NoSuchThing"]) {
      lookups = 0;
      const r = await whole.handle(new Request(`http://scimd.test${SCIM_BASE_PATH}${path}`, { headers: auth }));
      expect({ path, status: r.status < 500, lookups }).toEqual({ path, status: true, lookups: 1 });
    }
  });
});

