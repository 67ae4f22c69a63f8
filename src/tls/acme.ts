/**
 * Automatic certificates over ACME (RFC 8555) with acme-client: an account key and the certificate
 * are kept beside the database in `<db folder>/acme/` (folder 0700, files 0600) and reused across
 * restarts; the HTTP-01 challenge is answered by a small plain listener on --acme-http-port (which
 * redirects everything else to https). A certificate is obtained before the API listens when none
 * valid is stored, then renewed in the background; a failed renewal is logged and retried with
 * backoff while the current certificate keeps being served.
 *
 * The stored certificate is reused only when it came from the same --acme-directory (recorded in
 * certificate.json; a staging certificate is never served once production is configured), and the
 * account key is kept per directory (an account belongs to one CA). A failed first order is recorded
 * in `last-failure`: a restart loop (systemd's Restart=on-failure) must not hit the CA once per start,
 * so the next start refuses to order again before a backoff (5 min, doubling to 1 h) has passed.
 */
import * as acme from "acme-client";
import type { Server } from "bun";
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { chmodSync, closeSync, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { Agent } from "node:https";
import { dirname, join, resolve } from "node:path";
import type { ServeConfig } from "../config";
import type { TlsPair } from "../http/listener";
import type { Logger } from "../log";
import type { CertificateSource } from "./certificates";


export type AcmeConfig = NonNullable<ServeConfig["acme"]>;

/** Where the ACME state lives: `<db folder>/acme/`. */
export interface AcmePaths {
  dir: string;
  cert: string;
  key: string;
  /** The ACME directory the stored pair was issued by (JSON). */
  origin: string;
  /** The last failed first order (JSON), until an order succeeds. */
  lastFailure: string;
}

/** The ACME folder beside the database file. */
export function acmePaths(dbFile: string): AcmePaths {
  return acmePathsIn(join(dirname(resolve(dbFile)), "acme"));
}

/** The ACME files in the folder `folder` (--acme-dir). */
export function acmePathsIn(folder: string): AcmePaths {
  const dir = resolve(folder);
  return { dir, cert: join(dir, "certificate.pem"), key: join(dir, "certificate.key"), origin: join(dir, "certificate.json"), lastFailure: join(dir, "last-failure") };
}

/** The account key for one ACME directory: `account-<host>-<hash of the URL>.key` (an account belongs to one CA). */
export function accountKeyFile(paths: AcmePaths, directory: string): string {
  let host = "acme";
  try {
    host = new URL(directory).host.toLowerCase().replace(/[^a-z0-9.-]/g, "_");
  } catch {}
  return join(paths.dir, `account-${host}-${createHash("sha256").update(directory).digest("hex").slice(0, 12)}.key`);
}

/** An ACME source that also says where plain HTTP is redirected to (serve sets the API's port once it listens). */
export interface AcmeCertificateSource extends CertificateSource {
  /** The HTTPS port that the challenge listener redirects other requests to. */
  httpsPort: number;
  /** The port the challenge listener answers on. */
  readonly httpPort: number;
}

/** How often and how hard renewal tries; the defaults suit a real CA (tests use them too). */
export interface AcmeTiming {
  /** Longest wait between two checks of the certificate's age. */
  checkEveryMs: number;
  /** First retry delay after a failed renewal (a tenth of the lifetime if less); doubled on each failure up to checkEveryMs. */
  retryMinMs: number;
  /** How long a start waits after a failed first order before it orders again; doubled on each failure up to firstOrderMaxMs. */
  firstOrderBackoffMs: number;
  firstOrderMaxMs: number;
}
// First orders: 5 min, 10, 20, 40, then hourly: at most 4 failed validations in the first hour,
// under Let's Encrypt's 5 per account, hostname and hour, however often the process is restarted.
const DEFAULT_TIMING: AcmeTiming = { checkEveryMs: 6 * 3_600_000, retryMinMs: 60_000, firstOrderBackoffMs: 5 * 60_000, firstOrderMaxMs: 3_600_000 };
const DAY = 86_400_000;

/** The stored certificate's validity and the names it covers. */
interface CertInfo {
  notBefore: number;
  notAfter: number;
  names: string[];
}

function certInfo(pem: string): CertInfo {
  const info = acme.crypto.readCertificateInfo(pem);
  return {
    notBefore: info.notBefore.getTime(),
    notAfter: info.notAfter.getTime(),
    names: [info.domains.commonName, ...info.domains.altNames].filter(Boolean).map((n) => n.toLowerCase()),
  };
}

/**
 * When a certificate is due for renewal: once a third of its lifetime is left, and at the latest 30
 * days before it expires (Let's Encrypt's 90-day certificates: 30 days before; a 6-day one: 2 days).
 */
export function renewalTime(info: { notBefore: number; notAfter: number }): number {
  const lifetime = info.notAfter - info.notBefore;
  return info.notAfter - Math.min(30 * DAY, lifetime / 3);
}

/** Flushes a folder's entries (a rename in it) to disk. */
function syncFolder(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A file written whole, readable by its owner only: a temporary file, flushed to disk, renamed over
 * it, then the folder flushed, so that a power cut leaves the old file or the new one, never an
 * empty or truncated one.
 */
function writePrivate(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    fchmodSync(fd, 0o600);
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  syncFolder(dirname(path));
}

/** A file's text, or undefined when it does not exist; other read errors are one line naming the file. */
function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") return undefined;
    throw new Error(`cannot read ${path}: ${code === "EACCES" ? "permission denied" : (e as Error).message}`);
  }
}

