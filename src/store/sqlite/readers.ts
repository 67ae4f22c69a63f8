/**
 * The SQLite store's readers: a small pool of worker threads (reader-worker.ts), each with its own
 * read-only connection on the store's file, that run the searches SQLite's planner answers by
 * scanning a table (resources.ts decides, with EXPLAIN QUERY PLAN). Lookups through an index stay on
 * the main thread, where they cost microseconds.
 *
 * Each search has a deadline (`--query-timeout`): past it the worker stops between two chunks of its
 * scan and the client gets 400 tooMany saying the filter is too expensive. A search whose request is
 * aborted (the client went away) stops the same way, which frees its worker within one chunk. Should
 * a worker not answer within a grace period after either (a statement that cannot be chunked, such
 * as the final sort, running long), it is terminated and a new one started once its thread has ended.
 */
import { ScimError } from "../../scim/errors";
import { queryTooExpensive, SearchCancelled } from "../store";

const storeClosing = () => new ScimError(503, "the store is closing (scimd is stopping)");
/** A search that never started: its own cost is unknown, so it is told to come back, not that it is too expensive. */
const readersBusy = (timeoutMs: number, size: number) =>
  new ScimError(
    503,
    `every reader (${size}) was busy with other searches that read every resource, and this one could not start within the query timeout (${timeoutMs / 1000} s, --query-timeout); retry shortly`,
    undefined,
    { "Retry-After": "1" },
  );

/** One search as a worker runs it: the statements are built by resources.ts, the worker only runs them. */
export interface ReaderJob {
  id: number;
  path: string;
  /** Epoch milliseconds past which the worker stops. */
  deadline: number;
  /** `SELECT max(seq) AS m FROM <table>`. */
  maxSql: string;
  /** The matches' seqs in one chunk: `… WHERE r.seq > ? AND r.seq <= ? AND (<filter>) ORDER BY r.seq`. */
  scanSql: string;
  /** The filter's parameters (after the chunk's two bounds). */
  params: (string | number)[];
  /** For an order other than creation: the page's seqs among the matches (a JSON array) in that order, `OFFSET ?`. */
  pageSql?: string;
  /** The page's rows by their seqs (a JSON array). */
  rowsSql: string;
  offset: number;
  limit: number;
}

export type ReaderReply =
  | { id: number; total: number; rows: unknown[] }
  | { id: number; stopped: "cancelled" | "deadline" | "closing" | "busy" }
  | { id: number; error: string };

type Job = Omit<ReaderJob, "id" | "path" | "deadline">;

/** How long a worker may take to stop after its deadline or a cancel before it is terminated. */
const GRACE_MS = 1000;

interface Reader {
  worker: Worker;
  /** Set to 1 to ask the search running on this worker to stop. */
  flag: Int32Array;
  busy?: { id: number; settle: (r: ReaderReply) => void; timer?: Timer };
  /** terminate() was called: the thread counts in `stopping` until it ends. */
  terminated?: boolean;
  /** The thread has ended (its `close` event). */
  ended?: boolean;
}

export interface ReaderOptions {
  /** The deadline of one search, from when it is handed to the pool (waiting for a free worker counts). */
  timeoutMs: number;
  /** How many workers at most (started when first needed). */
  size?: number;
  /** Every filtered or sorted search goes to a reader, whatever its plan (for tests that compare both paths). */
  always?: boolean;
}

/** The query timeout when the store's caller names none (serve's default is the same, config.ts). */
export const DEFAULT_QUERY_TIMEOUT_MS = 5000;

export class SqliteReaders {
  private readonly readers: Reader[] = [];
  private readonly waiting: { job: ReaderJob; start: (r: Reader) => void; settle: (r: ReaderReply) => void }[] = [];
  private nextId = 1;
  private closed = false;
  /**
   * Workers terminated but not ended yet: terminate() takes effect only once the statement running
   * returns (a long final sort), and until then the thread still runs it. They count against `size`,
   * so that searches cut off one after another never run more threads than that.
   */
  private stopping = 0;

  constructor(
    private readonly path: string,
    readonly opts: ReaderOptions,
  ) {}

