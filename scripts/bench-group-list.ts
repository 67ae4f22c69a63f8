/**
 * Lists of large groups: seeds N users (default 50,000) and G groups (default 21) that each hold all
 * of them, through the store directly, then starts the compiled binary on that database and sends
 * `GET /Groups?count=100` (members included). It reports the response's time and size, the largest
 * resident set of scimd sampled every 20 ms while it ran (VmRSS, and VmHWM at the end), and how long
 * `/healthz` took at most while the list was being answered (probed every 50 ms).
 * Usage: bun run scripts/bench-group-list.ts [N] [G] [--bin dist/scimd] [--keep DIR] [-- serve flags…]
 * With --keep DIR the seeded database is kept in DIR (and reused by the next run that names it).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { GROUP_SCHEMA } from "../src/scim/schema";
import { openStore } from "../src/store/open";
import { seedUsers } from "../test/cli/seed";

const dashdash = process.argv.indexOf("--");
const args = process.argv.slice(2, dashdash >= 0 ? dashdash : undefined);
const serveFlags = dashdash >= 0 ? process.argv.slice(dashdash + 1) : [];
const numbers = args.filter((a) => /^\d+$/.test(a)).map(Number);
const n = numbers[0] ?? 50_000;
const groups = numbers[1] ?? 21;
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const bin = resolve(option("--bin") ?? "dist/scimd");
if (!existsSync(bin)) throw new Error(`no binary at ${bin}: run \`bun run scripts/build.ts\` first`);
const keep = option("--keep");
const dir = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), "scimd-bench-group-list-"));
mkdirSync(dir, { recursive: true });
const db = join(dir, `scimd-${n}x${groups}.db`);

function status(pid: number, key: "VmRSS" | "VmHWM"): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${key}:\\s+(\\d+) kB`));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

let serve: Bun.Subprocess | undefined;
try {
  if (!existsSync(db)) {
    const t0 = performance.now();
    const store = await openStore(db, { synchronous: "NORMAL", create: true, activityLog: false });
    await seedUsers(store, n);
    const ids: string[] = [];
    for (let after: string | undefined, page; (page = await store.scan("User", after, 5000)); after = page.next) {
      for (const r of page.resources) ids.push(r.id);
      if (!page.next) break;
    }
    for (let g = 1; g < groups; g++) await store.create("Group", { id: crypto.randomUUID(), data: { schemas: [GROUP_SCHEMA], displayName: `Group ${g}` }, members: ids });
    await store.close();
    console.log(`seeded ${n} users and ${groups} groups of ${n} members in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const gen = Bun.spawnSync([bin, "generate-token", "--name", `bench-${Date.now()}`, "--db", db], { stderr: "pipe" });
  const token = gen.stdout.toString().trim();
  if (gen.exitCode !== 0 || !token) throw new Error(`generate-token failed: ${gen.stderr.toString()}`);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  serve = Bun.spawn([bin, "serve", "--port", String(port), "--host", "127.0.0.1", "--db", db, "--log-level", "warn", ...serveFlags], { stdout: "ignore", stderr: "inherit" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (i > 200) throw new Error("scimd did not answer /healthz");
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    await Bun.sleep(25);
  }
  const pid = serve.pid;
  const idle = status(pid, "VmRSS");
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, status(pid, "VmRSS"))), 20);
  let listing = true;
  let worstHealth = 0;
  let probes = 0;
  const prober = (async () => {
    while (listing) {
      const t = performance.now();
      await fetch(`${url}/healthz`);
      worstHealth = Math.max(worstHealth, performance.now() - t);
      probes++;
      await Bun.sleep(50);
    }
  })();
  const t = performance.now();
  const res = await fetch(`${url}/api/v1/scim/Groups?count=100`, { headers: { Authorization: `Bearer ${token}` } });
  let bytes = 0;
  for await (const chunk of res.body!) bytes += chunk.byteLength;
  const seconds = (performance.now() - t) / 1000;
  listing = false;
  await prober;
  await Bun.sleep(100);
  clearInterval(sampler);
  peak = Math.max(peak, status(pid, "VmRSS"));
  console.log(
    `GET /Groups?count=100 (${groups} groups × ${n} members): ${res.status} in ${seconds.toFixed(2)} s, ${(bytes / 2 ** 20).toFixed(1)} MiB` +
      `${res.headers.get("transfer-encoding") === "chunked" ? " streamed" : ""}; scimd RSS idle ${idle.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB (VmHWM ${status(pid, "VmHWM").toFixed(0)} MiB);` +
      ` /healthz at most ${worstHealth.toFixed(0)} ms over ${probes} probes`,
  );
} finally {
  serve?.kill("SIGTERM");
  await serve?.exited;
  if (!keep) rmSync(dir, { recursive: true, force: true });
}
