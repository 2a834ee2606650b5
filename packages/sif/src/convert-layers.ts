import { rm } from "node:fs/promises";
import {
  AbortedError,
  type ArchiveLimits,
  ContainerError,
  digestOf,
  ImageArchiveError,
  type ImageConfigFields,
  type ImageId,
  IoError,
  RuntimeError,
  readImageConfig,
  throwIfAborted,
} from "@contexec/core";
import { type FlattenPlan, planFlatten } from "./flatten-layers.js";
import type { DigestCheck } from "./layer-digests.js";
import { bufferLayerSource, type LayerSource } from "./layer-source.js";
import { prefetchHeaders } from "./prefetch-headers.js";
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

export interface ConvertLayersOptions {
  /** squashfs compression: gzip (default, as `apptainer build`), zstd, lz4, or none. */
  compression?: SquashfsCompression;
  signal?: AbortSignal;
  /** Stored layer bytes streamed in the writing pass so far, of the layers' total stored size. */
  onProgress?: (progress: { bytesRead: number; totalBytes: number }) => void;
  /** The sqfstar binary; default `sqfstar` on PATH. */
  sqfstarPath?: string;
  /** Compressor threads for sqfstar; default: one more than the cores for gzip/zstd, one fewer for lz4/none. */
  processors?: number;
  /** Check each layer against its diff_id while streaming it (default true). */
  verifyDigests?: boolean;
  /** Bounds on the layers (core's ArchiveLimits: uncompressed layer bytes, entries), as for an archive. */
  limits?: Partial<ArchiveLimits>;
  /**
   * Layers whose headers the planning pass reads at once (top layer first); for layers from a
   * slow source such as a registry. Default 1: one after the other.
   */
  prefetch?: number;
  /** The definition file's bootstrap agent: "docker-archive" (default) or "docker" (a registry pull). */
  bootstrap?: "docker-archive" | "docker";
}

/** An image given by its parts: the config as stored, and its layers. */
export interface ConvertLayersInput {
  /** The image config exactly as stored: its sha256 is the image id. */
  configJson: Buffer;
  /** The layers, bottom first, one per diff_id of the config. */
  layers: readonly LayerSource[];
  /** Where the image came from, for the definition file: an archive's name, or a registry reference. */
  source: string;
}

export interface ConvertLayersResult {
  /** sha256 of the config bytes: the same id the image has loaded from an archive, on every backend. */
  id: ImageId;
  /** What the config says (run config, diff_ids, architecture, os). */
  config: ImageConfigFields;
  /** Size of the SIF written. */
  sifBytes: number;
  /** Device nodes of the image that were left out (see README). */
  droppedDevices: string[];
}

export const OPERATION = "converting the image to SIF";

/** Refuses an unknown squashfs compression before anything is read. */
export function checkCompression(compression: string | undefined): void {
  if (compression !== undefined && !SQUASHFS_COMPRESSIONS.includes(compression as SquashfsCompression)) {
    throw new ImageArchiveError(
      `unknown squashfs compression "${compression}"; use one of ${SQUASHFS_COMPRESSIONS.join(", ")}`,
    );
  }
}

/**
 * Converts an image given by its config and layer sources into a SIF at `outPath`, the way
 * {@link convertArchiveToSif} converts an archive: the same checks of every layer entry and the
 * same limits (a pulled image is as hostile as any archive: the same entries are refused with the
 * same errors), the same flattening, metadata and layout, so the same image gives the same root
 * file system and the same id from either. The layers may come from anywhere a
 * {@link LayerSource} reads: `streamLayerSource` over registry blobs streams them with nothing
 * written to disk but the SIF. Writes exactly `outPath`; on any failure it is removed and a typed
 * error thrown (the sources' own errors, such as a registry's, pass as they are).
 */
export async function convertLayersToSif(
  input: ConvertLayersInput,
  outPath: string,
  options: ConvertLayersOptions = {},
): Promise<ConvertLayersResult> {
  throwIfAborted(options.signal, OPERATION);
  checkCompression(options.compression);
  return convertLayers(input, outPath, options, undefined);
}

/** The conversion both entries share; `digests` checks archive layers beside it. */
export async function convertLayers(
  input: ConvertLayersInput,
  outPath: string,
  options: ConvertLayersOptions,
  digests: DigestCheck | undefined,
): Promise<ConvertLayersResult> {
  const { signal } = options;
  const config = readImageConfig(input.configJson);
  if (config.diffIds && config.diffIds.length !== input.layers.length) {
    throw new ImageArchiveError(
      `the image has ${input.layers.length} layers but its config's rootfs lists ${config.diffIds.length}`,
    );
  }
  const sqfstar = await resolveSqfstar(options.sqfstarPath);
  const verify = options.verifyDigests ?? true;
  const buildTime = Math.floor(Date.now() / 1000);
  const metadata = await singularityMetadata(
    { config: config.config, configJson: input.configJson, architecture: config.architecture },
    { source: input.source, buildTime, ...(options.bootstrap && { bootstrap: options.bootstrap }) },
  );
  const layers: LayerSource[] = [
    generatedLayer("the generated mount points", metadata.bottom),
    ...input.layers,
    generatedLayer("the generated Singularity metadata", metadata.top),
  ];
  // Pass 1 refuses hostile input before the output file exists.
  const prefetched = prefetchHeaders(layers, options.prefetch ?? 1, options.limits);
  let plan: FlattenPlan;
  try {
    plan = await planFlatten(prefetched.layers, { signal, limits: options.limits });
  } finally {
    prefetched.cancel();
  }
  const objects: SifSmallObject[] = [
    { dataType: SIF_DATA_TYPES.deffile, data: Buffer.from(metadata.deffile) },
    { dataType: SIF_DATA_TYPES.genericJson, name: "inspect-metadata.json", data: metadata.inspectMetadata },
    { dataType: SIF_DATA_TYPES.genericJson, name: "oci-config.json", data: metadata.ociConfig },
  ];
  const totalBytes = input.layers.reduce((n, l) => n + l.storedSize, 0);
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
    layers: prefetched.layers,
    objects,
    arch: config.architecture,
    buildTime,
    compression: options.compression ?? "gzip",
    processors: options.processors,
    verify,
    digests,
    signal,
    onBytes,
  });
  options.onProgress?.({ bytesRead: totalBytes, totalBytes });
  return { id: digestOf(input.configJson), config, sifBytes, droppedDevices: plan.droppedDevices };
}

/**
 * A layer the converter adds: not the image's, so outside its limits (a limit counts what the
 * image holds, as core's checkImageLayers counts it, and names the same entry when passed).
 */
function generatedLayer(name: string, tar: Buffer): LayerSource {
  const layer = bufferLayerSource(name, tar);
  const sync = layer.readHeadersSync?.bind(layer);
  return {
    ...layer,
    readHeaders: () => layer.readHeaders(),
    ...(sync && { readHeadersSync: () => sync() }),
  };
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
