/**
 * A progress bar for long commands (export, import), drawn with cli-progress on stderr when stderr is
 * a terminal, and nothing at all otherwise (a pipe, a file, a cron job's log). cli-progress redraws
 * on a timer: a loop of synchronous database reads must let the event loop turn now and then
 * (`tick`), or the bar would stand still.
 */
import { Presets, SingleBar } from "cli-progress";

export interface Progress {
  /** `n` more items done. */
  advance(n?: number): void;
  /** Lets the bar redraw (one turn of the event loop); cheap, call it once per page. */
  tick(): Promise<void>;
  /** Draws the final state and ends the bar's line. */
  stop(): void;
}

const SILENT: Progress = { advance: () => {}, tick: async () => {}, stop: () => {} };

/**
 * A bar for `total` items labelled `label`, on `stream` if it is a terminal; otherwise one that does
 * nothing. Also silent when `stream` shares the terminal with the command's data on stdout (an
 * export printed to the screen): the bar would be drawn over it.
 */
export function progressBar(label: string, total: number, opts: { stream?: NodeJS.WriteStream; dataOnTerminal?: boolean } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (!stream.isTTY || opts.dataOnTerminal || total <= 0) return SILENT;
  const bar = new SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% | {value}/{total} | {duration_formatted} elapsed, ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
      fps: 10,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  let done = 0;
  return {
    advance: (n = 1) => bar.update((done += n)),
    tick: () => new Promise((r) => setImmediate(r)),
    stop: () => bar.stop(),
  };
}
