/** A measurement of a long copy or conversion. */
export interface ProgressSample {
  done: number;
  /** Undefined when the size is not known (a stream). */
  total: number | undefined;
  elapsedMs: number;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `53.6 MiB`: bytes in powers of 1024, three significant digits. */
export function formatBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${UNITS[u]}`;
}

/** `1m05s`, `42s`, `1h02m`. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Bytes, rate and ETA of a sample: `24.1 MiB / 53.6 MiB  12.3 MiB/s  ETA 3s`. */
export function describeProgress(p: ProgressSample): string {
  const rate = p.elapsedMs > 0 ? (p.done / p.elapsedMs) * 1000 : 0;
  const size =
    p.total !== undefined ? `${formatBytes(p.done)} / ${formatBytes(p.total)}` : formatBytes(p.done);
  const eta =
    p.total !== undefined && rate > 0 && p.done < p.total
      ? `  ETA ${formatSeconds((p.total - p.done) / rate)}`
      : "";
  return `${size}  ${formatBytes(Math.round(rate))}/s${eta}`;
}

/** One terminal line: `label [#####.....]  45%  24.1 MiB / 53.6 MiB  12.3 MiB/s  ETA 3s`, cut to `width`. */
export function formatProgressBar(label: string, p: ProgressSample, width: number): string {
  const fraction = p.total ? Math.min(1, p.done / p.total) : undefined;
  const tail = `${fraction !== undefined ? `${String(Math.floor(fraction * 100)).padStart(3)}%  ` : ""}${describeProgress(p)}`;
  const barWidth = Math.max(10, Math.min(30, width - label.length - tail.length - 6));
  const filled = fraction !== undefined ? Math.round(fraction * barWidth) : 0;
  const bar = fraction !== undefined ? `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}]` : "";
  const line = `${label} ${bar}${bar ? " " : ""}${tail}`;
  return line.length > width ? line.slice(0, Math.max(0, width)) : line;
}

/**
 * Shows progress on a stream: a bar redrawn in place (at most 10 times a second) on a terminal,
 * otherwise a plain line every 10% (or every 5 s when the size is unknown), so logs stay readable.
 */
export class ProgressReporter {
  readonly #out: NodeJS.WriteStream;
  readonly #label: string;
  readonly #tty: boolean;
  readonly #start = Date.now();
  #lastDraw = 0;
  #lastStep = -1;
  #drawn = false;

  constructor(out: NodeJS.WriteStream, label: string, options: { tty?: boolean } = {}) {
    this.#out = out;
    this.#label = label;
    this.#tty = options.tty ?? out.isTTY === true;
  }

  update(done: number, total: number | undefined): void {
    const now = Date.now();
    const sample = { done, total, elapsedMs: now - this.#start };
    if (this.#tty) {
      if (now - this.#lastDraw < 100 && done !== total) return;
      this.#lastDraw = now;
      this.#out.write(`\r${formatProgressBar(this.#label, sample, (this.#out.columns ?? 80) - 1)}\x1b[K`);
      this.#drawn = true;
      return;
    }
    const step = total ? Math.floor((done / total) * 10) : Math.floor(sample.elapsedMs / 5000);
    if (step === this.#lastStep) return;
    this.#lastStep = step;
    const pct = total ? `${Math.floor((done / total) * 100)}%  ` : "";
    this.#out.write(`${this.#label}: ${pct}${describeProgress(sample)}\n`);
  }

  /** Ends the bar's line (a terminal) so what follows starts on a line of its own. */
  finish(): void {
    if (this.#tty && this.#drawn) this.#out.write("\n");
    this.#drawn = false;
  }
}
