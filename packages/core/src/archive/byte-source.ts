import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { ImageArchiveError } from "../errors.js";

/** Random or sequential access to an archive's bytes, as the tar header reader needs them. */
export interface ByteSource {
  /**
   * Reads exactly `length` bytes at the current position; null when the source ends right
   * there; throws {@link ImageArchiveError} when it ends inside. The buffer may be reused by the
   * next read: copy what must be kept.
   */
  readExact(length: number): Promise<Buffer | null>;
  /** Moves forward `length` bytes without returning them; throws when the source ends first. */
  skip(length: number): Promise<void>;
  readonly position: number;
  close(): Promise<void>;
}

/** A {@link ByteSource} that can also be read synchronously (a file): no promise per read. */
export interface SyncByteSource {
  /** As readExact, synchronously. */
  readExactSync(length: number): Buffer | null;
  /** As skip, synchronously. */
  skipSync(length: number): void;
  readonly position: number;
  closeSync(): void;
}

const READ_MIN = 16 * 1024;
const READ_MAX = 1024 * 1024;
// Synchronous reads block the event loop; give it a turn this often.
const YIELD_EVERY_MS = 5;

/**
 * A file, or the range `start`..`end` of one, read for tar headers with a read-ahead buffer: a
 * read right after skipping a large member is small (16 KiB), and reads double while they run on
 * (up to 1 MiB), so runs of small entries cost few reads and large members are skipped by moving
 * the position, never read. The reads are synchronous (from the page cache, mostly): for
 * thousands of entries an asynchronous read per refill cost 2-3 times the CPU in thread-pool
 * hand-offs. Through the asynchronous methods the event loop gets a turn every few milliseconds;
 * a caller of the synchronous ones gives it turns itself. Reading past `end` (a file or range cut
 * short) throws {@link ImageArchiveError}.
 */
export async function fileByteSource(
  path: string,
  range: { start?: number; end?: number } = {},
): Promise<ByteSource & SyncByteSource & { size: number }> {
  return fileByteSourceSync(path, range);
}

/** {@link fileByteSource}, opened synchronously. */
export function fileByteSourceSync(
  path: string,
  range: { start?: number; end?: number } = {},
): ByteSource & SyncByteSource & { size: number } {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  const start = range.start ?? 0;
  const end = Math.min(range.end ?? size, size);
  let position = start;
  let buffer = Buffer.alloc(0);
  let bufferStart = start;
  let lastYield = performance.now();
  let readSize = READ_MIN;
  let spare = Buffer.alloc(0);
  const cutShort = () => new ImageArchiveError("the archive is truncated: it ends inside a tar entry");
  const readExactSync = (length: number): Buffer | null => {
    if (position >= end) return null;
    if (position + length > end) throw cutShort();
    const at = position - bufferStart;
    if (at < 0 || at + length > buffer.length) {
      // After a seek past a large file read little; while reading runs on, read more each time.
      readSize = position === bufferStart + buffer.length ? Math.min(readSize * 2, READ_MAX) : READ_MIN;
      const want = Math.min(Math.max(length, readSize), end - position);
      // One buffer serves every refill: the header reader is done with a block before it asks
      // for the next one, so the bytes can be overwritten.
      if (spare.length < want) spare = Buffer.allocUnsafe(Math.max(want, READ_MAX));
      const fresh = spare;
      let got = 0;
      while (got < want) {
        const bytesRead = readSync(fd, fresh, got, want - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < length) throw cutShort();
      buffer = fresh.subarray(0, got);
      bufferStart = position;
    }
    const from = position - bufferStart;
    position += length;
    return buffer.subarray(from, from + length);
  };
  const skipSync = (length: number): void => {
    if (position + length > end) throw cutShort();
    position += length;
  };
  return {
    size,
    get position() {
      return position;
    },
    async readExact(length) {
      const at = position - bufferStart;
      const refill = position < end && (at < 0 || at + length > buffer.length);
      if (refill && performance.now() - lastYield > YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
      return readExactSync(length);
    },
    readExactSync,
    async skip(length) {
      skipSync(length);
    },
    skipSync,
    close: async () => closeSync(fd),
    closeSync: () => closeSync(fd),
  };
}

/** Bytes held in memory, read in place (the reads are views of `data`). */
export function bufferByteSource(data: Buffer): ByteSource & SyncByteSource {
  let position = 0;
  const cutShort = () => new ImageArchiveError("the archive is truncated: it ends inside a tar entry");
  const readExactSync = (length: number): Buffer | null => {
    if (position >= data.length) return null;
    if (position + length > data.length) throw cutShort();
    position += length;
    return data.subarray(position - length, position);
  };
  const skipSync = (length: number): void => {
    if (position + length > data.length) throw cutShort();
    position += length;
  };
  return {
    get position() {
      return position;
    },
    readExact: async (length) => readExactSync(length),
    readExactSync,
    skip: async (length) => skipSync(length),
    skipSync,
    close: async () => {},
    closeSync: () => {},
  };
}

/**
 * A {@link ByteSource} over a stream, consuming it in order. `onBytes` sees every chunk (to hash
 * or count); skipping still reads the bytes. close() stops reading (and destroys a Node stream):
 * a bad or endless stream is never read to its end.
 */
export function streamByteSource(
  stream: AsyncIterable<Buffer | string>,
  onBytes?: (chunk: Buffer) => void,
): ByteSource {
  const iterator = stream[Symbol.asyncIterator]();
  let pending: Buffer = Buffer.alloc(0);
  let position = 0;
  let ended = false;
  const fill = async (want: number): Promise<boolean> => {
    const parts = [pending];
    let have = pending.length;
    while (have < want && !ended) {
      const { value, done } = await iterator.next();
      if (done) {
        ended = true;
        break;
      }
      const chunk = typeof value === "string" ? Buffer.from(value) : value;
      onBytes?.(chunk);
      parts.push(chunk);
      have += chunk.length;
    }
    pending = parts.length === 1 ? pending : Buffer.concat(parts, have);
    return have >= want;
  };
  return {
    get position() {
      return position;
    },
    async readExact(length) {
      if (!(await fill(length))) {
        if (pending.length === 0) return null;
        throw new ImageArchiveError("the archive is truncated");
      }
      const out = pending.subarray(0, length);
      pending = pending.subarray(length);
      position += length;
      return out;
    },
    async skip(length) {
      let left = length;
      while (left > 0) {
        if (pending.length === 0 && !(await fill(1))) throw new ImageArchiveError("the archive is truncated");
        const n = Math.min(left, pending.length);
        pending = pending.subarray(n);
        left -= n;
        position += n;
      }
    },
    async close() {
      if (!ended) await iterator.return?.();
    },
  };
}
