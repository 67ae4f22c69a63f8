/**
 * `scimd import FILE`: loads a JSON or JSON-lines export (scimd's own, a SCIM ListResponse, or an
 * array of resources) into a database that holds no Users and no Groups, keeping ids and
 * meta.created/lastModified so that the IdP's mappings survive a move to this server.
 *
 * Never half-imported: every record is checked first (the API's validation, then the file as a whole:
 * ids and names unique, members present, an order the Groups can be created in), and only then is
 * anything written; if a write still fails part-way (a full disk, another writer), everything this
 * import wrote is deleted again before it reports the failure.
 */
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { checkDbPasswordFile, dbFlagNamesFrom, flag, DB_FLAG, DB_PASSWORD_FILE_FLAG, flagHelp, HELP_FLAG, resolveFlags, UsageError } from "../config";
import { EXPORT_KEYS, importRecord, ImportError, ImportSet, recordKind, type ImportRecord } from "../scim/export";
import { isObject } from "../scim/json";
import { hashPassword } from "../scim/operations";
import { quirksFor, type Quirks } from "../scim/quirks";
import type { ResourceKind } from "../scim/schema";
import { describeDb, isPostgresUrl } from "../store/open";
import type { Store } from "../store/store";
import { openExisting } from "./database";
import { POSTGRES_HELP } from "./db-password";
import { commandLine, dbArg } from "./invocation";
import { progressBar, type Progress } from "./progress";

/** Creates queued together: the store commits the writes of one turn of the event loop in one transaction. */
const WRITE_BATCH = 500;

export const IMPORT_FLAGS = [
  { ...DB_FLAG, help: "the database to import into: a file path or sqlite:PATH; it must hold no Users and no Groups (tokens may exist)" },
  DB_PASSWORD_FILE_FLAG,
  flag({ name: "create", kind: "bool", default: false, help: "create the database when it does not exist yet" }),
  flag({ name: "strict", kind: "bool", default: false, help: "check each record as serve --strict checks a POST: no IdP quirks (unknown attributes, string booleans, … refused)" }),
  HELP_FLAG,
] as const;

export const IMPORT_USAGE = `Usage: scimd import FILE [--db PATH] [--create] [--strict]

Loads an export into a database that holds no Users and no Groups yet (tokens may exist), keeping
each resource's id and meta.created / meta.lastModified, so that an IdP's links to them still hold.
FILE is what 'scimd export --format json' or '--format jsonl' wrote, a SCIM ListResponse
({"Resources": [...]}, e.g. saved from another server's GET /Users), or a JSON array of resources;
a .jsonl or .ndjson file, or one whose first line is a whole resource, is read line by line. Every
record is checked as the API checks a POST, and the file as a whole (unique ids, userNames and group
names; every member in the file) before anything is written: one bad record is reported with its
line or index and nothing is imported. Passwords are not part of an export and are not imported
(a record with a cleartext 'password' has it hashed, as over the API).

Options:
${flagHelp(IMPORT_FLAGS)}

${POSTGRES_HELP}

Examples:
  ${commandLine("export", ["--format", "jsonl", "--out", "scimd-export.jsonl", "--db", "/var/lib/scimd/old.db"])}
  ${commandLine("import", ["scimd-export.jsonl", "--db", "/var/lib/scimd/scimd.db", "--create"])}`;

/** One record of the file, and where it is (for messages). */
interface RawRecord {
  kind: ResourceKind | undefined;
  raw: unknown;
  where: string;
}

/** The records of a file, readable more than once (checked first, then written). */
interface Source {
  records(): AsyncGenerator<RawRecord>;
}

/** A JSON document: scimd's export, a ListResponse, or an array of resources. */
function jsonSource(file: string, text: string): Source {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ImportError(file, `not a JSON document (${(e as Error).message}); a JSON-lines file must end in .jsonl or hold one resource per line`);
  }
  const lists: [string, ResourceKind | undefined, unknown[]][] = [];
  if (Array.isArray(doc)) lists.push(["", undefined, doc]);
  else if (isObject(doc)) {
    for (const kind of ["User", "Group"] as const) {
      const v = doc[EXPORT_KEYS[kind]];
      if (v === undefined) continue;
      if (!Array.isArray(v)) throw new ImportError(file, `'${EXPORT_KEYS[kind]}' must be an array of ${kind}s`);
      lists.push([EXPORT_KEYS[kind], kind, v]);
    }
    if (Array.isArray(doc.Resources)) lists.push(["Resources", undefined, doc.Resources]);
    if (!lists.length) throw new ImportError(file, `holds neither 'Users' nor 'Groups' (a scimd export) nor 'Resources' (a SCIM ListResponse)`);
  } else throw new ImportError(file, "must be a JSON object or array");
  return {
    async *records() {
      for (const [key, kind, list] of lists) for (const [i, raw] of list.entries()) yield { kind: kind ?? recordKind(raw), raw, where: `${key}[${i}]` };
    },
  };
}

const NOT_UTF8 = "not UTF-8 text (an export is UTF-8; convert the file, e.g. with iconv -t UTF-8, and import it again)";

