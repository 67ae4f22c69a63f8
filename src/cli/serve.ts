/** `scimd serve`: open the store, build the app, listen; stop cleanly on SIGTERM/SIGINT. */
import { createApp, SCIM_BASE_PATH } from "../app";
import { flagHelp, SERVE_FLAGS, serveConfig } from "../config";
import { exposure, listen, reloadWarning, type Listener, type TlsPair } from "../http/listener";
import { createMetrics, metricsFetch } from "../http/metrics";
import { edgeHandler, infoOf } from "../http/observe";
import { createLogger } from "../log";
import { openStore, parseDbLocation, redactDbLocation } from "../store/open";
import { acmeCertificates, acmePaths } from "../tls/acme";
import { describeCertificate, fileCertificates, type CertificateSource } from "../tls/certificates";
import { VERSION } from "../version";
import { commandLine, dbArg } from "./invocation";

/**
 * A warning when the public base URL does not end in the path scimd serves the API under: Location
 * and meta.location are built from it as it is, so `https://scim.example.com` gives
 * `https://scim.example.com/Users/{id}`. That is right behind a proxy that maps the site root to
 * /api/v1/scim, so scimd warns instead of appending the path.
 */
export function baseUrlWarning(baseUrl: string | undefined): string | undefined {
  if (baseUrl === undefined) return undefined;
  const trimmed = baseUrl.replace(/\/+$/, "");
  if (new URL(trimmed).pathname.replace(/\/+$/, "").endsWith(SCIM_BASE_PATH)) return undefined;
  return (
    `warning: the base URL ${trimmed} (--base-url / SCIMD_BASE_URL) does not end in ${SCIM_BASE_PATH}, the path scimd serves the SCIM API under. ` +
    `Location headers and meta.location will read ${trimmed}/Users/{id}. That is right only if your proxy forwards ${trimmed}/ to scimd's ${SCIM_BASE_PATH}/; ` +
    `otherwise pass --base-url ${trimmed}${SCIM_BASE_PATH}`
  );
}

/** The URL the server serves the SCIM API at, for people: the public base URL when set. */
export function apiUrl(host: string, port: number, baseUrl: string | undefined, wildcardName = "localhost", scheme: "http" | "https" = "http"): string {
  if (baseUrl !== undefined) return baseUrl.replace(/\/+$/, "");
  const shown = host === "0.0.0.0" || host === "::" || host === "" ? wildcardName : host.includes(":") ? `[${host}]` : host;
  return `${scheme}://${shown}:${port}${SCIM_BASE_PATH}`;
}

