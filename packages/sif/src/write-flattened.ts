import { createHash } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { AbortedError, ContainerError, ImageArchiveError } from "@contexec/core";
import * as tar from "tar-stream";
import {
  type DataCopy,
  type EntryKind,
  entryPath,
  type FlatEntry,
  type FlattenPlan,
  OPERATION,
} from "./flatten-layers.js";
import type { LayerSource } from "./layer-source.js";

/*
 * Pass 2 of the flattening (see flatten-layers.ts): writes the plan as one tar through
 * tar-stream's pack. Folders first (sorted, so parents come before children), then symlinks,
 * fifos and empty files, all from memory; then each layer that holds file data, once, copying
 * only its winning files; hard links last, so their targets always precede them.
 */

/** What tar-stream's pack takes for one entry. */
export type PackHeader = Partial<tar.Header> & { name: string };

export interface WriteFlattenedOptions {
  signal?: AbortSignal | undefined;
  /** Bytes of the archive read so far (stored, possibly compressed, bytes). */
  onBytes?: ((n: number) => void) | undefined;
  /** Check each layer's uncompressed bytes against its diff_id (default true). */
  verifyDigests?: boolean | undefined;
}

/**
 * Pass 2: writes the plan into `pack` and finalizes it. Layers holding no data to copy are not
 * read again. Rejects on a stream error, a digest mismatch, abort, or a layer that no longer
 * matches its plan; the caller destroys `pack` then.
 */
export async function writeFlattened(
  plan: FlattenPlan,
  layers: readonly LayerSource[],
  pack: tar.Pack,
  options: WriteFlattenedOptions = {},
): Promise<void> {
  const { signal, onBytes } = options;
  const verify = options.verifyDigests ?? true;
  for (const entry of plan.memoryEntries) await packEntry(pack, entry);
  for (let index = 0; index < layers.length; index++) {
    const layer = layers[index] as LayerSource;
    const copies = plan.dataCopies.get(index);
    const checkedBySource = layer.verifiedWhileListing === true;
    const digest =
      verify && !checkedBySource && layer.diffId?.startsWith("sha256:") ? layer.diffId : undefined;
    // A layer the planning pass read whole and checked is read again only to copy files.
    if (!copies && !digest) {
      onBytes?.(layer.storedSize);
      continue;
    }
    if (layer.openRandomAccess) await copyByOffset(layer, copies ?? new Map(), pack, digest, signal, onBytes);
    else await copyLayer(layer, copies ?? new Map(), pack, digest, checkedBySource, signal, onBytes);
  }
  for (const link of plan.hardLinks) await packEntry(pack, link);
  pack.finalize();
}

// Reads of an uncompressed layer: large, with the next one already in flight.
const SEGMENT = 2 * 1024 * 1024;
// Without a digest to check, gaps up to this size are read through rather than seeked over.
const GAP = 256 * 1024;

/**
 * Copies the winning files of an uncompressed layer by the data offsets the plan noted. With a
 * digest to check, the whole layer is read in order (and hashed); otherwise only the byte ranges
 * the copies need. Either way in large reads, the next one started before the current one is
 * written out.
 */
