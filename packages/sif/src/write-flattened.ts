import { createHash, type Hash } from "node:crypto";
import type { Writable } from "node:stream";
import { AbortedError, entryPath, ImageArchiveError, readTarHeaders, streamByteSource } from "@contexec/core";
import { type DataCopy, type FlattenPlan, OPERATION } from "./flatten-layers.js";
import type { LayerSource } from "./layer-source.js";
import { OutputClosedError, TarWriter } from "./tar-writer.js";

/*
 * Pass 2 of the flattening (see flatten-layers.ts): writes the plan as one tar. Folders first
 * (sorted, so parents come before children), then symlinks, fifos and empty files, all from
 * memory; then each layer that holds file data, once, copying only its winning files' bytes by
 * the data offsets the plan noted; hard links last, so their targets always precede them.
 */

export interface WriteFlattenedOptions {
  signal?: AbortSignal | undefined;
  /** Bytes of the archive read so far (stored, possibly compressed, bytes). */
  onBytes?: ((n: number) => void) | undefined;
  /** Check each layer's uncompressed bytes against its diff_id (default true). */
  verifyDigests?: boolean | undefined;
}

/**
 * Pass 2: writes the plan as a tar into `out` and ends it. Layers holding no data to copy are not
 * read again. Rejects on a read error, a digest mismatch, abort, a layer that no longer matches
 * its plan, or `out` failing ({@link OutputClosedError}); the caller disposes of `out` then.
 */
export async function writeFlattened(
  plan: FlattenPlan,
  layers: readonly LayerSource[],
  out: Writable,
  options: WriteFlattenedOptions = {},
): Promise<void> {
  const { signal, onBytes } = options;
  const verify = options.verifyDigests ?? true;
  const writer = new TarWriter(out);
  for (const entry of plan.memoryEntries) {
    throwIfStopped(signal);
    await writer.entry(entry);
  }
  for (let index = 0; index < layers.length; index++) {
    const layer = layers[index] as LayerSource;
    const copies = plan.dataCopies.get(index);
    const digest = verify && layer.diffId?.startsWith("sha256:") ? layer.diffId : undefined;
    if (!copies && !digest) {
      onBytes?.(layer.storedSize);
      continue;
    }
    const sorted = [...(copies?.values() ?? [])].sort((a, b) => a.dataOffset - b.dataOffset);
    const copier = new RangeCopier(layer.name, sorted, writer);
    if (layer.openRandomAccess) await copyByOffset(layer, copier, digest, signal, onBytes);
    else await copyStreamed(layer, copies ?? new Map(), copier, digest, signal, onBytes);
  }
  for (const link of plan.hardLinks) {
    throwIfStopped(signal);
    await writer.entry(link);
  }
  await writer.finish();
}

function throwIfStopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
}

/**
 * Turns the bytes of one layer, met in order of position (with gaps where nothing is needed),
 * into the output entries of the files the plan copies from it: a header where a file's data
 * starts, then its bytes.
 */
class RangeCopier {
  readonly #what: string;
  readonly #sorted: readonly DataCopy[];
  readonly #writer: TarWriter;
  #index = 0;
  #inside = false;

  constructor(what: string, sorted: readonly DataCopy[], writer: TarWriter) {
    this.#what = what;
    this.#sorted = sorted;
    this.#writer = writer;
  }

  /** The copies, in order of their data. */
  get copies(): readonly DataCopy[] {
    return this.#sorted;
  }

  get left(): number {
    return this.#sorted.length - this.#index;
  }

  /** The layer's bytes `chunk`, starting at `from`. */
  async feed(chunk: Buffer, from: number): Promise<void> {
    const to = from + chunk.length;
    while (this.#index < this.#sorted.length) {
      const copy = this.#sorted[this.#index] as DataCopy;
      const start = copy.dataOffset;
      const end = start + copy.size;
      if (start >= to) return;
      if (!this.#inside) {
        if (start < from)
          throw new ImageArchiveError(`${this.#what}: data of /${copy.sourcePath} was skipped`);
        await this.#writer.entry(copy.out);
        this.#inside = true;
      }
      await this.#writer.data(chunk.subarray(Math.max(start, from) - from, Math.min(end, to) - from));
      if (end > to) return;
      this.#inside = false;
      this.#index++;
    }
  }
}

// Reads of an uncompressed layer: large, into two reused buffers, the next read in flight.
const SEGMENT = 2 * 1024 * 1024;
// Without a digest to check, gaps up to this size are read through rather than seeked over.
const GAP = 256 * 1024;

/**
 * Copies the winning files of a layer read by offset. With a digest to check, the whole layer is
 * read in order (and hashed); otherwise only the byte ranges the copies need.
 */
