/**
 * Certificates made at test time with the openssl CLI: a CA, and leaf certificates for localhost and
 * 127.0.0.1 signed by it, so that clients verify them for real (no rejectUnauthorized: false).
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import tls from "node:tls";
import { join } from "node:path";

export const hasOpenssl = Bun.which("openssl") !== null;
if (!hasOpenssl) console.warn("SKIP TLS tests that need certificates: no openssl CLI (apt-get install openssl)");

function openssl(args: string[], cwd: string): void {
  const p = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${p.stderr.toString()}`);
}

export interface Ca {
  cert: string;
  certFile: string;
  keyFile: string;
}

/** A self-signed CA in `dir` (ca.pem, ca.key). */
export function makeCa(dir: string): Ca {
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=scimd test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], dir);
  return { cert: readFileSync(join(dir, "ca.pem"), "utf8"), certFile: join(dir, "ca.pem"), keyFile: join(dir, "ca.key") };
}

export interface Leaf {
  cert: string;
  key: string;
  /** As node's X509Certificate.serialNumber and TLSSocket.getPeerCertificate().serialNumber give it. */
  serial: string;
  /** SHA-256, as X509Certificate.fingerprint256 and getPeerCertificate().fingerprint256 give it. */
  fingerprint: string;
}

/** A leaf certificate for localhost and 127.0.0.1 signed by `ca`, made in `dir` under `name`. */
export function makeLeaf(dir: string, ca: Ca, name: string): Leaf {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=localhost ${name}`], dir);
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", ext], dir);
  const cert = readFileSync(join(dir, `${name}.pem`), "utf8");
  const x = new X509Certificate(cert);
  return { cert, key: readFileSync(join(dir, `${name}.key`), "utf8"), serial: x.serialNumber, fingerprint: x.fingerprint256 };
}

/** The SHA-256 fingerprint of the certificate 127.0.0.1:`port` presents on a new connection, verified against `ca`. */
export function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: "127.0.0.1", servername: "localhost", ca }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on("error", reject);
  });
}
