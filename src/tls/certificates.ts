/**
 * Where serve's certificate comes from: files (here) or ACME (acme.ts). A source gives the pair to
 * start with and calls back with each renewed one, which serve hands to Listener.reload.
 *
 * Certificate files are checked at start (a readable PEM certificate, a readable PEM key, the key
 * belongs to the certificate) with a one-line error naming the file at fault. They are then polled
 * (mtime, size, inode, every few seconds: fs.watch misses the atomic renames certbot and most tools
 * renew with) and read again at once on SIGHUP. A renewed pair that does not pass the checks, or
 * whose certificate is expired or not valid yet, keeps the certificate being served and logs why. A
 * file with a single certificate that is not self-signed (certbot's cert.pem instead of
 * fullchain.pem) is served with a warning: clients that need the intermediate fail to verify it.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { TlsPair } from "../http/listener";
import type { Logger } from "../log";

export interface CertificateSource {
  /** The pair to serve now. */
  current(): Promise<TlsPair>;
  /** `cb` receives each renewed pair (already checked). */
  onChange(cb: (pair: TlsPair) => void): void;
  /** Stops watching. */
  stop(): void;
}

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

/** What a log line says about a certificate: whom it is for, its serial, its fingerprint, until when. */
export function describeCertificate(cert: string): { subject: string; names: string | undefined; serial: string; fingerprint256: string; notAfter: string } {
  const x = new X509Certificate(cert);
  return { subject: x.subject.replace(/\n/g, ", "), names: x.subjectAltName, serial: x.serialNumber, fingerprint256: x.fingerprint256, notAfter: x.validToDate.toISOString() };
}

/** The first line of an error, without OpenSSL's `error:0900006e:PEM routines:OPENSSL_internal:` prefix. */
function reason(e: unknown): string {
  const code = (e as { code?: string } | null)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "it is a folder";
  if (code === "ERR_MISSING_PASSPHRASE") return "the key is encrypted; scimd needs it without a passphrase";
  const message = e instanceof Error ? e.message : String(e);
  return (message.split("\n")[0] ?? "").replace(/^error:[0-9a-f]+:[^:]*:[^:]*:/i, "").replace(/_/g, " ").toLowerCase();
}

/**
 * Reads and checks the pair; throws an Error whose one-line message names the file at fault and the
 * flag it came from.
 */
export function readCertificateFiles(files: CertificateFiles): TlsPair {
  const read = (path: string, flag: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new Error(`cannot read ${path} (${flag}): ${reason(e)}`);
    }
  };
  const cert = read(files.certFile, "--tls-cert");
  const key = read(files.keyFile, "--tls-key");
  let x509: X509Certificate;
  try {
    if (!cert.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no PEM block 'BEGIN CERTIFICATE'");
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`${files.certFile} (--tls-cert) is not a PEM certificate: ${reason(e)}`);
  }
  let privateKey;
  try {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new Error("no PEM block 'BEGIN … PRIVATE KEY'");
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new Error(`${files.keyFile} (--tls-key) is not a PEM private key: ${reason(e)}`);
  }
  if (!x509.checkPrivateKey(privateKey))
    throw new Error(`${files.keyFile} (--tls-key) is not the private key of the certificate in ${files.certFile} (--tls-cert); renew both together, or check the paths`);
  return { cert, key };
}

/** Why a certificate cannot be served at `now` (expired, not valid yet), or undefined. */
function validityProblem(cert: string, certFile: string, now: number): string | undefined {
  const x = new X509Certificate(cert);
  if (x.validToDate.getTime() <= now) return `the certificate in ${certFile} (--tls-cert) expired on ${x.validToDate.toISOString()}`;
  if (x.validFromDate.getTime() > now) return `the certificate in ${certFile} (--tls-cert) is not valid before ${x.validFromDate.toISOString()}`;
  return undefined;
}

/** A warning when the file holds one certificate issued by someone else: the chain (intermediates) is missing. */
export function chainWarning(cert: string, certFile: string): string | undefined {
  const blocks = cert.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  if (blocks !== 1) return undefined;
  const x = new X509Certificate(cert);
  if (x.subject === x.issuer && x.checkIssued(x)) return undefined;
  return (
    `${certFile} (--tls-cert) holds only the server's certificate, without the intermediate certificates of ${x.issuer.replace(/\n/g, ", ")}: ` +
    `clients that verify the chain (Okta, Entra ID) may refuse it; give the full chain (certbot's fullchain.pem, not cert.pem)`
  );
}

/** How the files look on disk: a change to any part means "read them again". */
function signature(files: CertificateFiles): string {
  return [files.certFile, files.keyFile]
    .map((f) => {
      try {
        const s = statSync(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch {
        return "missing";
      }
    })
    .join("|");
}

export interface FileCertificateOptions {
  /** How often the files are polled; 5 s by default. */
  pollMs?: number;
}

/**
 * A source that serves the pair in `files`: checked now (throws the one-line error when a file is
 * wrong), then watched. A changed pair that is broken is logged ("certificate renewal failed") once
 * its files have stayed the same for one poll (a renewal tool may write the certificate and the key
 * one after the other), at once on SIGHUP; the pair being served stays.
 */
export function fileCertificates(files: CertificateFiles, logger: Logger, options: FileCertificateOptions = {}): CertificateSource {
  let pair = readCertificateFiles(files);
  logger.info("certificate loaded", { certFile: files.certFile, keyFile: files.keyFile, ...describeCertificate(pair.cert) });
  const invalid = validityProblem(pair.cert, files.certFile, Date.now());
  if (invalid) logger.warn("warning", { message: `${invalid}; clients will refuse it` });
  const chain = chainWarning(pair.cert, files.certFile);
  if (chain) logger.warn("warning", { message: chain });

  const listeners: ((pair: TlsPair) => void)[] = [];
  let seen = signature(files);
  /** The signature of a changed, broken pair seen once and not logged yet; logged if it stays. */
  let suspect: string | undefined;
  let reported: string | undefined;

  const check = (now: boolean) => {
    const sig = signature(files);
    if (sig === seen && !now) return;
    let next: TlsPair;
    try {
      next = readCertificateFiles(files);
      // A renewal never replaces the pair being served with one that clients refuse for its dates.
      const invalid = validityProblem(next.cert, files.certFile, Date.now());
      if (invalid) throw new Error(`${invalid}; the renewal is not used`);
    } catch (e) {
      if (now || suspect === sig) {
        if (reported !== sig) logger.error("certificate renewal failed", { certFile: files.certFile, keyFile: files.keyFile, reason: (e as Error).message, kept: describeCertificate(pair.cert).serial });
        reported = sig;
        seen = sig;
      } else suspect = sig;
      return;
    }
    seen = sig;
    suspect = reported = undefined;
    if (next.cert === pair.cert && next.key === pair.key) return;
    pair = next;
    logger.debug("certificate read", { certFile: files.certFile, ...describeCertificate(pair.cert) });
    const chain = chainWarning(pair.cert, files.certFile);
    if (chain) logger.warn("warning", { message: chain });
    for (const cb of listeners) cb(pair);
  };
  const timer = setInterval(() => check(false), options.pollMs ?? 5000);
  timer.unref();
  const onHup = () => check(true);
  process.on("SIGHUP", onHup);

  return {
    current: async () => pair,
    onChange: (cb) => void listeners.push(cb),
    stop: () => {
      clearInterval(timer);
      process.off("SIGHUP", onHup);
    },
  };
}
