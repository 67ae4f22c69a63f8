/**
 * A real local ACME server for the tests: Debian's pebble (Let's Encrypt's test CA) and
 * pebble-challtestsrv as its DNS, both on loopback with free ports, never the internet. Pebble really
 * validates the HTTP-01 challenge (PEBBLE_VA_ALWAYS_VALID is not set): it resolves the test domain
 * through challtestsrv (127.0.0.1) and fetches the token from the client's challenge port.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./harness";

/** Whether pebble is installed; the tests that need it are skipped (visibly) without it. */
export const hasPebble = Bun.which("pebble") !== null && Bun.which("pebble-challtestsrv") !== null;
export const PEBBLE_INSTALL = "apt-get install pebble";
if (!hasPebble) console.warn(`SKIP: pebble or pebble-challtestsrv not on PATH, the ACME tests are skipped; install with \`${PEBBLE_INSTALL}\``);

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** The CA file that pebble's own HTTPS listener (directory, management) is verified against. */
  caFile: string;
  /** The management API, e.g. https://127.0.0.1:15000. */
  management: string;
  /** The root that pebble issues under (generated at its start), as PEM. */
  root(): Promise<string>;
  /** How many new orders pebble has been asked for so far (from its request log). */
  orders(): number;
  /** Everything pebble wrote so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** The port pebble connects to on the domain for HTTP-01 (the client's challenge listener). */
  httpPort: number;
  /** Lifetime of the certificates pebble issues, in seconds (pebble's default is five years). */
  validitySeconds?: number;
}

/** A self-signed certificate for pebble's own HTTPS on 127.0.0.1 and localhost, made with the openssl CLI. */
function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, "pebble-cert.pem"), key = join(dir, "pebble-key.pem");
  const p = Bun.spawnSync(
    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=pebble test listener",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (p.exitCode !== 0) throw new Error(`openssl failed: ${p.stderr.toString()}`);
  return { cert, key };
}

/** Reads a process's output into a string as it comes. */
function collect(stream: ReadableStream<Uint8Array>): () => string {
  let text = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return () => text;
}

async function waitFor(what: string, ok: () => Promise<boolean>, exited: () => boolean, out: () => string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (exited()) throw new Error(`${what} exited early:\n${out()}`);
    if (await ok().catch(() => false)) return;
    await Bun.sleep(25);
  }
  throw new Error(`${what} did not start within ${ms} ms:\n${out()}`);
}

/** Starts challtestsrv (DNS only) and pebble in `dir`; `started` gets both processes. */
export async function startPebble(dir: string, o: PebbleOptions, started: Set<Bun.Subprocess>): Promise<Pebble> {
  mkdirSync(dir, { recursive: true });
  const tls = selfSigned(dir);
  const ca = await Bun.file(tls.cert).text();
  const [dns, dnsManagement, listen, management, tlsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);

  // challtestsrv as a DNS server only: its own HTTP-01, HTTPS and TLS-ALPN-01 responders are off.
  const chall = Bun.spawn(
    ["pebble-challtestsrv", "-dns01", `127.0.0.1:${dns}`, "-management", `127.0.0.1:${dnsManagement}`, "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  started.add(chall);
  const challOut = collect(chall.stdout);
  let challExited = false;
  void chall.exited.then(() => ((challExited = true), started.delete(chall)));
  const dnsApi = `http://127.0.0.1:${dnsManagement}`;
  await waitFor("pebble-challtestsrv", async () => (await fetch(`${dnsApi}/set-default-ipv4`, { method: "POST", body: JSON.stringify({ ip: "127.0.0.1" }) })).ok, () => challExited, challOut);
  // Every name resolves to loopback, and to no IPv6 address, so pebble dials 127.0.0.1 only.
  await fetch(`${dnsApi}/set-default-ipv6`, { method: "POST", body: JSON.stringify({ ip: "" }) });

  const config = join(dir, "pebble-config.json");
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listen}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: tls.cert,
        privateKey: tls.key,
        httpPort: o.httpPort,
        tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        ...(o.validitySeconds ? { certificateValidityPeriod: o.validitySeconds } : {}),
      },
    }),
  );
  const pebble = Bun.spawn(["pebble", "-config", config, "-dnsserver", `127.0.0.1:${dns}`], {
    // No artificial validation delay, and no nonce rejections (deterministic request counts).
    env: { PATH: process.env.PATH ?? "/usr/bin", PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  started.add(pebble);
  const out = collect(pebble.stdout), err = collect(pebble.stderr);
  const log = () => out() + err();
  let exited = false;
  void pebble.exited.then(() => ((exited = true), started.delete(pebble)));
  const directory = `https://127.0.0.1:${listen}/dir`;
  await waitFor("pebble", async () => (await fetch(directory, { tls: { ca } })).ok, () => exited, log);

  const stopOne = async (p: Bun.Subprocess) => {
    p.kill("SIGTERM");
    if ((await Promise.race([p.exited, Bun.sleep(3000).then(() => "timeout")])) === "timeout") {
      p.kill("SIGKILL");
      await p.exited;
    }
  };
  return {
    directory,
    caFile: tls.cert,
    management: `https://127.0.0.1:${management}`,
    root: async () => {
      const r = await fetch(`https://127.0.0.1:${management}/roots/0`, { tls: { ca } });
      if (!r.ok) throw new Error(`pebble /roots/0 answered ${r.status}`);
      return r.text();
    },
    orders: () => (log().match(/POST \/order-plz/g) ?? []).length,
    log,
    stop: async () => {
      await stopOne(pebble);
      await stopOne(chall);
    },
  };
}
