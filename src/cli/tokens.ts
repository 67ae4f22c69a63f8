/** `scimd generate-token` and `scimd tokens list|rotate|revoke`: manage API tokens in the database. */
import { hostname } from "node:os";
import { resolve } from "node:path";
import {
  BASE_URL_FLAG,
  checkDbPasswordFile,
  dbFlagNamesFrom,
  type DbFlagNames,
  CONFIG_FLAG,
  DB_FLAG,
  DB_PASSWORD_FILE_FLAG,
  DEFAULTS,
  FILE_FLAGS,
  flag,
  flagHelp,
  formatDuration,
  HELP_FLAG,
  HOST_FLAG,
  parseDuration,
  PORT_FLAG,
  resolveFlags,
  UsageError,
  type ConfigFileSettings,
  type Env,
} from "../config";
import { describeDb, isPostgresUrl, openStore } from "../store/open";
import { StoreMissingError, TOKEN_SCOPES, TokenNameTaken, type Store, type TokenRecord, type TokenScope, type TokenStore } from "../store/store";
import { SCIM_BASE_PATH } from "../app";
import { expiringTokens, expiryWarning, hashToken, newToken } from "../tokens";
import { dbPasswordFor, POSTGRES_HELP } from "./db-password";
import { commandLine, dbArg } from "./invocation";
import { apiUrl, baseUrlWarning } from "./serve";

const DEFAULT_GRACE = "24h";

/**
 * --expires-in as milliseconds, or null for `never`. 0 is refused: a token that is dead on arrival is
 * a mistake, not a choice (to stop a token, revoke it).
 */
export function parseExpiresIn(raw: string): number | null {
  if (raw.trim().toLowerCase() === "never") return null;
  // 0 is refused here, so the message offers 'never' as the other choice.
  const ms = parseDuration(raw, "--expires-in", "'never'");
  if (ms === 0) throw new UsageError(`--expires-in must be longer than 0 (e.g. 90d), or 'never'; got '${raw}'`);
  return ms;
}

const EXPIRES_IN_CHECK = (v: string) => void parseExpiresIn(v);

/** What the scopes allow, for the help and the messages. */
const SCOPE_MEANING: Record<TokenScope, string> = {
  write: "reads and writes, for an IdP",
  read: "GET and .search only; writes are refused with 403",
};

export const GENERATE_FLAGS = [
  flag({
    name: "name",
    kind: "string",
    default: "default",
    help: "the token's name, unique, e.g. the IdP's name",
    check: (v) => {
      if (!v.trim() || v.length > 100) throw new UsageError("--name must be 1 to 100 characters");
      // `tokens rotate -x` would read the name as an option: the commands scimd suggests must paste.
      if (v.startsWith("-")) throw new UsageError(`--name must not begin with '-' (the tokens commands would read '${v}' as an option)`);
      // `tokens revoke X` takes a secret's id (a UUID) or a token's name: a name shaped like an id
      // could revoke another token's secret, or be revoked by its id.
      if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v.trim()))
        throw new UsageError(`--name must not look like a token id (a UUID): 'tokens revoke' takes a name or an id; got '${v}'`);
    },
  }),
  flag({
    name: "scope",
    kind: "string",
    default: "write",
    help: `what the token may do: write (${SCOPE_MEANING.write}) or read (${SCOPE_MEANING.read})`,
    check: (v) => {
      if (!(TOKEN_SCOPES as readonly string[]).includes(v)) throw new UsageError(`--scope must be read or write; got '${v}'`);
    },
  }),
  flag({
    name: "expires-in",
    kind: "string",
    help: "the token's lifetime: 30d, 90d, 12h (at most 366d); default never, since Entra ID quarantines a provisioning job whose token stops working",
    check: EXPIRES_IN_CHECK,
  }),
  DB_FLAG,
  DB_PASSWORD_FILE_FLAG,
  flag({ name: "create", kind: "bool", default: false, help: "create the database when it does not exist yet (by default only serve creates it)" }),
  { ...PORT_FLAG, help: "the port serve listens on, for the URL printed for the IdP" },
  { ...HOST_FLAG, help: `the address serve listens on, for the URL printed for the IdP (default ${DEFAULTS.host}, or ${DEFAULTS.tlsHost} when serve's settings have TLS)` },
  { ...BASE_URL_FLAG, help: "the public URL of the SCIM API (as given to serve), printed for the IdP" },
  { ...CONFIG_FLAG, help: "serve's TOML config file: its db, port, host, base-url and TLS settings apply here too (flags > SCIMD_* > file)" },
  HELP_FLAG,
] as const;
export const TOKENS_FLAGS = [
  DB_FLAG,
  DB_PASSWORD_FILE_FLAG,
  flag({ name: "all", kind: "bool", default: false, help: "list: the revoked secrets too, with when they were revoked, and the secrets a rotation replaced" }),
  flag({
    name: "grace",
    kind: "string",
    help: `rotate: how long the previous secret stays valid: 30m, 24h, 7d, or 0 to refuse it at once (default ${DEFAULT_GRACE})`,
    check: (v) => void parseDuration(v, "--grace"),
  }),
  flag({
    name: "expires-in",
    kind: "string",
    help: "rotate: the new secret's lifetime (30d, 90d, or never); default the lifetime the token had (none if it had none)",
    check: EXPIRES_IN_CHECK,
  }),
  HELP_FLAG,
] as const;

