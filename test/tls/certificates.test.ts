/**
 * Certificate files: checked at start with a one-line error naming the file at fault, then watched
 * (polling and SIGHUP); a broken renewal keeps the pair being served and is logged.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TlsPair } from "../../src/http/listener";
import { createLogger } from "../../src/log";
import { chainWarning, describeCertificate, fileCertificates, readCertificateFiles } from "../../src/tls/certificates";
import { hasOpenssl, makeCa, makeLeaf, type Ca, type Leaf } from "../e2e/certs";

let dir = "";
let ca: Ca;
let one: Leaf, two: Leaf, three: Leaf;

beforeAll(() => {
  if (!hasOpenssl) return;
  dir = mkdtempSync(join(tmpdir(), "scimd-certs-"));
  ca = makeCa(dir);
  [one, two, three] = ["one", "two", "three"].map((n) => makeLeaf(dir, ca, n)) as [Leaf, Leaf, Leaf];
});

/** A leaf for `one.key` signed by the CA with the given validity (openssl ca; `openssl x509 -days` cannot go back in time). */
function leafValid(name: string, start: string, end: string): string {
  const cnf = join(dir, "ca.cnf");
  writeFileSync(cnf, "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=ca.serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n");
  if (!existsSync(join(dir, "index.txt"))) writeFileSync(join(dir, "index.txt"), "");
  if (!existsSync(join(dir, "ca.serial"))) writeFileSync(join(dir, "ca.serial"), "1000\n");
  const run = (args: string[]) => {
    const p = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${p.stderr.toString()}`);
  };
  run(["req", "-new", "-key", "one.key", "-out", `${name}.csr`, "-subj", `/CN=localhost ${name}`]);
  run(["ca", "-batch", "-config", cnf, "-cert", ca.certFile, "-keyfile", ca.keyFile, "-in", `${name}.csr`, "-out", `${name}.pem`, "-startdate", start, "-enddate", end, "-notext"]);
  return readFileSync(join(dir, `${name}.pem`), "utf8");
}
afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

/** Writes a pair to `cert`/`key` the way renewal tools do: a new file renamed over the old one. */
function install(files: { certFile: string; keyFile: string }, cert: string, key: string) {
  writeFileSync(`${files.certFile}.new`, cert);
  writeFileSync(`${files.keyFile}.new`, key);
  renameSync(`${files.certFile}.new`, files.certFile);
  renameSync(`${files.keyFile}.new`, files.keyFile);
}

function logs() {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({ level: "debug", format: "json", write: (l) => lines.push(JSON.parse(l)) }) };
}

async function until(what: () => boolean, ms = 3000) {
  const end = Date.now() + ms;
  while (!what() && Date.now() < end) await Bun.sleep(10);
  return what();
}

describe.skipIf(!hasOpenssl)("certificate files at start", () => {
  const cases: [string, () => { certFile: string; keyFile: string }, RegExp][] = [
    ["a missing certificate file", () => ({ certFile: join(dir, "nope.pem"), keyFile: join(dir, "one.key") }), /^cannot read .*nope\.pem \(--tls-cert\): no such file$/],
    ["a missing key file", () => ({ certFile: join(dir, "one.pem"), keyFile: join(dir, "nope.key") }), /^cannot read .*nope\.key \(--tls-key\): no such file$/],
    ["a folder as the certificate", () => ({ certFile: dir, keyFile: join(dir, "one.key") }), /\(--tls-cert\): it is a folder$/],
    ["the key given as the certificate", () => ({ certFile: join(dir, "one.key"), keyFile: join(dir, "one.key") }), /one\.key \(--tls-cert\) is not a PEM certificate/],
    ["the certificate given as the key", () => ({ certFile: join(dir, "one.pem"), keyFile: join(dir, "one.pem") }), /one\.pem \(--tls-key\) is not a PEM private key/],
    [
      "a certificate file of junk inside PEM markers",
      () => {
        writeFileSync(join(dir, "junk.pem"), "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
        return { certFile: join(dir, "junk.pem"), keyFile: join(dir, "one.key") };
      },
      /junk\.pem \(--tls-cert\) is not a PEM certificate/,
    ],
    [
      "an encrypted key",
      () => {
        const p = Bun.spawnSync(["openssl", "pkey", "-in", join(dir, "one.key"), "-aes128", "-passout", "pass:secret", "-out", join(dir, "enc.key")]);
        expect(p.exitCode).toBe(0);
        return { certFile: join(dir, "one.pem"), keyFile: join(dir, "enc.key") };
      },
      /enc\.key \(--tls-key\) is not a PEM private key: the key is encrypted; scimd needs it without a passphrase/,
    ],
    ["a key that is not the certificate's", () => ({ certFile: join(dir, "one.pem"), keyFile: join(dir, "two.key") }), /two\.key \(--tls-key\) is not the private key of the certificate in .*one\.pem \(--tls-cert\)/],
  ];
  it.each(cases)("refuses %s with a one-line error naming the file", (_t, files, message) => {
    let error: Error | undefined;
    try {
      fileCertificates(files(), logs().logger).stop();
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error!.message).not.toContain("\n");
    expect(error!.message).not.toMatch(/OPENSSL_internal|error:[0-9a-f]{8}/);
  });

  it("accepts a matching pair (a chain file: the leaf first) and logs what it loaded", async () => {
    const certFile = join(dir, "chain.pem");
    writeFileSync(certFile, one.cert + two.cert);
    const { lines, logger } = logs();
    const source = fileCertificates({ certFile, keyFile: join(dir, "one.key") }, logger);
    source.stop();
    expect((await source.current()).key).toBe(one.key);
    expect(readCertificateFiles({ certFile, keyFile: join(dir, "one.key") }).cert).toBe(one.cert + two.cert);
    expect(lines).toEqual([expect.objectContaining({ level: "info", event: "certificate loaded", serial: one.serial, fingerprint256: one.fingerprint, names: "DNS:localhost, IP Address:127.0.0.1" })]);
    expect(describeCertificate(one.cert).notAfter).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});

describe.skipIf(!hasOpenssl)("renewed certificate files", () => {
  let files: { certFile: string; keyFile: string };
  beforeAll(() => {
    files = { certFile: join(dir, "live.pem"), keyFile: join(dir, "live.key") };
    copyFileSync(join(dir, "one.pem"), files.certFile);
    copyFileSync(join(dir, "one.key"), files.keyFile);
  });

  it("are picked up by polling (an atomic rename), and a broken renewal keeps the pair and is logged once, after its files stayed the same for a poll", async () => {
    const { lines, logger } = logs();
    const source = fileCertificates(files, logger, { pollMs: 40 });
    const seen: TlsPair[] = [];
    source.onChange((p) => seen.push(p));
    try {
      install(files, two.cert, two.key);
      expect(await until(() => seen.length === 1)).toBe(true);
      expect(seen[0]).toEqual({ cert: two.cert, key: two.key });
      expect(await source.current()).toEqual({ cert: two.cert, key: two.key });

      // The certificate renewed, the key not (yet): not a renewal, and an error once it stays so.
      install(files, three.cert, two.key);
      expect(await until(() => lines.some((l) => l.event === "certificate renewal failed"))).toBe(true);
      await Bun.sleep(200);
      const failures = lines.filter((l) => l.event === "certificate renewal failed");
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ level: "error", kept: two.serial });
      expect(failures[0]!.reason).toMatch(/live\.key \(--tls-key\) is not the private key of the certificate in .*live\.pem/);
      expect(seen).toHaveLength(1);
      expect((await source.current()).cert).toBe(two.cert);

      // The key arrives: the renewal goes through.
      install(files, three.cert, three.key);
      expect(await until(() => seen.length === 2)).toBe(true);
      expect(seen[1]!.cert).toBe(three.cert);
      // Files rewritten with the same content are no renewal.
      install(files, three.cert, three.key);
      await Bun.sleep(200);
      expect(seen).toHaveLength(2);
    } finally {
      source.stop();
    }
  });

  it("are read at once on SIGHUP (no polling needed), and a broken pair on SIGHUP is logged at once", async () => {
    install(files, one.cert, one.key);
    const { lines, logger } = logs();
    const source = fileCertificates(files, logger, { pollMs: 3_600_000 });
    const seen: TlsPair[] = [];
    source.onChange((p) => seen.push(p));
    try {
      install(files, two.cert, two.key);
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => seen.length === 1, 2000)).toBe(true);
      expect(seen[0]!.cert).toBe(two.cert);
      writeFileSync(files.keyFile, "-----BEGIN PRIVATE KEY-----\ntruncated");
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => lines.some((l) => l.event === "certificate renewal failed"), 2000)).toBe(true);
      expect((await source.current()).cert).toBe(two.cert);
      expect(seen).toHaveLength(1);
    } finally {
      source.stop();
    }
  });
});

describe.skipIf(!hasOpenssl)("renewed certificates that clients would refuse", () => {
  it("an expired or not yet valid renewal is not used: the pair being served stays and 'certificate renewal failed' says why", async () => {
    const files = { certFile: join(dir, "dated.pem"), keyFile: join(dir, "dated.key") };
    install(files, one.cert + ca.cert, one.key);
    const expired = leafValid("expired", "20200101000000Z", "20200102000000Z");
    const future = leafValid("future", "20990101000000Z", "20990102000000Z");
    const { lines, logger } = logs();
    const source = fileCertificates(files, logger, { pollMs: 3_600_000 });
    const seen: TlsPair[] = [];
    source.onChange((p) => seen.push(p));
    const failures = () => lines.filter((l) => l.event === "certificate renewal failed");
    try {
      install(files, expired + ca.cert, one.key);
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => failures().length === 1, 2000)).toBe(true);
      expect(failures()[0]).toMatchObject({ level: "error", kept: one.serial });
      expect(failures()[0]!.reason).toMatch(/^the certificate in .*dated\.pem \(--tls-cert\) expired on 2020-01-02T00:00:00\.000Z; the renewal is not used$/);

      install(files, future + ca.cert, one.key);
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => failures().length === 2, 2000)).toBe(true);
      expect(failures()[1]!.reason).toMatch(/^the certificate in .*dated\.pem \(--tls-cert\) is not valid before 2099-01-01T00:00:00\.000Z; the renewal is not used$/);
      expect(seen).toHaveLength(0);
      expect((await source.current()).cert).toBe(one.cert + ca.cert);

      // A valid one goes through.
      install(files, two.cert + ca.cert, two.key);
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => seen.length === 1, 2000)).toBe(true);
      expect(seen[0]!.cert).toBe(two.cert + ca.cert);
    } finally {
      source.stop();
    }
  });

  it("an expired certificate at start is served with a warning (scimd still starts, to be renewed)", () => {
    const files = { certFile: join(dir, "old.pem"), keyFile: join(dir, "one.key") };
    writeFileSync(files.certFile, leafValid("old", "20200101000000Z", "20200102000000Z"));
    const { lines, logger } = logs();
    fileCertificates(files, logger).stop();
    expect(lines.some((l) => l.level === "warn" && /old\.pem \(--tls-cert\) expired on 2020-01-02T00:00:00\.000Z; clients will refuse it/.test(String(l.message)))).toBe(true);
  });

  it("warns when the file holds the server's certificate alone (cert.pem instead of fullchain.pem), at start and on renewal, not for a chain or a self-signed one", async () => {
    expect(chainWarning(one.cert, "/etc/scimd/tls/cert.pem")).toMatch(/^\/etc\/scimd\/tls\/cert\.pem \(--tls-cert\) holds only the server's certificate, without the intermediate certificates of CN=scimd test CA: .*fullchain\.pem, not cert\.pem\)$/);
    expect(chainWarning(one.cert + ca.cert, "x")).toBeUndefined();
    expect(chainWarning(ca.cert, "x")).toBeUndefined();

    const files = { certFile: join(dir, "single.pem"), keyFile: join(dir, "single.key") };
    install(files, one.cert, one.key);
    const { lines, logger } = logs();
    const warnings = () => lines.filter((l) => l.level === "warn" && String(l.message).includes("holds only the server's certificate"));
    const source = fileCertificates(files, logger, { pollMs: 3_600_000 });
    try {
      expect(warnings()).toHaveLength(1);
      install(files, two.cert + ca.cert, two.key);
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => (lines.some((l) => l.event === "certificate read")), 2000)).toBe(true);
      expect(warnings()).toHaveLength(1);
      install(files, three.cert, three.key);
      process.kill(process.pid, "SIGHUP");
      expect(await until(() => warnings().length === 2, 2000)).toBe(true);
      expect((await source.current()).cert).toBe(three.cert);
    } finally {
      source.stop();
    }
  });
});
