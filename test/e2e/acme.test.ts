/**
 * ACME end to end: the compiled binary obtains, stores, reuses and renews its certificate from a real
 * pebble on loopback (test/e2e/pebble.ts), answering the HTTP-01 challenge that pebble really
 * validates, and trusting pebble's HTTPS through --acme-ca-file only. Skipped, visibly, without pebble.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { buildBinaryInto, cleanEnv, freePort, stopAll } from "./harness";
import { hasPebble, startPebble, type Pebble } from "./pebble";

const DOMAIN = "scim.acme.test";
let tmp = "";
let bin = "";
const started = new Set<Bun.Subprocess>();

beforeAll(() => {
  if (!hasPebble) return;
  tmp = mkdtempSync(join(tmpdir(), "scimd-acme-"));
  bin = buildBinaryInto(tmp);
}, 60_000);

afterAll(() => stopAll(started, tmp));

interface Running {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  port: number;
  /** The JSON lines the server wrote to stdout so far, parsed. */
  events: () => { event: string; [k: string]: unknown }[];
  output: () => string;
  exited: () => number | undefined;
  stop: () => Promise<number | undefined>;
}

/** `scimd serve` with ACME against `pebble`, on free ports; waits until its HTTPS port accepts a TLS handshake, or the process exits. */
async function serveAcme(pebble: Pebble, httpPort: number, db: string, extra: string[] = [], options: { caFile?: boolean; waitMs?: number } = {}): Promise<Running> {
  const port = await freePort();
  const args = ["serve", "--port", String(port), "--host", "127.0.0.1", "--db", db, "--acme-domain", DOMAIN, "--acme-email", "ops@example.com",
    "--acme-directory", pebble.directory, "--acme-http-port", String(httpPort), "--log-format", "json", ...extra];
  if (options.caFile !== false) args.push("--acme-ca-file", pebble.caFile);
  const proc = Bun.spawn([bin, ...args], { cwd: tmp, env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.add(proc);
  let out = "", err = "";
  let code: number | undefined;
  void proc.exited.then((c) => ((code = c), started.delete(proc)));
  for (const [stream, add] of [[proc.stdout, (t: string) => (out += t)], [proc.stderr, (t: string) => (err += t)]] as const)
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) add(decoder.decode(chunk, { stream: true }));
    })();
  const running: Running = {
    proc,
    port,
    events: () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)),
    output: () => out + err,
    exited: () => code,
    stop: async () => {
      proc.kill("SIGTERM");
      return Promise.race([proc.exited, Bun.sleep(5000).then(() => undefined)]);
    },
  };
  const until = Date.now() + (options.waitMs ?? 30_000);
  while (Date.now() < until && code === undefined) {
    if (await peer(port).then(() => true, () => false)) return running;
    await Bun.sleep(50);
  }
  await Bun.sleep(100);
  return running;
}

/** The certificate a new TLS connection to `port` is given, for SNI DOMAIN, and whether it verifies against `ca` for DOMAIN. */
function peer(port: number, ca?: string): Promise<{ fingerprint: string; authorized: boolean; error?: string; notAfter: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: DOMAIN, ca: ca ?? [], rejectUnauthorized: false, checkServerIdentity: (_h, c) => tls.checkServerIdentity(DOMAIN, c) }, () => {
      const c = socket.getPeerCertificate();
      resolve({ fingerprint: c.fingerprint256, authorized: socket.authorized, error: socket.authorizationError?.toString(), notAfter: c.valid_to });
      socket.end();
    });
    socket.on("error", reject);
  });
}

/** GET over HTTPS verified against `ca`, with DOMAIN as the name the certificate must carry. */
const httpsGet = (port: number, path: string, ca: string) =>
  fetch(`https://127.0.0.1:${port}${path}`, { tls: { ca, checkServerIdentity: (_host, cert) => tls.checkServerIdentity(DOMAIN, cert) } });