/**
 * The account key for `directory`: the stored one, or a new one when there is none or it is unusable
 * (empty, truncated: the account it belonged to cannot be used without it anyway; a new key is a new
 * account at the CA, which is all an order needs).
 */
async function accountKeyFor(file: string, logger: Logger): Promise<string> {
  const stored = readIfThere(file);
  if (stored !== undefined) {
    try {
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(stored)) throw new Error(stored.trim() === "" ? "the file is empty" : "no PEM private key in it");
      createPrivateKey(stored);
      return stored;
    } catch (e) {
      logger.warn("warning", { message: `the ACME account key ${file} cannot be used (${(e as Error).message.split("\n")[0]}): creating a new one (a new ACME account)`, file });
    }
  }
  const key = (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
  writePrivate(file, key);
  logger.info("acme account key created", { file });
  return key;
}

/** A failed first order, as `last-failure` records it. */
interface LastFailure {
  /** When it failed (ms since the epoch). */
  time: number;
  /** How many first orders in a row failed with these settings. */
  failures: number;
  /** The settings it was tried with: other settings (a fix, presumably) may order at once. */
  settings: string;
  error: string;
}

function readLastFailure(path: string): LastFailure | undefined {
  const text = readIfThere(path);
  if (text === undefined) return undefined;
  try {
    const f = JSON.parse(text) as LastFailure;
    if (typeof f.time === "number" && typeof f.failures === "number" && typeof f.settings === "string") return f;
  } catch {}
  // Unreadable (a crash mid-write cannot do that, see writePrivate; a hand edit can): as if it failed once now.
  return { time: Date.now(), failures: 1, settings: "", error: `${path} is not valid` };
}

/** How long after a failed first order the next may be placed: firstOrderBackoffMs, doubled per failure, at most firstOrderMaxMs. */
export function firstOrderBackoff(failures: number, timing: Pick<AcmeTiming, "firstOrderBackoffMs" | "firstOrderMaxMs">): number {
  return Math.min(timing.firstOrderBackoffMs * 2 ** Math.max(0, failures - 1), timing.firstOrderMaxMs);
}