/** A whole file's text: UTF-8, refused (not patched with U+FFFD) when it is not; a byte order mark is dropped. */
function utf8Text(path: string, bytes: Uint8Array): string {
  try {
    // ignoreBOM false (the default): a leading byte order mark, as some Windows tools write, is dropped.
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ImportError(path, NOT_UTF8);
  }
}

/** JSON lines, read as a stream each time (one line in memory at a time); blank lines are skipped. */
function jsonlSource(path: string): Source {
  return {
    async *records() {
      const decoder = new TextDecoder("utf-8", { fatal: true });
      let rest = "";
      let line = 0;
      const parse = (text: string): RawRecord | undefined => {
        line++;
        if (text.trim() === "") return undefined;
        let raw: unknown;
        try {
          raw = JSON.parse(text);
        } catch (e) {
          throw new ImportError(`line ${line}`, `not JSON (${(e as Error).message})`);
        }
        return { kind: recordKind(raw), raw, where: `line ${line}` };
      };
      const decode = (chunk?: Uint8Array) => {
        try {
          return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
        } catch {
          // The line of the first bad byte: the lines read so far, plus those the chunk completes before it.
          const lenient = chunk ? new TextDecoder("utf-8").decode(chunk) : "";
          const before = lenient.slice(0, Math.max(0, lenient.indexOf("\uFFFD")));
          throw new ImportError(`line ${line + 1 + (before.match(/\n/g)?.length ?? 0)}`, NOT_UTF8);
        }
      };
      for await (const chunk of Bun.file(path).stream()) {
        rest += decode(chunk);
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const r = parse(rest.slice(0, nl));
          rest = rest.slice(nl + 1);
          if (r) yield r;
        }
      }
      rest += decode();
      const r = parse(rest);
      if (r) yield r;
    },
  };
}

/** The file as a Source: JSON lines by its name or its first line, else a JSON document. */
function openSource(path: string): Source {
  let head: string;
  try {
    // JSON lines are streamed: a file named so is not read whole first.
    if (/\.(jsonl|ndjson)$/i.test(path) && statSync(path).isFile()) return jsonlSource(path);
    const text = utf8Text(path, readFileSync(path));
    head = text.slice(0, text.indexOf("\n") < 0 ? text.length : text.indexOf("\n"));
    let first: unknown;
    try {
      first = JSON.parse(head);
    } catch {
      return jsonSource(path, text);
    }
    // A whole resource on the first line (not a one-line document holding arrays of them) means JSON lines.
    // (One line holding one resource is JSON lines too: a JSON-lines export of a single resource.)
    if (isObject(first) && !("Users" in first || "Groups" in first || "Resources" in first)) return jsonlSource(path);
    return jsonSource(path, text);
  } catch (e) {
    if (e instanceof ImportError) throw e;
    const code = (e as { code?: string }).code;
    throw new Error(`cannot read ${path}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a folder" : (e as Error).message}`);
  }
}

/** The Users and Groups a store holds: an import goes only into a database with neither. */
async function holdings(store: Store): Promise<{ users: number; groups: number }> {
  const [u, g] = await Promise.all([store.search("User", { offset: 0, limit: 0 }), store.search("Group", { offset: 0, limit: 0 })]);
  return { users: u.total, groups: g.total };
}

/** Checked records of a file: each record through the API's validation, then the set as a whole. */
interface Checked {
  users: number;
  /** The Groups in the order they can be created in. */
  groups: ImportRecord[];
}

/** Pass 1: every record checked; nothing is written. Throws ImportError for the first bad one. */
async function check(source: Source, now: string, quirks: Quirks): Promise<Checked> {
  const set = new ImportSet();
  const groups = new Map<string, ImportRecord>();
  for await (const { kind, raw, where } of source.records()) {
    if (!kind) throw new ImportError(where, "says neither that it is a User nor a Group (meta.resourceType, or the core schema in 'schemas')");
    const r = importRecord(kind, raw, where, quirks, now);
    set.add(r);
    if (kind === "Group") groups.set(r.id, r);
  }
  return { users: set.users, groups: set.groupOrder().map((id) => groups.get(id)!) };
}

/** Where a write failed, and why. */
class WriteFailure extends Error {}

/**
 * Pass 2: the Users (read from the file again, in file order), then the Groups in their order, in
 * batches of WRITE_BATCH creates. `written` collects what was created, so that a failure can be undone.
 */