const fingerprintOf = (pem: string) => new (require("node:crypto").X509Certificate)(pem).fingerprint256 as string;

describe.skipIf(!hasPebble)("ACME with a local pebble, through dist/scimd", () => {
  let pebble: Pebble;
  let httpPort = 0;
  let root = "";
  const db = "./data/scimd.db";
  const acmeDir = () => join(tmp, "data", "acme");
  let first: Running;
  let issued = "";

  beforeAll(async () => {
    httpPort = await freePort();
    pebble = await startPebble(join(tmp, "pebble"), { httpPort }, started);
    root = await pebble.root();
  }, 30_000);
  afterAll(() => pebble?.stop());

  it("refuses to start, in one line and exit code 1, when the ACME server's HTTPS is not trusted (no --acme-ca-file)", async () => {
    const s = await serveAcme(pebble, httpPort, "./untrusted/scimd.db", [], { caFile: false, waitMs: 40_000 });
    expect(s.exited()).toBe(1);
    const line = s.output().split("\n").find((l) => l.startsWith("scimd: "));
    expect(line).toMatch(
      /^scimd: cannot obtain a certificate for scim\.acme\.test from https:\/\/127\.0\.0\.1:\d+\/dir: self.signed certificate .*; if the ACME server uses a private CA, trust it with --acme-ca-file \(the next start orders again from \S+, or at once after deleting \S+\/untrusted\/acme\/last-failure\)$/i,
    );
    expect(pebble.orders()).toBe(0);
  }, 60_000);

  it("obtains a certificate before listening: pebble validates HTTP-01 on --acme-http-port, and HTTPS verifies against pebble's root", async () => {
    first = await serveAcme(pebble, httpPort, db);
    expect(first.exited()).toBeUndefined();
    const r = await httpsGet(first.port, "/healthz", root);
    expect(r.status).toBe(200);
    const p = await peer(first.port, root);
    expect(p).toMatchObject({ authorized: true });
    // Verification is real: without pebble's root the same certificate does not verify.
    expect((await peer(first.port)).authorized).toBe(false);
    await expect(fetch(`https://127.0.0.1:${first.port}/healthz`, { tls: { checkServerIdentity: (_h, c) => tls.checkServerIdentity(DOMAIN, c) } })).rejects.toThrow();
    expect(pebble.orders()).toBe(1);
    // Pebble fetched the token from our listener (it logs each validation attempt).
    expect(pebble.log()).toContain(`Attempting to validate w/ HTTP: http://${DOMAIN}:${httpPort}/.well-known/acme-challenge/`);
    const loaded = first.events().find((e) => e.event === "certificate loaded");
    expect(loaded).toMatchObject({ source: "acme order", domains: [DOMAIN] });
    issued = readFileSync(join(acmeDir(), "certificate.pem"), "utf8");
    expect(fingerprintOf(issued)).toBe(p.fingerprint);
  }, 60_000);

  it("keeps the account key and the certificate beside the database: folder 0700, files 0600, no secret in the log", () => {
    expect(statSync(acmeDir()).mode & 0o777).toBe(0o700);
    const accountKey = readdirSync(acmeDir()).filter((f) => /^account-127\.0\.0\.1_\d+-[0-9a-f]{12}\.key$/.test(f));
    expect(accountKey).toHaveLength(1);
    for (const f of [accountKey[0]!, "certificate.pem", "certificate.key", "certificate.json"]) expect(statSync(join(acmeDir(), f)).mode & 0o777).toBe(0o600);
    const key = readFileSync(join(acmeDir(), "certificate.key"), "utf8");
    expect(key).toMatch(/PRIVATE KEY/);
    const body = key.split("\n")[1]!;
    expect(first.output()).not.toContain(body);
    expect(first.output()).not.toContain(readFileSync(join(acmeDir(), accountKey[0]!), "utf8").split("\n")[1]!);
  });

  it("answers plain HTTP on --acme-http-port with a redirect to HTTPS, and an unknown challenge token with 404", async () => {
    const r = await fetch(`http://127.0.0.1:${httpPort}/api/v1/scim/Users?count=1`, { redirect: "manual", headers: { Host: `${DOMAIN.toUpperCase()}:${httpPort}` } });
    expect(r.status).toBe(308);
    expect(r.headers.get("location")).toBe(`https://${DOMAIN}:${first.port}/api/v1/scim/Users?count=1`);
    const other = await fetch(`http://127.0.0.1:${httpPort}/x`, { redirect: "manual", headers: { Host: "evil.example" } });
    expect(other.headers.get("location")).toBe(`https://${DOMAIN}:${first.port}/x`);
    const c = await fetch(`http://127.0.0.1:${httpPort}/.well-known/acme-challenge/no-such-token`);
    expect(c.status).toBe(404);
  });

  it("a restart reuses the stored certificate: no new order, the same certificate served", async () => {
    expect(await first.stop()).toBe(0);
    const orders = pebble.orders();
    const again = await serveAcme(pebble, httpPort, db);
    try {
      expect(again.exited()).toBeUndefined();
      expect((await httpsGet(again.port, "/healthz", root)).status).toBe(200);
      expect((await peer(again.port, root)).fingerprint).toBe(fingerprintOf(issued));
      expect(pebble.orders()).toBe(orders);
      expect(readFileSync(join(acmeDir(), "certificate.pem"), "utf8")).toBe(issued);
      expect(again.events().find((e) => e.event === "certificate loaded")).toMatchObject({ source: "acme storage" });
    } finally {
      expect(await again.stop()).toBe(0);
    }
  }, 60_000);

  it("--acme-dir names the folder instead: a server on another database finds the certificate there, no new order", async () => {
    const moved = join(tmp, "acme-elsewhere");
    cpSync(acmeDir(), moved, { recursive: true });
    const orders = pebble.orders();
    const other = await serveAcme(pebble, httpPort, join(tmp, "other-data", "scimd.db"), ["--acme-dir", moved]);
    try {
      expect(other.exited()).toBeUndefined();
      expect((await peer(other.port, root)).fingerprint).toBe(fingerprintOf(issued));
      expect(pebble.orders()).toBe(orders);
      expect(existsSync(join(tmp, "other-data", "acme"))).toBe(false);
    } finally {
      expect(await other.stop()).toBe(0);
    }
  }, 60_000);
});

