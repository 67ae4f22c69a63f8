/**
 * HTTPS on the compiled binary, with certificates made at test time by openssl and verified by the
 * clients against the test CA: provisioning over HTTPS, renewal on SIGHUP, a broken renewal kept out,
 * wrong files refused at start, SIGHUP never stopping serve, and renewals under load with no failed
 * request (in a network namespace with net.ipv4.tcp_migrate_req=1, see src/http/listener.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userBody } from "../helpers";
import { hasOpenssl, makeCa, makeLeaf, servedFingerprint, type Ca, type Leaf } from "./certs";
import { BASE_PATH, buildBinaryInto, cleanEnv, freePort, startServe, stopAll } from "./harness";

let tmp = "";
let bin = "";
let ca: Ca;
const leaves: Record<string, Leaf> = {};
const started = new Set<Bun.Subprocess>();

/** Whether this machine lets the test make a network namespace and set tcp_migrate_req in it (root, util-linux, iproute2). */
const NETNS = ["unshare", "-n", "sh", "-c", 'ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1 && exec "$0" "$@"'];
const hasNetns = (() => {
  try {
    return Bun.spawnSync([...NETNS, "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
})();
if (!hasNetns)
  console.warn("SKIP renewal under load: needs a network namespace with net.ipv4.tcp_migrate_req=1 (root, and apt-get install util-linux iproute2 procps)");

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-tls-"));
  bin = buildBinaryInto(tmp);
  if (!hasOpenssl) return;
  ca = makeCa(tmp);
  for (const name of ["one", "two", "three", "four"]) leaves[name] = makeLeaf(tmp, ca, name);
}, 60_000);
afterAll(() => stopAll(started, tmp));

function install(certFile: string, keyFile: string, leaf: string) {
  copyFileSync(join(tmp, `${leaf}.pem`), `${certFile}.new`);
  copyFileSync(join(tmp, `${leaf}.key`), `${keyFile}.new`);
  renameSync(`${keyFile}.new`, keyFile);
  renameSync(`${certFile}.new`, certFile);
}

interface TlsServed {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  port: number;
  origin: string;
  /** stdout and stderr so far (the log lines move to stdout with the Logger). */
  log: () => string;
  waitForLog: (re: RegExp, ms?: number) => Promise<boolean>;
  exited: Promise<number>;
}

/** `scimd serve` over HTTPS with the files in `dir`; waits until /healthz answers over verified HTTPS. */
async function serveTls(dir: string, extra: string[] = []): Promise<TlsServed> {
  const port = await freePort();
  const proc = Bun.spawn(
    [bin, "serve", "--port", String(port), "--host", "127.0.0.1", "--db", join(dir, "scimd.db"), "--tls-cert", join(dir, "live.pem"), "--tls-key", join(dir, "live.key"), ...extra],
    { cwd: tmp, env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  started.add(proc);
  void proc.exited.then(() => started.delete(proc));
  let text = "";
  for (const s of [proc.stdout, proc.stderr])
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of s) text += decoder.decode(chunk, { stream: true });
    })();
  const origin = `https://127.0.0.1:${port}`;
  const until = Date.now() + 5000;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (!exited) {
    try {
      if ((await fetch(`${origin}/healthz`, { tls: { ca: ca.cert } })).ok) break;
    } catch {}
    if (Date.now() > until) throw new Error(`serve did not answer over HTTPS:\n${text}`);
    await Bun.sleep(20);
  }
  return {
    proc,
    port,
    origin,
    log: () => text,
    waitForLog: async (re, ms = 5000) => {
      const end = Date.now() + ms;
      while (!re.test(text) && Date.now() < end) await Bun.sleep(20);
      return re.test(text);
    },
    exited: proc.exited,
  };
}

/** A log line (a JSON object on one line) that holds every one of `parts`, in any order. */
function lineWith(...parts: string[]): RegExp {
  return new RegExp(`^${parts.map((p) => `(?=.*${p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})`).join("")}.*$`, "m");
}

