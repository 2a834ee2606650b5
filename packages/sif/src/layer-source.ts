import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { PassThrough, Readable } from "node:stream";
import {
  type ArchiveLayer,
  bufferByteSource,
  ContainerError,
  decompressStream,
  ImageArchiveError,
  type LayerBudget,
  type LayerCompression,
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
  /**
   * readHeaders() reads the whole layer and checks it against `diffId`, and the source checks
   * its own bytes against a digest fixed beforehand (a registry blob's) whenever they are read to
   * their end. The writing pass then does not read a layer only to check it, and for the layers
   * it copies from, reads them to their end (so the source checks them) instead of hashing them
   * again: bytes that match the blob digest decompress to what the planning pass checked.
   */
  verifiedWhileListing?: boolean;
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

// Bytes after a stream layer's tar end marker are read in pieces of this size.
const TRAILER_PIECE = 64 * 1024;

/** A layer whose stored bytes come from a stream opened on demand (a registry blob), per pass. */
export interface StreamLayerInput {
  /** Names the layer in errors: "layer sha256:ab12…". */
  name: string;
  /** What errors name as the layer (ImageArchiveError's `member`): the blob digest of a registry layer. */
  member?: string;
  /** The uncompressed layer's digest (the image config's rootfs.diff_ids): checked in both passes. */
  diffId: string | undefined;
  /** Size of the stored bytes. */
  storedSize: number;
  compression: LayerCompression;
  /**
   * Opens the stored bytes afresh: once for the planning pass ("listing"), once more for the
   * writing pass when it copies files from this layer ("writing"). The stream must error rather
   * than end when its bytes are not the layer's (a registry client checks the blob's digest).
   */
  open(pass: "listing" | "writing"): Readable;
  /** Keep the stored bytes in memory after the planning pass, so the writing pass reads them from there. */
  keepInMemory?: boolean;
}

/**
 * A {@link LayerSource} over a stream source: the planning pass reads the whole layer (headers
 * parsed with the same checks and budget as an archive's layers, the uncompressed bytes hashed
 * and checked against `diffId`, the stored bytes read to their end so the source can check its
 * own digest) and the writing pass opens it again, unless the bytes were kept in memory. Nothing
 * goes to disk.
 */
export function streamLayerSource(input: StreamLayerInput, signal?: AbortSignal): LayerSource {
  let kept: Buffer[] | undefined;
  const { name } = input;
  const member = input.member ?? name.replace(/^layer /, "");
  const decompress = (raw: Readable) => decompressChecked(raw, input.compression, name, signal);
  return {
    name,
    member,
    diffId: input.diffId,
    storedSize: input.storedSize,
    verifiedWhileListing: input.diffId?.startsWith("sha256:") === true,
    async *readHeaders(options = {}) {
      const { budget } = options;
      const raw = input.open("listing");
      const keep: Buffer[] | undefined = input.keepInMemory ? [] : undefined;
      if (keep) raw.on("data", (chunk: Buffer) => keep.push(chunk));
      const opened = decompress(raw);
      const hash = input.diffId?.startsWith("sha256:") ? createHash("sha256") : undefined;
      const stream = opened.stream;
      let ended = false;
      let failure: unknown;
      stream.once("end", () => {
        ended = true;
      });
      stream.once("error", (err) => {
        failure = err;
      });
      // Hashing sees every uncompressed byte, end-of-archive blocks and padding included.
      const bytes = streamByteSource(stream, hash ? (chunk) => hash.update(chunk) : undefined);
      const tarOptions: ReadTarOptions = {
        what: name,
        ...(budget && { onBytes: (n: number) => budget.takeBytes(n, member) }),
      };
      let done = false;
      try {
        for await (const header of readTarHeaders(bytes, tarOptions)) {
          budget?.takeEntry(member, header.name);
          yield header;
        }
        // What follows the tar's end marker still counts for both digests: read it out, within
        // the budget (zeros after the end marker are a decompression bomb too). A piece longer
        // than what is left is refused once the stream has ended; any other failure stands.
        try {
          for (let piece = await bytes.readExact(TRAILER_PIECE); piece !== null; ) {
            budget?.takeBytes(piece.length, member);
            piece = await bytes.readExact(TRAILER_PIECE);
          }
        } catch (err) {
          if (err instanceof ImageArchiveError && err.limit !== undefined) throw err;
          if (failure !== undefined || !ended) throw failure ?? err;
        }
        await opened.finished;
        if (hash && input.diffId) {
          const actual = `sha256:${hash.digest("hex")}`;
          if (actual !== input.diffId) {
            throw new ImageArchiveError(
              `${name} does not match its diff_id ${input.diffId} (content is ${actual})`,
              {
                entry: member,
              },
            );
          }
        }
        done = true;
      } catch (caught) {
        // A passed limit is refused as for an archive's layer, without reading on; otherwise the
        // source's own error (a registry blob that does not match its digest) explains a broken
        // stream best.
        const limited = caught instanceof ImageArchiveError && caught.limit !== undefined;
        const err = !limited && opened.explain ? await opened.explain(caught) : caught;
        if (err instanceof ImageArchiveError) err.member ??= member;
        throw err;
      } finally {
        if (!done) opened.destroy();
        await bytes.close();
      }
      if (keep) kept = keep;
    },
    open(onRawBytes) {
      if (kept) {
        const memory = Readable.from(kept);
        onRawBytes?.(input.storedSize);
        return decompress(memory);
      }
      const raw = input.open("writing");
      if (onRawBytes) raw.on("data", (chunk: Buffer) => onRawBytes(chunk.length));
      return decompress(raw);
    },
  };
}

/**
 * Decompresses like core's decompressStream, with `explain`: corrupt bytes usually break the
 * decompressor or the tar reader before the source has seen all of them, and the source's own
 * error ("does not match its digest") says more than "cannot be decompressed" or "not a tar".
 * The consumer never reads `raw` itself (an uncompressed layer goes through a PassThrough), so
 * explain() can read it to its end and ask.
 */
function decompressChecked(
  raw: Readable,
  compression: LayerCompression,
  name: string,
  signal: AbortSignal | undefined,
): OpenedLayer {
  // The source's own failure, seen whoever read it first.
  let sourceFailure: unknown;
  raw.once("error", (err) => {
    sourceFailure = err;
  });
  let source = raw;
  if (compression === "none") {
    const through = new PassThrough({ highWaterMark: 1024 * 1024 });
    raw.on("error", (err) => through.destroy(err));
    raw.pipe(through);
    source = through;
  }
  const inner = decompressStream(source, compression, name, signal);
  return {
    ...inner,
    destroy: () => {
      inner.destroy();
      raw.destroy();
    },
    explain: async (err) => {
      if (sourceFailure === undefined) await readToEnd(raw).catch(() => {});
      return sourceFailure instanceof ContainerError ? sourceFailure : err;
    },
  };
}

/** Reads a stream that was piped elsewhere to its end (or its error). */
function readToEnd(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.readableEnded || stream.destroyed) return resolve();
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", reject);
    stream.unpipe();
    stream.on("data", () => {});
    stream.resume();
  });
}