describe.skipIf(!hasPebble)("a failed first order, through dist/scimd", () => {
  let pebble: Pebble;
  let httpPort = 0;

  beforeAll(async () => {
    httpPort = await freePort();
    pebble = await startPebble(join(tmp, "pebble-fail"), { httpPort }, started);
  }, 30_000);
  afterAll(() => pebble?.stop());

  it("is not placed again by a restart loop: the next start exits 1 at once, saying when it will order and how to force it, without asking the CA", async () => {
    // The challenge listener on a port pebble does not dial: the CA's validation fails, as with DNS not pointing here.
    const wrong = await freePort();
    const failed = await serveAcme(pebble, wrong, "./failing/scimd.db", [], { waitMs: 40_000 });
    expect(failed.exited()).toBe(1);
    expect(pebble.orders()).toBe(1);
    expect(failed.output().split("\n").find((l) => l.startsWith("scimd: "))).toMatch(/^scimd: cannot obtain a certificate for scim\.acme\.test from .* \(the next start orders again from \S+, or at once after deleting \S+last-failure\)$/);
    const lastFailure = join(tmp, "failing", "acme", "last-failure");
    expect(existsSync(lastFailure)).toBe(true);

    // What systemd's Restart=on-failure does next: start again, with the same settings.
    for (let i = 0; i < 3; i++) {
      const again = await serveAcme(pebble, wrong, "./failing/scimd.db", [], { waitMs: 10_000 });
      expect(again.exited()).toBe(1);
      const lines = again.output().trim().split("\n").filter((l) => l.startsWith("scimd: "));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^scimd: not ordering a certificate for scim\.acme\.test from \S+ again before \d{4}-\d\d-\d\dT\S+Z: the last order failed \(.+\); fix the cause, then delete \S+\/failing\/acme\/last-failure to order now$/);
    }
    expect(pebble.orders()).toBe(1);

    // Deleting the file, as the message says, orders at once; here with the fix (the right port) too, and the success clears the record.
    rmSync(lastFailure);
    const fixed = await serveAcme(pebble, httpPort, "./failing/scimd.db");
    try {
      expect(fixed.exited()).toBeUndefined();
      expect(pebble.orders()).toBe(2);
      expect(existsSync(lastFailure)).toBe(false);
    } finally {
      expect(await fixed.stop()).toBe(0);
    }
  }, 90_000);
});

