import { open } from "node:fs/promises";
import { PassThrough, Readable } from "node:stream";
import {
  type ArchiveLayer,
  bufferByteSource,
  ImageArchiveError,
  type LayerBudget,
  type OpenedLayer,
  openLayer,
  type ReadTarOptions,
  readLayerHeaders,
  readLayerHeadersSync,
  readTarHeaders,
  readTarHeadersSync,
  streamByteSource,
  type TarHeader,
} from "@contexec/core";

/**
 * One layer as the flattener sees it: its headers can be listed (the planning pass) and its
 * bytes streamed (the writing pass). Layers of an archive file are read by offset; an in-memory
 * layer serves tests and the generated Singularity metadata.
 */
export interface LayerSource {
  /** Names the layer in errors and messages: `layer <member>`. */
  name: string;
  /** The archive member holding the layer, when it comes from an archive. */
  member?: string;
  /** The uncompressed layer's digest to check while streaming, when known. */
  diffId?: string | undefined;
  /** Bytes the layer takes in the archive (progress). */
  storedSize: number;
  /** Entry headers in order, data skipped; with a budget, bytes and entries are counted against its limits. */
  readHeaders(options?: { budget?: LayerBudget }): AsyncGenerator<TarHeader>;
  /**
   * The same headers read synchronously, with the same budget, for a layer stored uncompressed
   * (in a file, in memory): no promise per entry (a third of the planning pass's reading CPU). The
   * caller gives the event loop its turns. A file is opened when iteration starts and closed when
   * it ends or is abandoned.
   */
  readHeadersSync?(options?: { budget?: LayerBudget }): Generator<TarHeader>;
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
  /** `length` bytes at `position`: read into `into` when given (it must hold them), else a new buffer. */
  read(position: number, length: number, into?: Buffer): Promise<Buffer>;
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
    member: layer.member,
    diffId: layer.diffId,
    storedSize: layer.size,
    readHeaders: (options = {}) =>
      readLayerHeaders(archivePath, layer, { ...options, ...(signal && { signal }) }),
    open: (onRawBytes) =>
      openLayer(archivePath, layer, { ...(signal && { signal }), ...(onRawBytes && { onRawBytes }) }),
    ...(layer.compression === "none" && {
      readHeadersSync: (options = {}) => readLayerHeadersSync(archivePath, layer, options),
      async openRandomAccess(): Promise<RandomAccess> {
        const handle = await open(archivePath, "r");
        const end = layer.dataOffset + layer.size;
        return {
          start: layer.dataOffset,
          end,
          async read(position, length, into) {
            if (position < layer.dataOffset || position + length > end)
              throw new RangeError("read outside the layer");
            const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
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
  const tarOptions = (budget: LayerBudget | undefined): ReadTarOptions => ({
    what: name,
    ...(budget && { onBytes: (n: number) => budget.takeBytes(n, name) }),
  });
  return {
    name,
    diffId,
    storedSize: tar.length,
    async *readHeaders(options = {}) {
      const { budget } = options;
      for await (const header of readTarHeaders(streamByteSource(Readable.from([tar])), tarOptions(budget))) {
        budget?.takeEntry(name, header.name);
        yield header;
      }
    },
    *readHeadersSync(options = {}) {
      const { budget } = options;
      for (const header of readTarHeadersSync(bufferByteSource(tar), tarOptions(budget))) {
        budget?.takeEntry(name, header.name);
        yield header;
      }
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
