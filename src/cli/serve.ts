/** `scimd serve`: open the store, build the app, listen; stop cleanly on SIGTERM/SIGINT. */
import { createApp, DEFAULTS, SCIM_BASE_PATH } from "../app";
import { DB_FLAG, flagHelp, parseFlags, UsageError, type FlagSpec } from "../config";
import { openStore, redactDbLocation } from "../store/open";
import { commandLine, dbArg } from "./invocation";

export const PORT_FLAG: FlagSpec = { name: "port", env: "SCIMD_PORT", kind: "int", default: 8080, help: "TCP port (0 picks a free one)", check: (v) => { if ((v as number) > 65535) throw new UsageError("--port must be 0..65535"); } };
export const HOST_FLAG: FlagSpec = { name: "host", env: "SCIMD_HOST", kind: "string", default: "0.0.0.0", help: "address to listen on" };
export const BASE_URL_FLAG: FlagSpec = {
  name: "base-url",
  env: "SCIMD_BASE_URL",
  kind: "string",
  help: "public URL of the SCIM API for meta.location and Location, e.g. https://scim.example.com/api/v1/scim (default: derived from each request)",
  check: (v) => {
    try {
      const u = new URL(String(v));
      if (!/^https?:$/.test(u.protocol)) throw new Error();
    } catch {
      throw new UsageError(`--base-url must be an absolute http(s) URL, got '${v}'`);
    }
  },
};

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

export const SERVE_FLAGS: FlagSpec[] = [
  PORT_FLAG,
  HOST_FLAG,
  DB_FLAG,
  BASE_URL_FLAG,
  { name: "strict", env: "SCIMD_STRICT", kind: "bool", default: false, help: "no IdP quirks: refuse every request RFC 7643/7644 do not allow (unknown attributes, unquoted filter values, string booleans, …) with 400" },
  { name: "sync", env: "SCIMD_SYNC", kind: "string", default: "full", help: "SQLite synchronous: full (survives power loss) or normal (survives a crash of scimd)", check: (v) => { if (!/^(full|normal)$/i.test(String(v))) throw new UsageError("--sync must be 'full' or 'normal'"); } },
  { name: "max-body-bytes", env: "SCIMD_MAX_BODY_BYTES", kind: "int", default: DEFAULTS.maxBodyBytes, help: "largest request body accepted (413 above)" },
  { name: "max-results", env: "SCIMD_MAX_RESULTS", kind: "int", default: DEFAULTS.maxResults, help: "largest page a query returns", check: (v) => { if ((v as number) < 1) throw new UsageError("--max-results must be at least 1"); } },
  { name: "auth-failures-per-minute", env: "SCIMD_AUTH_FAILURES_PER_MINUTE", kind: "int", default: DEFAULTS.authFailuresPerMinute, help: "failed authentications per client address per minute before 429" },
  { name: "help", kind: "bool", help: "show this help" },
];

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

const log = (line: string) => console.error(`${new Date().toISOString()} ${line}`);

export async function serve(argv: string[]): Promise<number> {
  const { values, args } = parseFlags(argv, SERVE_FLAGS);
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  const dbPath = String(values.db);
  // A busy port is refused before the database is opened (and perhaps created): nothing is left behind.
  if (values.port !== 0) {
    try {
      Bun.serve({ port: values.port as number, hostname: values.host as string, reusePort: false, fetch: () => new Response(null, { status: 503 }) }).stop(true);
    } catch (e) {
      throw listenError(e, String(values.host), values.port as number);
    }
  }
  const store = await openStore(dbPath, { synchronous: String(values.sync).toUpperCase() as "FULL" | "NORMAL" });
  let server: ReturnType<typeof Bun.serve> | undefined;
  const app = createApp({
    store,
    baseUrl: values["base-url"] as string | undefined,
    strict: values.strict as boolean,
    maxResults: values["max-results"] as number,
    maxBodyBytes: values["max-body-bytes"] as number,
    authFailuresPerMinute: values["auth-failures-per-minute"] as number,
    log,
    addressOf: (request) => server?.requestIP(request)?.address ?? "unknown",
  });
  try {
    app.listen({
      port: values.port as number,
      hostname: values.host as string,
      // Elysia turns reusePort on, with which a second server on a busy port silently shares its
      // traffic (possibly on another database). Off, the second one fails with EADDRINUSE.
      reusePort: false,
      // Elysia turns Bun's development mode on unless NODE_ENV=production: an exception that escapes
      // the error renderer would then be answered with Bun's HTML error page, which shows any client
      // the stack, the source lines around it and the server's working directory.
      development: false,
      // Bun's own cap, above ours, so that a body without Content-Length cannot grow without bound.
      maxRequestBodySize: (values["max-body-bytes"] as number) * 2 + 65536,
    });
  } catch (e) {
    await store.close();
    throw listenError(e, String(values.host), values.port as number);
  }
  server = app.server ?? undefined;
  if (!server) throw new Error("the server did not start");
  const baseUrl = values["base-url"] as string | undefined;
  log(`scimd listening on ${values.host}:${server.port}; database ${redactDbLocation(dbPath)}`);
  log(`SCIM API URL: ${apiUrl(String(values.host), server.port!, baseUrl)}`);
  const warning = baseUrlWarning(baseUrl);
  if (warning) log(warning);
  if ((await store.tokenCount()) === 0) {
    const cmd = commandLine("generate-token", ["--name", "okta", ...dbArg(dbPath)]);
    log(`no API token exists yet: create one (while this server runs) with\n  ${cmd}`);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: finishing in-flight requests, then closing the database`);
      await server!.stop(false);
      await store.close();
      log("stopped");
      resolve(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
  });
}
