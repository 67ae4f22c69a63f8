/**
 * The token commands' scope and expiry (issue 12): generate-token --scope/--expires-in, tokens list's
 * columns and 14-day warning, tokens rotate keeping the scope and the lifetime, the usage errors, and
 * serve's expiry watch (run here with a short interval, on a real database and a real logger).
 */
import { describe, expect, it } from "bun:test";
import { join } from "node:path";
import { commandLine, dbArg } from "../src/cli/invocation";
import { watchTokenExpiry } from "../src/cli/serve";
import { parseExpiresIn } from "../src/cli/tokens";
import { main } from "../src/main";
import { openStore } from "../src/store/open";
import { EXPIRY_WARNING_MS, expiringTokens, hashToken, newToken } from "../src/tokens";
import type { TokenRecord } from "../src/store/store";
import { memoryLogger, tempDir, usageErrorOf } from "./helpers";

/** main with console and stdout captured (a secret goes to stdout: it never reaches the test output). */
async function run(argv: string[]): Promise<{ code: number; out: string; err: string; printed: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  const write = process.stdout.write;
  let printed = "";
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  process.stdout.write = ((chunk: string | Uint8Array) => {
    printed += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n"), printed };
  } finally {
    console.log = log;
    console.error = error;
    process.stdout.write = write;
  }
}

const DAY = 86_400_000;
const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

describe("generate-token --scope and --expires-in", () => {
  it("makes a read token with a 90-day lifetime, says so, and the store has it", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      const before = Date.now();
      const r = await run(["generate-token", "--name", "dashboard", "--scope", "read", "--expires-in", "90d", "--db", db, "--create"]);
      expect(r.code).toBe(0);
      expect(r.printed).toMatch(/^scimd_\S+\n$/);
      expect(r.err).toContain("Scope: read (GET and .search only; writes are refused with 403).");
      expect(r.err).toMatch(new RegExp(`Expires: ${ISO} \\(in 90d\\); 'tokens list' and serve's log warn 14 days before\\. Rotate it before then\\.`));
      const store = await openStore(db, { create: false });
      try {
        const t = await store.findToken(hashToken(r.printed.trim()));
        expect(t?.scope).toBe("read");
        const left = Date.parse(t!.expiresAt!) - before;
        expect(left).toBeGreaterThanOrEqual(90 * DAY);
        expect(left).toBeLessThan(90 * DAY + 5000);
      } finally {
        await store.close();
      }
    } finally {
      cleanup();
    }
  });

  it("by default: scope write, no expiry (and says how to set one)", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      const r = await run(["generate-token", "--name", "okta", "--db", db, "--create"]);
      expect(r.code).toBe(0);
      expect(r.err).toContain("Scope: write (reads and writes, for an IdP).");
      expect(r.err).toContain("Expires: never (--expires-in sets a lifetime).");
    } finally {
      cleanup();
    }
  });

  it("generate-token --help says why there is no expiry by default", async () => {
    const r = await run(["generate-token", "--help"]);
    expect(r.out).toContain("Entra ID quarantines a provisioning job whose token stops working");
  });

  it.each([
    [["generate-token", "--scope", "admin"], "--scope must be read or write; got 'admin'"],
    [["generate-token", "--name", "0B6F3C2E-1D4A-4F5B-9C8D-7E6F5A4B3C2D"], "--name must not look like a token id (a UUID): 'tokens revoke' takes a name or an id; got '0B6F3C2E-1D4A-4F5B-9C8D-7E6F5A4B3C2D'"],
    [["generate-token", "--scope", "metrics"], "--scope must be read or write; got 'metrics'"],
    [["generate-token", "--expires-in", "0"], "--expires-in must be longer than 0 (e.g. 90d), or 'never'; got '0'"],
    [["generate-token", "--expires-in", "90"], "--expires-in must be a duration such as 30m, 24h or 7d (s, m, h, d), or 'never'; got '90'"],
    [["generate-token", "--expires-in", "400d"], "--expires-in must be at most 366d; got '400d'"],
    [["tokens", "list", "--expires-in", "30d"], "--expires-in applies to 'tokens rotate' only (and to generate-token)"],
    [["tokens", "revoke", "x", "--expires-in", "30d"], "--expires-in applies to 'tokens rotate' only (and to generate-token)"],
  ])("%p is a usage error: %p", async (argv, message) => {
    const r = await run([...argv, "--db", "/nonexistent/scimd.db"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(r.printed).toBe("");
  });

  it("parseExpiresIn: a duration, or never", () => {
    expect(parseExpiresIn("90d")).toBe(90 * DAY);
    expect(parseExpiresIn("12h")).toBe(12 * 3_600_000);
    expect(parseExpiresIn("never")).toBeNull();
    expect(parseExpiresIn("NEVER")).toBeNull();
    expect(usageErrorOf(() => parseExpiresIn("soon")).message).toContain("--expires-in must be a duration");
  });
});

