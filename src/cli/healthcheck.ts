/**
 * `scimd healthcheck`: asks a running scimd's /readyz (or any URL given) and exits 0 when it answers
 * 2xx, 1 otherwise, for Docker's HEALTHCHECK and systemd. One line says what happened.
 */
import { readFileSync } from "node:fs";
import { DEFAULTS, flag, flagHelp, HELP_FLAG, parseFlags, UsageError, type Env } from "../config";
import { commandLine } from "./invocation";

export const HEALTHCHECK_FLAGS = [
  flag({
    name: "url",
    env: "SCIMD_HEALTHCHECK_URL",
    kind: "string",
    help: "what to ask: a URL, or a server's origin (its /readyz is asked). Default: /readyz on 127.0.0.1 (or SCIMD_HOST) at SCIMD_PORT (8080), https when SCIMD_TLS_CERT or SCIMD_ACME_DOMAIN is set",
    check: (v) => void checkedUrl(v),
  }),
  flag({ name: "ca-file", env: "SCIMD_HEALTHCHECK_CA_FILE", kind: "string", help: "verify an HTTPS server's certificate against this CA (PEM) instead of the system's" }),
  flag({ name: "insecure", kind: "bool", default: false, help: "do not verify an HTTPS server's certificate (for a check on loopback, where the name in the certificate cannot match)" }),
  flag({
    name: "timeout",
    kind: "int",
    default: 5000,
    help: "milliseconds to wait for the answer",
    check: (v) => {
      if (v < 1 || v > 600_000) throw new UsageError("--timeout must be 1..600000 milliseconds");
    },
  }),
  HELP_FLAG,
] as const;

export const HEALTHCHECK_USAGE = `Usage: scimd healthcheck [--url URL] [--ca-file FILE | --insecure] [--timeout MS]

Asks a running scimd whether it is ready (GET /readyz: the database answers and its write lock can be
taken) and exits 0 when it answers 2xx, 1 when it does not (an error status, no answer, a certificate
that does not verify), 2 for a wrong command line. Give --url .../healthz to ask only whether the
process answers.

Options:
${flagHelp(HEALTHCHECK_FLAGS)}

Examples:
  ${commandLine("healthcheck")}
  ${commandLine("healthcheck", ["--url", "http://127.0.0.1:8080/healthz"])}
  ${commandLine("healthcheck", ["--url", "https://scim.example.com/readyz"])}
  ${commandLine("healthcheck", ["--url", "https://127.0.0.1:8443", "--insecure"])}`;

/** `raw` as the URL to ask: an origin alone (`http://host:port`, `…/`) means its /readyz. */
function checkedUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url must be an absolute http(s) URL such as http://127.0.0.1:8080/readyz, got '${raw}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--url must be an http or https URL, got '${raw}'`);
  if (url.pathname === "/") url.pathname = "/readyz";
  return url;
}

/** The URL asked without --url: where `scimd serve` with the same SCIMD_* variables listens. */
export function defaultUrl(env: Env): string {
  const tls = Boolean(env.SCIMD_TLS_CERT || env.SCIMD_ACME_DOMAIN);
  const host = env.SCIMD_HOST?.trim();
  // A wildcard address is reached on loopback.
  const shown = !host || host === "0.0.0.0" || host === "::" || host === "[::]" ? "127.0.0.1" : host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `${tls ? "https" : "http"}://${shown}:${env.SCIMD_PORT?.trim() || DEFAULTS.port}/readyz`;
}

/** Why a fetch failed, in a line: a certificate that did not verify says how to trust it. */
function failure(e: unknown, url: URL, timeoutMs: number): string {
  const err = e as { name?: string; code?: string; message?: string } | null;
  if (err?.name === "TimeoutError" || err?.name === "AbortError") return `${url.href} did not answer within ${timeoutMs} ms`;
  const text = `${err?.code ?? ""} ${err?.message ?? String(e)}`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|certificate|ERR_TLS/i.test(text))
    return `${url.href}: the server's certificate was not accepted (${(err?.code ?? err?.message ?? "").trim()}); pass --ca-file with the CA that signed it, or --insecure on loopback`;
  return `cannot reach ${url.href}: ${err?.message ?? String(e)}${err?.code && !err.message?.includes(err.code) ? ` (${err.code})` : ""}`;
}

/** What the answer says beyond its status: a SCIM error's detail, or the start of the text. */
function detailOf(text: string): string {
  try {
    const body = JSON.parse(text) as { detail?: unknown; status?: unknown };
    if (typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON
  }
  return text.replace(/\s+/g, " ").trim().slice(0, 200);
}

export async function healthcheck(argv: string[], env: Env = process.env): Promise<number> {
  const { values, args } = parseFlags(argv, HEALTHCHECK_FLAGS, env);
  if (values.help) {
    console.log(HEALTHCHECK_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  if (values.insecure && values["ca-file"] !== undefined) throw new UsageError("--ca-file and --insecure are alternatives: verify against a CA, or not at all");
  const url = checkedUrl(values.url ?? defaultUrl(env));
  let ca: string | undefined;
  if (values["ca-file"] !== undefined) {
    try {
      ca = readFileSync(values["ca-file"], "utf8");
    } catch (e) {
      throw new UsageError(`--ca-file ${values["ca-file"]} cannot be read: ${(e as { code?: string }).code ?? (e as Error).message}`);
    }
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) throw new UsageError(`--ca-file ${values["ca-file"]} holds no PEM certificate`);
  }
  const timeoutMs = values.timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "manual",
      headers: { Accept: "application/json" },
      tls: url.protocol === "https:" ? { rejectUnauthorized: !values.insecure, ...(ca === undefined ? {} : { ca }) } : undefined,
    });
  } catch (e) {
    console.error(`scimd: not healthy: ${failure(e, url, timeoutMs)}`);
    return 1;
  }
  const text = await response.text().catch(() => "");
  if (response.status >= 200 && response.status < 300) {
    console.log(`healthy: ${url.href} answered ${response.status}`);
    return 0;
  }
  const detail = detailOf(text);
  console.error(`scimd: not healthy: ${url.href} answered ${response.status}${detail ? `: ${detail}` : ""}`);
  return 1;
}
