import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, Readable } from "node:stream";
import { type ArchiveLayer, type ByteSource, ImageArchiveError, streamByteSource } from "@contexec/core";
import { type OpenedLayer, openLayer } from "./open-layer.js";
import { readTarHeaders, type TarHeader } from "./tar-headers.js";

/**
 * One layer as the flattener sees it: its headers can be listed (the planning pass) and its
 * bytes streamed (the writing pass). Layers of an archive file are read by offset; an in-memory
 * layer serves tests and the generated Singularity metadata.
 */
export interface LayerSource {
  /** Names the layer in errors and messages: `layer <member>`. */
  name: string;
  /** The uncompressed layer's digest to check while streaming, when known. */
  diffId?: string | undefined;
  /** Bytes the layer takes in the archive (progress). */
  storedSize: number;
  /** Entry headers in order, data skipped. */
  readHeaders(): AsyncGenerator<TarHeader>;
  /**
   * The uncompressed tar bytes. Attach consumers synchronously: the stream starts flowing on the
   * next tick.
   */
  open(onRawBytes?: (n: number) => void): OpenedLayer;
  /**
   * Reads by offset, for layers stored uncompressed: the writing pass then copies the winning
   * files' bytes by the offsets the planning pass noted, without parsing the tar again.
   */
  openRandomAccess?(): Promise<RandomAccess>;
}

/** Positional reads over a layer's uncompressed tar, positions as in the headers' dataOffset. */
export interface RandomAccess {
  /** First and end position of the layer's bytes. */
  start: number;
  end: number;
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** A layer of an image archive file. */
export function archiveLayerSource(
  archivePath: string,
  layer: ArchiveLayer,
  signal?: AbortSignal,
): LayerSource {
  const name = `layer ${layer.member}`;
  return {
    name,
    diffId: layer.diffId,
    storedSize: layer.size,
    async *readHeaders() {
      if (layer.compression === "none") {
        const source = await bufferedFileSource(archivePath, layer.dataOffset, layer.dataOffset + layer.size);
        try {
          yield* readTarHeaders(source, name);
        } finally {
          await source.close();
        }
        return;
      }
      const opened = openLayer(archivePath, layer, { ...(signal && { signal }) });
      try {
        yield* readTarHeaders(streamByteSource(opened.stream), name);
      } finally {
        opened.destroy();
      }
    },
    open: (onRawBytes) =>
      openLayer(archivePath, layer, { ...(signal && { signal }), ...(onRawBytes && { onRawBytes }) }),
    ...(layer.compression === "none" && {
      async openRandomAccess(): Promise<RandomAccess> {
        const handle = await open(archivePath, "r");
        const end = layer.dataOffset + layer.size;
        return {
          start: layer.dataOffset,
          end,
          async read(position, length) {
            if (position < layer.dataOffset || position + length > end)
              throw new RangeError("read outside the layer");
            const buf = Buffer.allocUnsafe(length);
            let got = 0;
            while (got < length) {
              const { bytesRead } = await handle.read(buf, got, length - got, position + got);
              if (bytesRead === 0) throw new ImageArchiveError(`${name} is shorter than the archive says`);
              got += bytesRead;
            }
            return buf;
          },
          close: () => handle.close(),
        };
      },
    }),
  };
}

/** An uncompressed layer held in memory. */
export function bufferLayerSource(name: string, tar: Buffer, diffId?: string): LayerSource {
  return {
    name,
    diffId,
    storedSize: tar.length,
    async *readHeaders() {
      yield* readTarHeaders(streamByteSource(Readable.from([tar])), name);
    },
    open(onRawBytes) {
      const stream = new PassThrough();
      onRawBytes?.(tar.length);
      stream.end(tar);
      return { stream, finished: Promise.resolve(), destroy: () => stream.destroy() };
    },
    async openRandomAccess() {
      return {
        start: 0,
        end: tar.length,
        read: async (position, length) => tar.subarray(position, position + length),
        close: async () => {},
      };
    },
  };
}

const READ_MIN = 16 * 1024;
const READ_MAX = 1024 * 1024;
// Synchronous reads block the event loop; give it a turn this often.
const YIELD_EVERY_MS = 5;

/**
 * A file range read for headers, with a read-ahead buffer: a read right after skipping a large
 * file is small (16 KiB), and reads double while they run on (up to 1 MiB), so runs of small
 * entries cost few reads and large files are skipped by moving the position, never read. The reads
 * are synchronous (from the page cache, mostly): for thousands of entries an asynchronous read per
 * refill cost 2-3 times the CPU in thread-pool hand-offs. The event loop gets a turn every few
 * milliseconds. Reading past `end` (a layer cut short) throws.
 */
export async function bufferedFileSource(path: string, start: number, end: number): Promise<ByteSource> {
  const fd = openSync(path, "r");
  let position = start;
  let buffer = Buffer.alloc(0);
  let bufferStart = start;
  let lastYield = performance.now();
  let readSize = READ_MIN;
  let spare = Buffer.alloc(0);
  const cutShort = () => new ImageArchiveError("the layer ends inside a tar entry");
  return {
    get position() {
      return position;
    },
    async readExact(length) {
      if (position >= end) return null;
      if (position + length > end) throw cutShort();
      const at = position - bufferStart;
      if (at < 0 || at + length > buffer.length) {
        if (performance.now() - lastYield > YIELD_EVERY_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
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
    },
    async skip(length) {
      if (position + length > end) throw cutShort();
      position += length;
    },
    close: async () => closeSync(fd),
  };
}
