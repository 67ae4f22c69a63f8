/**
 * Renewal under load, run by tls.test.ts (in its own network namespace where it can make one):
 * starts the binary with HTTPS, keeps concurrent HTTPS requests going over new and keep-alive
 * connections (node's https client and Bun's fetch), renews the certificate files several times
 * (rename + SIGHUP), checks after each renewal that new connections present the new certificate, and
 * prints one JSON line with what it saw.
 *
 * Usage: bun tls-renewal-load.ts BIN DIR CA_FILE LEAF... (DIR holds LEAF.pem and LEAF.key for each)
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { servedFingerprint } from "./certs";
import { X509Certificate } from "node:crypto";

const [bin, dir, caFile, ...leaves] = process.argv.slice(2) as [string, string, string, ...string[]];
const ca = readFileSync(caFile, "utf8");
const certFile = join(dir, "live.pem"), keyFile = join(dir, "live.key");
const install = (name: string) => {
  writeFileSync(`${certFile}.new`, readFileSync(join(dir, `${name}.pem`)));
  writeFileSync(`${keyFile}.new`, readFileSync(join(dir, `${name}.key`)));
  renameSync(`${keyFile}.new`, keyFile);
  renameSync(`${certFile}.new`, certFile);
};
const fingerprintOf = (name: string) => new X509Certificate(readFileSync(join(dir, `${name}.pem`), "utf8")).fingerprint256;
const serialOf = (name: string) => new X509Certificate(readFileSync(join(dir, `${name}.pem`), "utf8")).serialNumber;

const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
const port = probe.port!;
await probe.stop(true);

const db = join(dir, "load.db");
const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" };
const token = Bun.spawnSync([bin, "generate-token", "--name", "load", "--create", "--db", db], { env, stdout: "pipe", stderr: "pipe" }).stdout.toString().trim();
install(leaves[0]!);
const proc = Bun.spawn([bin, "serve", "--port", String(port), "--host", "127.0.0.1", "--db", db, "--tls-cert", certFile, "--tls-key", keyFile], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
let output = "";
for (const stream of [proc.stdout, proc.stderr])
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  })();

const origin = `https://127.0.0.1:${port}`;
const until = Date.now() + 10_000;
for (;;) {
  try {
    if ((await fetch(`${origin}/healthz`, { tls: { ca } })).ok) break;
  } catch {}
  if (Date.now() > until) throw new Error(`serve did not answer over HTTPS:\n${output}`);
  await Bun.sleep(20);
}

const result = {
  ok: {} as Record<string, number>,
  failures: [] as string[],
  /** node keep-alive requests and the distinct connections they used. */
  keepAlive: { requests: 0, connections: 0 },
  renewals: [] as { serial: string; renewedMs: number; freshMatched: number; freshChecked: number }[],
  exitCode: undefined as number | null | undefined,
  output: "",
};
const ok = (kind: string) => (result.ok[kind] = (result.ok[kind] ?? 0) + 1);
const fail = (kind: string, why: unknown) => result.failures.length < 50 && result.failures.push(`${kind}: ${why instanceof Error ? `${(why as { code?: string }).code ?? ""} ${why.message}` : String(why)}`);

const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
const sockets = new Set<unknown>();
function nodeGet(kind: string, path: string, keepAlive: boolean): Promise<void> {
  return new Promise((resolve) => {
    const req = https.get({ host: "127.0.0.1", port, path, servername: "localhost", ca, agent: keepAlive ? agent : false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      if (keepAlive) {
        result.keepAlive.requests++;
        sockets.add(res.socket);
      }
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? ok(kind) : fail(kind, `status ${res.statusCode}`), resolve()));
      res.on("error", (e) => (fail(kind, e), resolve()));
    });
    req.on("error", (e) => (fail(kind, e), resolve()));
  });
}
async function bunGet(kind: string, path: string, keepalive: boolean) {
  try {
    const r = await fetch(`${origin}${path}`, { tls: { ca }, keepalive, headers: { Authorization: `Bearer ${token}` } });
    await r.arrayBuffer();
    r.status === 200 ? ok(kind) : fail(kind, `status ${r.status}`);
  } catch (e) {
    fail(kind, e);
  }
}

let running = true;
const loop = async (f: () => Promise<void>) => {
  while (running) await f();
};
const workers = [
  ...Array.from({ length: 4 }, () => loop(() => nodeGet("node keep-alive", "/api/v1/scim/Users?count=1", true))),
  ...Array.from({ length: 4 }, () => loop(() => nodeGet("node new connection", "/healthz", false))),
  ...Array.from({ length: 4 }, () => loop(() => bunGet("bun fetch keep-alive", "/api/v1/scim/Users?count=1", true))),
  ...Array.from({ length: 4 }, () => loop(() => bunGet("bun fetch new connection", "/healthz", false))),
];

try {
  await Bun.sleep(300);
  for (const name of leaves.slice(1)) {
    const serial = serialOf(name);
    const t0 = performance.now();
    install(name);
    proc.kill("SIGHUP");
    const deadline = Date.now() + 15_000;
    while (!new RegExp(`certificate renewed[^\\n]*${serial}`).test(output) && Date.now() < deadline) await Bun.sleep(10);
    const renewedMs = performance.now() - t0;
    let freshMatched = 0;
    const want = fingerprintOf(name);
    for (let i = 0; i < 10; i++) if ((await servedFingerprint(port, ca).catch((e) => String(e))) === want) freshMatched++;
    result.renewals.push({ serial, renewedMs: Math.round(renewedMs), freshMatched, freshChecked: 10 });
    await Bun.sleep(300);
  }
} finally {
  running = false;
  await Promise.all(workers);
  result.keepAlive.connections = sockets.size;
  agent.destroy();
  proc.kill("SIGTERM");
  result.exitCode = await Promise.race([proc.exited, Bun.sleep(5000).then(() => undefined)]);
  if (result.exitCode === undefined) proc.kill("SIGKILL");
  result.output = output;
  console.log(JSON.stringify(result));
}
