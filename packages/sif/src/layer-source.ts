import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { PassThrough, Readable } from "node:stream";
import {
  type ArchiveLayer,
  ContainerError,
  fileByteSource,
  ImageArchiveError,
  type LayerCompression,
  readTarHeaders,
  streamByteSource,
  type TarHeader,
} from "@contexec/core";
import { decompressStream, type OpenedLayer, openLayer } from "./open-layer.js";

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
        const source = await fileByteSource(archivePath, {
          start: layer.dataOffset,
          end: layer.dataOffset + layer.size,
        });
        try {
          yield* readTarHeaders(source, { what: name });
        } finally {
          await source.close();
        }
        return;
      }
      const opened = openLayer(archivePath, layer, { ...(signal && { signal }) });
      try {
        yield* readTarHeaders(streamByteSource(opened.stream), { what: name });
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
      yield* readTarHeaders(streamByteSource(Readable.from([tar])), { what: name });
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

/** A layer whose stored bytes come from a stream opened on demand (a registry blob), per pass. */
export interface StreamLayerInput {
  /** Names the layer in errors: "layer sha256:ab12…". */
  name: string;
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
 * parsed, the uncompressed bytes hashed and checked against `diffId`, the stored bytes read to
 * their end so the source can check its own digest) and the writing pass opens it again, unless
 * the bytes were kept in memory. Nothing goes to disk.
 */
export function streamLayerSource(input: StreamLayerInput, signal?: AbortSignal): LayerSource {
  let kept: Buffer[] | undefined;
  const decompress = (raw: Readable) => decompressChecked(raw, input.compression, input.name, signal);
  return {
    name: input.name,
    diffId: input.diffId,
    storedSize: input.storedSize,
    verifiedWhileListing: input.diffId?.startsWith("sha256:") === true,
    async *readHeaders() {
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
      let done = false;
      try {
        yield* readTarHeaders(bytes, { what: input.name });
        // What follows the tar's end marker still counts for both digests: read it out. A piece
        // longer than what is left is refused once the stream has ended; any other failure stands.
        try {
          while ((await bytes.readExact(64 * 1024)) !== null) {}
        } catch (err) {
          if (failure !== undefined || !ended) throw failure ?? err;
        }
        await opened.finished;
        if (hash && input.diffId) {
          const actual = `sha256:${hash.digest("hex")}`;
          if (actual !== input.diffId) {
            throw new ImageArchiveError(
              `${input.name} does not match its diff_id ${input.diffId} (content is ${actual})`,
              {
                entry: input.name.replace(/^layer /, ""),
              },
            );
          }
        }
        done = true;
      } catch (err) {
        throw opened.explain ? await opened.explain(err) : err;
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
 * Decompresses like decompressStream, with `explain`: corrupt bytes usually break the
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
