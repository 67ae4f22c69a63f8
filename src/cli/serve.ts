/** `scimd serve`: open the store, build the app, listen; stop cleanly on SIGTERM/SIGINT. */
import { createApp, SCIM_BASE_PATH } from "../app";
import { flagHelp, SERVE_FLAGS, serveConfig } from "../config";
import { clientAddressResolver } from "../http/client-address";
import { listen, type Listener } from "../http/listener";
import { edgeHandler, infoOf } from "../http/observe";
import { requestLogger } from "../http/request-log";
import { createLogger } from "../log";
import { openStore, redactDbLocation } from "../store/open";
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

Serves the SCIM 2.0 API at http://HOST:PORT${SCIM_BASE_PATH} and GET /healthz. Creates the database
(and its folder) when it does not exist. Refuses to start when the port is already in use.

Options:
${flagHelp(SERVE_FLAGS)}

Examples:
  ${commandLine("serve", ["--port", "8080", "--db", "./data/scimd.db"])}
  ${commandLine("serve", ["--base-url", `https://scim.example.com${SCIM_BASE_PATH}`])}`;

/** Bun.serve's error for a port another socket holds, as a message that says what to do. */
function listenError(e: unknown, host: string, port: number): Error {
  const code = (e as { code?: string } | null)?.code;
  if (code === "EADDRINUSE")
    return new Error(`port ${port} is already in use on ${host} (another scimd, or another program, listens there); stop it or choose another --port`);
  if (code === "EACCES") return new Error(`not allowed to listen on port ${port} on ${host}; choose a port above 1023 or run with the needed privileges`);
  if (code === "EADDRNOTAVAIL") return new Error(`cannot listen on ${host}: no interface of this machine has that address (--host)`);
  return e instanceof Error ? e : new Error(String(e));
}

export async function serve(argv: string[]): Promise<number> {
  const parsed = serveConfig(argv);
  if (parsed.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const { config } = parsed;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  const db = redactDbLocation(config.db);
  // A busy port is refused before the database is opened (and perhaps created): nothing is left behind.
  if (config.port !== 0) {
    try {
      Bun.serve({ port: config.port, hostname: config.host, reusePort: false, fetch: () => new Response(null, { status: 503 }) }).stop(true);
    } catch (e) {
      throw listenError(e, config.host, config.port);
    }
  }
  logger.info("started", { version: VERSION, pid: process.pid, db });
  const store = await openStore(config.db, { synchronous: config.sync, onMigrated: (from, to) => logger.info("migrated", { db, from, to }) });
  const app = createApp({
    store,
    baseUrl: config.baseUrl,
    strict: config.strict,
    maxResults: config.maxResults,
    maxBodyBytes: config.maxBodyBytes,
    authFailuresPerMinute: config.authFailuresPerMinute,
    logger,
    addressOf: (request) => infoOf(request)?.client ?? "unknown",
  });
  const resolve = clientAddressResolver(config.trustProxy);
  const trusting = config.trustProxy.length > 0;
  const fetch = edgeHandler((request) => app.handle(request), {
    clientAddress: (request, server) => {
      const peer = server?.requestIP(request)?.address ?? "unknown";
      return trusting ? resolve(peer, request.headers.get("x-forwarded-for")) : peer;
    },
    onFinish: requestLogger(logger),
    captureBodies: logger.enabled("debug"),
  });
  let server: Listener;
  try {
    server = listen({
      port: config.port,
      host: config.host,
      fetch,
      // Bun's own cap, above ours, so that a body without Content-Length cannot grow without bound.
      maxRequestBodySize: config.maxBodyBytes * 2 + 65536,
    });
  } catch (e) {
    await store.close();
    throw listenError(e, config.host, config.port);
  }
  logger.info("listening", {
    host: config.host,
    port: server.port,
    tls: server.tls,
    db,
    apiUrl: apiUrl(config.host, server.port, config.baseUrl),
    ...(config.trustProxy.length ? { trustProxy: config.trustProxy.join(",") } : {}),
  });
  const warning = baseUrlWarning(config.baseUrl);
  if (warning) logger.warn("warning", { message: warning.replace(/^warning: /, "") });
  if ((await store.tokenCount()) === 0) {
    const cmd = commandLine("generate-token", ["--name", "okta", ...dbArg(config.db)]);
    logger.warn("no token yet", { message: "no API token exists yet: create one (while this server runs) with the command below", command: cmd });
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info("stopping", { signal, message: "finishing in-flight requests, then closing the database" });
      await server.stop();
      await store.close();
      logger.info("stopped", { signal });
      resolve(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
  });
}