export const GENERATE_USAGE = `Usage: scimd generate-token [--name NAME] [--scope write|read] [--expires-in 90d] [--db PATH] [--create] [--port N] [--host HOST] [--base-url URL] [--config FILE]

Creates a token and prints its secret alone on stdout (nothing else), so that a shell variable can
capture it (see the examples). Only its hash is stored: the secret is shown once. A running server
accepts it at once. Names are unique: to give a token a new secret, use 'tokens rotate'. The
database must exist (serve creates it) unless --create is given.

Scope: write (the default) is for an identity provider: it reads and writes. read is for an internal
app or a script that only looks the directory up: GET and POST .search; every write gets 403.

Expiry: none by default. Entra ID quarantines a provisioning job whose token stops working (and Okta
stops pushing), so for an IdP an expiry is a date on which provisioning breaks unless someone
rotates in time. Give --expires-in to tokens whose holder you want to re-approve, and rotate before
the end: 'tokens list' and serve's log warn 14 days before.

Options:
${flagHelp(GENERATE_FLAGS)}

${POSTGRES_HELP}

Examples:
  ${commandLine("generate-token", ["--name", "okta"])}
  TOKEN=$(${commandLine("generate-token", ["--name", "entra", "--db", "./data/scimd.db"])})
  ${commandLine("generate-token", ["--name", "hr-dashboard", "--scope", "read", "--expires-in", "90d"])}`;

export const TOKENS_USAGE = `Usage: scimd tokens list [--all] [--db PATH]
       scimd tokens rotate NAME [--grace 24h] [--expires-in 90d|never] [--db PATH]
       scimd tokens revoke NAME [--db PATH]
       scimd tokens revoke ID [--db PATH]

list    every secret still in use: name, id, scope, state, expiry, created, last used (never the
        secret itself). The state is 'active', 'expires in …' for a token with a lifetime,
        'expires in … (rotated)' while a replaced secret is still accepted, or 'expired'. Tokens that
        expire within 14 days (or have expired) are warned about on stderr. --all adds the revoked
        secrets, with when they were revoked, and the replaced ones whose grace has ended
        ('replaced').
rotate  gives the token NAME a new secret, printed alone on stdout; the previous one stays valid for
        --grace (default ${DEFAULT_GRACE}) so the IdP can be updated first, and is refused after that
        (or when its own lifetime ends, if sooner). The new secret keeps the token's scope and the
        lifetime the token had (90 days from now for a token made with --expires-in 90d), unless
        --expires-in says another (or never). An expired token is rotated the same way.
        A revoked token cannot be rotated: generate a new one under its name.
revoke  NAME revokes the token: every secret of that name, the rotated ones too. ID revokes one secret.
        A running server refuses a revoked or expired secret on its next request. Revoked secrets
        stay in 'tokens list --all'; the name is free for a new token at once.

Options:
${flagHelp(TOKENS_FLAGS)}

${POSTGRES_HELP}

Examples:
  ${commandLine("tokens", ["list"])}
  ${commandLine("tokens", ["rotate", "okta", "--grace", "1h"])}
  ${commandLine("tokens", ["revoke", "okta"])}`;

