/**
 * Health and metrics of the compiled binary as a process: /healthz and /readyz, /readyz (and so
 * `scimd healthcheck`) failing while another process holds the database's write lock, Prometheus
 * /metrics on --metrics-listen only (parsed line by line), a busy metrics port refused at start, and
 * `scimd healthcheck`'s exit codes, over HTTPS too with a CA made at test time.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupBody, userBody } from "../helpers";
import { holdWriteLock } from "../lock-holder";
import { parseScrape } from "../prometheus";
import { buildBinaryInto, cleanEnv, freePort, startServe, stopAll, type Served } from "./harness";

let tmp = "";
let bin = "";
let db = "";
let server: Served;
let metricsUrl = "";
let token = "";
let version = "";
const started = new Set<Bun.Subprocess>();

/** Runs the binary (never spawnSync: a server of this process must go on answering). */
async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([bin, ...args], { cwd: tmp, env: { ...cleanEnv(), ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.add(p);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  started.delete(p);
  return { code, out, err };
}

const api = (method: string, path: string, body?: unknown) =>
  fetch(`${server.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-health-"));
  bin = buildBinaryInto(tmp);
  db = join(tmp, "data", "scimd.db");
  const metricsPort = await freePort();
  server = await startServe(bin, tmp, ["--db", db, "--metrics-listen", `127.0.0.1:${metricsPort}`], started);
  expect(server.exited).toBeUndefined();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const t = await run(["generate-token", "--name", "e2e", "--db", db]);
  expect(t.code).toBe(0);
  token = t.out.trim();
  version = (await run(["--version"])).out.trim();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await stopAll(started, tmp);
});

describe("dist/scimd: /healthz, /readyz and /metrics", () => {
  it("/healthz gives the binary's version and /readyz answers 200; the banner names the metrics URL", async () => {
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: "ok", version });
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    const r = await fetch(`${server.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: "ok" });
    expect(server.records().find((r) => r.event === "listening")?.metricsUrl).toBe(metricsUrl);
  });

  it("/readyz answers 503 with the reason while another process holds the write lock, and 200 once it lets go", async () => {
    // The token's last use is recorded first, so that the request below writes nothing while the lock is held.
    expect((await api("GET", "/Users?count=1")).status).toBe(200);
    const holder = await holdWriteLock(db, started);
    try {
      const t0 = performance.now();
      const ready = fetch(`${server.url}/readyz`).then(async (r) => ({ status: r.status, body: (await r.json()) as { detail: string }, ms: performance.now() - t0 }));
      const meanwhile = await api("GET", "/Users?count=1");
      const answeredMs = performance.now() - t0;
      const r = await ready;
      expect(meanwhile.status).toBe(200);
      expect(r.status).toBe(503);
      expect(r.body.detail).toMatch(/^not ready: the database's write lock could not be taken within \d+ ms/);
      expect(answeredMs).toBeLessThan(r.ms);
      const hc = await run(["healthcheck", "--url", server.url]);
      expect(hc.code).toBe(1);
      expect(hc.err).toContain(`scimd: not healthy: ${server.url}/readyz answered 503: not ready: the database's write lock`);
    } finally {
      await holder.release();
    }
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });

  it("a write waiting for another process's write lock stalls nobody: /healthz, a lookup and a GET answer within 50 ms, SIGHUP is survived, the write lands once the lock is free", async () => {
    const made = await api("POST", "/Users", userBody("waits-first@example.com"));
    expect(made.status).toBe(201);
    const id = ((await made.json()) as { id: string }).id;
    const holder = await holdWriteLock(db, started);
    let released = false;
    try {
      const t0 = performance.now();
      const waiting = api("POST", "/Users", userBody("waits@example.com")).then(async (r) => ({ status: r.status, ms: performance.now() - t0, body: await r.text() }));
      await Bun.sleep(300); // the POST is queued and retrying by now
      const slowest: Record<string, number> = {};
      for (let round = 0; round < 5; round++) {
        for (const [what, go] of [
          ["healthz", () => fetch(`${server.url}/healthz`)],
          ["lookup", () => api("GET", `/Users?filter=${encodeURIComponent('userName eq "waits-first@example.com"')}`)],
          ["get", () => api("GET", `/Users/${id}`)],
        ] as const) {
          const t = performance.now();
          const r = await go();
          await r.arrayBuffer();
          expect(r.status).toBe(200);
          slowest[what] = Math.max(slowest[what] ?? 0, performance.now() - t);
        }
        if (round === 2) server.proc.kill("SIGHUP");
      }
      for (const [what, ms] of Object.entries(slowest)) expect({ what, slow: ms >= 50 }).toEqual({ what, slow: false });
      expect(server.proc.exitCode).toBeNull();
      await holder.release();
      released = true;
      const w = await waiting;
      expect(w.status).toBe(201);
      expect(w.ms).toBeGreaterThan(300);
      expect(w.ms).toBeLessThan(5000);
    } finally {
      if (!released) await holder.release();
    }
    const found = await api("GET", `/Users?filter=${encodeURIComponent('userName eq "waits@example.com"')}`);
    expect(((await found.json()) as { totalResults: number }).totalResults).toBe(1);
    await server.waitForLog(/"signal":"SIGHUP"/);
  });

  it("/metrics is on --metrics-listen only: the API's port answers 404, the metrics port only /metrics", async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(404);
    const origin = metricsUrl.replace(/\/metrics$/, "");
    expect((await fetch(`${origin}/`)).status).toBe(404);
    expect((await fetch(`${origin}${new URL(server.base).pathname}/Users`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(404);
    expect((await fetch(metricsUrl, { method: "POST" })).status).toBe(405);
  });

  it("a scrape of the binary parses line by line and moves with the requests: route templates, counts, commits, process memory", async () => {
    const before = parseScrape(await (await fetch(metricsUrl)).text());
    const created = await api("POST", "/Users", userBody("metrics@example.com"));
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    expect((await api("GET", `/Users/${id}`)).status).toBe(200);
    expect((await api("POST", "/Groups", groupBody("M", [id]))).status).toBe(201);
    const res = await fetch(metricsUrl);
    expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const text = await res.text();
    const after = parseScrape(text);
    const base = new URL(server.base).pathname;
    const delta = (name: string, labels: Record<string, string>) => (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0);
    expect(delta("scimd_http_requests_total", { route: `${base}/Users`, method: "POST", status: "201" })).toBe(1);
    expect(delta("scimd_http_requests_total", { route: `${base}/Users/:id`, method: "GET", status: "200" })).toBe(1);
    expect(text).not.toContain(id);
    expect(after.value("scimd_users")).toBe(before.value("scimd_users")! + 1);
    expect(after.value("scimd_groups")).toBe(before.value("scimd_groups")! + 1);
    expect(after.value("scimd_memberships")).toBe(before.value("scimd_memberships")! + 1);
    expect(after.histogram("scimd_commit_batch_size")!.sum).toBeGreaterThanOrEqual(before.histogram("scimd_commit_batch_size")!.sum + 2);
    expect(after.value("scimd_database_bytes")).toBeGreaterThan(0);
    expect(after.value("process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
    expect(after.value("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    // JavaScriptCore's heapStats works inside the compiled binary; the misleading families are gone.
    expect(after.value("scimd_js_heap_bytes")).toBeGreaterThan(100_000);
    expect(after.value("scimd_js_heap_capacity_bytes")).toBeGreaterThanOrEqual(after.value("scimd_js_heap_bytes")!);
    expect(text).not.toMatch(/^process_heap_bytes |^nodejs_heap_size_total_bytes /m);
    expect(after.value("scimd_build_info", { version })).toBe(1);
  });

  it("serve refuses a busy --metrics-listen port at start, naming it, before creating the database", async () => {
    const port = await freePort();
    const squatter = Bun.serve({ port, hostname: "127.0.0.1", fetch: () => new Response("taken") });
    try {
      const fresh = join(tmp, "refused", "scimd.db");
      const r = await run(["serve", "--port", "0", "--db", fresh, "--metrics-listen", `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.err.trim()).toBe(
        `scimd: port ${port} is already in use on 127.0.0.1 (another scimd, or another program, listens there); stop it or choose another --metrics-listen`,
      );
      expect(existsSync(fresh)).toBe(false);
    } finally {
      await squatter.stop(true);
    }
  });
});

/** A network namespace of its own (root, util-linux, iproute2): there a wildcard address reaches loopback only. */
const NETNS = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'];
const hasNetns = (() => {
  try {
    return Bun.spawnSync([...NETNS, "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
})();
if (!hasNetns) console.warn("SKIP the --metrics-listen 0.0.0.0 warning test: needs a network namespace (root, and apt-get install util-linux iproute2)");

describe("dist/scimd: --metrics-listen beyond loopback", () => {
  it.skipIf(!hasNetns)("warns at start that /metrics answers without a token (in a network namespace of its own, so 0.0.0.0 reaches nobody)", async () => {
    const p = Bun.spawn([...NETNS, bin, "serve", "--port", "0", "--db", join(tmp, "netns", "scimd.db"), "--log-format", "json", "--metrics-listen", "0.0.0.0:0"], {
      cwd: tmp,
      env: cleanEnv(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    started.add(p);
    let out = "";
    try {
      const reader = p.stdout.getReader();
      const decoder = new TextDecoder();
      const until = Date.now() + 10_000;
      while (!out.includes('"no token yet"') && Date.now() < until) {
        const chunk = await Promise.race([reader.read(), Bun.sleep(until - Date.now()).then(() => ({ done: true, value: undefined }))]);
        if (chunk.done) break;
        out += decoder.decode(chunk.value, { stream: true });
      }
      reader.releaseLock();
      const records = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      const warnings = records.filter((r) => r.event === "warning").map((r) => String(r.message));
      expect(warnings.filter((w) => w.startsWith("/metrics on 0.0.0.0:"))).toHaveLength(1);
      expect(warnings.find((w) => w.startsWith("/metrics on"))).toContain("without a token");
      // On loopback (the server of this file) there is no such warning.
      expect(server.records().some((r) => r.event === "warning" && String(r.message).startsWith("/metrics on"))).toBe(false);
    } finally {
      p.kill("SIGTERM");
      await p.exited;
      started.delete(p);
    }
  });
});

describe("dist/scimd: the database file deleted under a running server", () => {
  it("/readyz answers 503 saying the file was deleted and to restart, healthcheck exits 1, and a scrape shows NaN sizes, not 0", async () => {
    const gone = join(tmp, "gone", "scimd.db");
    const metricsPort = await freePort();
    const s = await startServe(bin, tmp, ["--db", gone, "--metrics-listen", `127.0.0.1:${metricsPort}`], started);
    try {
      expect(s.exited).toBeUndefined();
      expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
      for (const f of [gone, `${gone}-wal`, `${gone}-shm`]) rmSync(f, { force: true });
      const r = await fetch(`${s.url}/readyz`);
      expect(r.status).toBe(503);
      const detail = ((await r.json()) as { detail: string }).detail;
      expect(detail).toStartWith(`not ready: the database file ${gone} was deleted`);
      expect(detail).toContain("restart scimd");
      const hc = await run(["healthcheck", "--url", s.url]);
      expect(hc.code).toBe(1);
      const scrape = parseScrape(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
      expect(scrape.value("scimd_database_bytes")).toBeNaN();
      expect(scrape.value("scimd_wal_bytes")).toBeNaN();
    } finally {
      await s.stop();
    }
  });
});

describe("dist/scimd healthcheck", () => {
  it("exits 0 for a ready server (by origin, by URL, from SCIMD_PORT), 1 when nothing answers or the answer is an error, 2 for a wrong command line", async () => {
    const ok = await run(["healthcheck", "--url", server.url]);
    expect({ code: ok.code, out: ok.out.trim() }).toEqual({ code: 0, out: `healthy: ${server.url}/readyz answered 200` });
    expect((await run(["healthcheck", "--url", `${server.url}/healthz`])).code).toBe(0);
    expect((await run(["healthcheck"], { SCIMD_PORT: new URL(server.url).port })).code).toBe(0);
    const closed = await freePort();
    const refused = await run(["healthcheck", "--url", `http://127.0.0.1:${closed}`]);
    expect(refused.code).toBe(1);
    expect(refused.err).toStartWith(`scimd: not healthy: cannot reach http://127.0.0.1:${closed}/readyz`);
    const notFound = await run(["healthcheck", "--url", `${server.url}/no-such-probe`]);
    expect(notFound.code).toBe(1);
    expect(notFound.err).toContain("answered 404");
    for (const args of [["--url", "not a url"], ["--url", "ftp://127.0.0.1/"], ["--bogus"], ["--insecure", "--ca-file", "x.pem"], ["extra"]]) {
      const r = await run(["healthcheck", ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.err).toStartWith("scimd: ");
    }
    const help = await run(["--help"]);
    expect(help.out).toContain("healthcheck");
  });

  const hasOpenssl = Bun.which("openssl") !== null;
  if (!hasOpenssl) console.log("skipping the HTTPS healthcheck test: openssl is missing (apt-get install openssl)");
  it.skipIf(!hasOpenssl)("over HTTPS: a certificate from a private CA fails without --ca-file (exit 1, saying how), passes with it or with --insecure", async () => {
    const dir = join(tmp, "tls");
    const sh = (args: string[]) => {
      const p = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${p.stderr.toString()}`);
    };
    Bun.spawnSync(["mkdir", "-p", dir]);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    sh(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=scimd test CA"]);
    sh(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    writeFileSync(join(dir, "ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    sh(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext"]);
    const https = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      tls: { cert: Bun.file(join(dir, "server.pem")), key: Bun.file(join(dir, "server.key")) },
      fetch: (r) => (new URL(r.url).pathname === "/readyz" ? Response.json({ status: "ok" }) : new Response("no", { status: 404 })),
    });
    try {
      const url = `https://127.0.0.1:${https.port}`;
      const untrusted = await run(["healthcheck", "--url", url]);
      expect(untrusted.code).toBe(1);
      expect(untrusted.err).toContain("certificate was not accepted");
      expect(untrusted.err).toContain("--ca-file");
      const trusted = await run(["healthcheck", "--url", url, "--ca-file", join(dir, "ca.pem")]);
      expect({ code: trusted.code, err: trusted.err }).toEqual({ code: 0, err: "" });
      expect((await run(["healthcheck", "--url", `https://localhost:${https.port}/readyz`, "--ca-file", join(dir, "ca.pem")])).code).toBe(0);
      expect((await run(["healthcheck", "--url", url, "--insecure"])).code).toBe(0);
      const notPem = await run(["healthcheck", "--url", url, "--ca-file", join(dir, "server.key")]);
      expect(notPem.code).toBe(2);
    } finally {
      await https.stop(true);
    }
  });

  it.skipIf(!hasOpenssl)("without --url reads serve's config file (--config, SCIMD_CONFIG): HTTPS to loopback, the certificate verified for the name it is for", async () => {
    const dir = join(tmp, "tls-named");
    Bun.spawnSync(["mkdir", "-p", dir]);
    const sh = (args: string[]) => {
      const p = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${p.stderr.toString()}`);
    };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    sh(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=scimd test CA"]);
    // As a real certificate: for the service's name only, no 127.0.0.1.
    sh(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=scim.example.test"]);
    writeFileSync(join(dir, "ext"), "subjectAltName=DNS:scim.example.test,DNS:other.example.test\n");
    sh(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext"]);
    const port = await freePort();
    const file = join(dir, "scimd.toml");
    writeFileSync(
      file,
      `host = "127.0.0.1"\nport = ${port}\ndb = ${JSON.stringify(join(dir, "scimd.db"))}\ntls_cert = ${JSON.stringify(join(dir, "server.pem"))}\ntls_key = ${JSON.stringify(join(dir, "server.key"))}\n`,
    );
    const p = Bun.spawn([bin, "serve", "--config", file], { cwd: tmp, env: cleanEnv(), stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    started.add(p);
    try {
      const ca = join(dir, "ca.pem");
      const until = Date.now() + 10_000;
      while (Date.now() < until && (await run(["healthcheck", "--config", file, "--ca-file", ca, "--timeout", "500"])).code !== 0) await Bun.sleep(50);
      const byFlag = await run(["healthcheck", "--config", file, "--ca-file", ca]);
      expect({ code: byFlag.code, out: byFlag.out.trim() }).toEqual({ code: 0, out: `healthy: https://127.0.0.1:${port}/readyz answered 200` });
      expect((await run(["healthcheck", "--ca-file", ca], { SCIMD_CONFIG: file })).code).toBe(0);
      // The system's CAs do not know the test CA: exit 1, saying which name was checked.
      const untrusted = await run(["healthcheck"], { SCIMD_CONFIG: file });
      expect(untrusted.code).toBe(1);
      expect(untrusted.err).toContain("certificate was not accepted");
      expect(untrusted.err).toContain("checked for scim.example.test");
      expect((await run(["healthcheck", "--insecure"], { SCIMD_CONFIG: file })).code).toBe(0);
      // A variable wins over the file, as for serve, and a bad one is blamed on itself.
      const bad = await run(["healthcheck"], { SCIMD_CONFIG: file, SCIMD_PORT: "eighty" });
      expect({ code: bad.code, err: bad.err.split("\n")[0] }).toEqual({ code: 2, err: "scimd: SCIMD_PORT must be a whole number, got 'eighty'" });
      const big = await run(["healthcheck"], { SCIMD_PORT: "70000" });
      expect({ code: big.code, err: big.err.split("\n")[0] }).toEqual({ code: 2, err: "scimd: SCIMD_PORT must be 0..65535" });
      const both = await run(["healthcheck", "--config", file, "--url", "http://127.0.0.1:1/"]);
      expect(both.code).toBe(2);
    } finally {
      p.kill("SIGTERM");
      await p.exited;
      started.delete(p);
    }
  });
});
