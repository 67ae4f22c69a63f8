/**
 * A reader of the SQLite store's file, in a worker thread with its own read-only connection (WAL lets
 * it read beside the writer on the main thread). It runs the searches whose plan scans a whole table
 * (readers.ts), so the event loop that answers every other request never waits for them.
 *
 * bun:sqlite cannot interrupt a running statement (no sqlite3_interrupt or progress handler), and
 * `worker.terminate()` takes effect only once the native call returns, so a scan is run in chunks
 * of rows by `seq` (the rowid), each a bounded statement, sized to take about 10–25 ms. Between two
 * chunks the worker looks at a shared flag (the request was cancelled) and at the deadline, and stops
 * there. Every chunk of one search reads the same snapshot (one read transaction).
 */
import { Database, type Statement } from "bun:sqlite";
import type { ReaderJob, ReaderReply } from "./readers";

declare const self: Worker;

/** Chunk sizes, in rows: the first, the smallest and the largest; and the time one chunk aims at. */
const FIRST_CHUNK = 256, MIN_CHUNK = 16, MAX_CHUNK = 65_536;
const CHUNK_FAST_MS = 10, CHUNK_SLOW_MS = 25;

let db: Database | undefined;
const stmts = new Map<string, Statement>();
function q(sql: string): Statement {
  let s = stmts.get(sql);
  if (!s) {
    if (stmts.size >= 128) {
      for (const old of stmts.values()) old.finalize();
      stmts.clear();
    }
    s = db!.prepare(sql);
    stmts.set(sql, s);
  }
  return s;
}

function run(job: ReaderJob, flag: Int32Array): ReaderReply {
  db ??= openReader(job.path);
  const stopped = (): ReaderReply | undefined =>
    Atomics.load(flag, 0) !== 0 ? { id: job.id, stopped: "cancelled" } : Date.now() > job.deadline ? { id: job.id, stopped: "deadline" } : undefined;
  db.exec("BEGIN");
  try {
    const max = (q(job.maxSql).get() as { m: number | null }).m ?? 0;
    const scan = q(job.scanSql);
    // In creation order only the page's seqs are kept; for another order, every match (sorted after).
    const keep = job.pageSql === undefined;
    const matches: number[] = [];
    let total = 0, lo = 0, size = FIRST_CHUNK;
    while (lo < max) {
      const stop = stopped();
      if (stop) return stop;
      const t0 = performance.now();
      const rows = scan.values(lo, lo + size, ...job.params) as [number][];
      const ms = performance.now() - t0;
      for (const [seq] of rows) {
        if (!keep || (total >= job.offset && total < job.offset + job.limit)) matches.push(seq);
        total++;
      }
      lo += size;
      size = ms < CHUNK_FAST_MS ? Math.min(MAX_CHUNK, size * 2) : ms > CHUNK_SLOW_MS ? Math.max(MIN_CHUNK, size >> 1) : size;
    }
    const stop = stopped();
    if (stop) return stop;
    if (job.limit <= 0) return { id: job.id, total, rows: [] };
    const page = keep ? matches : (q(job.pageSql!).values(JSON.stringify(matches), job.offset) as [number][]).map(([s]) => s);
    if (!page.length) return { id: job.id, total, rows: [] };
    const bySeq = new Map<number, unknown>();
    for (const row of q(job.rowsSql).all(JSON.stringify(page)) as { seq: number }[]) bySeq.set(row.seq, row);
    return { id: job.id, total, rows: page.map((s) => bySeq.get(s)!) };
  } finally {
    db.exec("COMMIT");
  }
}

function openReader(path: string): Database {
  const d = new Database(path, { readonly: true, strict: true });
  // A reader waits only while the file's WAL index is being rebuilt; it never takes the write lock.
  d.exec("PRAGMA busy_timeout = 1000");
  d.exec("PRAGMA cache_size = -16384");
  return d;
}

self.onmessage = (e: MessageEvent<{ job: ReaderJob; flag: Int32Array }>) => {
  const { job, flag } = e.data;
  let reply: ReaderReply;
  try {
    reply = run(job, flag);
  } catch (err) {
    reply = { id: job.id, error: err instanceof Error ? err.message : String(err) };
  }
  postMessage(reply);
};
