/**
 * src/tls/acme.ts in process, against a real pebble (test/e2e/pebble.ts): when the stored pair is
 * reused and when a new order is placed, and the start-up refusals. The binary's slice (issuance,
 * restart, renewal, CA trust) is in test/e2e/acme.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "../../src/log";
import { acmeCertificates, acmePaths, renewalTime, type AcmeConfig } from "../../src/tls/acme";
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

it("keeps the ACME state in an acme folder beside the database file", () => {
  expect(acmePaths("/var/lib/scimd/scimd.db")).toEqual({
    dir: "/var/lib/scimd/acme",
    accountKey: "/var/lib/scimd/acme/account.key",
    cert: "/var/lib/scimd/acme/certificate.pem",
    key: "/var/lib/scimd/acme/certificate.key",
  });
  expect(acmePaths("data/scimd.db").dir).toBe(join(process.cwd(), "data", "acme"));
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
