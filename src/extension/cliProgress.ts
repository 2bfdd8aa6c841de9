/**
 * Progress of the CLI's long steps on stderr (Score-CAM's masked passes, --metrics, layers --recommend, scan):
 * whatever reports through the engine's `onProgress(done, total)`.
 *
 * - Nothing for a step that ends within `delayMs` (1 s): quick runs stay silent.
 * - On a terminal (stderr is a TTY): one line redrawn in place with `\r`, a bar, the count, the elapsed time and
 *   the time left; the line is finished with a newline when the step ends.
 * - Otherwise (a pipe, a file, CI logs): plain lines, one when the step passes the delay and then one every
 *   `lineEveryFraction` (10%) of the work or every `lineEveryMs` (2 s), whichever comes first, and a last line
 *   when the step ends, if any was printed.
 * - Disabled (--quiet, or --json - so that stdout is the JSON and stderr carries errors only): nothing at all.
 *
 * The time left is the elapsed time scaled by the work left (done / total at a constant rate): the steps
 * measured here are batches of equal cost.
 */

import { formatDuration } from '../shared/format';

/** The part of a stream this needs (process.stderr, or a fake one in tests). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliProgressOptions {
  stream: ProgressStream;
  /** False: print nothing (the callbacks still work). */
  enabled: boolean;
  /** A step shorter than this prints nothing (default 1000 ms). */
  delayMs?: number;
  /** Plain lines: at most this long apart while the step runs (default 2000 ms). */
  lineEveryMs?: number;
  /** Plain lines: one for every this much of the work done (default 0.1). */
  lineEveryFraction?: number;
  /** Redraws of the terminal line at most this often (default 100 ms). */
  redrawMs?: number;
  /** Clock (ms); tests drive it by hand. */
  now?: () => number;
}

interface Step {
  what: string;
  unit: string;
  t0: number;
  shown: boolean;
  lastLine: number;
  lastFraction: number;
  lastDraw: number;
  done: number;
  total: number;
  ended: boolean;
}

export class CliProgress {
  private readonly opts: Required<Omit<CliProgressOptions, 'stream' | 'enabled' | 'now'>>;
  private readonly now: () => number;
  private step?: Step;
  /** Characters of the terminal line drawn last (to blank it out when the next one is shorter). */
  private drawn = 0;

  constructor(private readonly o: CliProgressOptions) {
    this.opts = { delayMs: o.delayMs ?? 1000, lineEveryMs: o.lineEveryMs ?? 2000, lineEveryFraction: o.lineEveryFraction ?? 0.1, redrawMs: o.redrawMs ?? 100 };
    this.now = o.now ?? (() => performance.now());
  }

  get enabled(): boolean {
    return this.o.enabled;
  }

  private get tty(): boolean {
    return this.o.stream.isTTY === true;
  }

  /**
   * A progress callback for one step, named `what` ("Score-CAM") and counted in `unit` ("channels"). The clock
   * starts now; a new step ends the previous one.
   */
  task(what: string, unit: string): (done: number, total: number) => void {
    this.end();
    const t0 = this.now();
    const step: Step = { what, unit, t0, shown: false, lastLine: t0, lastFraction: 0, lastDraw: -Infinity, done: 0, total: 0, ended: false };
    this.step = step;
    return (done, total) => this.update(step, done, total);
  }

  /** A line of its own (an estimate, a note), above a bar that is being drawn. */
  note(text: string): void {
    if (!this.o.enabled) return;
    this.clearLine();
    this.o.stream.write(`${text}\n`);
    const s = this.step;
    if (s && !s.ended && s.shown && this.tty) this.draw(s);
  }

  /** Ends the current step: finishes its line (terminal) or prints its last line (plain) if it was shown. */
  end(): void {
    const s = this.step;
    if (!s || s.ended) return;
    s.ended = true;
    if (!this.o.enabled || !s.shown) return;
    if (this.tty) {
      this.draw(s, true);
      this.o.stream.write('\n');
      this.drawn = 0;
    } else {
      this.o.stream.write(`${this.describe(s, true)}\n`);
    }
  }

  /** Leaves the current step without its last line (it failed or was cancelled): a bar's line is only finished. */
  stop(): void {
    const s = this.step;
    if (!s || s.ended) return;
    s.ended = true;
    if (this.o.enabled && s.shown && this.tty) {
      this.o.stream.write('\n');
      this.drawn = 0;
    }
  }

  private update(s: Step, done: number, total: number): void {
    if (s.ended || s !== this.step) return;
    s.done = done;
    s.total = total;
    if (!this.o.enabled) return;
    const t = this.now();
    const finished = total > 0 && done >= total;
    if (!s.shown && t - s.t0 < this.opts.delayMs) {
      if (finished) s.ended = true; // quick: nothing printed, nothing to finish
      return;
    }
    if (finished) {
      s.shown = true;
      this.end();
      return;
    }
    const first = !s.shown;
    s.shown = true;
    if (this.tty) {
      if (first || t - s.lastDraw >= this.opts.redrawMs) this.draw(s);
      return;
    }
    const fraction = total > 0 ? done / total : 0;
    // (The epsilon: 0.3 - 0.2 < 0.1 in floating point.)
    if (first || fraction - s.lastFraction >= this.opts.lineEveryFraction - 1e-9 || t - s.lastLine >= this.opts.lineEveryMs) {
      s.lastLine = t;
      s.lastFraction = fraction;
      this.o.stream.write(`${this.describe(s, false)}\n`);
    }
  }

  /** "Score-CAM: 96/250 channels (38%), 3.1 s, about 5.0 s left" or, at the end, "… done in 8.1 s". */
  private describe(s: Step, final: boolean): string {
    const elapsed = this.now() - s.t0;
    const pct = s.total > 0 ? Math.floor((100 * s.done) / s.total) : 0;
    const head = `${s.what}: ${s.done}/${s.total} ${s.unit} (${pct}%)`;
    if (final) return `${head}, done in ${formatDuration(elapsed)}`;
    const left = s.done > 0 ? `, about ${formatDuration((elapsed * (s.total - s.done)) / s.done)} left` : '';
    return `${head}, ${formatDuration(elapsed)}${left}`;
  }

  private draw(s: Step, final = false): void {
    s.lastDraw = this.now();
    const width = 24;
    const filled = s.total > 0 ? Math.round((width * Math.min(s.done, s.total)) / s.total) : 0;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    let text = `${bar} ${this.describe(s, final)}`;
    const cols = this.o.stream.columns;
    if (cols && text.length > cols - 1) text = text.slice(0, Math.max(0, cols - 1));
    const pad = Math.max(0, this.drawn - text.length);
    this.o.stream.write(`\r${text}${' '.repeat(pad)}`);
    this.drawn = text.length;
  }

  private clearLine(): void {
    if (!this.tty || this.drawn === 0) return;
    this.o.stream.write(`\r${' '.repeat(this.drawn)}\r`);
    this.drawn = 0;
  }
}
