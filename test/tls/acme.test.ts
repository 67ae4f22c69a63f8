/**
 * src/tls/acme.ts in process, against a real pebble (test/e2e/pebble.ts): when the stored pair is
 * reused and when a new order is placed, and the start-up refusals. The binary's slice (issuance,
 * restart, renewal, CA trust) is in test/e2e/acme.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "../../src/log";
import { accountKeyFile, acmeCertificates, acmePaths, firstOrderBackoff, renewalTime, type AcmeConfig, type AcmeTiming } from "../../src/tls/acme";
import { freePort } from "../e2e/harness";
import { hasPebble, startPebble, type Pebble } from "../e2e/pebble";

const DAY = 86_400_000;

describe("renewalTime: a third of the lifetime left, at the latest 30 days before expiry", () => {
  const t0 = Date.UTC(2026, 0, 1);
  it.each([
    ["a 90-day certificate (Let's Encrypt)", 90 * DAY, 60 * DAY],
    ["a 6-day certificate", 6 * DAY, 4 * DAY],
    ["a one-year certificate", 365 * DAY, 335 * DAY],
    ["a 15-second certificate", 15_000, 10_000],
  ])("%s", (_t, lifetime, after) => {
    expect(renewalTime({ notBefore: t0, notAfter: t0 + lifetime })).toBe(t0 + after);
  });
});

it("keeps the ACME state in an acme folder beside the database file, with one account key per ACME directory", () => {
  const paths = acmePaths("/var/lib/scimd/scimd.db");
  expect(paths).toEqual({
    dir: "/var/lib/scimd/acme",
    cert: "/var/lib/scimd/acme/certificate.pem",
    key: "/var/lib/scimd/acme/certificate.key",
    origin: "/var/lib/scimd/acme/certificate.json",
    lastFailure: "/var/lib/scimd/acme/last-failure",
  });
  expect(acmePaths("data/scimd.db").dir).toBe(join(process.cwd(), "data", "acme"));
  const production = accountKeyFile(paths, "https://acme-v02.api.letsencrypt.org/directory");
  const staging = accountKeyFile(paths, "https://acme-staging-v02.api.letsencrypt.org/directory");
  expect(production).toMatch(/^\/var\/lib\/scimd\/acme\/account-acme-v02\.api\.letsencrypt\.org-[0-9a-f]{12}\.key$/);
  expect(staging).toMatch(/^\/var\/lib\/scimd\/acme\/account-acme-staging-v02\.api\.letsencrypt\.org-[0-9a-f]{12}\.key$/);
  // Same host, another path: another directory, another account.
  expect(accountKeyFile(paths, "https://ca.example:9000/acme/a/directory")).not.toBe(accountKeyFile(paths, "https://ca.example:9000/acme/b/directory"));
});

it("waits 5 minutes after a failed first order, doubling per failure, at most an hour (at most 4 failed validations in the first hour)", () => {
  const timing = { firstOrderBackoffMs: 5 * 60_000, firstOrderMaxMs: 3_600_000 };
  expect([1, 2, 3, 4, 5, 6, 20].map((n) => firstOrderBackoff(n, timing) / 60_000)).toEqual([5, 10, 20, 40, 60, 60, 60]);
  let t = 0, inFirstHour = 1;
  for (let n = 1; (t += firstOrderBackoff(n, timing)) < 3_600_000; n++) inFirstHour++;
  expect(inFirstHour).toBe(4);
});

describe.skipIf(!hasPebble)("acmeCertificates with a local pebble", () => {
  const started = new Set<Bun.Subprocess>();
  let tmp = "";
  let pebble: Pebble;
  let httpPort = 0;
  const lines: { level: string; event: string; [k: string]: unknown }[] = [];
  const logger: Logger = createLogger({ level: "debug", format: "json", write: (l) => lines.push(JSON.parse(l)) });
  const acme = (domains: string[], extra: Partial<AcmeConfig> = {}): AcmeConfig => ({ domains, email: "ops@example.com", directory: pebble.directory, caFile: pebble.caFile, httpPort, ...extra });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "scimd-acme-unit-"));
    httpPort = await freePort();
    pebble = await startPebble(join(tmp, "pebble"), { httpPort }, started);
  }, 30_000);
  afterAll(async () => {
    await pebble?.stop();
    for (const p of started) p.kill("SIGKILL");
    rmSync(tmp, { recursive: true, force: true });
  });

  it("reuses a stored pair for the same domains, and orders again when a domain is added or the key does not match", async () => {
    const paths = acmePaths(join(tmp, "a", "scimd.db"));
    const config = { host: "127.0.0.1", port: 8443 };
    const orders0 = pebble.orders();
    const one = await acmeCertificates({ ...config, acme: acme(["one.acme.test"]) }, paths, logger);
    const first = await one.current();
    one.stop();
    expect(pebble.orders()).toBe(orders0 + 1);

    const again = await acmeCertificates({ ...config, acme: acme(["ONE.acme.test"]) }, paths, logger);
    expect(await again.current()).toEqual(first);
    again.stop();
    expect(pebble.orders()).toBe(orders0 + 1);

    const two = await acmeCertificates({ ...config, acme: acme(["one.acme.test", "two.acme.test"]) }, paths, logger);
    const second = await two.current();
    two.stop();
    expect(pebble.orders()).toBe(orders0 + 2);
    expect(second.cert).not.toBe(first.cert);
    expect(readFileSync(paths.cert, "utf8")).toBe(second.cert);
    expect(lines.some((l) => l.level === "warn" && String(l.message).includes("does not cover two.acme.test"))).toBe(true);

    // A key from another pair (as a crash between the two writes would leave): ordered again.
    writeFileSync(paths.key, first.key);
    const three = await acmeCertificates({ ...config, acme: acme(["one.acme.test", "two.acme.test"]) }, paths, logger);
    const third = await three.current();
    three.stop();
    expect(pebble.orders()).toBe(orders0 + 3);
    expect(third.key).not.toBe(first.key);
    expect(lines.some((l) => l.level === "warn" && String(l.message).includes("cannot be used"))).toBe(true);
  }, 30_000);

  it("does not reuse a certificate from another --acme-directory (staging, then production): a new order there, with an account of its own", async () => {
    const other = await startPebble(join(tmp, "pebble-2"), { httpPort }, started);
    try {
      const paths = acmePaths(join(tmp, "c", "scimd.db"));
      const config = { host: "127.0.0.1", port: 8443 };
      const a = await acmeCertificates({ ...config, acme: acme(["c.acme.test"]) }, paths, logger);
      const fromA = await a.current();
      a.stop();
      expect(JSON.parse(readFileSync(paths.origin, "utf8"))).toMatchObject({ directory: pebble.directory });

      const [ordersA, ordersB] = [pebble.orders(), other.orders()];
      const b = await acmeCertificates({ ...config, acme: acme(["c.acme.test"], { directory: other.directory, caFile: other.caFile }) }, paths, logger);
      const fromB = await b.current();
      b.stop();
      expect([pebble.orders(), other.orders()]).toEqual([ordersA, ordersB + 1]);
      expect(fromB.cert).not.toBe(fromA.cert);
      expect(JSON.parse(readFileSync(paths.origin, "utf8"))).toMatchObject({ directory: other.directory });
      expect(lines.some((l) => l.level === "warn" && String(l.message).includes(`was issued by ${pebble.directory}, not by --acme-directory ${other.directory}`))).toBe(true);
      // One account key per directory, both kept.
      expect(existsSync(accountKeyFile(paths, pebble.directory)) && existsSync(accountKeyFile(paths, other.directory))).toBe(true);
      expect(accountKeyFile(paths, pebble.directory)).not.toBe(accountKeyFile(paths, other.directory));

      // Back to the first directory: ordered there again, with its own account key, unchanged.
      const keyA = readFileSync(accountKeyFile(paths, pebble.directory), "utf8");
      const again = await acmeCertificates({ ...config, acme: acme(["c.acme.test"]) }, paths, logger);
      again.stop();
      expect(pebble.orders()).toBe(ordersA + 1);
      expect(readFileSync(accountKeyFile(paths, pebble.directory), "utf8")).toBe(keyA);

      // A pair with no record of its directory (as written before certificate.json existed) is not trusted either.
      rmSync(paths.origin);
      const unknown = await acmeCertificates({ ...config, acme: acme(["c.acme.test"]) }, paths, logger);
      unknown.stop();
      expect(pebble.orders()).toBe(ordersA + 2);
      expect(lines.some((l) => l.level === "warn" && String(l.message).includes("has no record of the ACME directory that issued it"))).toBe(true);
    } finally {
      await other.stop();
    }
  }, 60_000);

  it("replaces an empty or truncated account key with a new one (logged) instead of failing every start", async () => {
    const paths = acmePaths(join(tmp, "d", "scimd.db"));
    const config = { host: "127.0.0.1", port: 8443 };
    const keyFile = accountKeyFile(paths, pebble.directory);
    for (const broken of ["", "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n"]) {
      rmSync(paths.dir, { recursive: true, force: true });
      const { mkdirSync } = await import("node:fs");
      mkdirSync(paths.dir, { recursive: true });
      writeFileSync(keyFile, broken);
      const orders = pebble.orders();
      const s = await acmeCertificates({ ...config, acme: acme(["d.acme.test"]) }, paths, logger);
      s.stop();
      expect(pebble.orders()).toBe(orders + 1);
      const key = readFileSync(keyFile, "utf8");
      expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n?$/);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      expect(lines.some((l) => l.level === "warn" && String(l.message).startsWith(`the ACME account key ${keyFile} cannot be used (`) && String(l.message).includes("creating a new one"))).toBe(true);
    }
    // No temporary file is left behind by the fsynced writes.
    expect(readdirSync(paths.dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  }, 30_000);

  it("remembers a failed first order: a start with the same settings refuses to order again before the backoff, a success clears it", async () => {
    const paths = acmePaths(join(tmp, "e", "scimd.db"));
    const config = { host: "127.0.0.1", port: 8443 };
    // A challenge port pebble does not dial: the validation fails (as DNS not pointing here would).
    const wrongPort = await freePort();
    const failing = acme(["e.acme.test"], { httpPort: wrongPort });
    const timing: AcmeTiming = { checkEveryMs: 3_600_000, retryMinMs: 60_000, firstOrderBackoffMs: 600_000, firstOrderMaxMs: 3_600_000 };
    const orders = pebble.orders();
    await expect(acmeCertificates({ ...config, acme: failing }, paths, logger, timing)).rejects.toThrow(
      /^cannot obtain a certificate for e\.acme\.test from .*\(the next start orders again from \d{4}-\d\d-\d\dT[^,]*, or at once after deleting .*last-failure\)$/,
    );
    expect(pebble.orders()).toBe(orders + 1);
    const recorded = JSON.parse(readFileSync(paths.lastFailure, "utf8"));
    expect(recorded).toMatchObject({ failures: 1 });
    expect(statSync(paths.lastFailure).mode & 0o777).toBe(0o600);

    // Restarted at once (systemd's Restart=on-failure): refused, without asking the CA.
    let error: Error | undefined;
    await acmeCertificates({ ...config, acme: failing }, paths, logger, timing).catch((e) => (error = e));
    expect(error?.message).toMatch(/^not ordering a certificate for e\.acme\.test from \S+ again before \d{4}-.*: the last order failed \(.*\); fix the cause, then delete \S+last-failure to order now$/);
    expect(error!.message).not.toContain("\n");
    expect(pebble.orders()).toBe(orders + 1);
    // The challenge port was not taken by the refused start.
    Bun.serve({ hostname: "127.0.0.1", port: wrongPort, fetch: () => new Response("") }).stop(true);

    // Once the backoff has passed (here: the failure recorded 11 minutes ago), it orders again, and a second failure doubles the wait.
    writeFileSync(paths.lastFailure, JSON.stringify({ ...recorded, time: Date.now() - 11 * 60_000 }));
    await expect(acmeCertificates({ ...config, acme: failing }, paths, logger, timing)).rejects.toThrow(/^cannot obtain a certificate/);
    expect(pebble.orders()).toBe(orders + 2);
    const second = JSON.parse(readFileSync(paths.lastFailure, "utf8"));
    expect(second.failures).toBe(2);
    writeFileSync(paths.lastFailure, JSON.stringify({ ...second, time: Date.now() - 11 * 60_000 }));
    await expect(acmeCertificates({ ...config, acme: failing }, paths, logger, timing)).rejects.toThrow(/^not ordering a certificate .* the last 2 orders failed/);
    expect(pebble.orders()).toBe(orders + 2);

    // Deleting the file (as the message says) orders at once.
    rmSync(paths.lastFailure);
    await expect(acmeCertificates({ ...config, acme: failing }, paths, logger, timing)).rejects.toThrow(/^cannot obtain a certificate/);
    expect(pebble.orders()).toBe(orders + 3);

    // Other settings (the fix: the right challenge port) order at once; the success clears the record.
    const ok = await acmeCertificates({ ...config, acme: acme(["e.acme.test"]) }, paths, logger, timing);
    ok.stop();
    expect(pebble.orders()).toBe(orders + 4);
    expect(existsSync(paths.lastFailure)).toBe(false);
  }, 60_000);

  it("refuses a busy --acme-http-port, the API's own port, and an unreadable --acme-ca-file, each in one sentence", async () => {
    const paths = acmePaths(join(tmp, "b", "scimd.db"));
    const busy = Bun.serve({ hostname: "127.0.0.1", port: httpPort === 0 ? 0 : await freePort(), fetch: () => new Response("") });
    try {
      await expect(acmeCertificates({ host: "127.0.0.1", port: 8443, acme: acme(["b.acme.test"], { httpPort: busy.port! }) }, paths, logger)).rejects.toThrow(
        `the ACME HTTP-01 port ${busy.port} is already in use on 127.0.0.1`,
      );
    } finally {
      busy.stop(true);
    }
    await expect(acmeCertificates({ host: "127.0.0.1", port: httpPort, acme: acme(["b.acme.test"]) }, paths, logger)).rejects.toThrow("--acme-http-port and --port are both");
    await expect(acmeCertificates({ host: "127.0.0.1", port: 8443, acme: acme(["b.acme.test"], { caFile: join(tmp, "missing.pem") }) }, paths, logger)).rejects.toThrow(
      /^cannot read --acme-ca-file .*missing\.pem/,
    );
    // The challenge port was released after each refusal: a new source can take it.
    const ok = await acmeCertificates({ host: "127.0.0.1", port: 8443, acme: acme(["b.acme.test"]) }, paths, logger);
    ok.stop();
  }, 30_000);
});
