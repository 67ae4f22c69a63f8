/**
 * The operator's log: one JSON object per line on stdout (or a pretty line on a TTY), each with a
 * level, a time and an event name, and the event's fields. Nothing secret is ever a field: no token,
 * Authorization header, password or request body at info level (at debug, bodies go through
 * `redactPasswords`).
 *
 * pino does the levels and the JSON; its destination is ours and synchronous: a line is written with
 * one write(2) before the call returns, so no line is lost when the process dies, and there is no
 * worker thread (pino's transports need one). pino's own synchronous destination (sonic-boom) cost
 * 8–11 µs a line under Bun where a plain fs.writeSync costs about 1 µs.
 */
import { writeSync } from "node:fs";
import pino from "pino";

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
  /** Where a finished line goes (without its newline); stdout by default. */
  write?: (line: string) => void;
}

const EMPTY: LogFields = Object.freeze({}) as LogFields;
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

/** A value as it reads after `key=` in a pretty line: bare when it is a plain word, else JSON. */
function prettyValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
}

/**
 * A JSON line (as pino writes it) as one line for a person: the time of day, the level, the event,
 * then `key=value`. A request reads `GET /path 200 1.2 ms 512 B` first. A field with line breaks (a
 * stack, a suggested command) follows on indented lines.
 */
export function prettyLine(json: string): string {
  const o = JSON.parse(json) as Record<string, unknown>;
  const { time, level, event, ...rest } = o;
  const head = [String(time ?? "").slice(11, 23), LEVEL_TAG[String(level)] ?? String(level), String(event)];
  if (event === "request") {
    const { method, path, status, durationMs, bytes } = rest;
    head.push(`${method} ${path} ${status ?? "-"} ${durationMs ?? "-"} ms${bytes === undefined ? "" : ` ${bytes} B`}`);
    for (const k of ["method", "path", "status", "durationMs", "bytes"]) delete rest[k];
  }
  const tail: string[] = [];
  for (const [k, v] of Object.entries(rest)) {
    if (typeof v === "string" && v.includes("\n")) tail.push(`  ${k}:\n    ${v.split("\n").join("\n    ")}`);
    else head.push(`${k}=${prettyValue(v)}`);
  }
  return [head.join(" "), ...tail].join("\n");
}

export function createLogger(o: LoggerOptions): Logger {
  const raw = o.write ? (line: string) => o.write!(line.endsWith("\n") ? line.slice(0, -1) : line) : (line: string) => writeAllSync(1, line);
  const write = o.format === "pretty" ? (line: string) => raw(prettyLine(line) + "\n") : raw;
  const p = pino(
    {
      level: o.level,
      base: null,
      messageKey: "event",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    { write },
  );
  // The level is fixed for the logger's life: which levels write is worked out once, not per call.
  const on: Record<LogLevel, boolean> = { debug: p.isLevelEnabled("debug"), info: p.isLevelEnabled("info"), warn: p.isLevelEnabled("warn"), error: p.isLevelEnabled("error") };
  return {
    debug: (event, fields) => p.debug(fields ?? EMPTY, event),
    info: (event, fields) => p.info(fields ?? EMPTY, event),
    warn: (event, fields) => p.warn(fields ?? EMPTY, event),
    error: (event, fields) => p.error(fields ?? EMPTY, event),
    enabled: (level) => on[level],
  };
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

/**
 * A copy of a request body for a debug line with every password taken out, at any depth: the value
 * of a member named `password` in any case (`password`, `PASSWORD`, an extension's), the `value` of
 * a PATCH operation whose `path` names a password, and a filter that mentions one.
 */
export function redactPasswords(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redactPasswords);
  if (typeof v !== "object" || v === null) return v;
  const src = v as Record<string, unknown>;
  const pathKey = Object.keys(src).find((k) => k.toLowerCase() === "path");
  const pathNamesPassword = pathKey !== undefined && typeof src[pathKey] === "string" && PASSWORD.test(src[pathKey] as string);
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(src)) {
    const lower = k.toLowerCase();
    if (PASSWORD.test(k) || (pathNamesPassword && lower === "value") || (lower === "filter" && typeof val === "string" && PASSWORD.test(val))) out[k] = REDACTED;
    else out[k] = redactPasswords(val);
  }
  return out;
}