/** The stored pair, if it is whole, came from `directory`, its key matches, it covers every domain and has not expired. */
function storedPair(paths: AcmePaths, directory: string, domains: string[], now: number, logger: Logger): { pair: TlsPair; info: CertInfo } | undefined {
  if (!existsSync(paths.cert) || !existsSync(paths.key)) return undefined;
  let origin: string | undefined;
  try {
    origin = (JSON.parse(readFileSync(paths.origin, "utf8")) as { directory?: unknown }).directory as string | undefined;
  } catch {}
  if (origin !== directory) {
    const from = typeof origin === "string" ? `was issued by ${origin}` : `has no record of the ACME directory that issued it (${paths.origin})`;
    logger.warn("warning", { message: `the stored ACME certificate ${from}, not by --acme-directory ${directory}: obtaining a new one`, file: paths.cert });
    return undefined;
  }
  try {
    const pair = { cert: readFileSync(paths.cert, "utf8"), key: readFileSync(paths.key, "utf8") };
    const info = certInfo(pair.cert);
    const missing = domains.filter((d) => !info.names.includes(d.toLowerCase()));
    if (missing.length) {
      logger.warn("warning", { message: `the stored ACME certificate does not cover ${missing.join(", ")}: obtaining a new one`, file: paths.cert });
      return undefined;
    }
    if (!new X509Certificate(pair.cert).checkPrivateKey(createPrivateKey(pair.key))) throw new Error("the key does not match the certificate");
    if (info.notAfter <= now) return undefined;
    return { pair, info };
  } catch (e) {
    logger.warn("warning", { message: `the stored ACME certificate cannot be used (${(e as Error).message}): obtaining a new one`, file: paths.cert });
    return undefined;
  }
}

/** Bun.serve's listen errors for the challenge port, in words that say what to do. */
function challengeListenError(e: unknown, host: string, port: number): Error {
  const code = (e as { code?: string } | null)?.code;
  if (code === "EADDRINUSE") return new Error(`the ACME HTTP-01 port ${port} is already in use on ${host}; stop the program there or choose another --acme-http-port (the CA must reach it as port 80 of the domain)`);
  if (code === "EACCES")
    return new Error(`not allowed to listen on port ${port} on ${host} for the ACME HTTP-01 challenge; grant the binary CAP_NET_BIND_SERVICE (AmbientCapabilities in the systemd unit) or forward port 80 to --acme-http-port`);
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * acme-client's requests go through one shared axios instance (Node's http adapter, which Bun
 * implements): an https.Agent with `ca` makes it trust --acme-ca-file (and only it) for the ACME
 * server's own HTTPS. Its retries are shortened so that an unreachable server fails a start within
 * seconds instead of a minute; renewal has its own backoff.
 */
function configureHttp(caFile: string | undefined): void {
  if (caFile !== undefined) {
    let ca: string;
    try {
      ca = readFileSync(caFile, "utf8");
    } catch (e) {
      throw new Error(`cannot read --acme-ca-file ${caFile}: ${(e as Error).message}`);
    }
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`--acme-ca-file ${caFile} holds no PEM certificate`);
    acme.axios.defaults.httpsAgent = new Agent({ ca, keepAlive: false });
  }
  acme.axios.defaults.timeout = 30_000;
  const settings = (acme.axios.defaults as unknown as { acmeSettings: Record<string, number> }).acmeSettings;
  settings.retryMaxAttempts = 2;
  settings.retryDefaultDelay = 1;
  keepNetworkErrors(settings);
}

let networkErrorsKept = false;
/**
 * acme-client 5.4.0's response interceptor, once its retries of a request that got no response (a
 * refused connection, an untrusted certificate, a timeout) are spent, reads `response.config` of the
 * missing response and throws "undefined is not an object", losing the reason. An interceptor ahead
 * of it turns that last network error into a plain Error (no `config`), which acme-client passes on.
 */
function keepNetworkErrors(settings: Record<string, number>): void {
  const manager = acme.axios.interceptors.response as unknown as { handlers?: unknown[] };
  if (networkErrorsKept || !Array.isArray(manager.handlers)) return;
  networkErrorsKept = true;
  manager.handlers.unshift({
    fulfilled: (r: unknown) => r,
    rejected: (error: { response?: unknown; config?: { retryAttempt?: number }; code?: string; message?: string }) => {
      if (!error || error.response || !error.config) return Promise.reject(error);
      const retried = error.code !== "ECONNABORTED" && (error.config.retryAttempt ?? 0) < settings.retryMaxAttempts!;
      return Promise.reject(retried ? error : new Error(`${error.message}${error.code && !error.message?.includes(error.code) ? ` (${error.code})` : ""}`));
    },
    synchronous: false,
    runWhen: null,
  });
}

