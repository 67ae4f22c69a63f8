/**
 * Two scimd binaries against one PostgreSQL database, in alternated rounds (A B B A …), so that a
 * change to the PostgreSQL store is measured as a ratio of the same run on a shared, noisy machine:
 *
 *   npm run bench:pg-ab -- --old /path/to/old/scimd --new dist/scimd [--users 20000] [--rounds 6]
 *
 * A throwaway durable cluster (scripts/pg-cluster.ts: fsync on, as bench --db postgres) holds N
 * Users, all members of one Group. Both binaries serve it at once (one idle while the other is
 * measured); each round measures, on one binary, the IdP's `userName eq` lookup and GET by id
 * (concurrency 8), the first and the last page of `GET /Users?count=100`, and the full Group.
 * Reported: each phase's rate (or time) per binary and the ratio new/old per round pair, median first.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flag, flagHelp, HELP_FLAG, parseFlags } from "../src/config";
import { freePort, startCluster } from "./pg-cluster";

const FLAGS = [
  flag({ name: "old", kind: "string", help: "the scimd binary measured as the base (A)" }),
  flag({ name: "new", kind: "string", default: "dist/scimd", help: "the scimd binary measured against it (B)" }),
  flag({ name: "users", kind: "int", default: 20_000, help: "Users in the database (all members of one Group)" }),
  flag({ name: "rounds", kind: "int", default: 6, help: "rounds per binary, alternated A B B A …" }),
  flag({ name: "concurrency", kind: "int", default: 8, help: "parallel keep-alive connections" }),
  HELP_FLAG,
] as const;
const { values } = parseFlags(process.argv.slice(2), FLAGS, {});
if (values.help || !values.old) {
  console.log(`Usage: npm run bench:pg-ab -- --old BIN [--new BIN] [options]\n\nOptions:\n${flagHelp(FLAGS)}`);
  process.exit(values.help ? 0 : 2);
}
const N = values.users, C = values.concurrency;
const USER = "urn:ietf:params:scim:schemas:core:2.0:User";

async function waitHttp(url: string): Promise<void> {
  for (const until = Date.now() + 30_000; Date.now() < until; await Bun.sleep(50)) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
  }
  throw new Error(`${url} did not answer`);
}

async function ok(r: Response, what: string): Promise<void> {
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${text.slice(0, 300)}`);
}

/** `count` requests over C connections: requests per second. */
async function rate(count: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < count) await op(next++);
  }));
  return count / ((performance.now() - t0) / 1000);
}

/** The median of `times` runs of `op`, in ms. */
async function medianMs(times: number, op: () => Promise<void>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await op();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), "scimd-pg-ab-"));
const cluster = await startCluster({ durable: true, sharedBuffers: "128MB" });
const children: Bun.Subprocess[] = [];
try {
  const url = cluster.url();
  const gen = Bun.spawnSync([values.new, "generate-token", "--name", "ab", "--db", url, "--create"], { stderr: "pipe" });
  const token = gen.stdout.toString().trim();
  if (gen.exitCode !== 0 || !token) throw new Error(`generate-token failed: ${gen.stderr.toString()}`);
  const serve = async (bin: string) => {
    const port = await freePort();
    children.push(Bun.spawn([bin, "serve", "--port", String(port), "--host", "127.0.0.1", "--db", url, "--log-level", "error"], { stdout: "ignore", stderr: "ignore" }));
    await waitHttp(`http://127.0.0.1:${port}/healthz`);
    return `http://127.0.0.1:${port}/api/v1/scim`;
  };
  const bases = { old: await serve(values.old), new: await serve(values.new) };
  const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" };

  console.error(`populating ${N} users …`);
  const ids: string[] = new Array(N);
  await rate(N, async (i) => {
    const r = await fetch(`${bases.new}/Users`, { method: "POST", headers, body: JSON.stringify({ schemas: [USER], userName: `ab.user${i}@example.com`, displayName: `AB ${i}`, emails: [{ value: `ab.user${i}@example.com`, primary: true }] }) });
    const body = (await r.json()) as { id: string };
    if (r.status !== 201) throw new Error(`create: ${r.status}`);
    ids[i] = body.id;
  });
  const g = (await (await fetch(`${bases.new}/Groups`, { method: "POST", headers, body: JSON.stringify({ schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName: "AB all" }) })).json()) as { id: string };
  for (let i = 0; i < N; i += 1000)
    await ok(await fetch(`${bases.new}/Groups/${g.id}`, { method: "PATCH", headers, body: JSON.stringify({ schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "add", path: "members", value: ids.slice(i, i + 1000).map((value) => ({ value })) }] }) }), "members");

  type Round = Record<string, number>;
  const measure = async (base: string): Promise<Round> => {
    const count = Math.min(N, 4000);
    return {
      "userName eq (ops/s)": await rate(count, async (i) => ok(await fetch(`${base}/Users?filter=${encodeURIComponent(`userName eq "AB.User${(i * 7919) % N}@Example.com"`)}`, { headers }), "lookup")),
      "GET /Users/{id} (ops/s)": await rate(count, async (i) => ok(await fetch(`${base}/Users/${ids[(i * 7919) % N]}`, { headers }), "get")),
      "first page, count=100 (ms)": await medianMs(15, async () => ok(await fetch(`${base}/Users?startIndex=1&count=100`, { headers }), "page")),
      "last page, count=100 (ms)": await medianMs(15, async () => ok(await fetch(`${base}/Users?startIndex=${N - 99}&count=100`, { headers }), "page")),
      [`full group, ${N} members (ms)`]: await medianMs(3, async () => ok(await fetch(`${base}/Groups/${g.id}`, { headers }), "group")),
    };
  };
  // Warm both (plans, caches), then A B B A … so a drift touches both alike.
  await measure(bases.old);
  await measure(bases.new);
  const got: { old: Round[]; new: Round[] } = { old: [], new: [] };
  for (let r = 0; r < values.rounds; r++) {
    const order: ("old" | "new")[] = r % 2 === 0 ? ["old", "new"] : ["new", "old"];
    for (const which of order) got[which].push(await measure(bases[which]));
    console.error(`round ${r + 1}/${values.rounds} done`);
  }
  const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(`PostgreSQL A/B, ${N} users, concurrency ${C}, ${values.rounds} rounds each (load average at the end: ${load})`);
  console.log(`  A (old): ${values.old}\n  B (new): ${values.new}`);
  for (const phase of Object.keys(got.old[0]!)) {
    const a = got.old.map((x) => x[phase]!), b = got.new.map((x) => x[phase]!);
    const ratios = a.map((x, i) => b[i]! / x).sort((p, q) => p - q);
    console.log(`  ${phase}: old ${median(a).toFixed(1)}, new ${median(b).toFixed(1)}, new/old median ×${median(ratios).toFixed(2)} (rounds ${ratios.map((x) => x.toFixed(2)).join(" ")})`);
  }
} finally {
  for (const p of children) p.kill();
  await Promise.all(children.map((p) => p.exited));
  cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
