/** `scimd activity`: what the IdP did to whom, newest first, from the activity log (works while serve runs). */
import { checkDbPasswordFile, dbFlagNamesFrom, DB_FLAG, DB_PASSWORD_FILE_FLAG, flag, flagHelp, HELP_FLAG, MAX_DURATION_MS, parseDuration, resolveFlags, UsageError } from "../config";
import { ACTIVITY_OP_FILTERS, formatEntry, type ActivityOpFilter, type ActivityQuery } from "../scim/activity";
import { openExisting } from "./database";
import { POSTGRES_HELP } from "./db-password";
import { commandLine } from "./invocation";

const DEFAULT_LIMIT = 100;

/** A point in time: a duration back from `now` (24h, 7d) or an ISO 8601 date or time (UTC unless it names a zone); throws UsageError naming `option`. */
export function parseWhen(raw: string, option: string, now = Date.now()): string {
  const v = raw.trim();
  if (/^\d+[smhd]$/.test(v)) return new Date(now - parseDuration(v, option)).toISOString();
  // A date or a date-time (ISO 8601); a bare number or a word is not one, whatever Date.parse makes of it.
  // A time without a zone is UTC, as a date alone is and as every time the log shows is; a day the
  // calendar does not have (2025-02-30) is refused, not rolled over into the next month.
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.exec(v);
  const real = m !== null && new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!)).toISOString().startsWith(`${m[1]}-${m[2]}-${m[3]}`);
  const t = real ? Date.parse(v.length > 10 && m[4] === undefined ? `${v.replace(" ", "T")}Z` : v) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`${option} must be a duration back from now (30m, 24h, 7d; at most ${MAX_DURATION_MS / 86_400_000}d) or an ISO date or time (2025-06-01, 2025-06-01T09:00:00Z); got '${raw}'`);
  return new Date(t).toISOString();
}

/** `--op create,delete` as the filters it names; throws UsageError for another word. */
export function parseOps(raw: string): ActivityOpFilter[] {
  const ops = raw.split(",").map((o) => o.trim().toLowerCase()).filter(Boolean);
  const bad = ops.find((o) => !(ACTIVITY_OP_FILTERS as readonly string[]).includes(o));
  if (bad !== undefined || !ops.length) throw new UsageError(`--op must be one or more (comma-separated) of ${ACTIVITY_OP_FILTERS.join(", ")}; got '${raw}'`);
  return ops as ActivityOpFilter[];
}

export const ACTIVITY_FLAGS = [
  { ...DB_FLAG, help: "the database serve uses (a file path, sqlite:PATH or a postgres:// URL); it is never created" },
  DB_PASSWORD_FILE_FLAG,
  flag({ name: "since", kind: "string", help: "entries at or after this time: 24h, 7d (back from now) or an ISO date/time", check: (v) => void parseWhen(v, "--since") }),
  flag({ name: "until", kind: "string", help: "entries before this time (same forms as --since)", check: (v) => void parseWhen(v, "--until") }),
  flag({ name: "user", kind: "string", help: "a User's userName or id: its changes under any name it had (a deleted User by its last userName), and the groups that added or removed it" }),
  flag({ name: "group", kind: "string", help: "a Group's displayName or id: its changes (members added and removed), and deletes of members that left it" }),
  flag({ name: "token", kind: "string", help: "changes made with the token of this name" }),
  flag({ name: "op", kind: "string", help: `only these operations, comma-separated: ${ACTIVITY_OP_FILTERS.join(", ")}`, check: (v) => void parseOps(v) }),
  flag({ name: "json", kind: "bool", default: false, help: "one JSON object per line (every value the entry holds), instead of one readable line" }),
  flag({
    name: "limit",
    kind: "int",
    default: DEFAULT_LIMIT,
    help: "at most this many entries (the newest)",
    check: (v) => {
      if (v < 1 || v > 1_000_000) throw new UsageError("--limit must be 1..1000000");
    },
  }),
  HELP_FLAG,
] as const;

export const ACTIVITY_USAGE = `Usage: scimd activity [--since 24h|ISO] [--until 24h|ISO] [--user USERNAME|ID] [--group NAME|ID]
                      [--token NAME] [--op OPS] [--json] [--limit N] [--db PATH]

Shows the activity log, newest first: every change the SCIM API made (create, replace, patch, delete,
members added and removed), when, with which token and request id, and the attributes changed with
their old and new values (a password only as "changed", never its value). One line per change, or
JSON lines with --json. It reads only the log, so it answers for deleted users too, and it works
while serve runs. Entries older than serve's --activity-retention (90d by default) are pruned.

Options:
${flagHelp(ACTIVITY_FLAGS)}

${POSTGRES_HELP}

Examples:
  ${commandLine("activity", ["--user", "bob@example.com"])}
  ${commandLine("activity", ["--since", "24h", "--op", "delete"])}
  ${commandLine("activity", ["--group", "Engineering", "--op", "member-add,member-remove", "--limit", "20"])}
  ${commandLine("activity", ["--token", "okta", "--since", "2025-06-01", "--json"])}`;

export async function activity(argv: string[]): Promise<number> {
  const { values, args, sources } = resolveFlags(argv, ACTIVITY_FLAGS);
  if (values.help) {
    console.log(ACTIVITY_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'`);
  const now = Date.now();
  const q: ActivityQuery = { limit: values.limit };
  if (values.since !== undefined) q.since = parseWhen(values.since, "--since", now);
  if (values.until !== undefined) q.until = parseWhen(values.until, "--until", now);
  if (q.since !== undefined && q.until !== undefined && q.since >= q.until) throw new UsageError(`--since (${q.since}) must be before --until (${q.until})`);
  if (values.user !== undefined) q.user = values.user;
  if (values.group !== undefined) q.group = values.group;
  if (values.token !== undefined) q.token = values.token;
  if (values.op !== undefined) q.ops = parseOps(values.op);
  const { db } = values;
  checkDbPasswordFile(db, values["db-password-file"], sources);
  const store = await openExisting(db, false, values["db-password-file"], dbFlagNamesFrom(sources));
  try {
    const entries = await store.listActivity(q);
    if (!entries.length) {
      console.error("no activity matches");
      return 0;
    }
    const out = entries.map((e) => (values.json ? JSON.stringify(e) : formatEntry(e))).join("\n");
    process.stdout.write(out + "\n");
    return 0;
  } finally {
    await store.close();
  }
}