function newDir(): string {
  return mkdtempSync(join(tmp, "site-"));
}

describe.skipIf(!hasOpenssl)("scimd serve --tls-cert --tls-key (the binary)", () => {
  it("serves the SCIM API over HTTPS with the certificate, verified against the CA; the banner says HTTPS and the https URL", async () => {
    const dir = newDir();
    install(join(dir, "live.pem"), join(dir, "live.key"), "one");
    const gen = Bun.spawnSync([bin, "generate-token", "--name", "okta", "--create", "--db", join(dir, "scimd.db")], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
    expect(gen.exitCode).toBe(0);
    const token = gen.stdout.toString().trim();
    const s = await serveTls(dir);
    try {
      expect(await servedFingerprint(s.port, ca.cert)).toBe(leaves.one!.fingerprint);
      const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" };
      const created = await fetch(`${s.origin}${BASE_PATH}/Users`, {
        method: "POST",
        headers,
        body: JSON.stringify(userBody("tls@example.com")),
        tls: { ca: ca.cert },
      });
      expect(created.status).toBe(201);
      const user = (await created.json()) as { id: string };
      expect(created.headers.get("location")).toBe(`${s.origin}${BASE_PATH}/Users/${user.id}`);
      const got = await fetch(`${s.origin}${BASE_PATH}/Users/${user.id}`, { headers, tls: { ca: ca.cert } });
      expect(((await got.json()) as { userName: string }).userName).toBe("tls@example.com");
      // A client that does not trust the CA is refused the handshake: the certificate really is the test's.
      await expect(fetch(`${s.origin}/healthz`)).rejects.toThrow();
      // Plain HTTP on the HTTPS port gets no SCIM answer.
      await expect(fetch(`http://127.0.0.1:${s.port}/healthz`).then((r) => r.status)).rejects.toThrow();
      expect(await s.waitForLog(/"exposed":"HTTPS on loopback only/)).toBe(true);
      expect(s.log()).toContain(`"apiUrl":"https://127.0.0.1:${s.port}${BASE_PATH}"`);
      expect(s.log()).toMatch(lineWith("certificate loaded", leaves.one!.serial));
    } finally {
      s.proc.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }
  });

  it("picks up renewed files on SIGHUP without a restart (new connections get the new certificate), keeps the old one when the renewed key does not match, and SIGHUP never stops it", async () => {
    const dir = newDir();
    const certFile = join(dir, "live.pem"), keyFile = join(dir, "live.key");
    install(certFile, keyFile, "one");
    const s = await serveTls(dir);
    try {
      install(certFile, keyFile, "two");
      s.proc.kill("SIGHUP");
      expect(await s.waitForLog(lineWith("certificate renewed", leaves.two!.serial))).toBe(true);
      for (let i = 0; i < 5; i++) expect(await servedFingerprint(s.port, ca.cert)).toBe(leaves.two!.fingerprint);

      // A renewal that went wrong: the new certificate with the old key.
      copyFileSync(join(tmp, "three.pem"), certFile);
      s.proc.kill("SIGHUP");
      expect(await s.waitForLog(lineWith("certificate renewal failed", "is not the private key of the certificate"))).toBe(true);
      expect(await servedFingerprint(s.port, ca.cert)).toBe(leaves.two!.fingerprint);
      expect((await fetch(`${s.origin}/healthz`, { tls: { ca: ca.cert } })).status).toBe(200);
      expect(s.proc.exitCode).toBeNull();
    } finally {
      s.proc.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }
  });

  it("picks up renewed files without SIGHUP too, by polling them (every 5 s), as a certbot renewal without a deploy hook", async () => {
    const dir = newDir();
    const certFile = join(dir, "live.pem"), keyFile = join(dir, "live.key");
    install(certFile, keyFile, "three");
    const s = await serveTls(dir);
    try {
      install(certFile, keyFile, "four");
      expect(await s.waitForLog(lineWith("certificate renewed", leaves.four!.serial), 12_000)).toBe(true);
      expect(await servedFingerprint(s.port, ca.cert)).toBe(leaves.four!.fingerprint);
    } finally {
      s.proc.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }
  }, 20_000);

  const wrong: [string, (dir: string) => void, RegExp][] = [
    ["a missing key file", (d) => copyFileSync(join(tmp, "one.pem"), join(d, "live.pem")), /^scimd: cannot read \S*live\.key \(--tls-key\): no such file$/],
    [
      "a key that is not the certificate's",
      (d) => {
        copyFileSync(join(tmp, "one.pem"), join(d, "live.pem"));
        copyFileSync(join(tmp, "two.key"), join(d, "live.key"));
      },
      /^scimd: \S*live\.key \(--tls-key\) is not the private key of the certificate in \S*live\.pem \(--tls-cert\)/,
    ],
    [
      "a certificate file that is no certificate",
      (d) => {
        writeFileSync(join(d, "live.pem"), "hello\n");
        copyFileSync(join(tmp, "one.key"), join(d, "live.key"));
      },
      /^scimd: \S*live\.pem \(--tls-cert\) is not a PEM certificate/,
    ],
  ];
  it.each(wrong)("refuses to start with %s: exit code 1, one line naming the file, no database created", async (_t, make, message) => {
    const dir = newDir();
    make(dir);
    const p = Bun.spawnSync([bin, "serve", "--port", "0", "--db", join(dir, "scimd.db"), "--tls-cert", join(dir, "live.pem"), "--tls-key", join(dir, "live.key")], {
      cwd: tmp,
      env: cleanEnv(),
      stdout: "pipe",
      stderr: "pipe",
      timeout: 10_000,
    });
    expect(p.exitCode).toBe(1);
    const err = p.stderr.toString().trim();
    expect(err).toMatch(message);
    expect(err.split("\n")).toHaveLength(1);
    expect(existsSync(join(dir, "scimd.db"))).toBe(false);
  });

  it.skipIf(!hasNetns)(
    "renews the certificate three times under load: concurrent HTTPS requests over new and keep-alive connections, zero failed, new connections see each new certificate",
    () => {
      const dir = newDir();
      for (const n of Object.keys(leaves)) {
        copyFileSync(join(tmp, `${n}.pem`), join(dir, `${n}.pem`));
        copyFileSync(join(tmp, `${n}.key`), join(dir, `${n}.key`));
      }
      const p = Bun.spawnSync([...NETNS, process.execPath, join(import.meta.dir, "tls-renewal-load.ts"), bin, dir, ca.certFile, ...Object.keys(leaves)], {
        cwd: tmp,
        stdout: "pipe",
        stderr: "pipe",
        timeout: 90_000,
      });
      const out = p.stdout.toString().trim().split("\n").at(-1) ?? "";
      if (p.exitCode !== 0 || !out.startsWith("{")) throw new Error(`the load script failed (${p.exitCode}):\n${p.stdout}\n${p.stderr}`);
      const r = JSON.parse(out) as {
        ok: Record<string, number>;
        failures: string[];
        keepAlive: { requests: number; connections: number };
        renewals: { serial: string; freshMatched: number; freshChecked: number; renewedMs: number }[];
        exitCode: number;
      };
      console.log(`renewal under load: ${JSON.stringify({ ok: r.ok, keepAlive: r.keepAlive, renewals: r.renewals.map((x) => x.renewedMs) })}`);
      expect(r.failures).toEqual([]);
      expect(r.renewals.map((x) => x.serial)).toEqual(["two", "three", "four"].map((n) => leaves[n]!.serial));
      for (const x of r.renewals) expect(x.freshMatched).toBe(x.freshChecked);
      for (const kind of ["node keep-alive", "node new connection", "bun fetch keep-alive", "bun fetch new connection"]) expect(r.ok[kind] ?? 0).toBeGreaterThan(100);
      // Keep-alive connections carried many requests each (they were reused, and moved at each renewal).
      expect(r.keepAlive.connections).toBeGreaterThanOrEqual(4);
      expect(r.keepAlive.requests).toBeGreaterThan(r.keepAlive.connections * 10);
      expect(r.exitCode).toBe(0);
    },
    120_000,
  );
});

describe("SIGHUP", () => {
  it("during start-up (here: waiting for the ACME server's directory) is ignored, not the end of serve", async () => {
    let arrived!: () => void;
    const asked = new Promise<void>((r) => (arrived = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    // A slow ACME server of the test's own, on loopback: it holds the first request until told.
    const acmeServer = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async () => {
        arrived();
        await released;
        return new Response("down for the test", { status: 503 });
      },
    });
    const p = Bun.spawn(
      [bin, "serve", "--port", "0", "--host", "127.0.0.1", "--db", join(newDir(), "scimd.db"), "--log-format", "json",
        "--acme-domain", "scim.example.test", "--acme-email", "it@example.test", "--acme-directory", `http://127.0.0.1:${acmeServer.port}/directory`, "--acme-http-port", "0"],
      { cwd: tmp, env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    started.add(p);
    try {
      await Promise.race([asked, p.exited, Bun.sleep(10_000)]);
      expect(p.exitCode).toBeNull();
      p.kill("SIGHUP");
      await Bun.sleep(300);
      expect({ exitCode: p.exitCode, signal: p.signalCode }).toEqual({ exitCode: null, signal: null });
      release();
      expect(await Promise.race([p.exited, Bun.sleep(15_000).then(() => "still running")])).toBe(1);
      expect(p.signalCode).toBeNull();
    } finally {
      release();
      if (p.exitCode === null) p.kill("SIGKILL");
      await p.exited;
      started.delete(p);
      await acmeServer.stop(true);
    }
  }, 30_000);

  it("SIGTERM during start-up ends serve with 143 and the log lines written so far reach stdout (they are batched)", async () => {
    let arrived!: () => void;
    const asked = new Promise<void>((r) => (arrived = r));
    const acmeServer = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async () => {
        arrived();
        await Bun.sleep(20_000);
        return new Response("down for the test", { status: 503 });
      },
    });
    const p = Bun.spawn(
      [bin, "serve", "--port", "0", "--host", "127.0.0.1", "--db", join(newDir(), "scimd.db"), "--log-format", "json",
        "--acme-domain", "scim.example.test", "--acme-email", "it@example.test", "--acme-directory", `http://127.0.0.1:${acmeServer.port}/directory`, "--acme-http-port", "0"],
      { cwd: tmp, env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    started.add(p);
    try {
      await Promise.race([asked, p.exited, Bun.sleep(10_000)]);
      expect(p.exitCode).toBeNull();
      p.kill("SIGTERM");
      expect(await Promise.race([p.exited, Bun.sleep(10_000).then(() => "still running")])).toBe(143);
      // It exited (through process.exit, which flushes the log), not killed by the signal's default action.
      expect(p.signalCode).toBeNull();
      const events = (await new Response(p.stdout).text()).trim().split("\n").map((l) => JSON.parse(l).event);
      expect(events).toContain("started");
      expect(events).toContain("migrated");
    } finally {
      if (p.exitCode === null) p.kill("SIGKILL");
      await p.exited;
      started.delete(p);
      await acmeServer.stop(true);
    }
  }, 30_000);

  it("does not stop a plain HTTP serve (nothing to reload)", async () => {
    const s = await startServe(bin, tmp, ["--db", join(newDir(), "scimd.db")], started);
    try {
      s.proc.kill("SIGHUP");
      await Bun.sleep(300);
      expect(s.proc.exitCode).toBeNull();
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    } finally {
      expect(await s.stop(5000)).toBe(0);
    }
  });
});