async function copyByOffset(
  layer: LayerSource,
  copier: RangeCopier,
  digest: string | undefined,
  signal: AbortSignal | undefined,
  onBytes: ((n: number) => void) | undefined,
): Promise<void> {
  const access = await (layer.openRandomAccess as NonNullable<LayerSource["openRandomAccess"]>)();
  const hash = digest ? createHash("sha256") : undefined;
  try {
    const segments = digest ? wholeRange(access.start, access.end) : neededRanges(copier.copies);
    const buffers = [Buffer.allocUnsafe(SEGMENT), Buffer.allocUnsafe(SEGMENT)];
    const readSegment = (s: number) => {
      const segment = segments[s];
      if (!segment) return null;
      const reading = access.read(segment[0], segment[1] - segment[0], buffers[s % 2]);
      reading.catch(() => {}); // awaited below; an abort may leave it behind
      return reading;
    };
    let next = readSegment(0);
    for (let s = 0; s < segments.length; s++) {
      throwIfStopped(signal);
      const [from, to] = segments[s] as [number, number];
      const buf = await (next as Promise<Buffer>);
      // The other buffer is free: this loop is done with the segment before last.
      next = readSegment(s + 1);
      await copier.feed(buf, from);
      // Hashed after the pieces are handed on, so sqfstar works on them meanwhile.
      hash?.update(buf);
      onBytes?.(to - from);
    }
    if (copier.left > 0) {
      throw new ImageArchiveError(`${layer.name} ended before all of its planned entries were read`);
    }
    if (hash) checkDigest(layer, digest as string, hash);
    else onBytes?.(layer.storedSize - segments.reduce((n, [a, b]) => n + (b - a), 0));
  } finally {
    await access.close();
  }
}

function wholeRange(start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  for (let p = start; p < end; p += SEGMENT) out.push([p, Math.min(end, p + SEGMENT)]);
  return out;
}

/** The byte ranges the copies need, close ones merged, cut into reads of at most SEGMENT. */
function neededRanges(sorted: readonly DataCopy[]): [number, number][] {
  const merged: [number, number][] = [];
  for (const c of sorted) {
    const last = merged[merged.length - 1];
    const end = c.dataOffset + c.size;
    if (last && c.dataOffset - last[1] <= GAP) last[1] = Math.max(last[1], end);
    else merged.push([c.dataOffset, end]);
  }
  return merged.flatMap(([a, b]) => wholeRange(a, b));
}

/**
 * Copies the winning files of a layer that can only be streamed (a compressed one): its tar is
 * read again, the copies taken by offset as the bytes pass, and every copied entry's name and
 * size checked against the plan (a layer that reads differently twice is refused).
 */
async function copyStreamed(
  layer: LayerSource,
  copies: Map<number, DataCopy>,
  copier: RangeCopier,
  digest: string | undefined,
  signal: AbortSignal | undefined,
  onBytes: ((n: number) => void) | undefined,
): Promise<void> {
  const opened = layer.open(onBytes);
  const hash = digest ? createHash("sha256") : undefined;
  // What failed under the tar reader, which would report any failure as a truncated tar.
  const failure: { error?: unknown } = {};
  const bytes = tapped(opened.stream, copier, hash, signal, failure);
  try {
    let left = copies.size;
    // The reader skips an entry's data before it yields the entry: by then its bytes were copied.
    for await (const header of readTarHeaders(streamByteSource(bytes), { what: layer.name })) {
      const copy = copies.get(header.ordinal);
      if (!copy) continue;
      const got = entryPath(header.name, layer.name);
      if (got !== copy.sourcePath || header.size !== copy.size) {
        throw new ImageArchiveError(
          `${layer.name} changed while it was converted, or its tar cannot be read consistently: expected /${copy.sourcePath} (${copy.size} bytes) at entry ${header.ordinal}, found /${got} (${header.size} bytes)`,
        );
      }
      left--;
      // Nothing more to copy or hash: the rest of the layer is not read (a decompressing child
      // is killed below rather than waited for).
      if (left === 0 && !hash) break;
    }
    if (left > 0 || copier.left > 0) {
      throw new ImageArchiveError(`${layer.name} ended before all of its planned entries were read`);
    }
    if (hash) {
      // The digest covers the whole tar, end-of-archive padding included.
      while (!(await bytes.next()).done) {}
      await opened.finished;
      checkDigest(layer, digest as string, hash);
    }
  } catch (caught) {
    if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
    const err = failure.error ?? caught;
    if (err instanceof ImageArchiveError || err instanceof AbortedError || err instanceof OutputClosedError)
      throw err;
    const e = err as Error;
    throw new ImageArchiveError(`${layer.name} cannot be read: ${e.message}`, { cause: err });
  } finally {
    opened.destroy();
  }
}

/**
 * The stream's chunks, each fed to the copier (and the hash) before it is passed on. A failure
 * here (the stream's, the output's) is kept in `failure` as well as thrown.
 */
async function* tapped(
  stream: AsyncIterable<Buffer>,
  copier: RangeCopier,
  hash: Hash | undefined,
  signal: AbortSignal | undefined,
  failure: { error?: unknown },
): AsyncGenerator<Buffer> {
  let position = 0;
  try {
    for await (const chunk of stream) {
      throwIfStopped(signal);
      await copier.feed(chunk, position);
      position += chunk.length;
      hash?.update(chunk);
      yield chunk;
    }
  } catch (err) {
    failure.error ??= err;
    throw err;
  }
}

function checkDigest(layer: LayerSource, digest: string, hash: Hash): void {
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== digest) {
    throw new ImageArchiveError(`${layer.name} does not match its diff_id ${digest} (content is ${actual})`, {
      entry: layer.name.replace(/^layer /, ""),
    });
  }
}