async function copyByOffset(
  layer: LayerSource,
  copies: Map<number, DataCopy>,
  pack: tar.Pack,
  digest: string | undefined,
  signal: AbortSignal | undefined,
  onBytes: ((n: number) => void) | undefined,
): Promise<void> {
  const access = await (layer.openRandomAccess as NonNullable<LayerSource["openRandomAccess"]>)();
  const hash = digest ? createHash("sha256") : undefined;
  try {
    const sorted = [...copies.values()].sort((a, b) => a.dataOffset - b.dataOffset);
    const segments = digest ? wholeRange(access.start, access.end) : neededRanges(sorted);
    let index = 0;
    let sink: EntrySink | null = null;
    let entryDone: Promise<void> = Promise.resolve();
    const readSegment = (segment: [number, number] | undefined) => {
      if (!segment) return null;
      const reading = access.read(segment[0], segment[1] - segment[0]);
      reading.catch(() => {}); // awaited below; an abort may leave it behind
      return reading;
    };
    let next = readSegment(segments[0]);
    for (let s = 0; s < segments.length; s++) {
      if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
      const [from, to] = segments[s] as [number, number];
      const buf = await (next as Promise<Buffer>);
      next = readSegment(segments[s + 1]);
      while (index < sorted.length) {
        const copy = sorted[index] as DataCopy;
        const start = copy.dataOffset;
        const end = start + copy.size;
        if (start >= to) break;
        if (!sink) {
          if (start < from)
            throw new ImageArchiveError(`${layer.name}: data of /${copy.sourcePath} was skipped`);
          let settle: (err?: Error | null) => void = () => {};
          entryDone = new Promise<void>((resolve, reject) => {
            settle = (err) => (err ? reject(new OutputClosedError(err)) : resolve());
          });
          entryDone.catch(() => {}); // awaited below
          sink = pack.entry(packHeader(copy.out), (err) => settle(err)) as unknown as EntrySink;
        }
        const piece = buf.subarray(Math.max(start, from) - from, Math.min(end, to) - from);
        if (!sink.write(piece)) await waitForDrain(sink, entryDone);
        if (end > to) break;
        sink.end();
        await entryDone;
        sink = null;
        index++;
      }
      // Hashed after the pieces are handed on, so sqfstar works on them meanwhile.
      hash?.update(buf);
      onBytes?.(to - from);
    }
    if (index < sorted.length) {
      throw new ImageArchiveError(`${layer.name} ended before all of its planned entries were read`);
    }
    if (digest && hash) {
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== digest) {
        throw new ImageArchiveError(
          `${layer.name} does not match its diff_id ${digest} (content is ${actual})`,
          {
            entry: layer.name.replace(/^layer /, ""),
          },
        );
      }
    }
    if (!digest) onBytes?.(layer.storedSize - segments.reduce((n, [a, b]) => n + (b - a), 0));
  } finally {
    await access.close();
  }
}

/** What tar-stream's pack.entry returns, as used here. */
interface EntrySink {
  write(chunk: Buffer): boolean;
  end(): void;
  once(event: "drain", listener: () => void): unknown;
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

/** Waits for a tar-stream entry sink to drain, or for its entry to fail. */
function waitForDrain(sink: EntrySink, done: Promise<void>): Promise<void> {
  return Promise.race([new Promise<void>((resolve) => sink.once("drain", () => resolve())), done]);
}

async function copyLayer(
  layer: LayerSource,
  copies: Map<number, DataCopy>,
  pack: tar.Pack,
  digest: string | undefined,
  readToEnd: boolean,
  signal: AbortSignal | undefined,
  onBytes: ((n: number) => void) | undefined,
): Promise<void> {
  const opened = layer.open(onBytes);
  const hash = digest ? createHash("sha256") : undefined;
  // Old v7 tars (no ustar magic) are still tars.
  const extract = tar.extract({ allowUnknownFormat: true } as Parameters<typeof tar.extract>[0]);
  const onAbort = () => {
    opened.destroy();
    extract.destroy(new AbortedError(OPERATION, { cause: signal?.reason }));
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (hash) opened.stream.on("data", (chunk: Buffer) => hash.update(chunk));
    opened.stream.on("error", (err) => extract.destroy(err));
    opened.stream.pipe(extract as unknown as NodeJS.WritableStream);
    let ordinal = 0;
    let left = copies.size;
    for await (const entry of extract) {
      if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
      const copy = copies.get(ordinal++);
      if (!copy) {
        entry.resume();
        continue;
      }
      const got = entryPath(entry.header.name, layer.name);
      if (got !== copy.sourcePath || entry.header.size !== copy.size) {
        throw new ImageArchiveError(
          `${layer.name} changed while it was converted, or its tar cannot be read consistently: expected /${copy.sourcePath} (${copy.size} bytes) at entry ${ordinal - 1}, found /${got} (${entry.header.size} bytes)`,
        );
      }
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(packHeader(copy.out), (err) =>
          err ? reject(new OutputClosedError(err)) : resolve(),
        );
        entry.on("error", reject);
        // A failing source (a registry blob that does not match its digest) destroys the entry,
        // and the pipe destroys the sink with the same error; the callback and `entry` report it,
        // and a sink with no listener would make it an uncaught exception.
        (sink as unknown as NodeJS.EventEmitter).on("error", () => {});
        entry.pipe(sink);
      });
      left--;
      // Nothing more to copy or hash: the rest of the layer is not read (a decompressing child
      // is killed below rather than waited for).
      if (left === 0 && !hash && !readToEnd) break;
    }
    if (left > 0) {
      throw new ImageArchiveError(`${layer.name} ended before all of its planned entries were read`);
    }
    if (hash || readToEnd) {
      // The digest covers the whole tar, end-of-archive padding included.
      if (!opened.stream.readableEnded)
        await new Promise<void>((resolve, reject) => {
          opened.stream.on("end", resolve);
          opened.stream.on("error", reject);
          opened.stream.resume();
        });
      await opened.finished;
    }
    if (hash) {
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== digest) {
        throw new ImageArchiveError(
          `${layer.name} does not match its diff_id ${digest} (content is ${actual})`,
          {
            entry: layer.name.replace(/^layer /, ""),
          },
        );
      }
    }
  } catch (caught) {
    if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
    const err =
      opened.explain && !(caught instanceof OutputClosedError) ? await opened.explain(caught) : caught;
    // Typed errors pass as they are (a registry's digest mismatch under a layer stream, too).
    if (err instanceof ContainerError || err instanceof OutputClosedError) throw err;
    const e = err as Error;
    throw new ImageArchiveError(`${layer.name} cannot be read: ${e.message}`, { cause: err });
  } finally {
    signal?.removeEventListener("abort", onAbort);
    opened.destroy();
    extract.destroy();
  }
}

