/**
 * `scimd migrate --from DB --to DB`: copies one scimd database into another, empty one, of either
 * engine (SQLite → PostgreSQL, PostgreSQL → SQLite, or SQLite → SQLite): Users, Groups and their
 * memberships (ids, meta.created / lastModified and versions kept, so an IdP's links and ETags stay
 * valid), every token secret (its hash, scope, lifetime, rotated and revoked state) and the activity
 * log, in batches, with a progress bar on a terminal. Then it verifies: every count, a sample of
 * resources compared as JSON (with their groups or members), every token, the newest activity entries.
 *
 * The target's own activity log is off while copying: the entries copied are the source's history,
 * and the copy adds none of its own.
 */
import { existsSync, realpathSync } from "node:fs";
import { flag, flagHelp, HELP_FLAG, parseFlags, UsageError } from "../config";
import { ScimError } from "../scim/errors";
import type { ResourceKind } from "../scim/schema";
import { DB_FORMS, databaseHolders, describeDb, isPostgresUrl, namesDatabaseFile, openStore, parseDbLocation } from "../store/open";
import { StoreMissingError, StoreOpenError, type CreateInput, type Member, type RowCounts, type Store, type TokenCopy } from "../store/store";
import { dbPasswordFor } from "./db-password";
import { commandLine, dbArg } from "./invocation";
import { progressBar, type Progress } from "./progress";

/** Resources created per batch: one transaction (createCopies), in the source's creation order. */
const DEFAULT_BATCH = 500;
const MEMBER_PAGE = 1000;
const DEFAULT_SAMPLE = 100;

export const MIGRATE_FLAGS = [
  flag({ name: "from", kind: "string", help: "the database to copy: a file path, sqlite:PATH or a postgres:// URL (only read)" }),
  flag({ name: "to", kind: "string", help: "the empty database to copy into: a file path or sqlite:PATH (created when missing), or a postgres:// URL of an existing, empty database" }),
  flag({ name: "from-password-file", kind: "string", help: "the PostgreSQL password of --from, read from this file (else the URL's, else PGPASSWORD)" }),
  flag({ name: "to-password-file", kind: "string", help: "the PostgreSQL password of --to, read from this file (else the URL's, else PGPASSWORD)" }),
  flag({ name: "batch", kind: "int", default: DEFAULT_BATCH, help: "resources (and activity entries ×2) written per batch" }),
  flag({ name: "sample", kind: "int", default: DEFAULT_SAMPLE, help: "resources (and newest activity entries) compared document by document after the copy" }),
  HELP_FLAG,
] as const;

export const MIGRATE_USAGE = `Usage: scimd migrate --from DB --to DB [--from-password-file FILE] [--to-password-file FILE] [--batch N] [--sample N]

Copies a scimd database into an empty one, SQLite to PostgreSQL or back (or SQLite to SQLite): every
User and Group with its id, meta.created / meta.lastModified and version (so ETags stay valid), the
group memberships, every API token (hashes, scope, lifetime, rotated and revoked secrets: the IdP
keeps its token) and the activity log. Then it verifies that every count matches and compares a
sample of resources, every token and the newest activity entries in both, and prints what it copied.
Stop the server on --from first (a write made during the copy may be missed; a SQLite file another
process has open is refused). The target must hold nothing (not even a token); a PostgreSQL target
is a database that exists (CREATE DATABASE scimd OWNER scimd) and scimd creates its tables. A
PostgreSQL side's password is the first of: the URL's, the content of --from-password-file or
--to-password-file (one trailing newline dropped), PGPASSWORD (then the same for both sides). A
password in a postgres:// URL is never printed (shown as ***).

Options:
${flagHelp(MIGRATE_FLAGS)}

Examples:
  ${commandLine("migrate", ["--from", "/var/lib/scimd/scimd.db", "--to", "postgres://scimd@db.internal:5432/scimd?sslmode=require", "--to-password-file", "/etc/scimd/db-password"])}
  ${commandLine("migrate", ["--from", "postgres://scimd@db.internal:5432/scimd", "--to", "/var/lib/scimd/back.db"])}`;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** A database's identity for "is it the same one": a SQLite file's real path, or a PostgreSQL server's host, port and database. */
