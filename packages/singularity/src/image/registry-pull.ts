import {
  archiveLimits,
  checkLayerDecompression,
  type ImageArchive,
  ImageArchiveError,
  type ImageId,
  type PullOptions,
  type PullProgress,
  readImageConfig,
  throwIfAborted,
} from "@contexec/core";
import {
  familiarImageReference,
  parseImageReference,
  type RegistryClient,
  type RemoteImage,
  remoteLayerStreams,
} from "@contexec/registry";
import { convertLayersToSif, streamLayerSource } from "@contexec/sif";
import type { SifCache } from "./sif-cache.js";
import type { SifConverter } from "./sif-converter.js";

/**
 * Pulls an image from a registry into the SIF cache: the manifest (for a multi-platform image
 * the index, then the platform's manifest) names the config digest, which is the ImageId and the
 * cache key, so an image already converted costs that one request and no conversion. Otherwise
 * the config is fetched (checked against the id) and, under the cache's cross-process lock (N
 * processes pulling one image convert it once), each layer streams from the registry into the
 * native converter: no layer or tarball is written to disk, every blob is checked against its
 * digest and every layer against its diff_id, and the SIF goes in under a temporary name and is
 * renamed into place, so a failed pull leaves no cache entry. A pulled image is hostile input as
 * much as an archive: every layer entry goes through the same checks and limits (`options.limits`)
 * as an archive's, and is refused with the same ImageArchiveError (the layer named by its digest).
 */
export async function pullIntoSifCache(
  cache: SifCache,
  client: RegistryClient,
  reference: string,
  options: PullOptions & { tmpDir: string },
): Promise<ImageId> {
  const operation = `pulling ${reference}`;
  throwIfAborted(options.signal, operation);
  const ref = parseImageReference(reference);
  const call = {
    ...(options.signal && { signal: options.signal }),
    ...(options.auth && { auth: options.auth }),
  };
  const image = await client.resolveImage(ref, {
    ...call,
    ...(options.platform && { platform: options.platform }),
  });
  const id = image.id as ImageId;
  // The name the image is found by afterwards, as Docker names it ("busybox:1", "host:5000/x:1").
  const tag = familiarImageReference(ref);
  // The config within the archive limit for metadata, as an archive's config is.
  const fetchConfig = async () => {
    const { maxMetadataBytes } = archiveLimits(options.limits);
    if (image.config.size > maxMetadataBytes) {
      throw new ImageArchiveError(
        `the image config is larger than ${maxMetadataBytes} bytes (the maxMetadataBytes limit)`,
        { entry: image.config.digest, member: image.config.digest, limit: "maxMetadataBytes" },
      );
    }
    return client.fetchConfig(image, call);
  };
  const cached = await cache.lookup(id);
  let described: ImageArchive;
  if (cached) {
    report(image, "exists", options.onProgress);
    if (cached.repoTags.includes(tag)) return id;
    described = describe(image, tag, cached, Buffer.alloc(0));
  } else {
    const configJson = await fetchConfig();
    described = describe(image, tag, readImageConfig(configJson), configJson);
  }
  const converter: SifConverter = {
    name: "native-pull",
    async convert(_input, outPath, convertOptions) {
      // Converting after all: the SIF found at first went away meanwhile.
      const configJson = described.configJson.length > 0 ? described.configJson : await fetchConfig();
      const remote = remoteLayerStreams(client, image, configJson, {
        ...call,
        ...(options.onProgress && { onProgress: options.onProgress }),
      });
      await checkLayerDecompression(remote.map((l) => ({ compression: l.compression, member: l.digest })));
      const layers = remote.map((layer) =>
        streamLayerSource({ ...layer, member: layer.digest }, options.signal),
      );
      await convertLayersToSif({ configJson, layers, source: tag }, outPath, {
        prefetch: client.concurrency,
        bootstrap: "docker",
        ...(options.limits && { limits: options.limits }),
        ...(convertOptions.signal && { signal: convertOptions.signal }),
      });
    },
  };
  // Only the tag is added when another process converted the image meanwhile (ensure looks first).
  const { converted } = await cache.ensure(described, tag, converter, {
    tmpDir: options.tmpDir,
    ...(options.signal && { signal: options.signal }),
  });
  report(image, converted ? "done" : "exists", options.onProgress);
  return id;
}

/**
 * The image as the SIF cache records it. SifCache.ensure reads the id, config, tags, architecture
 * and os; `format` and `layers` describe archives, which a pull has none of (its converter
 * reads the registry, not a file).
 */
function describe(
  image: RemoteImage,
  tag: string,
  fields: Pick<ImageArchive, "config" | "architecture" | "os">,
  configJson: Buffer,
): ImageArchive {
  return {
    format: "oci-layout",
    id: image.id as ImageId,
    config: fields.config,
    configJson,
    repoTags: [tag],
    layers: [],
    architecture: fields.architecture,
    os: fields.os,
    archiveBytes: 0,
  };
}

function report(
  image: RemoteImage,
  phase: "done" | "exists",
  onProgress: ((p: PullProgress) => void) | undefined,
) {
  for (const layer of image.layers)
    onProgress?.({ layer: layer.digest, phase, bytes: 0, totalBytes: layer.size });
}
