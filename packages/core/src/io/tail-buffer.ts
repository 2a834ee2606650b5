/**
 * The last `limit` bytes of a stream of chunks, and how many came before them: enough to read a
 * runtime's final error message, or a run's output up to a bound, without holding all of it.
 * The one bounded buffer of contexec (runContainer's `maxBuffer`, the backends' stderr tails).
 */
export class TailBuffer {
  readonly limit: number;
  #chunks: Buffer[] = [];
  #size = 0;
  #total = 0;

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new RangeError(`limit must be a byte count, not ${limit}`);
    this.limit = limit;
  }

  /** Adds a chunk; a string is taken as UTF-8. */
  push(chunk: Buffer | Uint8Array | string): void {
    const buf =
      typeof chunk === "string" ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    if (buf.length === 0) return;
    this.#total += buf.length;
    this.#chunks.push(buf);
    this.#size += buf.length;
    // Whole chunks go once the rest still holds `limit` bytes; the cut inside a chunk is made on read.
    while (this.#chunks.length > 1 && this.#size - (this.#chunks[0] as Buffer).length >= this.limit) {
      this.#size -= (this.#chunks.shift() as Buffer).length;
    }
  }

  /** Every byte pushed so far. */
  get totalBytes(): number {
    return this.#total;
  }

  /** Bytes pushed but no longer kept (cut from the start). */
  get droppedBytes(): number {
    return this.#total - Math.min(this.#total, this.limit);
  }

  /** The kept bytes: the last `limit` bytes pushed (all of them when fewer). */
  bytes(): Buffer {
    const all =
      this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = all.length > 0 ? [all] : [];
    return all.subarray(Math.max(0, all.length - this.limit));
  }

  /** The kept bytes as UTF-8 text (a character cut at the start shows as U+FFFD). */
  text(): string {
    return this.bytes().toString("utf8");
  }
}