export const SERVE_USAGE = `Usage: scimd serve [options]

Serves the SCIM 2.0 API at http://HOST:PORT${SCIM_BASE_PATH} (https:// with --tls-cert and --tls-key,
or --acme-domain), GET /healthz and GET /readyz (and Prometheus /metrics on --metrics-listen only).
Creates the database (and its folder) when it does not exist. Refuses to start when a port is already
in use. SIGHUP reads the certificate files again.

Options:
${flagHelp(SERVE_FLAGS)}

Examples:
  ${commandLine("serve", ["--port", "8080", "--db", "./data/scimd.db"])}
  ${commandLine("serve", ["--base-url", `https://scim.example.com${SCIM_BASE_PATH}`])}
  ${commandLine("serve", ["--config", "/etc/scimd/scimd.toml", "--db", "/var/lib/scimd/scimd.db"])}
  ${commandLine("serve", ["--port", "8443", "--tls-cert", "/etc/scimd/fullchain.pem", "--tls-key", "/etc/scimd/privkey.pem"])}`;

/** Bun.serve's error for a port another socket holds, as a message that says what to do (`option`: the flag that chose it). */
function listenError(e: unknown, host: string, port: number, option?: string): Error {
  const code = (e as { code?: string } | null)?.code;
  if (code === "EADDRINUSE")
    return new Error(`port ${port} is already in use on ${host} (another scimd, or another program, listens there); stop it or choose another ${option ?? "--port"}`);
  if (code === "EACCES") return new Error(`not allowed to listen on port ${port} on ${host}${option ? ` (${option})` : ""}; choose a port above 1023 or run with the needed privileges`);
  if (code === "EADDRNOTAVAIL") return new Error(`cannot listen on ${host}: no interface of this machine has that address (${option ?? "--host"})`);
  return e instanceof Error ? e : new Error(String(e));
}

/** Refuses a busy port before anything is opened (and perhaps created), so a refused start leaves nothing behind. */
function checkPortFree(host: string, port: number, option?: string): void {
  if (port === 0) return;
  try {
    Bun.serve({ port, hostname: host, reusePort: false, fetch: () => new Response(null, { status: 503 }) }).stop(true);
  } catch (e) {
    throw listenError(e, host, port, option);
  }
}

const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);

export async function serve(argv: string[]): Promise<number> {
  const parsed = serveConfig(argv);
  if (parsed.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const { config } = parsed;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  // What to undo, newest first, when the start fails half-way: nothing is left running.
  const undo: (() => unknown)[] = [];
  const abort = async (e: unknown): Promise<never> => {
    for (const step of undo.reverse()) await step();
    throw e;
  };
  // Certificate files are checked first: a wrong one is refused before anything is created.
  const files = config.tls ? fileCertificates(config.tls, logger) : undefined;
  if (files) undo.push(() => files.stop());
  // A busy port is refused before the database is opened (and perhaps created): nothing is left behind.
  const metricsAt = config.metricsListen;
  try {
    checkPortFree(config.host, config.port);
    if (metricsAt) checkPortFree(metricsAt.host, metricsAt.port, "--metrics-listen");
  } catch (e) {
    return abort(e);
  }
  const store = await openStore(config.db, { synchronous: config.sync }).catch(abort);
  undo.push(() => store.close());
  // ACME: a valid certificate is at hand (stored, or obtained now) before the API listens.
  const acme = config.acme
    ? await acmeCertificates({ ...config, acme: config.acme }, acmePaths(parseDbLocation(config.db).path), logger).catch(abort)
    : undefined;
  if (acme) undo.push(() => acme.stop());
  const certificates: CertificateSource | undefined = files ?? acme;
  const app = createApp({
    store,
    baseUrl: config.baseUrl,
    strict: config.strict,
    maxResults: config.maxResults,
    maxBodyBytes: config.maxBodyBytes,
    authFailuresPerMinute: config.authFailuresPerMinute,
    log,
    addressOf: (request) => infoOf(request)?.client ?? "unknown",
  });
  // Metrics only when they are served: without --metrics-listen a request costs nothing more.
  const metrics = metricsAt ? createMetrics({ store, version: VERSION }) : undefined;
  if (metrics) undo.push(() => metrics.stop());
  const fetch = edgeHandler((request) => app.handle(request), {
    clientAddress: (request, server) => server?.requestIP(request)?.address ?? "unknown",
    onFinish: metrics ? (info) => metrics.observe(info) : undefined,
  });
  let server: Listener;
  try {
    server = listen({
      port: config.port,
      host: config.host,
      tls: certificates ? await certificates.current() : undefined,
      fetch,
      // Bun's own cap, above ours, so that a body without Content-Length cannot grow without bound.
      maxRequestBodySize: config.maxBodyBytes * 2 + 65536,
    });
  } catch (e) {
    return abort(listenError(e, config.host, config.port));
  }
  undo.push(() => server.stop());
  // /metrics on its own listener only, never on the API's port: whoever reaches it needs no token.
  let metricsServer: Listener | undefined;
  if (metricsAt && metrics) {
    try {
      metricsServer = listen({ host: metricsAt.host, port: metricsAt.port, fetch: metricsFetch(metrics), maxRequestBodySize: 64 * 1024 });
    } catch (e) {
      return abort(listenError(e, metricsAt.host, metricsAt.port, "--metrics-listen"));
    }
  }
  if (acme) acme.httpsPort = server.port;
  // A renewed certificate (files changed, SIGHUP, an ACME renewal) goes to new connections without a gap.
  certificates?.onChange((pair: TlsPair) => {
    server.reload(pair).then(
      () => logger.info("certificate renewed", describeCertificate(pair.cert)),
      (e) => logger.error("certificate renewal failed", { reason: e instanceof Error ? e.message : String(e) }),
    );
  });
  log(`scimd listening on ${config.host}:${server.port}; database ${redactDbLocation(config.db)}`);
  if (metricsServer) log(`metrics: http://${metricsAt!.host.includes(":") ? `[${metricsAt!.host}]` : metricsAt!.host}:${metricsServer.port}/metrics`);
  log(`SCIM API URL: ${apiUrl(config.host, server.port, config.baseUrl, undefined, server.tls ? "https" : "http")}`);
  const exposed = exposure(config.host, server.tls);
  log(`exposed: ${exposed.summary} (${server.url})`);
  if (exposed.warning) log(`warning: ${exposed.warning}`);
  const reloading = server.tls ? reloadWarning() : undefined;
  if (reloading) log(`warning: ${reloading}`);
  const warning = baseUrlWarning(config.baseUrl);
  if (warning) log(warning);
  if ((await store.tokenCount()) === 0) {
    const cmd = commandLine("generate-token", ["--name", "okta", ...dbArg(config.db)]);
    log(`no API token exists yet: create one (while this server runs) with\n  ${cmd}`);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: finishing in-flight requests, then closing the database`);
      certificates?.stop();
      await Promise.all([server.stop(), metricsServer?.stop()]);
      metrics?.stop();
      await store.close();
      log("stopped");
      resolve(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
    // SIGHUP reads the certificate files again (fileCertificates listens for it); it never stops serve.
    process.on("SIGHUP", () => {});
  });
}