/** The output tar was closed under the writer: a consequence (sqfstar stopped), not a cause. */
export class OutputClosedError extends Error {
  constructor(cause: unknown) {
    super(`the output tar was closed: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

// Entries without data are queued by tar-stream without backpressure; past this many buffered
// bytes the writer waits for the consumer (sqfstar) to catch up.
const PACK_BUFFER_LIMIT = 4 * 1024 * 1024;

async function packEntry(pack: tar.Pack, entry: FlatEntry): Promise<void> {
  const state = (pack as unknown as { _readableState?: { buffered?: number } })._readableState;
  while ((state?.buffered ?? 0) > PACK_BUFFER_LIMIT && !pack.destroyed) await delay(2);
  await new Promise<void>((resolve, reject) => {
    const sink = pack.entry(packHeader(entry), (err) =>
      err ? reject(new OutputClosedError(err)) : resolve(),
    );
    (sink as unknown as { end(): void }).end();
  });
}

const TYPE_BITS: Record<EntryKind, number> = {
  file: 0o100000,
  link: 0o100000,
  symlink: 0o120000,
  directory: 0o040000,
  fifo: 0o010000,
};
const USTAR_ID_MAX = 0o777777;
const TAR_TIME_MAX = 2 ** 31 - 1;

/** The tar-stream header of an output entry. */
export function packHeader(e: FlatEntry): PackHeader {
  const header: PackHeader = {
    name: e.path,
    type: e.kind,
    // tar-stream turns a zero mode into 0644/0755: the file-type bits keep a real 0000 intact.
    mode: (e.mode & 0o7777) | TYPE_BITS[e.kind],
    uid: e.uid,
    gid: e.gid,
    mtime: new Date(Math.min(Math.max(e.mtime, 0), TAR_TIME_MAX) * 1000),
    size: e.kind === "file" ? e.size : 0,
  };
  if (e.kind === "symlink" || e.kind === "link") header.linkname = e.linkname;
  // ustar holds ids up to 0o777777; larger ones (user-namespace builds) go in pax records.
  if (e.uid > USTAR_ID_MAX || e.gid > USTAR_ID_MAX) {
    (header as PackHeader & { pax: Record<string, string> }).pax = { uid: String(e.uid), gid: String(e.gid) };
  }
  return header;
}