  /** Runs `job` on a free worker (or after one frees): the total and the page's rows, or 400 tooMany past the deadline. */
  async run(job: Job, signal?: AbortSignal): Promise<{ total: number; rows: unknown[] }> {
    if (this.closed) throw storeClosing();
    if (signal?.aborted) throw new SearchCancelled();
    const full: ReaderJob = { ...job, id: this.nextId++, path: this.path, deadline: Date.now() + this.opts.timeoutMs };
    const reply = await new Promise<ReaderReply>((settle) => {
      let reader: Reader | undefined;
      /** Set once the client went away during the search: the worker is replaced should it not stop within the grace period. */
      let abandoned: Timer | undefined;
      const onAbort = () => {
        if (reader) {
          Atomics.store(reader.flag, 0, 1);
          const r = reader;
          abandoned = setTimeout(() => {
            if (r.busy?.id === full.id) this.replace(r, { id: full.id, stopped: "cancelled" });
          }, GRACE_MS);
        } else {
          this.dequeue(full.id);
          settle({ id: full.id, stopped: "cancelled" });
        }
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      // Waiting for a worker counts against the deadline too.
      const queued = setTimeout(() => {
        if (reader) return;
        this.dequeue(full.id);
        settle({ id: full.id, stopped: "busy" });
      }, this.opts.timeoutMs);
      const start = (r: Reader) => {
        clearTimeout(queued);
        reader = r;
        Atomics.store(r.flag, 0, signal?.aborted ? 1 : 0);
        // The backstop: a worker that has not answered by the deadline and a grace period is replaced.
        const timer = setTimeout(() => this.replace(r, { id: full.id, stopped: "deadline" }), Math.max(0, full.deadline - Date.now()) + GRACE_MS);
        r.busy = {
          id: full.id,
          timer,
          settle: (rep) => {
            clearTimeout(timer);
            clearTimeout(abandoned);
            signal?.removeEventListener("abort", onAbort);
            settle(rep);
          },
        };
        r.worker.postMessage({ job: full, flag: r.flag });
      };
      const free = this.freeReader();
      if (free) start(free);
      else this.waiting.push({ job: full, start, settle });
    });
    if ("rows" in reply) return reply;
    if ("error" in reply) throw new Error(`the search failed in the reader: ${reply.error}`);
    if (reply.stopped === "closing") throw storeClosing();
    if (reply.stopped === "busy") throw readersBusy(this.opts.timeoutMs, this.size);
    throw reply.stopped === "deadline" ? queryTooExpensive(this.opts.timeoutMs) : new SearchCancelled();
  }

  private dequeue(id: number): void {
    const i = this.waiting.findIndex((w) => w.job.id === id);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  private get size(): number {
    return this.opts.size ?? 2;
  }

  private freeReader(): Reader | undefined {
    const idle = this.readers.find((r) => !r.busy);
    if (idle) return idle;
    if (this.readers.length + this.stopping < this.size) return this.spawn();
    return undefined;
  }

  private spawn(): Reader {
    // The worker is an entrypoint of its own in the compiled binary (scripts/build.ts).
    const worker = new Worker(new URL("./reader-worker.ts", import.meta.url).href);
    // An idle reader does not keep the process alive.
    worker.unref();
    const r: Reader = { worker, flag: new Int32Array(new SharedArrayBuffer(4)) };
    worker.onmessage = (e: MessageEvent<ReaderReply>) => {
      const busy = r.busy;
      if (!busy || busy.id !== e.data.id) return;
      r.busy = undefined;
      busy.settle(e.data);
      this.startWaiting();
    };
    worker.onerror = (e) => this.replace(r, { id: r.busy?.id ?? 0, error: e.message || "the reader failed" });
    // Listened to from the start: a worker that fails ends on its own, perhaps before replace() runs.
    worker.addEventListener("close", () => {
      r.ended = true;
      if (r.terminated) this.stopping--;
      // A thread that ended without being told to (it failed without an error event): its search fails.
      else this.replace(r, { id: r.busy?.id ?? 0, error: "the reader ended" });
      this.startWaiting();
    });
    this.readers.push(r);
    return r;
  }

  /** Terminates `r` (its search settles with `reply`) and puts a new worker in its place. */
  private replace(r: Reader, reply: ReaderReply): void {
    const busy = r.busy;
    r.busy = undefined;
    const i = this.readers.indexOf(r);
    if (i >= 0) this.readers.splice(i, 1);
    if (!r.terminated && !r.ended) {
      r.terminated = true;
      this.stopping++;
      r.worker.terminate();
    }
    busy?.settle({ ...reply, id: busy.id } as ReaderReply);
    this.startWaiting();
  }

  /** Starts the next waiting search on a free worker, or a new one if one may be started. */
  private startWaiting(): void {
    if (this.closed || !this.waiting.length) return;
    const r = this.freeReader();
    if (r) this.waiting.shift()!.start(r);
  }

  /** Stops every search and worker. */
  close(): void {
    this.closed = true;
    // Stopped by the server, not by their clients: told so (not "the client closed the request").
    for (const r of [...this.readers]) this.replace(r, { id: 0, stopped: "closing" });
    for (const w of this.waiting.splice(0)) w.settle({ id: w.job.id, stopped: "closing" });
  }
}
