/**
 * `scimd export`: every User and Group of the database as one JSON document, JSON lines or CSV, on
 * stdout or into a file (0600, written under a temporary name and renamed, so the file named is
 * never half-written). Streamed: pages of the store's `scan` are written as they are read, and a
 * Group's members page by page, so memory stays flat whatever the size of the directory.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, statSync, type Stats, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { checkDbPasswordFile, dbFlagNamesFrom, DB_FLAG, DB_PASSWORD_FILE_FLAG, flag, flagHelp, HELP_FLAG, resolveFlags, UsageError } from "../config";
import {
  csvLine,
  EXPORT_FORMAT,
  EXPORT_KEYS,
  EXPORT_VERSION,
  exportRecord,
  GROUP_COLUMNS,
  groupCsvFields,
  memberRecord,
  USER_COLUMNS,
  userCsvFields,
} from "../scim/export";
import type { Resource } from "../scim/resource";
import type { ResourceKind } from "../scim/schema";
import { describeDb, namesDatabaseFile } from "../store/open";
import type { Member, Store } from "../store/store";
import { openExisting } from "./database";
import { POSTGRES_HELP } from "./db-password";
import { commandLine } from "./invocation";
import { progressBar, type Progress } from "./progress";

/** Resources read per page of the scan, and members per page of a Group. */
const SCAN_PAGE = 1000;
const MEMBER_PAGE = 1000;
/** Output is handed to the file or stdout in chunks of about this many characters. */
const CHUNK = 1 << 16;

const FORMATS = ["json", "jsonl", "csv"] as const;
type Format = (typeof FORMATS)[number];

export const EXPORT_FLAGS = [
  flag({
    name: "format",
    kind: "string",
    default: "json",
    help: "json (one document: {format, version, exported, Users, Groups}), jsonl (one resource per line) or csv (one row per user, or per group with --groups)",
    check: (v) => {
      if (!(FORMATS as readonly string[]).includes(v)) throw new UsageError(`--format must be json, jsonl or csv, got '${v}'`);
    },
  }),
  flag({ name: "users", kind: "bool", default: false, help: "export the Users only" }),
  flag({ name: "groups", kind: "bool", default: false, help: "export the Groups only (with their members)" }),
  flag({ name: "out", kind: "string", help: "write into this file (mode 0600, replaced whole when done) instead of stdout" }),
  { ...DB_FLAG, help: "the database to export: a file path or sqlite:PATH" },
  DB_PASSWORD_FILE_FLAG,
  HELP_FLAG,
] as const;

export const EXPORT_USAGE = `Usage: scimd export [--format json|jsonl|csv] [--users | --groups] [--out FILE] [--db PATH]

Writes every User (with every attribute, its groups, id, externalId and meta; never a password hash)
and every Group (with its members: value, type, display) to stdout, or into --out FILE. 'scimd import'
reads a json or jsonl export back into an empty database, keeping ids and timestamps. CSV is for
spreadsheets: one row per user (emails and phone numbers by type, enterprise attributes in columns of
their own), or one row per group with --groups; a value beginning with = + - @ is written with a
leading ' so that a spreadsheet shows it as text instead of running it as a formula. A progress bar is
drawn on stderr when it is a terminal. The export can run beside a running server; each page is read
as it is at that moment.

Options:
${flagHelp(EXPORT_FLAGS)}

${POSTGRES_HELP}

Examples:
  ${commandLine("export", ["--format", "jsonl", "--out", "scimd-export.jsonl"])}
  ${commandLine("export", ["--format", "csv", "--users", "--out", "users.csv"])}
  ${commandLine("export", ["--format", "json", "--groups", "--out", "groups.json", "--db", "/var/lib/scimd/scimd.db"])}`;