function identity(value: string): string {
  if (isPostgresUrl(value)) {
    try {
      const u = new URL(value.trim());
      const db = decodeURIComponent(u.pathname.replace(/^\//, "")) || decodeURIComponent(u.username);
      return `postgres://${u.hostname.toLowerCase()}:${u.port || "5432"}/${db}`;
    } catch {
      return value.trim();
    }
  }
  const path = parseDbLocation(value).path;
  try {
    return `sqlite:${existsSync(path) ? realpathSync(path) : describeDb(value)}`;
  } catch {
    return `sqlite:${describeDb(value)}`;
  }
}

const MIGRATE_FORMS = "a file path, sqlite:PATH or a postgres:// URL";

/** describeDb, refusing a value no engine serves in the words of migrate's own flag (not serve's --db) and with the forms migrate takes (PostgreSQL too). */
function shownAs(flagName: "from" | "to", value: string): string {
  try {
    return describeDb(value);
  } catch (e) {
    if (!(e instanceof StoreOpenError)) throw e;
    // parseDbLocation's message names only a scheme, never the value (so no password).
    throw new UsageError(
      e.message
        .replace(/^--db\b/, `--${flagName}`)
        .replace(/ \(PostgreSQL serves `scimd serve` so far; this command needs a SQLite file\)/, "")
        .replace(new RegExp(`; give ${DB_FORMS.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`), `; give ${MIGRATE_FORMS}`),
    );
  }
}

function sameDatabase(from: string, to: string): boolean {
  if (identity(from) === identity(to)) return true;
  // A SQLite target that is the source's -wal or -shm file, or the other way round.
  if (!isPostgresUrl(from) && !isPostgresUrl(to)) return namesDatabaseFile(from, parseDbLocation(to).path) || namesDatabaseFile(to, parseDbLocation(from).path);
  return false;
}

const countsLine = (c: RowCounts) =>
  `${plural(c.users, "user")}, ${plural(c.groups, "group")}, ${plural(c.memberships, "membership")}, ${plural(c.tokens, "token secret")}, ${plural(c.activity, "activity entry", "activity entries")}`;

const KINDS: (keyof RowCounts)[] = ["users", "groups", "memberships", "tokens", "activity"];

/** Up to `size` items chosen uniformly from those offered (reservoir sampling), so the sample spans the whole database. */
class Sample<T> {
  readonly items: T[] = [];
  private seen = 0;
  constructor(private readonly size: number) {}
  offer(item: T): void {
    this.seen++;
    if (this.items.length < this.size) this.items.push(item);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.size) this.items[j] = item;
    }
  }
}

async function allMembers(store: Store, groupId: string): Promise<Member[]> {
  const members: Member[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.memberPage(groupId, cursor, MEMBER_PAGE);
    members.push(...page.members);
    cursor = page.next;
  } while (cursor !== undefined);
  return members;
}

/** A resource as compared: its document, timestamps, version, and its groups or members (in the order served). */
async function comparable(store: Store, kind: ResourceKind, id: string): Promise<string | undefined> {
  const r = await store.get(kind, id);
  if (!r) return undefined;
  // In the store's order (creation order of the groups, of the members): the copy keeps it, so the documents served are the same.
  const related = kind === "User" ? (r.groups ?? (await store.groupsOf(id))) : await allMembers(store, id);
  return JSON.stringify({ id: r.id, data: r.data, created: r.created, lastModified: r.lastModified, version: r.version, related });
}

