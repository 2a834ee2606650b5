import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortedError,
  type ImageArchive,
  ImageArchiveError,
  type ImageId,
  readImageArchive,
  throwIfAborted,
} from "@contexec/core";
import { type ConvertLayersOptions, checkCompression, convertLayers, OPERATION } from "./convert-layers.js";
import { checkableByOffset, checkLayerDigests } from "./layer-digests.js";
import { archiveLayerSource } from "./layer-source.js";
import { checkLayerDecompression } from "./open-layer.js";

export interface ConvertOptions extends Omit<ConvertLayersOptions, "prefetch" | "bootstrap"> {
  /** Where a stream input is spooled; default the OS temp folder. */
  tmpDir?: string;
  /** Which image, when the archive holds several. */
  tag?: string;
}

export interface ConvertResult {
  id: ImageId;
  archive: ImageArchive;
  /** Size of the SIF written. */
  sifBytes: number;
  /** Device nodes of the image that were left out (see README). */
  droppedDevices: string[];
}

/**
 * Converts a docker-archive (`docker save`) or OCI layout tarball into a SIF image that Apptainer
 * and SingularityCE run, without Apptainer: layers are flattened in two streaming passes into a
 * tar piped to `sqfstar`, which writes the squashfs straight into `outPath` after the room
 * reserved for the SIF header and small objects. Writes exactly `outPath` (write to a temporary
 * name and rename it, if others may look); on any failure `outPath` is removed and a typed error
 * thrown: ImageArchiveError for bad or hostile input, AbortedError, RuntimeUnavailableError when
 * sqfstar (or a decompressor) is missing, RuntimeError with sqfstar's stderr when it fails.
 *
 * A stream input is spooled to a temporary file first (under `tmpDir`): a docker-archive may put
 * its manifest after the layers, and the layers are read top-down, so one pass over a stream
 * cannot do.
 */
export async function convertArchiveToSif(
  archive: string | Readable | AsyncIterable<Buffer>,
  outPath: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  throwIfAborted(options.signal, OPERATION);
  checkCompression(options.compression);
  if (typeof archive === "string") return convertFile(archive, outPath, options);
  const spoolDir = await mkdtemp(join(options.tmpDir ?? tmpdir(), "contexec-sif-"));
  try {
    const spooled = join(spoolDir, "image.tar");
    try {
      await pipeline(archive, createWriteStream(spooled), {
        ...(options.signal && { signal: options.signal }),
      });
    } catch (err) {
      if (options.signal?.aborted) throw new AbortedError(OPERATION, { cause: options.signal.reason });
      throw new ImageArchiveError(`cannot read the image archive stream: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return await convertFile(spooled, outPath, options, "image.tar");
  } finally {
    await rm(spoolDir, { recursive: true, force: true });
  }
}

async function convertFile(
  archivePath: string,
  outPath: string,
  options: ConvertOptions,
  sourceName = archivePath,
): Promise<ConvertResult> {
  const { signal } = options;
  const archive = await readImageArchive(archivePath, {
    ...(options.tag !== undefined && { tag: options.tag }),
    ...(signal && { signal }),
  });
  await checkLayerDecompression(archive.layers);
  const verify = options.verifyDigests ?? true;
  // Uncompressed layers are checked by a worker from now on, beside both passes.
  const digests = verify ? checkLayerDigests(archivePath, archive.layers, signal) : undefined;
  try {
    const layers = archive.layers.map((l) =>
      // Layers the worker checks need no hashing in the writing pass.
      archiveLayerSource(
        archivePath,
        digests && checkableByOffset(l) ? { ...l, diffId: undefined } : l,
        signal,
      ),
    );
    const result = await convertLayers(
      { configJson: archive.configJson, layers, source: sourceName },
      outPath,
      options,
      digests,
    );
    return { id: archive.id, archive, sifBytes: result.sifBytes, droppedDevices: result.droppedDevices };
  } finally {
    digests?.cancel();
  }
}
