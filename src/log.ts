/**
 * The operator's log: one JSON object per line on stdout (or a pretty line on a TTY), each with a
 * time, a level and an event name, and the event's fields. Nothing secret is ever a field: no token,
 * Authorization header, password or request body at info level.
 */
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

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(o: LoggerOptions): Logger {
  const write = o.write ?? ((line: string) => process.stdout.write(line + "\n"));
  const min = RANK[o.level];
  const emit = (level: LogLevel) => (event: string, fields: LogFields = {}) => {
    if (RANK[level] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error"), enabled: (level) => RANK[level] >= min };
}

/** A logger that writes nothing (tests that do not read the log). */
export const SILENT_LOGGER: Logger = createLogger({ level: "error", format: "json", write: () => {} });
