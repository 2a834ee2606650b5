import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import {
  AbortedError,
  type ArchiveLimits,
  archiveFile,
  ContainerError,
  checkLayerDecompression,
  type ImageArchive,
  ImageArchiveError,
  type ImageId,
  IoError,
  RuntimeError,
  readImageArchive,
  throwIfAborted,
} from "@contexec/core";
import { type FlattenPlan, planFlatten } from "./flatten-layers.js";
import { checkableByOffset, checkLayerDigests, type DigestCheck } from "./layer-digests.js";
import { archiveLayerSource, bufferLayerSource, type LayerSource } from "./layer-source.js";
import { SIF_DATA_TYPES } from "./sif-format.js";
import { finishSif, planSifLayout, type SifSmallObject } from "./sif-writer.js";
import { singularityMetadata } from "./singularity-metadata.js";
import {
  defaultProcessors,
  resolveSqfstar,
  SQUASHFS_COMPRESSIONS,
  type SquashfsCompression,
  startSqfstar,
} from "./sqfstar.js";
import { writeFlattened } from "./write-flattened.js";

export interface ConvertOptions {
  /** squashfs compression: gzip (default, as `apptainer build`), zstd, lz4, or none. */
  compression?: SquashfsCompression;
  signal?: AbortSignal;
  /** Archive bytes streamed so far, of the layers' total stored size. */
  onProgress?: (progress: { bytesRead: number; totalBytes: number }) => void;
  /** The sqfstar binary; default `sqfstar` on PATH. */
  sqfstarPath?: string;
  /** Where a stream input is spooled; default the OS temp folder. */
  tmpDir?: string;
  /** Which image, when the archive holds several. */
  tag?: string;
  /** Compressor threads for sqfstar; default: one more than the cores for gzip/zstd, one fewer for lz4/none. */
  processors?: number;
  /** Check each layer against its diff_id while streaming it (default true). */
  verifyDigests?: boolean;
  /** Bounds on the archive (core's ArchiveLimits: uncompressed layer bytes, entries, metadata size). */
  limits?: Partial<ArchiveLimits>;
}

export interface ConvertResult {
  id: ImageId;
  archive: ImageArchive;
  /** Size of the SIF written. */
  sifBytes: number;
  /** Device nodes of the image that were left out (see README). */
  droppedDevices: string[];
}

const OPERATION = "converting the image to SIF";

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
  if (options.compression !== undefined && !SQUASHFS_COMPRESSIONS.includes(options.compression)) {
    throw new ImageArchiveError(
      `unknown squashfs compression "${options.compression}"; use one of ${SQUASHFS_COMPRESSIONS.join(", ")}`,
    );
  }
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
  const sqfstar = await resolveSqfstar(options.sqfstarPath);
  const verify = options.verifyDigests ?? true;
  // Uncompressed layers are checked by a worker from now on, beside both passes.
  const digests = verify ? checkLayerDigests(archivePath, archive.layers, signal) : undefined;
  try {
    const buildTime = Math.floor(Date.now() / 1000);
    const metadata = await singularityMetadata(archive, { source: sourceName, buildTime });
    const layers: LayerSource[] = [
      bufferLayerSource("the generated mount points", metadata.bottom),
      ...archive.layers.map((l) =>
        // Layers the worker checks need no hashing in the writing pass.
        archiveLayerSource(
          archivePath,
          digests && checkableByOffset(l) ? { ...l, diffId: undefined } : l,
          signal,
        ),
      ),
      bufferLayerSource("the generated Singularity metadata", metadata.top),
    ];
    // Pass 1 refuses hostile input before the output file exists.
    const plan = await planFlatten(layers, { signal, limits: options.limits });
    const objects: SifSmallObject[] = [
      { dataType: SIF_DATA_TYPES.deffile, data: Buffer.from(metadata.deffile) },
      { dataType: SIF_DATA_TYPES.genericJson, name: "inspect-metadata.json", data: metadata.inspectMetadata },
      { dataType: SIF_DATA_TYPES.genericJson, name: "oci-config.json", data: metadata.ociConfig },
    ];
    const totalBytes = archive.layers.reduce((n, l) => n + l.size, 0);
    let bytesRead = 0;
    const onBytes = options.onProgress
      ? (n: number) => {
          bytesRead = Math.min(totalBytes, bytesRead + n);
          options.onProgress?.({ bytesRead, totalBytes });
        }
      : undefined;
    throwIfAborted(signal, OPERATION);
    const sifBytes = await writeSif({
      sqfstar,
      outPath,
      plan,
      layers,
      objects,
      arch: archive.architecture,
      buildTime,
      compression: options.compression ?? "gzip",
      processors: options.processors,
      verify,
      digests,
      signal,
      onBytes,
    });
    options.onProgress?.({ bytesRead: totalBytes, totalBytes });
    return { id: archive.id, archive, sifBytes, droppedDevices: plan.droppedDevices };
  } finally {
    digests?.cancel();
  }
}

interface WriteSifInput {
  sqfstar: string;
  outPath: string;
  plan: FlattenPlan;
  layers: LayerSource[];
  objects: SifSmallObject[];
  arch: string;
  buildTime: number;
  compression: SquashfsCompression;
  processors: number | undefined;
  verify: boolean;
  digests: DigestCheck | undefined;
  signal: AbortSignal | undefined;
  onBytes: ((n: number) => void) | undefined;
}

/**
 * Pass 2 into sqfstar, which writes the squashfs at the partition offset of `outPath`; then the SIF
 * prefix in front of it. Any failure kills sqfstar and removes `outPath`.
 */
async function writeSif(input: WriteSifInput): Promise<number> {
  const { outPath, signal, objects } = input;
  const layout = planSifLayout(objects);
  const proc = startSqfstar(input.sqfstar, outPath, {
    compression: input.compression,
    offset: layout.partitionOffset,
    processors: input.processors ?? defaultProcessors(input.compression),
  });
  let firstError: unknown;
  const stop = (err: unknown) => {
    firstError ??= err;
    // sqfstar dies first, so it never sees the tar cut short and reports that instead.
    proc.kill();
    proc.stdin.destroy();
  };
  const onAbort = () => stop(new AbortedError(OPERATION, { cause: signal?.reason }));
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const writing = writeFlattened(input.plan, input.layers, proc.stdin, {
      signal,
      onBytes: input.onBytes,
      verifyDigests: input.verify,
    }).catch(stop);
    const squashing = proc.done.then(
      () => undefined,
      (err: unknown) => {
        stop(err);
        return err;
      },
    );
    // A digest mismatch found by the worker stops everything at once.
    const checking = input.digests?.done.catch(stop);
    const [, sqfstarError] = await Promise.all([writing, squashing, checking]);
    if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
    // sqfstar exiting with a status of its own (not killed by us) is the root cause of the rest.
    if (sqfstarError instanceof RuntimeError && sqfstarError.runtimeExitCode !== undefined)
      throw sqfstarError;
    if (firstError !== undefined) throw firstError;
    return await finishSif(outPath, layout, objects, { arch: input.arch }, { createdAt: input.buildTime });
  } catch (err) {
    proc.kill();
    proc.stdin.destroy();
    await proc.done.catch(() => {});
    await rm(outPath, { force: true });
    if (signal?.aborted) throw new AbortedError(OPERATION, { cause: signal.reason });
    if (err instanceof ContainerError) throw err;
    // The SIF header written in front of sqfstar's output failed: a full or read-only disk.
    if (typeof (err as NodeJS.ErrnoException)?.code === "string") throw new IoError(OPERATION, outPath, err);
    throw new RuntimeError("sqfstar", `${OPERATION} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