/** Where the export goes: text is buffered into chunks, each written before the next is built. */
interface Sink {
  write(s: string): Promise<void> | void;
  /** Everything written and durable; for a file, renamed to its name. */
  finish(): Promise<void>;
  /** Gives up: a temporary file is removed, the file named is untouched. */
  abort(): void;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** A file written as `<name>.<pid>.partial` (0600) beside it, fsynced and renamed over it at the end. */
function fileSink(path: string): Sink {
  // What would fail only at the rename, after the whole export was written, is refused first, naming --out (not the temporary name).
  const st = statOrUndefined(path);
  if (st?.isDirectory()) throw new UsageError(`--out ${path} is a folder; name a file in it (e.g. --out ${join(path, "scimd-export.jsonl")})`);
  if (st && !st.isFile()) throw new UsageError(`--out ${path} is not a regular file; name a file to write the export into`);
  const folder = statOrUndefined(dirname(path));
  if (!folder) throw new UsageError(`--out ${path}: the folder ${resolve(dirname(path))} does not exist`);
  if (!folder.isDirectory()) throw new UsageError(`--out ${path}: ${resolve(dirname(path))} is not a folder`);
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  let fd: number;
  try {
    fd = openSync(temp, "wx", 0o600);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(`--out ${path}: cannot write in ${resolve(dirname(path))}${code === "EACCES" || code === "EPERM" ? " (permission denied)" : code === "EROFS" ? " (read-only file system)" : code ? ` (${code})` : ""}`);
  }
  let open = true;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  return {
    write: (s) => void writeSync(fd, s),
    finish: async () => {
      fsyncSync(fd);
      close();
      renameSync(temp, path);
    },
    abort: () => {
      close();
      rmSync(temp, { force: true });
    },
  };
}

/** stdout, waiting for each chunk to be taken (a slow reader slows the export instead of filling memory). */
const stdoutSink = (): Sink => ({
  write: (s) => new Promise<void>((res, rej) => void process.stdout.write(s, (e) => (e ? rej(e) : res()))),
  finish: async () => {},
  abort: () => {},
});

/** Buffers small writes into chunks of about CHUNK characters for a Sink. */
class Buffered {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly sink: Sink) {}
  async write(s: string): Promise<void> {
    this.parts.push(s);
    this.size += s.length;
    if (this.size >= CHUNK) await this.flush();
  }
  async flush(): Promise<void> {
    if (!this.size) return;
    const text = this.parts.join("");
    this.parts = [];
    this.size = 0;
    await this.sink.write(text);
  }
}

/** Every page of a Group's members. */
async function* memberPages(store: Store, groupId: string): AsyncGenerator<Member[]> {
  let cursor: string | undefined;
  do {
    const page = await store.memberPage(groupId, cursor, MEMBER_PAGE);
    yield page.members;
    cursor = page.next;
  } while (cursor);
}

/**
 * Writes one Group as JSON: its record with `members` (paged, never all in memory) placed before
 * `meta`, as the API shows them; no `members` when it has none.
 */
async function writeGroupJson(out: Buffered, store: Store, record: Resource): Promise<void> {
  const { meta, ...head } = record;
  const pages = memberPages(store, String(record.id));
  const first = (await pages.next()).value as Member[];
  const headJson = JSON.stringify(head);
  if (!first.length) {
    await out.write(`${headJson.slice(0, -1)},"meta":${JSON.stringify(meta)}}`);
    return;
  }
  await out.write(`${headJson.slice(0, -1)},"members":[`);
  let sep = "";
  for (let page: Member[] | void = first; page; page = (await pages.next()).value as Member[] | undefined) {
    for (const m of page) {
      await out.write(sep + JSON.stringify(memberRecord(m)));
      sep = ",";
    }
  }
  await out.write(`],"meta":${JSON.stringify(meta)}}`);
}

/** Every resource of `kind` as its export record, page by page, telling `progress` of each. */
async function* records(store: Store, kind: ResourceKind, progress: Progress): AsyncGenerator<Resource> {
  let after: string | undefined;
  do {
    const page = await store.scan(kind, after, SCAN_PAGE);
    for (const s of page.resources) {
      yield exportRecord(kind, s);
      progress.advance();
    }
    after = page.next;
    await progress.tick();
  } while (after !== undefined);
}