/** SIGINT (Ctrl-C) or SIGTERM during the copy: the batch in flight ends, then the copy stops (a second signal stops at once). */
class Interrupted extends Error {
  constructor(readonly signal: "SIGINT" | "SIGTERM") {
    super(`interrupted (${signal})`);
  }
}

const signalExit = (s: "SIGINT" | "SIGTERM") => (s === "SIGINT" ? 130 : 143);

interface Copied {
  sample: Sample<{ kind: ResourceKind; id: string }>;
  /** Throws Interrupted once a signal asked to stop: called between batches, never inside one. */
  check(): void;
}

/**
 * Users, then Groups, each kind in the source's creation order and each batch in one transaction
 * (createCopies), so the copy lists them in the same order and orders a Group's members and a User's
 * groups as the source does (the same document under the same ETag). A Group is created with its
 * User members; its Group members are added once every Group exists (a group may have been given a
 * member group created after it), without touching its version or meta.lastModified.
 */
async function copyResources(from: Store, to: Store, kind: ResourceKind, batch: number, progress: Progress, copied: Copied): Promise<void> {
  /** For each Group that has member Groups: their ids, added after all Groups are created. */
  const nested: [string, string[]][] = [];
  let after: string | undefined;
  do {
    copied.check();
    const page = await from.scan(kind, after, batch);
    const inputs = await Promise.all(
      page.resources.map(async (r): Promise<CreateInput> => {
        const meta = { created: r.created, lastModified: r.lastModified, version: r.version };
        if (kind === "User") return { id: r.id, data: r.data, meta };
        const members = await allMembers(from, r.id);
        const groups = members.filter((m) => m.type === "Group").map((m) => m.value);
        if (groups.length) nested.push([r.id, groups]);
        return { id: r.id, data: r.data, meta, members: members.filter((m) => m.type !== "Group").map((m) => m.value) };
      }),
    );
    try {
      await to.createCopies(kind, inputs);
    } catch (e) {
      // The target was empty, so two of the source's own resources clash: a database an older scimd
      // upgraded may keep two userNames apart that compare equal now ("ａｌｉｃｅ" and "alice").
      if (e instanceof ScimError && e.status === 409)
        throw new Error(`${e.message}: two ${kind}s of the source clash (an older scimd kept names apart that now compare equal, such as "ａｌｉｃｅ" and "alice"); rename one of them there and migrate again`);
      throw e;
    }
    for (const r of page.resources) copied.sample.offer({ kind, id: r.id });
    progress.advance(page.resources.length);
    await progress.tick();
    after = page.next;
  } while (after !== undefined);
  for (const [id, members] of nested) {
    copied.check();
    await to.insertMemberCopies(id, members);
  }
}

async function copyActivity(from: Store, to: Store, batch: number, progress: Progress, copied: Copied): Promise<void> {
  let after = 0;
  for (;;) {
    copied.check();
    const page = await from.activityCopies(after, batch * 2);
    if (!page.length) return;
    await to.insertActivityCopies(page);
    after = page[page.length - 1]!.entry.seq;
    progress.advance(page.length);
    await progress.tick();
  }
}

/** What differs between the source and the copy (empty: nothing). */
async function verify(from: Store, to: Store, sampleSize: number, copied: Copied): Promise<{ problems: string[]; counts: RowCounts; sampled: number; tokens: number; activity: number }> {
  const problems: string[] = [];
  const [a, b] = await Promise.all([from.rowCounts(), to.rowCounts()]);
  for (const k of KINDS) if (a[k] !== b[k]) problems.push(`${k}: ${a[k]} in the source, ${b[k]} in the copy`);
  for (const { kind, id } of copied.sample.items) {
    copied.check();
    const [x, y] = await Promise.all([comparable(from, kind, id), comparable(to, kind, id)]);
    if (x !== y) problems.push(`${kind} ${id} differs${y === undefined ? " (missing from the copy)" : ""}`);
  }
  const key = (t: TokenCopy) => t.hash;
  const [ts, tt] = await Promise.all([from.tokenCopies(), to.tokenCopies()]);
  const target = new Map(tt.map((t) => [key(t), JSON.stringify(t)]));
  for (const t of ts) if (target.get(key(t)) !== JSON.stringify(t)) problems.push(`token '${t.name}' (id ${t.id}) differs`);
  const strip = (es: { seq: number }[]) => es.map(({ seq: _, ...e }) => JSON.stringify(e));
  const [ea, eb] = await Promise.all([from.listActivity({ limit: sampleSize }), to.listActivity({ limit: sampleSize })]);
  const sa = strip(ea), sb = strip(eb);
  if (sa.length !== sb.length || sa.some((e, i) => e !== sb[i])) problems.push(`the newest ${sa.length} activity entries differ`);
  return { problems, counts: b, sampled: copied.sample.items.length, tokens: ts.length, activity: sa.length };
}

