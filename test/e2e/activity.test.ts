/**
 * The activity log on the compiled binary: `scimd activity` answers while serve runs (a deleted user
 * by its last userName, filters, JSON lines), `--activity-log=false` records nothing, and a SIGKILL
 * between requests and their responses leaves every change with its entry and no entry without its
 * change (they commit in one transaction): the log replayed gives exactly the stored state.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupBody, patchBody, userBody } from "../helpers";
import { api, buildBinaryInto, runCli, startServe, stopAll } from "./harness";

let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();
let seq = 0;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-activity-e2e-"));
  bin = buildBinaryInto(tmp);
}, 120_000);
afterAll(() => stopAll(started, tmp));

const cli = (args: string[]) => runCli(bin, tmp, args);

/** A new database with a token named `name`; returns its path and the token. */
function database(name = "okta"): { db: string; token: string } {
  const db = join(tmp, `case-${++seq}`, "scimd.db");
  mkdirSync(join(tmp, `case-${seq}`), { recursive: true });
  const g = cli(["generate-token", "--name", name, "--db", db, "--create"]);
  if (g.code !== 0) throw new Error(`generate-token failed: ${g.err}`);
  return { db, token: g.out.trim() };
}


describe("scimd activity (compiled binary)", () => {
  it("shows what the IdP did to a user, newest first, while serve runs, and finds the deleted user by its last userName", async () => {
    const { db, token } = database("okta");
    const s = await startServe(bin, tmp, ["--db", db], started);
    const bob = await api(s, token, "POST", "/Users", userBody("bob@example.com", { title: "Engineer", password: "Pa55-word-xyz" }), { "X-Request-Id": "okta-1" });
    expect(bob.status).toBe(201);
    expect((await api(s, token, "PATCH", `/Users/${bob.body.id}`, patchBody({ op: "replace", path: "title", value: "Manager" }))).status).toBe(200);
    const g = await api(s, token, "POST", "/Groups", groupBody("Engineering", [bob.body.id]));
    expect(g.status).toBe(201);
    expect((await api(s, token, "DELETE", `/Users/${bob.body.id}`, undefined, { "X-Request-Id": "okta-del" })).status).toBe(204);

    const r = cli(["activity", "--db", db, "--user", "BOB@example.com"]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/ delete +User +"bob@example\.com" \(.+\) +\[token okta, request okta-del\] +left 1 group: Engineering$/);
    expect(lines[1]).toMatch(/ create +Group +"Engineering" .*members \+ 1: /);
    expect(lines[2]).toContain(`title: "Engineer" → "Manager"`);
    expect(lines[3]).toMatch(/ create +User .*request okta-1.*set userName, .*password/);
    expect(r.out).not.toContain("Pa55-word-xyz");

    const json = cli(["activity", "--db", db, "--op", "delete", "--json"]);
    expect(json.code).toBe(0);
    const entries = json.out.trim().split("\n").map((l) => JSON.parse(l));
    expect(entries).toEqual([expect.objectContaining({ op: "delete", resourceType: "User", id: bob.body.id, name: "bob@example.com", token: "okta", requestId: "okta-del" })]);

    // The newest of the group's entries only: bob's delete, which took him out of it.
    const newest = cli(["activity", "--db", db, "--group", "engineering", "--limit", "1", "--json"]);
    expect(newest.code).toBe(0);
    expect(newest.out.trim().split("\n").map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ op: "delete", resourceType: "User", name: "bob@example.com" })]);
    const none = cli(["activity", "--db", db, "--token", "entra"]);
    expect(none).toMatchObject({ code: 0, out: "" });
    expect(none.err).toContain("no activity matches");
    await s.stop();
  }, 30_000);

  it("refuses a bad option with exit 2 and a missing database with exit 1, creating nothing", () => {
    const bad = cli(["activity", "--since", "yesterday"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--since must be a duration back from now");
    expect(cli(["activity", "--op", "rename"]).err).toContain("--op must be one or more");
    const db = join(tmp, "nowhere", "scimd.db");
    const missing = cli(["activity", "--db", db]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("there is no scimd database at");
    expect(existsSync(db)).toBe(false);
  });

  it("serve --activity-log=false records nothing", async () => {
    const { db, token } = database();
    const s = await startServe(bin, tmp, ["--db", db, "--activity-log=false"], started);
    expect((await api(s, token, "POST", "/Users", userBody("quiet@example.com"))).status).toBe(201);
    await s.stop();
    expect(cli(["activity", "--db", db]).err).toContain("no activity matches");
  }, 30_000);
});

describe("a SIGKILL between requests and responses (compiled binary)", () => {
  it("leaves each change with its entry or neither: the log replayed is the stored state", async () => {
    const { db, token } = database("crash");
    let acked = 0;
    for (let round = 0; round < 3; round++) {
      const s = await startServe(bin, tmp, ["--db", db], started);
      let killed = false;
      const mine: string[] = [];
      const workers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; !killed; i++) {
          try {
            if (i % 2 === 0 || mine.length === 0) {
              const r = await api(s, token, "POST", "/Users", userBody(`r${round}-w${w}-${i}@example.com`, { title: `t${i}` }));
              if (r.status === 201) (mine.push(r.body.id), acked++);
            } else {
              const id = mine[(i * 7 + w) % mine.length]!;
              const r = await api(s, token, "PATCH", `/Users/${id}`, patchBody({ op: "replace", path: "title", value: `p${round}-${w}-${i}` }));
              if (r.status === 200) acked++;
            }
          } catch {
            return; // the connection died with the server
          }
        }
      });
      await Bun.sleep(150 + round * 90);
      s.proc.kill("SIGKILL");
      killed = true;
      await Promise.all(workers);
      await s.proc.exited;
    }
    expect(acked).toBeGreaterThan(0);
    // A restart recovers the WAL; then the stored users and the log must tell the same story.
    const s = await startServe(bin, tmp, ["--db", db], started);
    await s.stop();
    const sql = new Database(db, { readonly: true });
    try {
      const stored = new Map((sql.query("SELECT id, json_extract(data, '$.title') AS title FROM users").all() as { id: string; title: string }[]).map((u) => [u.id, u.title]));
      const replayed = new Map<string, string>();
      for (const e of sql.query("SELECT op, resource_id AS id, changes FROM activity WHERE resource_type = 'User' ORDER BY seq").all() as { op: string; id: string; changes: string }[]) {
        const title = (JSON.parse(e.changes) as { attr: string; new?: string }[]).find((c) => c.attr === "title");
        if (e.op === "create") expect(replayed.has(e.id)).toBe(false);
        else expect(replayed.has(e.id)).toBe(true);
        if (title?.new !== undefined) replayed.set(e.id, title.new);
      }
      expect(replayed.size).toBe(stored.size);
      expect(replayed).toEqual(stored);
    } finally {
      sql.close();
    }
  }, 60_000);
});