/**
 * Opens the database the command works on. Only serve creates one: a token written into a file the
 * server never reads would leave the IdP with 401s, so a missing file is refused with what to do.
 * The token commands see only the token store (and `close`), as authentication does.
 */
async function openDatabase(db: string, create: boolean, command: "generate-token" | "tokens", passwordFile: string | undefined, names: DbFlagNames): Promise<TokenStore & Pick<Store, "close">> {
  const password = dbPasswordFor(db, passwordFile, process.env, names);
  try {
    return await openStore(db, { create, password });
  } catch (e) {
    if (!(e instanceof StoreMissingError)) throw e;
    const path = e.location;
    // A PostgreSQL location is the URL as it may be shown (no password); never `db` itself.
    const where = isPostgresUrl(db) ? path : resolve(path) === db ? db : `${db} (${resolve(path)})`;
    throw new Error(
      [
        `there is no scimd database at ${where}.`,
        `'serve' creates it on its first start; a token must go into the database the server uses. Either start the server first:`,
        `  ${commandLine("serve", dbArg(db, passwordFile))}`,
        `or pass the --db that your server uses${command === "generate-token" ? ", or add --create to create this database now:" : "."}`,
        ...(command === "generate-token" ? [`  ${commandLine("generate-token", ["--name", "okta", ...dbArg(db, passwordFile), "--create"])}`] : []),
      ].join("\n"),
    );
  }
}