export async function migrate(argv: string[]): Promise<number> {
  const { values, args } = parseFlags(argv, MIGRATE_FLAGS);
  if (values.help) {
    console.log(MIGRATE_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}' (give the databases as --from and --to)`);
  if (!values.from) throw new UsageError("migrate needs --from, the database to copy");
  if (!values.to) throw new UsageError("migrate needs --to, the empty database to copy into");
  if (values.batch < 1) throw new UsageError("--batch must be at least 1");
  if (values.sample < 0) throw new UsageError("--sample must be 0 or more");
  const fromShown = shownAs("from", values.from);
  const toShown = shownAs("to", values.to);
  // Each side's password, decided before anything is opened (a file that cannot apply or be read is refused here).
  const passwords = {
    from: dbPasswordFor(values.from, values["from-password-file"], process.env, { db: "--from", file: "--from-password-file" }),
    to: dbPasswordFor(values.to, values["to-password-file"], process.env, { db: "--to", file: "--to-password-file" }),
  };
  if (sameDatabase(values.from, values.to)) throw new Error(`--from and --to name the same database (${toShown}); migrate copies into another, empty database`);

  // A server on either database would write beside the copy: a write to --from after its rows were
  // read is missed, one to --to mixes into the copy. Refused up front, naming the process (SQLite; a
  // PostgreSQL server's clients cannot be told apart from this one).
  for (const [flagName, value, shown] of [["from", values.from, fromShown], ["to", values.to, toShown]] as const) {
    const h = (await databaseHolders(value))?.[0];
    if (h)
      throw new Error(
        `process ${h.pid}${h.command ? ` (${h.command})` : ""} has --${flagName} ${shown} open (it holds ${h.lock}); stop the server (e.g. systemctl stop scimd) and any other program using it, then run migrate again: a write during the copy would ${flagName === "from" ? "be missed" : "mix into the copy"}; nothing was changed`,
      );
  }
  const started = performance.now();
  // Ctrl-C or SIGTERM must not end the process with the target half written and nothing said (nor
  // leave the terminal's cursor hidden by the bar): the first one stops the copy after the batch in
  // flight and says what the target holds; a second one stops at once, saying the same.
  let stopped: "SIGINT" | "SIGTERM" | undefined;
  let phase: "opening" | "copying" | "verifying" | "closing" = "opening";
  let progress: Progress | undefined;
  const partial = () => `${toShown} now holds part of the copy: empty it (a new file, or DROP DATABASE and CREATE DATABASE) and run migrate again; ${fromShown} is unchanged`;
  const onSignal = (signal: "SIGINT" | "SIGTERM") => {
    // Closing: what happened is printed already; the databases close in a moment (a second Ctrl-C must not cut that short).
    if (phase === "closing") return;
    if (stopped === undefined && phase !== "opening") {
      stopped = signal;
      return;
    }
    progress?.stop();
    console.error(`scimd: migrate stopped (${signal})${phase === "opening" ? "" : `; ${phase === "copying" ? partial() : `the copy in ${toShown} is complete but not verified`}`}`);
    process.exit(signalExit(signal));
  };
  const int = () => onSignal("SIGINT");
  const term = () => onSignal("SIGTERM");
  process.on("SIGINT", int);
  process.on("SIGTERM", term);
  const check = () => {
    if (stopped) throw new Interrupted(stopped);
  };
  let from: Store | undefined;
  let to: Store | undefined;
  try {
    try {
      from = await openStore(values.from, { create: false, password: passwords.from });
    } catch (e) {
      if (!(e instanceof StoreMissingError)) throw e;
      // Not openExisting's advice (pass serve's --db): here the flag is --from, and nothing is created.
      throw new Error(`there is no scimd database at --from ${fromShown}; give the database your server uses (its --db); nothing was changed`);
    }
    // The copy records no activity of its own: the source's log is copied as it is.
    to = await openStore(values.to, { create: true, activityLog: false, password: passwords.to });
    const held = await to.rowCounts();
    if (KINDS.some((k) => held[k] > 0))
      throw new Error(`the target ${toShown} is not empty (it holds ${countsLine(held)}); migrate copies into an empty database only, so that nothing is merged or overwritten`);
    const source = await from.rowCounts();
    progress = progressBar("migrating", source.users + source.groups + source.tokens + source.activity);
    const copied: Copied = { sample: new Sample(values.sample), check };
    phase = "copying";
    try {
      await copyResources(from, to, "User", values.batch, progress, copied);
      await copyResources(from, to, "Group", values.batch, progress, copied);
      check();
      const tokens = await from.tokenCopies();
      await to.insertTokenCopies(tokens);
      progress.advance(tokens.length);
      await copyActivity(from, to, values.batch, progress, copied);
    } catch (e) {
      progress.stop();
      if (e instanceof Interrupted) {
        console.error(`scimd: migrate stopped (${e.signal}) before the copy was complete; ${partial()}`);
        return signalExit(e.signal);
      }
      // A store's 503 ends with advice for a SCIM client ("nothing was changed, retry shortly"), which is not true of a copy part-way.
      const why = (e instanceof Error ? ((e as { detail?: string }).detail ?? e.message) : String(e)).replace(/; (nothing was changed, )?retry shortly$/, "");
      console.error(`scimd: migrate failed: ${why}; ${partial()}`);
      return 1;
    }
    progress.stop();
    phase = "verifying";
    let v: Awaited<ReturnType<typeof verify>>;
    try {
      v = await verify(from, to, values.sample, copied);
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      console.error(`scimd: migrate stopped (${e.signal}) while verifying: the copy in ${toShown} is complete but not verified; to be sure, empty it and run migrate again`);
      return signalExit(e.signal);
    }
    if (v.problems.length) {
      console.error(`scimd: migrate copied, but the copy in ${toShown} does not match ${fromShown}: ${v.problems.slice(0, 5).join("; ")}${v.problems.length > 5 ? `; and ${v.problems.length - 5} more` : ""} (was the source written during the copy?)`);
      return 1;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      [
        `migrated ${fromShown} to ${toShown} in ${seconds}s:`,
        `  ${countsLine(v.counts)} (ids, meta.created/lastModified and versions kept)`,
        `verified: every count matches; ${plural(v.sampled, "sampled resource")}, ${plural(v.tokens, "token secret")} and the newest ${plural(v.activity, "activity entry", "activity entries")} are the same in both.`,
        `Serve from it (the IdP's tokens work there as they did)${toShown.includes("***") ? ", with the URL's password in place of ***" : ""}:`,
        `  ${commandLine("serve", dbArg(values.to, values["to-password-file"]))}`,
      ].join("\n"),
    );
    return 0;
  } finally {
    phase = "closing";
    try {
      await to?.close();
      await from?.close();
    } finally {
      process.off("SIGINT", int);
      process.off("SIGTERM", term);
    }
  }
}