async function write(store: Store, source: Source, checked: Checked, now: string, quirks: Quirks, written: { kind: ResourceKind; id: string }[], progress: Progress): Promise<void> {
  let batch: ImportRecord[] = [];
  const flush = async () => {
    const results = await Promise.allSettled(
      batch.map(async (r) => {
        const data = r.password === undefined ? r.data : { ...r.data, password: await hashPassword(r.password) };
        await store.create(r.kind, { id: r.id, data, members: r.members, meta: r.meta, origin: { via: "import" } });
        written.push({ kind: r.kind, id: r.id });
      }),
    );
    progress.advance(batch.length);
    const failed = results.findIndex((x) => x.status === "rejected");
    if (failed >= 0) {
      const e = (results[failed] as PromiseRejectedResult).reason;
      throw new WriteFailure(`${batch[failed]!.where}: ${e?.detail ?? (e instanceof Error ? e.message : String(e))}`);
    }
    batch = [];
    await progress.tick();
  };
  for await (const { kind, raw, where } of source.records()) {
    if (kind !== "User") continue;
    batch.push(importRecord("User", raw, where, quirks, now));
    if (batch.length >= WRITE_BATCH) await flush();
  }
  // The creates of one batch run concurrently, and an engine with a connection pool (PostgreSQL) may
  // commit them in any order: every User is written before the first Group, and a Group that has a
  // member in the batch being gathered starts the next one.
  if (batch.length) await flush();
  const inBatch = new Set<string>();
  for (const g of checked.groups) {
    if (g.members?.some((m) => inBatch.has(m))) {
      await flush();
      inBatch.clear();
    }
    batch.push(g);
    inBatch.add(g.id);
    if (batch.length >= WRITE_BATCH) {
      await flush();
      inBatch.clear();
    }
  }
  if (batch.length) await flush();
}

/**
 * Deletes what an import wrote (Groups first, so no membership is left pointing at a User); returns
 * what could not be deleted. The deletes are the import's too in the activity log, which keeps the
 * attempt (its creates, then their removal): history is never rewritten.
 */
async function undo(store: Store, written: { kind: ResourceKind; id: string }[]): Promise<number> {
  let left = 0;
  const ordered = [...written.filter((w) => w.kind === "Group").reverse(), ...written.filter((w) => w.kind === "User")];
  for (let i = 0; i < ordered.length; i += WRITE_BATCH) {
    const results = await Promise.allSettled(ordered.slice(i, i + WRITE_BATCH).map((w) => store.delete(w.kind, w.id, { origin: { via: "import" } })));
    left += results.filter((r) => r.status === "rejected").length;
  }
  return left;
}

export async function importCommand(argv: string[]): Promise<number> {
  const { values, args, sources } = resolveFlags(argv, IMPORT_FLAGS);
  if (values.help) {
    console.log(IMPORT_USAGE);
    return 0;
  }
  if (args.length === 0) throw new UsageError("import needs the FILE to import (what 'scimd export --format json' or 'jsonl' wrote)");
  if (args.length > 1) throw new UsageError(`unexpected argument '${args[1]}'`);
  const file = args[0]!;
  checkDbPasswordFile(values.db, values["db-password-file"], sources);
  const dbPath = describeDb(values.db);
  const postgres = isPostgresUrl(values.db);
  const source = openSource(file);
  const quirks = quirksFor(values.strict);
  const store = await openExisting(values.db, values.create, values["db-password-file"], dbFlagNamesFrom(sources));
  try {
    const refuseNonEmpty = async () => {
      const h = await holdings(store);
      if (h.users || h.groups)
        throw new Error(
          `the database ${dbPath} already holds ${h.users} user${h.users === 1 ? "" : "s"} and ${h.groups} group${h.groups === 1 ? "" : "s"}; import loads into a database without Users and Groups only (so that nothing is merged or overwritten). ${postgres ? "Import into a new database (CREATE DATABASE …), or empty this one first" : `Import into a new one, e.g.\n  ${commandLine("import", [file, "--db", `${dbPath.replace(/\.db$/, "")}-imported.db`, "--create"])}`}`,
        );
    };
    await refuseNonEmpty();
    const now = new Date().toISOString();
    let checked: Checked;
    try {
      checked = await check(source, now, quirks);
    } catch (e) {
      if (e instanceof ImportError) {
        console.error(`scimd: ${file} ${e.where}: ${e.problem}; nothing was imported`);
        return 1;
      }
      throw e;
    }
    // Checked again just before writing: another writer may have come in while the file was read.
    await refuseNonEmpty();
    const written: { kind: ResourceKind; id: string }[] = [];
    const progress = progressBar("importing", checked.users + checked.groups.length);
    try {
      await write(store, source, checked, now, quirks, written, progress);
    } catch (e) {
      progress.stop();
      const why = e instanceof WriteFailure || e instanceof ImportError ? e.message : `${e instanceof Error ? e.message : String(e)}`;
      const left = await undo(store, written);
      console.error(
        left
          ? `scimd: import failed at ${file} ${why}; ${left} of the ${written.length} resources written could not be removed again: ${postgres ? `drop ${dbPath}` : `delete ${dbPath}`} and import into a new database`
          : `scimd: import failed at ${file} ${why}; the ${written.length} resources written before were removed again: nothing was imported (the activity log keeps the attempt)`,
      );
      return 1;
    }
    progress.stop();
    console.error(
      [
        `imported ${checked.users} user${checked.users === 1 ? "" : "s"} and ${checked.groups.length} group${checked.groups.length === 1 ? "" : "s"} from ${resolve(file)} into ${dbPath} (ids and meta.created/lastModified kept).`,
        `Point the IdP at this server, with a token for it:`,
        `  ${commandLine("generate-token", ["--name", "okta", ...dbArg(values.db)])}`,
      ].join("\n"),
    );
    return 0;
  } finally {
    await store.close();
  }
}