describe("tokens list: scope, expiry, state, and the 14-day warning", () => {
  it("shows each token's scope and expiry; warns on stderr about one expiring within 14 days and one expired, with the command that rotates it", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      expect((await run(["generate-token", "--name", "okta", "--db", db, "--create"])).code).toBe(0);
      expect((await run(["generate-token", "--name", "soon", "--scope", "read", "--expires-in", "10d", "--db", db])).code).toBe(0);
      expect((await run(["generate-token", "--name", "later", "--expires-in", "30d", "--db", db])).code).toBe(0);
      // One whose lifetime has ended (as time passing would leave it): written through the store.
      const store = await openStore(db, { create: false });
      const past = new Date(Date.now() - DAY).toISOString();
      await store.createToken("old", hashToken(newToken()), { expiresAt: past });
      await store.close();

      const r = await run(["tokens", "list", "--db", db]);
      expect(r.code).toBe(0);
      const lines = r.out.split("\n");
      expect(lines[0]).toMatch(/^NAME +ID +SCOPE +STATE +EXPIRES +CREATED +LAST USED$/);
      expect(lines[1]).toMatch(new RegExp(`^okta +\\S+ +write +active +never +${ISO} +never$`));
      expect(lines[2]).toMatch(new RegExp(`^soon +\\S+ +read +expires in (9d 23h|10d) +${ISO} +${ISO} +never$`));
      expect(lines[3]).toMatch(new RegExp(`^later +\\S+ +write +expires in (29d 23h|30d) +${ISO}`));
      expect(lines[4]).toMatch(new RegExp(`^old +\\S+ +write +expired +${past.replace(/\./g, "\\.")} `));
      // Soonest first: the expired one, then the one within 14 days; not the 30-day one.
      const warnings = r.err.split("\n");
      expect(warnings).toEqual([
        `warning: token 'old' expired at ${past}; its client gets 401 until you rotate it and put the new secret into the client (or revoke it if it is no longer used):`,
        `  ${commandLine("tokens", ["rotate", "old", ...dbArg(db)])}`,
        expect.stringMatching(new RegExp(`^warning: token 'soon' expires at ${ISO} \\(in (9d 23h|10d)\\); rotate it before then and put the new secret into its client:$`)),
        `  ${commandLine("tokens", ["rotate", "soon", ...dbArg(db)])}`,
      ]);
    } finally {
      cleanup();
    }
  });
});

describe("tokens rotate: scope and lifetime", () => {
  it("keeps the scope and the lifetime the token had by default; --expires-in sets another, never drops it", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      expect((await run(["generate-token", "--name", "app", "--scope", "read", "--expires-in", "30d", "--db", db, "--create"])).code).toBe(0);
      const kept = await run(["tokens", "rotate", "app", "--grace", "0", "--db", db]);
      expect(kept.code).toBe(0);
      expect(kept.err).toContain("scope read)");
      expect(kept.err).toMatch(new RegExp(`The new secret expires at ${ISO} \\(in 30d, the lifetime the token had\\)\\.`));
      const set = await run(["tokens", "rotate", "app", "--grace", "0", "--expires-in", "7d", "--db", db]);
      expect(set.err).toMatch(new RegExp(`The new secret expires at ${ISO} \\(in 7d\\)\\.`));
      const never = await run(["tokens", "rotate", "app", "--grace", "0", "--expires-in", "never", "--db", db]);
      expect(never.err).toContain("The new secret does not expire.");
      const store = await openStore(db, { create: false });
      try {
        const t = await store.findToken(hashToken(never.printed.trim()));
        expect(t).toMatchObject({ name: "app", scope: "read", expiresAt: null });
      } finally {
        await store.close();
      }
      // The replaced secrets (grace 0) are listed with --all only; every one kept the scope.
      const list = await run(["tokens", "list", "--db", db]);
      expect(list.out.split("\n").filter((l) => l.startsWith("app ")).map((l) => l.split(/ +/).slice(2, 4))).toEqual([["read", "active"]]);
      const all = await run(["tokens", "list", "--all", "--db", db]);
      expect(all.out.split("\n").filter((l) => l.startsWith("app ")).map((l) => l.split(/ +/).slice(2, 4))).toEqual([["read", "replaced"], ["read", "replaced"], ["read", "replaced"], ["read", "active"]]);
    } finally {
      cleanup();
    }
  });
});

