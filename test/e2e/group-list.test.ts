/**
 * The compiled binary streams a list of large groups and serves other requests meanwhile: /healthz
 * answers while `GET /Groups` is still writing its members (the event loop takes a turn between
 * member batches), and the list arrives whole. Absolute memory numbers for 21 groups of 50,000
 * members: scripts/bench-group-list.ts (README, "Limits").
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GROUP_SCHEMA } from "../../src/scim/schema";
import { openStore } from "../../src/store/open";
import { seedUsers } from "../cli/seed";
import { buildBinaryInto, runCli, startServe, stopAll, type Served } from "./harness";

const USERS = 3000;
const GROUPS = 20;
let tmp = "";
let server: Served;
let token = "";
const started = new Set<Bun.Subprocess>();

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-group-list-"));
  const bin = buildBinaryInto(tmp);
  const db = join(tmp, "scimd.db");
  // Seeded through the store: 20 groups of 3,000 members (60,000 members, ~11 MB of JSON).
  const store = await openStore(db, { create: true, synchronous: "NORMAL", activityLog: false });
  await seedUsers(store, USERS);
  const ids: string[] = [];
  for (let after: string | undefined; ; ) {
    const page = await store.scan("User", after, 1000);
    ids.push(...page.resources.map((r) => r.id));
    if (!(after = page.next)) break;
  }
  for (let g = 1; g < GROUPS; g++) await store.create("Group", { id: crypto.randomUUID(), data: { schemas: [GROUP_SCHEMA], displayName: `Group ${g}` }, members: ids });
  await store.close();
  const t = runCli(bin, tmp, ["generate-token", "--name", "e2e", "--db", db]);
  expect(t.code).toBe(0);
  token = t.out.trim();
  // No member budget to speak of: the whole page of 20 groups comes in one response.
  server = await startServe(bin, tmp, ["--db", db, "--max-list-members", "1000000", "--log-level", "warn"], started);
  expect(server.exited).toBeUndefined();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await stopAll(started, tmp);
});

describe("dist/scimd: a page of large groups", () => {
  it("is streamed, and /healthz answers before the list has finished arriving", async () => {
    const res = await fetch(`${server.base}/Groups?count=100`, { headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("transfer-encoding")).toBe("chunked");
    const events: string[] = [];
    const reader = res.body!.getReader();
    const chunks: Uint8Array[] = [(await reader.read()).value!];
    // Asked once the list has begun: a server that held its event loop for the whole list would answer only after it.
    const health = fetch(`${server.url}/healthz`).then((r) => {
      events.push(`healthz ${r.status}`);
    });
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    events.push("list complete");
    await health;
    expect(events).toEqual(["healthz 200", "list complete"]);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    expect(body.totalResults).toBe(GROUPS);
    expect(body.itemsPerPage).toBe(GROUPS);
    for (const g of body.Resources) {
      expect(g.members.length).toBe(USERS);
      expect(new Set(g.members.map((m: { value: string }) => m.value)).size).toBe(USERS);
    }
  }, 60_000);
});
