import { totalmem } from "node:os";
import type { Readable } from "node:stream";
import { type PullProgress, readImageConfig } from "@contexec/core";
import { type LayerCompression, layerCompression } from "../manifest/parse-manifest.js";
import type { CallOptions, RegistryClient, RemoteImage } from "../registry-client.js";

/**
 * One layer of a remote image as a converter reads it: its stored bytes opened afresh per pass
 * (checked against the blob digest while they flow), and what it must decompress to (`diffId`).
 * Shaped as @contexec/sif's StreamLayerInput, without depending on it.
 */
export interface RemoteLayerStream {
  name: string;
  digest: string;
  diffId: string | undefined;
  storedSize: number;
  compression: LayerCompression;
  open(pass: "listing" | "writing"): Readable;
  keepInMemory: boolean;
}

export interface RemoteLayerOptions extends CallOptions {
  /** Per-layer events: `downloading` while the first pass reads a layer, `extracting` while the second does. */
  onProgress?: ((progress: PullProgress) => void) | undefined;
  /**
   * Stored bytes kept in memory between the converter's two passes, so those layers are fetched
   * once: at most this many in all, layers taken bottom first while they fit. Default: a
   * sixteenth of this machine's memory, at most 512 MiB.
   */
  keepInMemoryBytes?: number | undefined;
}

/**
 * The layers of a remote image as streams for a two-pass converter, bottom first, with the
 * diff_ids of its config (the config's bytes, already checked against the image id).
 */
export function remoteLayerStreams(
  client: RegistryClient,
  image: RemoteImage,
  configJson: Buffer,
  options: RemoteLayerOptions = {},
): RemoteLayerStream[] {
  const { diffIds } = readImageConfig(configJson, `the config of ${image.reference.repository}`);
  let budget = options.keepInMemoryBytes ?? Math.min(512 * 1024 * 1024, Math.floor(totalmem() / 16));
  const progress = options.onProgress;
  for (const layer of image.layers)
    progress?.({ layer: layer.digest, phase: "waiting", bytes: 0, totalBytes: layer.size });
  return image.layers.map((layer, i) => {
    const keep = layer.size <= budget;
    if (keep) budget -= layer.size;
    return {
      name: `layer ${layer.digest}`,
      digest: layer.digest,
      diffId: diffIds?.[i],
      storedSize: layer.size,
      compression: layerCompression(layer.mediaType, image.reference.registry),
      keepInMemory: keep,
      open(pass) {
        const phase = pass === "listing" ? "downloading" : "extracting";
        let bytes = 0;
        progress?.({ layer: layer.digest, phase, bytes, totalBytes: layer.size });
        return client.openBlob(image.reference, layer, {
          ...(options.signal && { signal: options.signal }),
          ...(options.auth && { auth: options.auth }),
          what: `layer ${layer.digest}`,
          ...(progress && {
            onBytes: (n: number) => {
              bytes += n;
              progress({ layer: layer.digest, phase, bytes, totalBytes: layer.size });
            },
          }),
        });
      },
    };
  });
}