describe("expiringTokens", () => {
  const now = Date.parse("2026-06-01T00:00:00.000Z");
  const t = (over: Partial<TokenRecord>): TokenRecord => ({ id: "i", name: "n", created: "2026-01-01T00:00:00.000Z", lastUsed: null, scope: "write", expires: null, expiresAt: null, ...over });
  it("lists current secrets ending within 14 days or ended, soonest first; not rotated-out, revoked, far or endless ones", () => {
    const at = (ms: number) => new Date(now + ms).toISOString();
    const list = [
      t({ name: "far", expiresAt: at(15 * DAY), expires: at(15 * DAY) }),
      t({ name: "edge", expiresAt: at(EXPIRY_WARNING_MS), expires: at(EXPIRY_WARNING_MS) }),
      t({ name: "soon", expiresAt: at(DAY), expires: at(DAY) }),
      t({ name: "gone", expiresAt: at(-DAY), expires: at(-DAY) }),
      t({ name: "rotated", expiresAt: at(DAY), expires: at(DAY), rotated: at(-DAY) }),
      t({ name: "revoked", expiresAt: at(DAY), expires: at(-DAY), revoked: at(-DAY) }),
      t({ name: "forever" }),
    ];
    expect(expiringTokens(list, now).map((e) => [e.name, e.leftMs])).toEqual([
      ["gone", -DAY],
      ["soon", DAY],
      ["edge", EXPIRY_WARNING_MS],
    ]);
  });
});

describe("serve's token expiry watch", () => {
  it("logs a warning for each token expiring within 14 days (and each expired one) at every interval, and stops when told", async () => {
    const { dir, cleanup } = tempDir();
    const store = await openStore(join(dir, "scimd.db"));
    try {
      await store.createToken("okta", hashToken(newToken()));
      // Half an hour short of 3 days: "in 2d 23h" however long the check takes (exactly 3 days read "3d").
      await store.createToken("soon", hashToken(newToken()), { expiresAt: new Date(Date.now() + 3 * DAY - 1_800_000).toISOString() });
      await store.createToken("gone", hashToken(newToken()), { expiresAt: new Date(Date.now() - DAY).toISOString() });
      const { logger, records, lines } = memoryLogger("info");
      const watch = watchTokenExpiry(store, logger, "/var/lib/scimd/scimd.db", 20);
      await watch.check();
      expect(records.map((r) => [r.level, r.event, r.token])).toEqual([
        ["warn", "token expired", "gone"],
        ["warn", "token expiring", "soon"],
      ]);
      expect(records[1]).toMatchObject({ message: expect.stringMatching(/^token 'soon' expires at \S+ \(in 2d 23h\); rotate it before then/), command: commandLine("tokens", ["rotate", "soon", "--db", "/var/lib/scimd/scimd.db"]) });
      // On PostgreSQL with a password file, the command carries it (the admin runs it as serve logs in).
      const { logger: pgLogger, records: pgRecords } = memoryLogger("info");
      const url = "postgres://scimd@db.internal:5432/scimd";
      const pgWatch = watchTokenExpiry(store, pgLogger, url, 60_000, "/etc/scimd/db-password");
      await pgWatch.check();
      pgWatch.stop();
      expect(pgRecords[1]).toMatchObject({ command: commandLine("tokens", ["rotate", "soon", "--db", url, "--db-password-file", "/etc/scimd/db-password"]) });
      // The interval repeats the check (daily in serve; 20 ms here).
      // Waited for, not timed: a loaded machine runs the 20 ms interval late.
      for (const until = Date.now() + 5000; records.length < 6 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
      expect(records.length).toBeGreaterThanOrEqual(6);
      watch.stop();
      // A check already running when stop() came may still log; none starts after it.
      await new Promise((r) => setTimeout(r, 200));
      const n = records.length;
      await new Promise((r) => setTimeout(r, 200));
      expect(records.length).toBe(n);
      // No secret in any line.
      expect(lines.join("\n")).not.toContain("scimd_");
    } finally {
      await store.close();
      cleanup();
    }
  });

  it("a failed read is logged as an error, not thrown", async () => {
    const { logger, records } = memoryLogger("info");
    const watch = watchTokenExpiry({ listTokens: () => Promise.reject(new Error("database is locked")) }, logger, "x.db", 60_000);
    await watch.check();
    watch.stop();
    expect(records).toEqual([expect.objectContaining({ level: "error", event: "token expiry check failed", reason: "database is locked" })]);
  });
});
