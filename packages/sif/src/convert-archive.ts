import type { Readable } from "node:stream";
import {
  archiveFile,
  checkLayerDecompression,
  type ImageArchive,
  type ImageId,
  readImageArchive,
  throwIfAborted,
} from "@contexec/core";
import { type ConvertLayersOptions, checkCompression, convertLayers, OPERATION } from "./convert-layers.js";
import { checkableByOffset, checkLayerDigests } from "./layer-digests.js";
import { archiveLayerSource } from "./layer-source.js";

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
 * A stream input (or a path that is a FIFO or character device) is spooled to a temporary file
 * first (under `tmpDir`): a docker-archive may put its manifest after the layers, and the layers
 * are read top-down, so one pass over a stream cannot do. A disk that fills up gives IoError, and
 * no partial file is left.
 */
export async function convertArchiveToSif(
  archive: string | Readable | AsyncIterable<Buffer>,
  outPath: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  throwIfAborted(options.signal, OPERATION);
  checkCompression(options.compression);
  const file = await archiveFile(archive, {
    operation: OPERATION,
    ...(options.tmpDir !== undefined && { tmpDir: options.tmpDir }),
    ...(options.signal && { signal: options.signal }),
  });
  try {
    return await convertFile(file.path, outPath, options, file.spooled ? "image.tar" : file.path);
  } finally {
    await file.remove();
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
    ...(options.limits && { limits: options.limits }),
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
