/**
 * The operator's log: one JSON object per line on stdout (or a pretty line on a TTY), each with a
 * level, a time and an event name, and the event's fields. Nothing secret is ever a field: no token,
 * Authorization header, password or request body at info level (at debug, bodies go through
 * `redactPasswords`).
 *
 * A line is `{"time":…,"level":…,"event":…,` followed by the fields as JSON.stringify writes them
 * (undefined fields are left out). The lines of one turn of the event loop go out in one write(2)
 * (batchedWriter), with no worker thread. pino was used first and measured: in
 * the server, behind the request edge, a request line through pino (with our synchronous
 * destination) cost 14–23 µs more per request than the same line from JSON.stringify (in-process
 * A/B, GET by id, 16 interleaved rounds), a third of the cost of the whole request; pino's own
 * synchronous destination (sonic-boom) cost 8–11 µs more again. Nothing else of pino was used.
 */
import { writeSync } from "node:fs";

export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export type LogFormat = "json" | "pretty";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Whether a line at `level` is written (so that a caller can skip building its fields). */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where a finished line goes (without its newline); by default stdout, through batchedWriter. */
  write?: (line: string) => void;
}

const WAIT = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `text` to `fd` before returning. A full pipe (EAGAIN on a non-blocking stdout) is
 * waited for, up to a second per line, then the line is dropped; a closed stdout (EPIPE) drops it:
 * a log reader that went away must not stop the server.
 */
export function writeAllSync(fd: number, text: string): void {
  let rest: string | Buffer = text;
  let waited = 0;
  for (;;) {
    try {
      if (typeof rest === "string") {
        const n = writeSync(fd, rest);
        if (n >= Buffer.byteLength(rest)) return;
        rest = Buffer.from(rest).subarray(n);
      } else {
        const n = writeSync(fd, rest);
        if (n >= rest.length) return;
        rest = rest.subarray(n);
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== "EAGAIN" || waited >= 1000) return;
      Atomics.wait(WAIT, 0, 0, 1);
      waited++;
    }
  }
}

const LEVEL_TAG: Record<string, string> = { debug: "DEBUG", info: "INFO ", warn: "WARN ", error: "ERROR" };

/**
 * Control characters a terminal may act on: C0 (ESC, BEL, CR…), DEL, C1 (0x9b is CSI on many
 * terminals) and the Unicode line and paragraph separators. JSON.stringify escapes only C0.
 */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
const escapeControl = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
/** `s` with every control character written as a `\uXXXX` escape (for text a client may have chosen). */
const inert = (s: string) => s.replace(CONTROL, escapeControl);

/** A value as it reads after `key=` in a pretty line: bare when it is a plain word, else JSON with every control character escaped. */
function prettyValue(v: unknown): string {
  if (typeof v === "string") return /^[^\x00-\x20\x7f-\x9f\u2028\u2029"=]+$/.test(v) ? v : inert(JSON.stringify(v));
  return typeof v === "object" && v !== null ? inert(JSON.stringify(v)) : inert(String(v));
}

/**
 * A JSON line (as createLogger writes it) as one line for a person: the time of day, the level, the event,
 * then `key=value`. A request reads `GET /path 200 1.2 ms 512 B` first. A field with line breaks (a
 * stack, a suggested command) follows on indented lines.
 */
export function prettyLine(json: string): string {
  const o = JSON.parse(json) as Record<string, unknown>;
  const { time, level, event, ...rest } = o;
  const head = [inert(String(time ?? "").slice(11, 23)), inert(LEVEL_TAG[String(level)] ?? String(level)), inert(String(event))];
  if (event === "request") {
    const { method, path, status, durationMs, bytes } = rest;
    head.push(inert(`${method} ${path} ${status ?? "-"} ${durationMs ?? "-"} ms${bytes === undefined ? "" : ` ${bytes} B`}`));
    for (const k of ["method", "path", "status", "durationMs", "bytes"]) delete rest[k];
  }
  const tail: string[] = [];
  for (const [k, v] of Object.entries(rest)) {
    // Line by line, each one with its control characters escaped: a stack or a message may quote what a client sent.
    if (typeof v === "string" && v.includes("\n")) tail.push(`  ${inert(k)}:\n    ${v.split("\n").map(inert).join("\n    ")}`);
    else head.push(`${inert(k)}=${prettyValue(v)}`);
  }
  return [head.join(" "), ...tail].join("\n");
}

const writers = new Map<number, (line: string) => void>();

/** Lines held before they are written at once, without waiting for the end of the event loop's turn. */
const BATCH_BYTES = 64 * 1024;

/**
 * A line writer for `fd`: the lines of one turn of the event loop are written together at its end
 * (setImmediate), one write(2) for all of them instead of one per line, which under load is most of
 * a request line's cost; at once when 64 KiB are held; and at exit. A kill -9 can lose the lines of
 * the turn it interrupts, never a line of an earlier one.
 */
export function batchedWriter(fd: number): (line: string) => void {
  // One per descriptor, so that loggers made one after another share its order and its exit hook.
  const known = writers.get(fd);
  if (known) return known;
  let pending = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === "") return;
    const text = pending;
    pending = "";
    writeAllSync(fd, text);
  };
  process.on("exit", flush);
  const write = (line: string) => {
    pending += line + "\n";
    if (pending.length >= BATCH_BYTES) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  writers.set(fd, write);
  return write;
}