describe.skipIf(!hasPebble)("ACME renewal with short-lived certificates", () => {
  let pebble: Pebble;
  let httpPort = 0;
  let root = "";
  let s: Running;

  beforeAll(async () => {
    httpPort = await freePort();
    // 15 s certificates: due for renewal when a third (5 s) is left, 10 s after issuance.
    pebble = await startPebble(join(tmp, "pebble-short"), { httpPort, validitySeconds: 15 }, started);
    root = await pebble.root();
  }, 30_000);
  afterAll(async () => {
    await s?.stop();
    await pebble?.stop();
  });

  it("renews in the background and the listener serves the new certificate to new connections", async () => {
    s = await serveAcme(pebble, httpPort, "./short/scimd.db");
    expect(s.exited()).toBeUndefined();
    const before = await peer(s.port, root);
    expect(before.authorized).toBe(true);
    const until = Date.now() + 25_000;
    // acme stores the new pair ("certificate obtained"), then serve puts it in use ("certificate renewed").
    while (Date.now() < until && !s.events().some((e) => e.event === "certificate renewed")) await Bun.sleep(100);
    expect(s.events().find((e) => e.event === "certificate obtained")).toMatchObject({ domains: [DOMAIN] });
    expect(s.events().find((e) => e.event === "certificate renewed")).toMatchObject({ names: `DNS:${DOMAIN}` });
    expect(pebble.orders()).toBeGreaterThanOrEqual(2);
    // The swap follows the log line; a new connection gets the new certificate.
    let after = await peer(s.port, root);
    for (let i = 0; i < 50 && after.fingerprint === before.fingerprint; i++) after = (await Bun.sleep(50), await peer(s.port, root));
    expect(after.authorized).toBe(true);
    expect(after.fingerprint).not.toBe(before.fingerprint);
    expect((await httpsGet(s.port, "/healthz", root)).status).toBe(200);
    expect(fingerprintOf(readFileSync(join(tmp, "short", "acme", "certificate.pem"), "utf8"))).not.toBe(before.fingerprint);
  }, 60_000);

  it("a failed renewal (the ACME server gone) is logged and retried with backoff while the server keeps serving", async () => {
    await pebble.stop();
    const until = Date.now() + 25_000;
    const failures = () => s.events().filter((e) => e.event === "certificate renewal failed");
    while (Date.now() < until && failures().length < 2) await Bun.sleep(100);
    expect(failures().length).toBeGreaterThanOrEqual(2);
    const [a, b] = failures() as unknown as { failures: number; retryInMs: number; error: string }[];
    expect([a!.failures, b!.failures]).toEqual([1, 2]);
    expect(a!.retryInMs).toBeGreaterThan(0);
    expect(a!.error).toMatch(/ECONNREFUSED|connect|refused/i);
    expect(s.exited()).toBeUndefined();
    expect((await peer(s.port, root)).fingerprint).toMatch(/:/);
    expect(existsSync(join(tmp, "short", "acme", "certificate.pem"))).toBe(true);
  }, 40_000);
});
