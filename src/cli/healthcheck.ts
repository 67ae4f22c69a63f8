/**
 * `scimd healthcheck`: asks a running scimd's /readyz (or any URL given) and exits 0 when it answers
 * 2xx, 1 otherwise, for Docker's HEALTHCHECK and systemd. One line says what happened.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { CONFIG_FLAG, flag, flagHelp, HELP_FLAG, resolveFlags, serveSettings, UsageError, type Env, type ServeConfig } from "../config";
import { commandLine } from "./invocation";

export const HEALTHCHECK_FLAGS = [
  flag({
    name: "url",
    env: "SCIMD_HEALTHCHECK_URL",
    kind: "string",
    help: "what to ask: a URL, or a server's origin (its /readyz is asked). Default: /readyz where serve listens with the same SCIMD_* variables and config file (127.0.0.1 for a wildcard host), over https with TLS, its certificate verified against the name it is for",
    check: (v) => void checkedUrl(v),
  }),
  flag({ name: "config", env: CONFIG_FLAG.env, kind: "string", help: "serve's TOML config file: ask where serve listens with it (and the SCIMD_* variables)" }),
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

export const HEALTHCHECK_USAGE = `Usage: scimd healthcheck [--url URL | --config FILE] [--ca-file FILE | --insecure] [--timeout MS]

Asks a running scimd whether it is ready (GET /readyz: the database answers and its write lock can be
taken) and exits 0 when it answers 2xx, 1 when it does not (an error status, no answer, a certificate
that does not verify), 2 for a wrong command line. Give --url .../healthz to ask only whether the
process answers. Without --url it asks where 'scimd serve' listens with the same SCIMD_* variables
and config file; with TLS it connects to loopback and verifies the certificate against the name it
is for (the first --acme-domain, or the first DNS name of the --tls-cert file).

Options:
${flagHelp(HEALTHCHECK_FLAGS)}

Examples:
  ${commandLine("healthcheck")}
  ${commandLine("healthcheck", ["--config", "/etc/scimd/scimd.toml"])}
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

/** The first DNS name of a PEM certificate's subjectAltName, or undefined (none, or the file cannot be read). */
export function certificateName(certFile: string): string | undefined {
  try {
    const san = new X509Certificate(readFileSync(certFile)).subjectAltName ?? "";
    return /(?:^|,\s*)DNS:([^,\s]+)/.exec(san)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * What is asked without --url: /readyz where `scimd serve` with the same SCIMD_* variables and config
 * file listens (a wildcard address is reached on loopback), and with TLS the name its certificate is
 * for, which the connection to loopback is verified against (a real certificate names no 127.0.0.1).
 */
export function defaultTarget(config: ServeConfig): { url: URL; serverName?: string } {
  if (config.port === 0) throw new UsageError("serve's port is 0 (a free one picked at start), so healthcheck cannot know it: give --url");
  const tls = Boolean(config.tls || config.acme);
  // serve takes an IPv6 address with or without brackets (`::1`, `[::1]`); a wildcard is reached on loopback.
  const h = config.host.replace(/^\[(.*)\]$/, "$1");
  const shown = h === "0.0.0.0" || h === "::" || h === "" ? "127.0.0.1" : h.includes(":") ? `[${h}]` : h;
  const url = new URL(`${tls ? "https" : "http"}://${shown}:${config.port}/readyz`);
  const serverName = config.acme ? config.acme.domains[0] : config.tls ? certificateName(config.tls.certFile) : undefined;
  return serverName ? { url, serverName } : { url };
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
  const { values, args, sources } = resolveFlags(argv, HEALTHCHECK_FLAGS, env);
  if (values.help) {
    console.log(HEALTHCHECK_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  if (values.insecure && values["ca-file"] !== undefined) throw new UsageError("--ca-file and --insecure are alternatives: verify against a CA, or not at all");
  if (values.url !== undefined && sources.config?.kind === "flag") throw new UsageError("--url and --config are alternatives: ask the URL, or where the config file says serve listens");
  let target: { url: URL; serverName?: string };
  if (values.url !== undefined) target = { url: checkedUrl(values.url) };
  else {
    // serve's own reading of SCIMD_* and the file (SCIMD_CONFIG, or --config given here): its errors name them.
    const s = serveSettings(sources.config?.kind === "flag" ? ["--config", values.config!] : [], env);
    if (s.help) throw new Error("unreachable: no --help was passed");
    target = defaultTarget(s.config);
  }
  const { url, serverName } = target;
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
      tls:
        url.protocol === "https:"
          ? { rejectUnauthorized: !values.insecure, ...(ca === undefined ? {} : { ca }), ...(serverName === undefined ? {} : { serverName }) }
          : undefined,
    });
  } catch (e) {
    console.error(`scimd: not healthy: ${failure(e, url, timeoutMs)}${serverName ? ` (the certificate was checked for ${serverName})` : ""}`);
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