/** A field value JSON cannot hold (a BigInt, a cycle) as text, so that a log call never throws. */
function safeFields(fields: LogFields): string {
  // A field named like the line's own members would make a second `time`, `level` or `event`.
  if (Object.hasOwn(fields, "time") || Object.hasOwn(fields, "level") || Object.hasOwn(fields, "event"))
    fields = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k === "time" || k === "level" || k === "event" ? `field_${k}` : k, v]));
  let text: string | undefined;
  try {
    text = JSON.stringify(fields);
  } catch {
    try {
      const seen = new WeakSet<object>();
      text = JSON.stringify(fields, (_k, v: unknown) => {
        if (typeof v === "bigint") return v.toString();
        if (typeof v === "object" && v !== null) {
          if (seen.has(v)) return "[cycle]";
          seen.add(v);
        }
        return v;
      });
    } catch (e) {
      // A getter or toJSON that throws: the line says so rather than the log call throwing.
      return JSON.stringify({ logError: `the fields could not be written: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  // Fields that are no plain object (an array, a Date, a toJSON giving something else) become one member.
  return text !== undefined && text.startsWith("{") ? text : `{"fields":${text ?? "null"}}`;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(o: LoggerOptions): Logger {
  const raw = o.write ?? batchedWriter(1);
  const write = o.format === "pretty" ? (line: string) => raw(prettyLine(line)) : raw;
  // The level is fixed for the logger's life: which levels write is worked out once, not per call.
  const min = RANK[o.level];
  const on: Record<LogLevel, boolean> = { debug: RANK.debug >= min, info: RANK.info >= min, warn: RANK.warn >= min, error: RANK.error >= min };
  const emit = (level: LogLevel) => {
    const tag = `","level":"${level}","event":`;
    return (event: string, fields?: LogFields): void => {
      if (!on[level]) return;
      const body = fields === undefined ? "{}" : safeFields(fields);
      // `{"time":"…","level":"…","event":"…"` then the fields' members (none for `{}`).
      write(`{"time":"${new Date().toISOString()}${tag}${JSON.stringify(String(event))}${body.length > 2 ? "," + body.slice(1) : "}"}`);
    };
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error"), enabled: (level) => on[level] };
}

/** A logger that writes nothing (tests that do not read the log). */
export const SILENT_LOGGER: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  enabled: () => false,
};

const PASSWORD = /password/i;
export const REDACTED = "[redacted]";

/** Whether a PATCH operation's `path` (as sent, of any type) may name a password. */
function mayNamePassword(path: unknown): boolean {
  if (typeof path === "string") return PASSWORD.test(path);
  if (typeof path !== "object" || path === null) return false;
  try {
    return PASSWORD.test(JSON.stringify(path));
  } catch {
    return true;
  }
}

/**
 * A copy of a request body for a debug line with every password taken out, at any depth: the value
 * of a member named `password` in any case (`password`, `PASSWORD`, an extension's), the `value` of
 * a PATCH operation whose `path` names a password, and a filter that mentions one. An operation may
 * spell `path` several ways (`Path`, `path`); the PATCH reader takes the last, so the value goes when
 * any of them names a password, whichever the reader would pick.
 */
export function redactPasswords(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redactPasswords);
  if (typeof v !== "object" || v === null) return v;
  const src = v as Record<string, unknown>;
  const keys = Object.keys(src);
  const pathNamesPassword = keys.some((k) => k.toLowerCase() === "path" && mayNamePassword(src[k]));
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const val = src[k];
    const lower = k.toLowerCase();
    if (PASSWORD.test(k) || (pathNamesPassword && lower === "value") || (lower === "filter" && typeof val === "string" && PASSWORD.test(val))) out[k] = REDACTED;
    else out[k] = redactPasswords(val);
  }
  return out;
}