export async function generateToken(argv: string[]): Promise<number> {
  // serve's config file, read as serve reads it, so that the URL printed is the one serve serves.
  const { values, args, file, sources } = resolveFlags(argv, GENERATE_FLAGS, process.env, { flag: "config", specs: FILE_FLAGS });
  if (values.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  checkDbPasswordFile(values.db, values["db-password-file"], sources);
  const passwordFile = values["db-password-file"];
  const { db, name } = values;
  const scope = values.scope as TokenScope;
  const lifetimeMs = values["expires-in"] === undefined ? null : parseExpiresIn(values["expires-in"]);
  const store = await openDatabase(db, values.create, "generate-token", values["db-password-file"], dbFlagNamesFrom(sources));
  try {
    const token = newToken();
    let rec: TokenRecord;
    try {
      rec = await store.createToken(name, hashToken(token), { scope, ...(lifetimeMs === null ? {} : { expiresAt: new Date(Date.now() + lifetimeMs).toISOString() }) });
    } catch (e) {
      if (!(e instanceof TokenNameTaken)) throw e;
      console.error(
        [
          `scimd: a token named '${name}' already exists; names are unique. To give it a new secret (the old one stays valid for ${DEFAULT_GRACE}):`,
          `  ${commandLine("tokens", ["rotate", name, ...dbArg(db, passwordFile)])}`,
          `or revoke it, then generate it again:`,
          `  ${commandLine("tokens", ["revoke", name, ...dbArg(db, passwordFile)])}`,
          `or choose another --name.`,
        ].join("\n"),
      );
      return 1;
    }
    process.stdout.write(token + "\n");
    const baseUrl = values["base-url"];
    const warning = baseUrlWarning(baseUrl);
    const tls = servesTls(file, process.env);
    const host = values.host ?? (tls ? DEFAULTS.tlsHost : DEFAULTS.host);
    console.error(
      [
        `Created token '${rec.name}' (id ${rec.id}) in ${describeDb(db)}.`,
        `In your identity provider, set:`,
        `  SCIM base URL / Tenant URL: ${tls && baseUrl === undefined ? httpsUrl(host, values.port, serveSetting("acme-domain", file, process.env)) : apiUrl(host, values.port, baseUrl, hostname())}`,
        `  Authentication: HTTP header, Bearer token (the line printed on stdout)`,
        ...urlGuidance(baseUrl, host, tls),
        ...(warning ? [warning] : []),
        `Scope: ${rec.scope} (${SCOPE_MEANING[rec.scope]}).`,
        rec.expiresAt === null
          ? `Expires: never (--expires-in sets a lifetime).`
          : `Expires: ${rec.expiresAt} (in ${formatDuration(lifetimeMs ?? 0)}); 'tokens list' and serve's log warn 14 days before. Rotate it before then.`,
        `This token is shown once and cannot be shown again: only its hash is stored.`,
        `To give it a new secret later (the old one stays valid for ${DEFAULT_GRACE} while you update the IdP):`,
        `  ${commandLine("tokens", ["rotate", rec.name, ...dbArg(db, passwordFile)])}`,
      ].join("\n"),
    );
    return 0;
  } finally {
    await store.close();
  }
}

/** A serve setting generate-token takes no flag for, from the environment or serve's config file, as serve reads it. */
function serveSetting(name: string, file: ConfigFileSettings | undefined, env: Env): string | undefined {
  const v = env[FILE_FLAGS.find((s) => s.name === name)!.env!];
  if (v !== undefined && v !== "") return v;
  const f = file?.get(name)?.value;
  return f === undefined ? undefined : String(f);
}

/** Whether serve, with the same config file and environment, serves HTTPS (certificate files or ACME). */
const servesTls = (file: ConfigFileSettings | undefined, env: Env): boolean =>
  serveSetting("tls-cert", file, env) !== undefined || serveSetting("acme-domain", file, env) !== undefined;

/** The https URL of serve's API: the (first) ACME domain, else this machine's name or the address; no :443. */
export function httpsUrl(host: string, port: number, acmeDomains: string | undefined): string {
  const domain = acmeDomains?.split(",").map((d) => d.trim()).find(Boolean);
  const name = domain ?? (host === "0.0.0.0" || host === "::" || host === "" ? hostname() : host.includes(":") ? `[${host}]` : host);
  return `https://${name}${port === 443 ? "" : `:${port}`}${SCIM_BASE_PATH}`;
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches. */
export const isLoopback = (host: string): boolean => /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i.test(host);

/**
 * What to tell the operator about the URL generate-token prints: Okta and Entra ID call only public
 * https URLs, and serve's default for plain HTTP is loopback, which no IdP in the cloud reaches.
 */
export function urlGuidance(baseUrl: string | undefined, host: string, tls: boolean): string[] {
  const https = "serve HTTPS itself (--tls-cert and --tls-key, or --acme-domain) or put a TLS proxy in front";
  if (baseUrl !== undefined)
    return /^http:/i.test(baseUrl) ? [`Okta and Entra ID call https URLs only: ${https}, and give serve and this command the https --base-url.`] : [];
  if (tls) return [`(If the IdP reaches this server by another name, start serve with --base-url set to that https URL, and pass it here too.)`];
  if (isLoopback(host))
    return [
      `That URL is loopback only (serve's default for plain HTTP): it works from this machine, not from an IdP in the cloud.`,
      `For Okta or Entra ID, ${https}, start serve with --base-url set to the public https URL (e.g. https://scim.example.com/api/v1/scim), and give the IdP that URL (pass the same --base-url here to print it).`,
    ];
  return [`Okta and Entra ID call https URLs only: ${https}, start serve with --base-url set to the public https URL, and give the IdP that URL.`];
}

/**
 * 'revoked', 'active', 'expires in 89d 23h' (its lifetime), 'expires in 23h 59m (rotated)' while a
 * replaced secret's grace runs, 'replaced' once it has ended (rotated out, not expired), or 'expired'.
 */
export function tokenState(t: TokenRecord, now = Date.now()): string {
  if (t.revoked !== undefined) return "revoked";
  if (t.expires === null) return "active";
  const left = Date.parse(t.expires) - now;
  if (left <= 0) return replacedSecret(t, now) ? "replaced" : "expired";
  return `expires in ${formatDuration(left)}${t.rotated !== undefined ? " (rotated)" : ""}`;
}

/** A rotated-out secret that the rotation ended (its grace is over), not its own lifetime. */
function replacedSecret(t: TokenRecord, now: number): boolean {
  return t.rotated !== undefined && t.revoked === undefined && t.expires !== null && Date.parse(t.expires) <= now && (t.expiresAt === null || t.expires < t.expiresAt);
}

/** "3 revoked secrets", "1 replaced secret", "2 revoked and 1 replaced secret", or "" for none. */
function hiddenSecrets(revoked: number, replaced: number): string {
  const n = revoked + replaced;
  if (n === 0) return "";
  const what = revoked && replaced ? `${revoked} revoked and ${replaced} replaced` : revoked ? `${revoked} revoked` : `${replaced} replaced`;
  return `${what} secret${n > 1 ? "s" : ""}`;
}

export async function tokens(argv: string[]): Promise<number> {
  const { values, args, sources } = resolveFlags(argv, TOKENS_FLAGS);
  if (values.help || args.length === 0) {
    console.log(TOKENS_USAGE);
    return values.help ? 0 : 2;
  }
  const [sub, ...rest] = args;
  if (sub !== "list" && sub !== "rotate" && sub !== "revoke") throw new UsageError(`unknown tokens command '${sub}'`);
  if (values.grace !== undefined && sub !== "rotate") throw new UsageError("--grace applies to 'tokens rotate' only");
  if (values["expires-in"] !== undefined && sub !== "rotate") throw new UsageError("--expires-in applies to 'tokens rotate' only (and to generate-token)");
  if (values.all && sub !== "list") throw new UsageError("--all applies to 'tokens list' only");
  if (sub === "list" && rest.length) throw new UsageError(`unexpected argument '${rest[0]}'`);
  if (sub !== "list" && rest.length !== 1) throw new UsageError(sub === "rotate" ? "'tokens rotate' takes one token name" : "'tokens revoke' takes one token name or id");
  const { db } = values;
  checkDbPasswordFile(db, values["db-password-file"], sources);
  const passwordFile = values["db-password-file"];
  const store = await openDatabase(db, false, "tokens", values["db-password-file"], dbFlagNamesFrom(sources));
  try {
    if (sub === "list") {
      const every = await store.listTokens();
      const now = Date.now();
      // Revoked secrets and those a rotation replaced (grace over) are history: --all shows them.
      const list = values.all ? every : every.filter((t) => t.revoked === undefined && !replacedSecret(t, now));
      const revoked = every.filter((t) => t.revoked !== undefined).length;
      const hidden = values.all ? "" : hiddenSecrets(revoked, every.length - list.length - revoked);
      if (!list.length) {
        console.error(
          [
            `no tokens${hidden ? ` (${hidden}: ${commandLine("tokens", ["list", "--all", ...dbArg(db, passwordFile)])})` : ""}; create one with`,
            `  ${commandLine("generate-token", ["--name", "okta", ...dbArg(db, passwordFile)])}`,
          ].join("\n"),
        );
        return 0;
      }
      const head = ["NAME", "ID", "SCOPE", "STATE", "EXPIRES", "CREATED", "LAST USED", ...(values.all ? ["REVOKED"] : [])];
      // EXPIRES is when the secret stops being accepted: a rotated-out one's grace end when that comes first.
      const rows = [
        head,
        ...list.map((t) => [t.name, t.id, t.scope, tokenState(t, now), (t.rotated !== undefined ? t.expires : t.expiresAt) ?? "never", t.created, t.lastUsed ?? "never", ...(values.all ? [t.revoked ?? ""] : [])]),
      ];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
      // On stderr: the table on stdout stays a table for a script.
      if (hidden) console.error(`(${hidden} not shown: ${commandLine("tokens", ["list", "--all", ...dbArg(db, passwordFile)])})`);
      for (const t of expiringTokens(every, now)) console.error(`warning: ${expiryWarning(t)}:\n  ${commandLine("tokens", ["rotate", t.name, ...dbArg(db, passwordFile)])}`);
      return 0;
    }
    const target = rest[0]!;
    if (sub === "rotate") {
      const graceMs = parseDuration(values.grace ?? DEFAULT_GRACE, "--grace");
      const raw = values["expires-in"];
      const lifetimeMs = raw === undefined ? undefined : parseExpiresIn(raw);
      const token = newToken();
      const r = await store.rotateToken(target, hashToken(token), graceMs, {
        ...(lifetimeMs === undefined ? {} : { expiresAt: lifetimeMs === null ? null : new Date(Date.now() + lifetimeMs).toISOString() }),
      });
      if (!r) {
        const revoked = (await store.listTokens()).flatMap((t) => (t.name === target && t.revoked !== undefined ? [t.revoked] : []));
        if (revoked.length) {
          // A revoked token stays revoked; its name is free, so a new token under it is one command away.
          console.error(
            [
              `scimd: token '${target}' was revoked (at ${revoked.sort().at(-1)}) and cannot be rotated. Create a new token under that name, then put it into your identity provider:`,
              `  ${commandLine("generate-token", ["--name", target, ...dbArg(db, passwordFile)])}`,
            ].join("\n"),
          );
          return 1;
        }
        console.error(`scimd: no token named '${target}' (see 'tokens list'); create it with\n  ${commandLine("generate-token", ["--name", target, ...dbArg(db, passwordFile)])}`);
        return 1;
      }
      process.stdout.write(token + "\n");
      const lines = [
        `Rotated token '${target}': its new secret (id ${r.token.id}, scope ${r.token.scope}) is the line printed on stdout; put it into your identity provider now.`,
        r.token.expiresAt === null
          ? `The new secret does not expire${raw === undefined ? " (the token had no lifetime; --expires-in gives one)" : ""}.`
          : `The new secret expires at ${r.token.expiresAt} (in ${formatDuration(lifetimeMs ?? Date.parse(r.token.expiresAt) - Date.parse(r.token.created))}${raw === undefined ? ", the lifetime the token had" : ""}).`,
      ];
      if (r.retiring.length === 0) lines.push(`The previous secret is refused from now on.`);
      else {
        for (const t of r.retiring) lines.push(`The previous secret ${t.id} stays valid until ${t.expires} (in ${formatDuration(Date.parse(t.expires!) - Date.parse(r.token.created))}), then it is refused.`);
        lines.push(`Once the IdP uses the new secret, you can refuse the old one at once:`);
        for (const t of r.retiring) lines.push(`  ${commandLine("tokens", ["revoke", t.id, ...dbArg(db, passwordFile)])}`);
      }
      console.error(lines.join("\n"));
      return 0;
    }
    const before = await store.listTokens();
    const byId = before.find((t) => t.id === target);
    const n = await store.revokeToken(target);
    if (n === 0) {
      const already = before.filter((t) => t.id === target || t.name === target);
      if (already.length) {
        // Revoking twice changes nothing and is what was asked for: not an error, for a script run again.
        const when = already.flatMap((t) => (t.revoked === undefined ? [] : [t.revoked])).sort().at(-1);
        console.error(byId ? `secret ${target} of token '${byId.name}' was already revoked (at ${when})` : `token '${target}' was already revoked (at ${when})`);
        return 0;
      }
      console.error(`scimd: no token named or with id '${target}'; see\n  ${commandLine("tokens", ["list", ...dbArg(db, passwordFile)])}`);
      return 1;
    }
    console.error(byId ? `revoked secret ${target} of token '${byId.name}'` : `revoked token '${target}' (${n} secret${n > 1 ? "s" : ""})`);
    return 0;
  } finally {
    await store.close();
  }
}