/** Writes the export of `kinds` in `format`; returns how many of each it wrote. */
async function writeExport(store: Store, format: Format, kinds: ResourceKind[], out: Buffered, progress: Progress): Promise<Record<ResourceKind, number>> {
  const counts: Record<ResourceKind, number> = { User: 0, Group: 0 };
  const one = async (kind: ResourceKind, r: Resource) => {
    counts[kind]++;
    if (format === "csv") {
      if (kind === "User") return out.write(csvLine(userCsvFields(r)));
      const members: Member[] = [];
      for await (const page of memberPages(store, String(r.id))) members.push(...page);
      return out.write(csvLine(groupCsvFields(r, members)));
    }
    if (kind === "Group") await writeGroupJson(out, store, r);
    else await out.write(JSON.stringify(r));
  };
  if (format === "json") await out.write(`{"format":${JSON.stringify(EXPORT_FORMAT)},"version":${EXPORT_VERSION},"exported":${JSON.stringify(new Date().toISOString())}`);
  if (format === "csv") await out.write(csvLine(kinds[0] === "User" ? USER_COLUMNS : GROUP_COLUMNS));
  for (const kind of kinds) {
    if (format === "json") await out.write(`,"${EXPORT_KEYS[kind]}":[`);
    let first = true;
    for await (const r of records(store, kind, progress)) {
      if (format === "json") await out.write(first ? "\n" : ",\n");
      first = false;
      await one(kind, r);
      if (format === "jsonl") await out.write("\n");
    }
    if (format === "json") await out.write(first ? "]" : "\n]");
  }
  if (format === "json") await out.write("}\n");
  await out.flush();
  return counts;
}

export async function exportCommand(argv: string[]): Promise<number> {
  const { values, args, sources } = resolveFlags(argv, EXPORT_FLAGS);
  if (values.help) {
    console.log(EXPORT_USAGE);
    return 0;
  }
  if (args.length) throw new UsageError(`unexpected argument '${args[0]}'${args[0]!.includes(".") ? ` (to write into a file, use --out ${args[0]})` : ""}`);
  const format = values.format as Format;
  if (values.users && values.groups) throw new UsageError("--users and --groups are alternatives: give one, or neither for both");
  // A CSV file is one table: the Users, or with --groups the Groups.
  const kinds: ResourceKind[] = values.groups ? ["Group"] : values.users || format === "csv" ? ["User"] : ["User", "Group"];
  if (values.out === "") throw new UsageError("--out must name a file");
  checkDbPasswordFile(values.db, values["db-password-file"], sources);
  if (values.out !== undefined && namesDatabaseFile(values.db, values.out))
    throw new UsageError(`--out ${values.out} is the database itself (or one of its files); give another file for the export`);
  const store = await openExisting(values.db, false, values["db-password-file"], dbFlagNamesFrom(sources));
  let sink: Sink | undefined;
  try {
    let total = 0;
    for (const k of kinds) total += (await store.search(k, { offset: 0, limit: 0 })).total;
    sink = values.out === undefined ? stdoutSink() : fileSink(values.out);
    const progress = progressBar("exporting", total, { dataOnTerminal: values.out === undefined && !!process.stdout.isTTY });
    let counts: Record<ResourceKind, number>;
    try {
      counts = await writeExport(store, format, kinds, new Buffered(sink), progress);
    } finally {
      progress.stop();
    }
    await sink.finish();
    const what = kinds.map((k) => `${counts[k]} ${k === "User" ? "user" : "group"}${counts[k] === 1 ? "" : "s"}`).join(" and ");
    console.error(`exported ${what} from ${describeDb(values.db)}${values.out === undefined ? "" : ` into ${resolve(values.out)}`} (${format})`);
    return 0;
  } catch (e) {
    sink?.abort();
    throw e;
  } finally {
    await store.close();
  }
}
