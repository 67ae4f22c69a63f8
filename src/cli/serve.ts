/** `scimd serve`: open the store, build the app, listen; stop cleanly on SIGTERM/SIGINT. */
import { createApp, SCIM_BASE_PATH } from "../app";
import { flagHelp, SERVE_FLAGS, serveConfig } from "../config";
import { listen, type Listener, type ListenOptions, type TlsPair } from "../http/listener";
import { createMetrics, metricsFetch } from "../http/metrics";
import { edgeHandler, infoOf } from "../http/observe";
import { createLogger } from "../log";
import { openStore, parseDbLocation, redactDbLocation } from "../store/open";
import { acmeCertificates, acmePaths, type AcmeCertificateSource } from "../tls/acme";
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
export function apiUrl(host: string, port: number, baseUrl: string | undefined, wildcardName = "localhost"): string {
  if (baseUrl !== undefined) return baseUrl.replace(/\/+$/, "");
  const shown = host === "0.0.0.0" || host === "::" || host === "" ? wildcardName : host.includes(":") ? `[${host}]` : host;
  return `http://${shown}:${port}${SCIM_BASE_PATH}`;
}

export const SERVE_USAGE = `Usage: scimd serve [options]

Serves the SCIM 2.0 API at http://HOST:PORT${SCIM_BASE_PATH}, GET /healthz and GET /readyz (and
Prometheus /metrics on --metrics-listen only). Creates the database (and its folder) when it does not
exist. Refuses to start when a port is already in use.

Options:
${flagHelp(SERVE_FLAGS)}

Examples:
  ${commandLine("serve", ["--port", "8080", "--db", "./data/scimd.db"])}
  ${commandLine("serve", ["--base-url", `https://scim.example.com${SCIM_BASE_PATH}`])}
  ${commandLine("serve", ["--config", "/etc/scimd/scimd.toml", "--db", "/var/lib/scimd/scimd.db"])}`;

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
  // A busy port is refused before the database is opened (and perhaps created): nothing is left behind.
  checkPortFree(config.host, config.port);
  const metricsAt = config.metricsListen;
  if (metricsAt) checkPortFree(metricsAt.host, metricsAt.port, "--metrics-listen");
  const store = await openStore(config.db, { synchronous: config.sync });
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  // ACME: a valid certificate is at hand (stored or obtained now) before the API listens.
  let acme: AcmeCertificateSource | undefined;
  if (config.acme) {
    try {
      acme = await acmeCertificates({ ...config, acme: config.acme }, acmePaths(parseDbLocation(config.db).path), logger);
    } catch (e) {
      await store.close();
      throw e;
    }
  }
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
  const fetch = edgeHandler((request) => app.handle(request), {
    clientAddress: (request, server) => server?.requestIP(request)?.address ?? "unknown",
    onFinish: metrics ? (info) => metrics.observe(info) : undefined,
  });
  let server: Listener;
  const listenOptions: ListenOptions = {
    port: config.port,
    host: config.host,
    tls: acme ? await acme.current() : undefined,
    fetch,
    // Bun's own cap, above ours, so that a body without Content-Length cannot grow without bound.
    maxRequestBodySize: config.maxBodyBytes * 2 + 65536,
  };
  try {
    server = listen(listenOptions);
  } catch (e) {
    acme?.stop();
    await store.close();
    throw listenError(e, config.host, config.port);
  }
  if (acme) {
    acme.httpsPort = server.port;
    acme.onChange((pair) => void reloadTls(pair));
  }
  /**
   * A renewed certificate goes to the listener. Listener.reload (tls branch) swaps it without a gap;
   * until it is there, the listener is stopped and started again on the same port with the new pair.
   */
  async function reloadTls(pair: TlsPair): Promise<void> {
    try {
      const reload = (server as { reload?: (tls: TlsPair) => Promise<void> }).reload;
      if (reload) return await reload.call(server, pair);
      const stopped = server.stop();
      const next = { ...listenOptions, port: server.port, tls: pair };
      try {
        server = listen(next);
      } catch {
        await stopped;
        server = listen(next);
      }
      await stopped;
    } catch (e) {
      logger.error("unexpected error", { message: `the renewed certificate could not be put in use: ${(e as Error).message}` });
    }
  }
  // /metrics on its own listener only, never on the API's port: whoever reaches it needs no token.
  let metricsServer: Listener | undefined;
  if (metricsAt && metrics) {
    try {
      metricsServer = listen({ host: metricsAt.host, port: metricsAt.port, fetch: metricsFetch(metrics), maxRequestBodySize: 64 * 1024 });
    } catch (e) {
      acme?.stop();
      await server.stop();
      await store.close();
      throw listenError(e, metricsAt.host, metricsAt.port, "--metrics-listen");
    }
  }
  log(`scimd listening on ${config.host}:${server.port}; database ${redactDbLocation(config.db)}`);
  if (metricsServer) log(`metrics: http://${metricsAt!.host.includes(":") ? `[${metricsAt!.host}]` : metricsAt!.host}:${metricsServer.port}/metrics`);
  log(`SCIM API URL: ${apiUrl(config.host, server.port, config.baseUrl)}`);
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
      acme?.stop();
      await Promise.all([server.stop(), metricsServer?.stop()]);
      metrics?.stop();
      await store.close();
      log("stopped");
      resolve(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
  });
}