/** An error from acme-client or axios as one line (axios errors carry the whole request otherwise). */
function reason(e: unknown): string {
  const err = e as { message?: string; code?: string; response?: { status?: number; data?: { detail?: string } } };
  const detail = err?.response?.data?.detail;
  const text = [err?.message ?? String(e), detail].filter(Boolean).join(": ");
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify/i.test(text) ? `${text}; if the ACME server uses a private CA, trust it with --acme-ca-file` : text;
}

/**
 * The ACME certificate source for serve: reads or creates the account key, listens for HTTP-01,
 * and resolves once a valid certificate is at hand (the stored one, or a new one obtained now).
 * Throws when none can be had at start (the error says why); later failures only log.
 */
export async function acmeCertificates(
  config: Pick<ServeConfig, "host" | "port"> & { acme: AcmeConfig },
  paths: AcmePaths,
  logger: Logger,
  timing: AcmeTiming = DEFAULT_TIMING,
): Promise<AcmeCertificateSource> {
  const { domains, email, directory, caFile, httpPort } = config.acme;
  if (httpPort === config.port && httpPort !== 0) throw new Error(`--acme-http-port and --port are both ${httpPort}: the HTTP-01 challenge needs a plain HTTP port of its own (80)`);
  configureHttp(caFile);
  // acme-client's own steps (requests, polls, retries: URLs and states, no key) at debug.
  acme.setLogger((message) => logger.debug("acme", { message }));
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  chmodSync(paths.dir, 0o700);

  const stored = storedPair(paths, directory, domains, Date.now(), logger);
  // The settings a failed first order is remembered with; a restart with the same ones waits out the backoff.
  const settings = JSON.stringify({ directory, domains: domains.map((d) => d.toLowerCase()).sort(), email, caFile: caFile ?? null, httpPort });
  const failed = stored ? undefined : readLastFailure(paths.lastFailure);
  const previous = failed?.settings === settings ? failed : undefined;
  if (previous) {
    const at = previous.time + firstOrderBackoff(previous.failures, timing);
    if (Date.now() < at)
      throw new Error(
        `not ordering a certificate for ${domains.join(", ")} from ${directory} again before ${new Date(at).toISOString()}: ` +
          `the last ${previous.failures === 1 ? "order" : `${previous.failures} orders`} failed (${new Date(previous.time).toISOString()}: ${previous.error}); ` +
          `fix the cause, then delete ${paths.lastFailure} to order now`,
      );
  }

  const accountKey = await accountKeyFor(accountKeyFile(paths, directory), logger);
  // acme-client polls the order and authorizations with its own backoff: from half a second, so
  // that an issuance takes seconds, up to 10 s between polls.
  const client = new acme.Client({ directoryUrl: directory, accountKey, backoffAttempts: 12, backoffMin: 500, backoffMax: 10_000 });

  // Token → key authorization for the challenges in progress.
  const challenges = new Map<string, string>();
  const source = {
    httpsPort: config.port,
    httpPort,
  } as AcmeCertificateSource;
  let challengeServer: Server<unknown>;
  try {
    challengeServer = Bun.serve({
      hostname: config.host,
      port: httpPort,
      reusePort: false,
      development: false,
      fetch(request) {
        const url = new URL(request.url);
        const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
        if (m) {
          const answer = challenges.get(m[1]!);
          return answer === undefined ? new Response("no such challenge\n", { status: 404 }) : new Response(answer, { headers: { "Content-Type": "text/plain" } });
        }
        // Anything else is someone reaching for the API over plain HTTP: send them to HTTPS, on
        // one of the certificate's names (never to whatever name the Host header holds).
        const asked = (request.headers.get("host") ?? "").replace(/:\d+$/, "").toLowerCase();
        const host = domains.find((d) => d.toLowerCase() === asked) ?? domains[0]!;
        const port = source.httpsPort === 443 ? "" : `:${source.httpsPort}`;
        return new Response(null, { status: 308, headers: { Location: `https://${host}${port}${url.pathname}${url.search}` } });
      },
    });
  } catch (e) {
    throw challengeListenError(e, config.host, httpPort);
  }

  /** Runs one order through to a certificate and stores it. */
  async function obtain(): Promise<{ pair: TlsPair; info: CertInfo }> {
    const [key, csr] = await acme.crypto.createCsr({ commonName: domains[0], altNames: domains }, await acme.crypto.createPrivateEcdsaKey("P-256"));
    const cert = await client.auto({
      csr,
      email,
      termsOfServiceAgreed: true,
      challengePriority: ["http-01"],
      // The CA validates; acme-client's own pre-check would fetch the domain through this
      // machine's DNS, which may not resolve the domain to itself (NAT, split DNS).
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => void challenges.set(challenge.token, keyAuthorization),
      challengeRemoveFn: async (_authz, challenge) => void challenges.delete(challenge.token),
    });
    const pair = { cert, key: key.toString() };
    const info = certInfo(cert);
    // The key first: a crash between the two leaves a pair that does not match, which is obtained again.
    // The origin last: a crash before it leaves the previous origin or none, so the pair is ordered again
    // rather than trusted as coming from a directory it may not come from.
    writePrivate(paths.key, pair.key);
    writePrivate(paths.cert, pair.cert);
    writePrivate(paths.origin, `${JSON.stringify({ directory, domains, obtained: new Date().toISOString() })}\n`);
    rmSync(paths.lastFailure, { force: true });
    return { pair, info };
  }

  const fields = (info: CertInfo) => ({ domains, notAfter: new Date(info.notAfter).toISOString(), renewAt: new Date(renewalTime(info)).toISOString(), file: paths.cert });
  let state: { pair: TlsPair; info: CertInfo };
  if (stored) {
    state = stored;
    logger.info("certificate loaded", { source: "acme storage", ...fields(state.info) });
  } else {
    try {
      logger.info("certificate requested", { domains, directory });
      state = await obtain();
      logger.info("certificate loaded", { source: "acme order", directory, ...fields(state.info) });
    } catch (e) {
      challengeServer.stop(true);
      const why = reason(e);
      const failures = (previous?.failures ?? 0) + 1;
      const next = new Date(Date.now() + firstOrderBackoff(failures, timing)).toISOString();
      try {
        writePrivate(paths.lastFailure, `${JSON.stringify({ time: Date.now(), failures, settings, error: why } satisfies LastFailure)}\n`);
      } catch {}
      throw new Error(`cannot obtain a certificate for ${domains.join(", ")} from ${directory}: ${why} (the next start orders again from ${next}, or at once after deleting ${paths.lastFailure})`);
    }
  }

  const listeners: ((pair: TlsPair) => void)[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let failures = 0;
  const schedule = (ms: number) => {
    if (stopped) return;
    // A Node timer fires at once beyond 2^31-1 ms; the check is repeated anyway.
    timer = setTimeout(check, Math.max(0, Math.min(ms, timing.checkEveryMs, 2 ** 31 - 1)));
    timer.unref?.();
  };
  async function check(): Promise<void> {
    const due = renewalTime(state.info) - Date.now();
    if (due > 0) return schedule(due);
    try {
      const next = await obtain();
      if (stopped) return;
      state = next;
      failures = 0;
      logger.info("certificate obtained", fields(state.info));
      for (const cb of listeners) cb(state.pair);
      schedule(renewalTime(state.info) - Date.now());
    } catch (e) {
      // Doubling from retryMinMs (less for a certificate that lives under ten minutes), at most
      // checkEveryMs apart, and at least four tries before the current certificate expires.
      const left = state.info.notAfter - Date.now();
      const first = Math.min(timing.retryMinMs, (state.info.notAfter - state.info.notBefore) / 10);
      const retry = Math.max(1000, Math.min(first * 2 ** failures, timing.checkEveryMs, left > 0 ? left / 4 : Infinity));
      failures++;
      logger.error("certificate renewal failed", { domains, directory, error: reason(e), failures, retryInMs: Math.round(retry), notAfter: new Date(state.info.notAfter).toISOString() });
      schedule(retry);
    }
  }
  schedule(renewalTime(state.info) - Date.now());

  source.current = async () => state.pair;
  source.onChange = (cb) => void listeners.push(cb);
  source.stop = () => {
    stopped = true;
    clearTimeout(timer);
    challengeServer.stop(true);
  };
  return source;
}
