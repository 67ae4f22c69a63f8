/** `scimd generate-token` and `scimd tokens list|revoke`: manage API tokens in the database. */
import { DB_FLAG, flagHelp, parseFlags, UsageError, type FlagSpec } from "../config";
import { SqliteStore } from "../store/sqlite/sqlite-store";
import { hashToken, newToken } from "../tokens";
import { SCIM_BASE_PATH } from "../app";

const HELP: FlagSpec = { name: "help", kind: "bool", help: "show this help" };
export const GENERATE_FLAGS: FlagSpec[] = [
  { name: "name", kind: "string", default: "default", help: "a label for the token, e.g. the IdP's name", check: (v) => { if (!String(v).trim() || String(v).length > 100) throw new UsageError("--name must be 1 to 100 characters"); } },
  DB_FLAG,
  { name: "base-url", env: "SCIMD_BASE_URL", kind: "string", help: "public URL of the SCIM API, printed for pasting into the IdP" },
  HELP,
];
export const TOKENS_FLAGS: FlagSpec[] = [DB_FLAG, HELP];

export const GENERATE_USAGE = `Usage: scimd generate-token [--name LABEL] [--db PATH]

Creates a new bearer token and prints it alone on stdout (TOKEN=$(scimd generate-token)).
Only its hash is stored: the token is shown once. A running server accepts it at once.

Options:
${flagHelp(GENERATE_FLAGS)}`;

export const TOKENS_USAGE = `Usage: scimd tokens list [--db PATH]
       scimd tokens revoke <name|id> [--db PATH]

Lists tokens (name, id, created, last used; never the secret) or revokes them. A revoked token is
refused on the next request, also by a running server.

Options:
${flagHelp(TOKENS_FLAGS)}`;

export async function generateToken(argv: string[]): Promise<number> {
  const { values, args } = parseFlags(argv, GENERATE_FLAGS);
  if (values.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  const store = new SqliteStore(String(values.db));
  try {
    const token = newToken();
    const rec = await store.createToken(String(values.name), hashToken(token));
    process.stdout.write(token + "\n");
    const url = (values["base-url"] as string | undefined) ?? `http://<this-host>:8080${SCIM_BASE_PATH}`;
    console.error(
      [
        `Created token '${rec.name}' (id ${rec.id}) in ${values.db}.`,
        `In your identity provider, set:`,
        `  SCIM base URL / Tenant URL: ${url}`,
        `  Authentication: HTTP header, Bearer token (the line printed on stdout)`,
        `This token is shown once and cannot be shown again: only its hash is stored.`,
        `To get a token again, generate a new one; revoke old ones with 'scimd tokens revoke <name|id>'.`,
      ].join("\n"),
    );
    return 0;
  } finally {
    store.close();
  }
}

export async function tokens(argv: string[]): Promise<number> {
  const { values, args } = parseFlags(argv, TOKENS_FLAGS);
  if (values.help || args.length === 0) {
    console.log(TOKENS_USAGE);
    return values.help ? 0 : 2;
  }
  const [sub, ...rest] = args;
  const store = new SqliteStore(String(values.db));
  try {
    if (sub === "list") {
      if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}'`);
      const list = await store.listTokens();
      if (!list.length) {
        console.error("no tokens; create one with 'scimd generate-token --name <label>'");
        return 0;
      }
      const rows = [["NAME", "ID", "CREATED", "LAST USED"], ...list.map((t) => [t.name, t.id, t.created, t.lastUsed ?? "never"])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
      return 0;
    }
    if (sub === "revoke") {
      if (rest.length !== 1) throw new UsageError("'tokens revoke' takes one token name or id");
      const n = await store.revokeToken(rest[0]!);
      if (n === 0) {
        console.error(`no token named or with id '${rest[0]}'; see 'scimd tokens list'`);
        return 1;
      }
      console.error(`revoked ${n} token${n > 1 ? "s" : ""} '${rest[0]}'`);
      return 0;
    }
    throw new UsageError(`unknown tokens command '${sub}'`);
  } finally {
    store.close();
  }
}
