/** `scimd serve`: open the store, build the app, listen; stop cleanly on SIGTERM/SIGINT. */
import { dirname, join, resolve } from "node:path";
import { createApp, SCIM_BASE_PATH } from "../app";
import { dbFlagNamesFrom, flagHelp, SERVE_FLAGS, serveSettings, UsageError } from "../config";
import { clientAddressResolver } from "../http/client-address";
import { exposure, isLoopback, listen, reloadWarning, UNCAPPED_BODY, type Listener, type TlsPair } from "../http/listener";
import { edgeHandler, infoOf, type RequestInfo } from "../http/observe";
import { requestLogger } from "../http/request-log";
import { createLogger, type Logger } from "../log";
import { isPostgresUrl, openStore, parseDbLocation, redactDbLocation } from "../store/open";
import type { ActivityStore, FileProblem, StoreProbes } from "../store/store";
import type { TokenStore } from "../store/store";
import { expiringTokens, expiryWarning } from "../tokens";
import { describeCertificate, fileCertificates, type CertificateSource } from "../tls/certificates";
import { VERSION } from "../version";
import { POSTGRES_HELP, resolveDbPassword } from "./db-password";
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

/** A warning when /metrics, which needs no token, listens beyond loopback. */
export function metricsExposureWarning(host: string, port: number): string | undefined {
  if (isLoopback(host)) return undefined;
  const where = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return `/metrics on ${where} (--metrics-listen) answers without a token to anyone who reaches that address: keep it on loopback or an interface only Prometheus reaches, or firewall the port`;
}

/** The URL the server serves the SCIM API at, for people: the public base URL when set. */
export function apiUrl(host: string, port: number, baseUrl: string | undefined, wildcardName = "localhost", scheme: "http" | "https" = "http"): string {
  if (baseUrl !== undefined) return baseUrl.replace(/\/+$/, "");
  const shown = host === "0.0.0.0" || host === "::" || host === "" ? wildcardName : host.includes(":") ? `[${host}]` : host;
  return `${scheme}://${shown}:${port}${SCIM_BASE_PATH}`;
}

/** How often serve looks for tokens that expire soon: daily, as `tokens list` would show them. */
export const TOKEN_EXPIRY_CHECK_MS = 86_400_000;

/**
 * Logs a warning for each token whose lifetime ends within 14 days (or has ended, unrotated and
 * unrevoked) now, and again every `intervalMs` (daily in serve; a test passes a few milliseconds).
 * Off the request path, never keeping the process alive; a failed read is logged, not thrown. Returns
 * the function that stops it (serve calls it before closing the store).
 */
export function watchTokenExpiry(
  tokens: Pick<TokenStore, "listTokens">,
  logger: Logger,
  db: string,
  intervalMs = TOKEN_EXPIRY_CHECK_MS,
  passwordFile?: string,
): { stop: () => void; check: () => Promise<void> } {
  let stopped = false;
  const check = async () => {
    try {
      const list = await tokens.listTokens();
      if (stopped) return;
      for (const t of expiringTokens(list)) {
        logger.warn(t.leftMs > 0 ? "token expiring" : "token expired", {
          token: t.name,
          expiresAt: t.expiresAt,
          message: expiryWarning(t),
          command: commandLine("tokens", ["rotate", t.name, ...dbArg(db, passwordFile)]),
        });
      }
    } catch (e) {
      if (!stopped) logger.error("token expiry check failed", { reason: e instanceof Error ? e.message : String(e) });
    }
  };
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return {
    check,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}

/** How often serve checks the database's files (a stat of each and an access(2): microseconds). */
export const DB_WATCH_MS = 2_000;

/**
 * Checks the database's files every `intervalMs` (a file engine's fileProblem: deleted, replaced,
 * unwritable) and logs each change once: an error naming what happened and what to do, and a line
 * when the files are as opened again (an unwritable file made writable). Writes check for themselves
 * (before BEGIN, after COMMIT) and /readyz too; this is what tells the operator of a server that
 * nobody writes to. Never keeps the process alive; undefined for an engine without files.
 */
export function watchDatabaseFile(store: Pick<StoreProbes, "fileProblem">, logger: Logger, db: string, intervalMs = DB_WATCH_MS): { stop: () => void; check: () => void } | undefined {
  const probe = store.fileProblem?.bind(store);
  if (!probe) return undefined;
  let last: FileProblem | undefined;
  const check = () => {
    let now: FileProblem | undefined;
    try {
      now = probe();
    } catch (e) {
      now = { event: "database file check failed", gone: false, reason: e instanceof Error ? e.message : String(e) };
    }
    if (now?.event === last?.event && now?.reason === last?.reason) return;
    if (now) logger.error(now.event, { db, message: now.reason });
    else logger.info("database file ok", { db, message: `the database files are as scimd opened them again (after: ${last!.event}); writes are accepted` });
    last = now;
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}

export const SERVE_USAGE = `Usage: scimd serve [options]

Serves the SCIM 2.0 API at http://HOST:PORT${SCIM_BASE_PATH} (https:// with --tls-cert and --tls-key,
or --acme-domain), GET /healthz and GET /readyz (and Prometheus /metrics on --metrics-listen only).
Creates the database (and its folder) when it does not exist, and says so in its log ("created a new
database at …"); refuses to start when a -wal or -shm file is there without its database. Refuses to
start when a port is already in use. SIGHUP reads the certificate files again. Checks the database's
files every 2 s: deleted, replaced or unwritable, writes answer 503 and the log says what to do.

Options:
${flagHelp(SERVE_FLAGS)}

${POSTGRES_HELP}

Examples:
  ${commandLine("serve", ["--port", "8080", "--db", "./data/scimd.db"])}
  ${commandLine("serve", ["--base-url", `https://scim.example.com${SCIM_BASE_PATH}`])}
  ${commandLine("serve", ["--config", "/etc/scimd/scimd.toml", "--db", "/var/lib/scimd/scimd.db"])}
  ${commandLine("serve", ["--port", "8443", "--tls-cert", "/etc/scimd/tls/fullchain.pem", "--tls-key", "/etc/scimd/tls/privkey.pem"])}
  ${commandLine("serve", ["--db", "postgres://scimd@db.example.com:5432/scimd?sslmode=require", "--db-password-file", "/etc/scimd/db-password"])}`;

/** How many activity entries one pruning write deletes at most: a few milliseconds, so writes queued behind it hardly wait. */
export const PRUNE_BATCH = 500;
/** How often serve prunes the activity log (and once shortly after it starts). */
export const PRUNE_INTERVAL_MS = 10 * 60_000;

export interface ActivityPruner {
  /** One pruning run now: batches of `batch` until none older than the retention is left; returns how many were deleted. */
  run(): Promise<number>;
  /** Stops the timer and waits for a run in progress (before the store is closed). */
  stop(): Promise<void>;
}

/**
 * Prunes activity entries older than `retentionMs` in the background: every `intervalMs` (first after
 * `firstAfterMs`), in writes of at most `batch` deletions each, queued with the API's writes like any
 * other, so a long backlog never holds the write lock for long. The timer does not keep the process up.
 */
export function activityPruner(
  store: ActivityStore,
  retentionMs: number,
  logger: Logger,
  opts: { intervalMs?: number; firstAfterMs?: number; batch?: number } = {},
): ActivityPruner {
  const batch = opts.batch ?? PRUNE_BATCH;
  let stopped = false;
  let running: Promise<number> | undefined;
  const once = async (): Promise<number> => {
    const olderThan = new Date(Date.now() - retentionMs).toISOString();
    let total = 0;
    for (;;) {
      if (stopped) break;
      const n = await store.pruneActivity(olderThan, batch);
      total += n;
      if (n < batch) break;
    }
    if (total) logger.info("activity pruned", { entries: total, olderThan });
    return total;
  };
  const run = () => {
    running ??= once().finally(() => (running = undefined));
    return running;
  };
  const tick = () =>
    void run().catch((e) => logger.warn("activity pruning failed", { reason: e instanceof Error ? e.message : String(e), message: "retried at the next interval" }));
  const first = setTimeout(tick, opts.firstAfterMs ?? 5_000);
  const every = setInterval(tick, opts.intervalMs ?? PRUNE_INTERVAL_MS);
  first.unref();
  every.unref();
  return {
    run,
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(every);
      await running?.catch(() => 0);
    },
  };
}

/** Bun.serve's error for a port another socket holds, as a message that says what to do (`option`: the flag that chose it). */
function listenError(e: unknown, host: string, port: number, option?: string): Error {
  const code = (e as { code?: string } | null)?.code;
  if (code === "EADDRINUSE")
    return new Error(`port ${port} is already in use on ${host} (another scimd, or another program, listens there); stop it or choose another ${option ?? "--port"}`);
  if (code === "EACCES") return new Error(`not allowed to listen on port ${port} on ${host}${option ? ` (${option})` : ""}; choose a port above 1023 or run with the needed privileges`);
  if (code === "EADDRNOTAVAIL") return new Error(`cannot listen on ${host}: no interface of this machine has that address (${option ?? "--host"})`);
  return e instanceof Error ? e : new Error(String(e));
}

/** How often at most a refused connection is logged: a flood of them makes one line per interval. */
export const REFUSED_LOG_INTERVAL_MS = 10_000;

/**
 * The log of connections refused by a cap: the first at once, then at most one line per interval,
 * saying how many were refused since the last line (a client opening thousands must not flood the log).
 */
function refusedConnections(logger: Logger, intervalMs = REFUSED_LOG_INTERVAL_MS): (client: string, reason: "max" | "perClient") => void {
  let last = -Infinity, since = 0;
  return (client, reason) => {
    since++;
    const now = performance.now();
    if (now - last < intervalMs) return;
    last = now;
    logger.warn("connection refused", {
      client,
      reason: reason === "max" ? "--max-connections reached" : "--max-connections-per-client reached for this client",
      refused: since,
    });
    since = 0;
  };
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

export async function serve(argv: string[]): Promise<number> {
  // SIGHUP's default action ends the process: it is caught from the very start (a migration or the
  // first ACME order can take a while), ignored until serve listens, logged after.
  let onHup = () => {};
  const hup = () => onHup();
  process.on("SIGHUP", hup);
  // SIGTERM and SIGINT before serve listens end the process as their default action would (exit
  // 143, 130), but through process.exit, so that the log lines written so far are flushed; once it
  // listens they stop it cleanly.
  let onStop = (signal: "SIGTERM" | "SIGINT"): void => process.exit(signal === "SIGINT" ? 130 : 143);
  const term = () => onStop("SIGTERM");
  const int = () => onStop("SIGINT");
  process.on("SIGTERM", term);
  process.on("SIGINT", int);
  try {
    return await serving(argv, (f) => (onHup = f), (f) => (onStop = f));
  } finally {
    // serving resolves once the server has stopped.
    process.off("SIGHUP", hup);
    process.off("SIGTERM", term);
    process.off("SIGINT", int);
  }
}

async function serving(argv: string[], setOnHup: (f: () => void) => void, setOnStop: (f: (signal: "SIGTERM" | "SIGINT") => void) => void): Promise<number> {
  const parsed = serveSettings(argv);
  if (parsed.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const { config } = parsed;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  const db = redactDbLocation(config.db);
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
  let acmeDir: string | undefined;
  try {
    if (config.acme) acmeDir = config.acme.dir ?? (isPostgresUrl(config.db) ? undefined : join(dirname(resolve(parseDbLocation(config.db).path)), "acme"));
    if (config.acme && acmeDir === undefined)
      throw new UsageError("--acme-domain with a PostgreSQL --db needs --acme-dir, the folder where the ACME account key and certificate are kept (there is no database file to keep them beside)");
    checkPortFree(config.host, config.port);
    if (metricsAt) checkPortFree(metricsAt.host, metricsAt.port, "--metrics-listen");
  } catch (e) {
    return abort(e);
  }
  logger.info("started", { version: VERSION, pid: process.pid, db, ...(config.configFile ? { configFile: config.configFile } : {}) });
  // The password (URL, --db-password-file or PGPASSWORD) is resolved once; only where it came from is ever said.
  let resolved: ReturnType<typeof resolveDbPassword>;
  try {
    resolved = resolveDbPassword(config.db, config.dbPasswordFile, process.env, dbFlagNamesFrom(parsed.sources));
  } catch (e) {
    return abort(e);
  }
  if (resolved.warning) logger.warn("warning", { message: resolved.warning });
  const store = await openStore(config.db, {
    password: resolved.password,
    synchronous: config.sync,
    activityLog: config.activityLog,
    queryTimeoutMs: config.queryTimeoutMs,
    onMigrated: (from, to) => logger.info("migrated", { db, from, to }),
  }).catch(abort);
  undo.push(() => store.close());
  if (store.created)
    logger.warn("database created", {
      db,
      message: `created a new database at ${store.created}: it holds no users, groups or tokens yet; if you expected existing data, stop scimd and check --db (or restore a backup to that path)`,
    });
  const fileWatch = watchDatabaseFile(store, logger, db);
  if (fileWatch) undo.push(() => fileWatch.stop());
  // Entries are pruned whether or not new ones are recorded: retention applies to those kept so far.
  const pruner = config.activityRetentionMs > 0 ? activityPruner(store, config.activityRetentionMs, logger) : undefined;
  if (pruner) undo.push(() => pruner.stop());
  // ACME: a valid certificate is at hand (stored, or obtained now) before the API listens.
  const acme = config.acme
    ? await import("../tls/acme")
        .then(({ acmeCertificates, acmePathsIn }) => acmeCertificates({ ...config, acme: config.acme! }, acmePathsIn(acmeDir!), logger))
        .catch(abort)
    : undefined;
  if (acme) undo.push(() => acme.stop());
  const certificates: CertificateSource | undefined = files ?? acme;
  const app = createApp({
    store,
    baseUrl: config.baseUrl,
    strict: config.strict,
    maxResults: config.maxResults,
    maxListMembers: config.maxListMembers,
    maxBodyBytes: config.maxBodyBytes,
    authFailuresPerMinute: config.authFailuresPerMinute,
    logger,
    addressOf: (request) => infoOf(request)?.client ?? "unknown",
  });
  // Metrics only when they are served: without --metrics-listen a request costs nothing more.
  // acme-client and prom-client are loaded only when used: every other command starts without them.
  const metricsModule = metricsAt ? await import("../http/metrics") : undefined;
  const metrics = metricsModule?.createMetrics({ store, version: VERSION });
  if (metrics) undo.push(() => metrics.stop());
  const logRequest = requestLogger(logger);
  const resolveClient = clientAddressResolver(config.trustProxy);
  const trusting = config.trustProxy.length > 0;
  const fetch = edgeHandler((request) => app.handle(request), {
    clientAddress: (request, bunServer) => {
      const peer = server?.peer(request, bunServer) ?? "unknown";
      return trusting ? resolveClient(peer, request.headers.get("x-forwarded-for")) : peer;
    },
    onFinish: metrics
      ? (info: RequestInfo) => {
          logRequest(info);
          metrics.observe(info);
        }
      : logRequest,
    captureBodies: logger.enabled("debug"),
  });
  let server: Listener;
  try {
    server = listen({
      port: config.port,
      host: config.host,
      tls: certificates ? await certificates.current() : undefined,
      fetch,
      // scimd enforces --max-body-bytes itself (readJsonBody: Content-Length first, a chunked body
      // counted as it is read), with the SCIM 413. Bun's own cap answers a bare 413 and closes the
      // connection before scimd sees the request, so it is set out of reach.
      maxRequestBodySize: UNCAPPED_BODY,
      caps: { max: config.maxConnections, perClient: config.maxConnectionsPerClient, onRefused: refusedConnections(logger) },
    });
  } catch (e) {
    return abort(listenError(e, config.host, config.port));
  }
  undo.push(() => server.stop());
  // /metrics on its own listener only, never on the API's port: whoever reaches it needs no token.
  let metricsServer: Listener | undefined;
  if (metricsAt && metrics) {
    try {
      metricsServer = listen({ host: metricsAt.host, port: metricsAt.port, fetch: metricsModule!.metricsFetch(metrics), maxRequestBodySize: 64 * 1024 });
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
  const exposed = exposure(config.host, server.tls);
  const bracket = (host: string) => (host.includes(":") ? `[${host}]` : host);
  logger.info("listening", {
    url: server.url,
    exposed: exposed.summary,
    tls: server.tls,
    db,
    apiUrl: apiUrl(config.host, server.port, config.baseUrl, undefined, server.tls ? "https" : "http"),
    ...(metricsServer ? { metricsUrl: `http://${bracket(metricsAt!.host)}:${metricsServer.port}/metrics` } : {}),
    ...(trusting ? { trustProxy: config.trustProxy.join(",") } : {}),
  });
  if (exposed.warning) logger.warn("warning", { message: exposed.warning });
  const metricsWarning = metricsServer ? metricsExposureWarning(metricsAt!.host, metricsServer.port) : undefined;
  if (metricsWarning) logger.warn("warning", { message: metricsWarning });
  const reloading = server.tls ? reloadWarning() : undefined;
  if (reloading) logger.warn("warning", { message: reloading });
  const warning = baseUrlWarning(config.baseUrl);
  if (warning) logger.warn("warning", { message: warning.replace(/^warning: /, "") });
  if ((await store.tokenCount()) === 0) {
    const cmd = commandLine("generate-token", ["--name", "okta", ...dbArg(config.db, config.dbPasswordFile)]);
    logger.warn("no token yet", { message: "no API token exists yet: create one (while this server runs) with the command below", command: cmd });
  }
  const expiry = watchTokenExpiry(store, logger, config.db, TOKEN_EXPIRY_CHECK_MS, config.dbPasswordFile);
  await expiry.check();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info("stopping", { signal, message: "finishing in-flight requests, then closing the database" });
      certificates?.stop();
      expiry.stop();
      fileWatch?.stop();
      await Promise.all([server.stop(), metricsServer?.stop()]);
      metrics?.stop();
      await pruner?.stop();
      await store.close();
      logger.info("stopped", { signal });
      resolve(0);
    };
    setOnStop((signal) => void stop(signal));
    // SIGHUP reads the certificate files again (fileCertificates listens for it); it never stops serve.
    setOnHup(() => logger.info("signal", { signal: "SIGHUP", message: config.tls ? "reading the certificate files again" : "ignored" }));
  });
}
