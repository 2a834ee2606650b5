import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { IncomingMessage } from "node:http";
import { PassThrough, type Readable, Transform } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import { RegistryError, readImageArchive } from "@contexec/core";
import pRetry from "p-retry";
import { type Descriptor, MEDIA_TYPES } from "../manifest/parse-manifest.js";
import {
  formatImageReference,
  type ImageReference,
  parseImageReference,
} from "../reference/image-reference.js";
import type { Platform } from "../reference/platform.js";
import type { CallOptions, RegistryClient } from "../registry-client.js";
import { drain, readBody } from "../transport/http-request.js";

/** Bytes to push: opened afresh for each attempt. */
export interface BlobSource {
  open(): Readable;
  /** The digest, when known beforehand: an upload is skipped when the registry has it. */
  digest?: string | undefined;
}

export type ManifestFormat = "docker" | "oci";

/**
 * Uploads one blob: POST to open an upload, one PATCH streaming the bytes (hashed on the way),
 * PUT with the digest to commit. A failure anywhere restarts the upload (a half-sent PATCH
 * cannot be continued safely); a blob the registry already has is not sent. Resolves with its
 * digest and size.
 */
export async function pushBlob(
  client: RegistryClient,
  ref: Pick<ImageReference, "registry" | "repository">,
  source: BlobSource,
  options: CallOptions & { what?: string } = {},
): Promise<{ digest: string; size: number }> {
  const what = options.what ?? "a blob";
  const base = { ...options, registry: ref.registry, repository: ref.repository, actions: "pull,push" };
  if (source.digest) {
    const head = await client.request({
      ...base,
      method: "HEAD",
      path: `/v2/${ref.repository}/blobs/${source.digest}`,
      what: `${what} (checking for it)`,
      accept: [404],
    });
    await drain(head);
    const length = Number(head.headers["content-length"]);
    if (head.statusCode === 200 && Number.isSafeInteger(length))
      return { digest: source.digest, size: length };
  }
  return pRetry(
    async () => {
      const start = await client.request({
        ...base,
        method: "POST",
        path: `/v2/${ref.repository}/blobs/uploads/`,
        what: `${what} (opening an upload)`,
      });
      await drain(start);
      const location = uploadLocation(start, ref.registry, what);
      const hash = createHash("sha256");
      let size = 0;
      const counted = () =>
        source.open().pipe(
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              hash.update(chunk);
              size += chunk.length;
              cb(null, chunk);
            },
          }),
        );
      const patch = await client.request({
        ...base,
        method: "PATCH",
        path: location,
        headers: { "content-type": "application/octet-stream" },
        body: counted,
        what: `${what} (sending it)`,
        retries: 0,
      });
      await drain(patch);
      const digest = `sha256:${hash.digest("hex")}`;
      if (source.digest && source.digest !== digest) {
        throw new RegistryError(
          ref.registry,
          "digest-mismatch",
          `${what}: its bytes hash to ${digest}, not ${source.digest}`,
        );
      }
      const commit = new URL(uploadLocation(patch, ref.registry, what));
      commit.searchParams.set("digest", digest);
      const put = await client.request({
        ...base,
        method: "PUT",
        path: commit.href,
        headers: { "content-length": "0" },
        body: Buffer.alloc(0),
        what: `${what} (committing it)`,
        retries: 0,
      });
      await drain(put);
      return { digest, size };
    },
    {
      retries: client.options.retries ?? 4,
      minTimeout: client.options.retryDelayMs ?? 250,
      randomize: true,
      ...(options.signal && { signal: options.signal }),
      shouldRetry: ({ error }) => (error as RegistryError).reason === "unreachable",
    },
  );
}

/** Where the registry wants the upload continued, as an absolute URL. */
function uploadLocation(res: IncomingMessage, registry: string, what: string): string {
  const location = res.headers.location;
  if (!location) throw new RegistryError(registry, "protocol", `${what}: the upload answer has no Location`);
  const req = (
    res as unknown as { req?: { protocol?: string; host?: string; getHeader(name: string): unknown } }
  ).req;
  const origin = `${req?.protocol ?? "https:"}//${String(req?.getHeader("host") ?? registry)}`;
  return new URL(location, origin).href;
}

/** Stores a manifest or index under the reference's tag (or digest); resolves with its digest. */
export async function pushManifest(
  client: RegistryClient,
  ref: ImageReference,
  body: Buffer,
  mediaType: string,
  options: CallOptions = {},
): Promise<string> {
  const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  const what = `the manifest of ${formatImageReference(ref)}`;
  const res = await client.request({
    ...options,
    registry: ref.registry,
    repository: ref.repository,
    actions: "pull,push",
    method: "PUT",
    path: `/v2/${ref.repository}/manifests/${ref.tag ?? ref.digest ?? digest}`,
    headers: { "content-type": mediaType },
    body,
    what,
  });
  await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0));
  return digest;
}

export interface PushLayer extends BlobSource {
  /** The layer's media type as the manifest will give it. */
  mediaType: string;
}

export interface PushedImage {
  /** The image id: its config's digest. */
  id: string;
  manifestDigest: string;
  manifest: Buffer;
  /** The manifest's descriptor, for an index. */
  descriptor: Descriptor;
}

/** Pushes a config, its layers and the manifest naming them. */
export async function pushImage(
  client: RegistryClient,
  reference: string | ImageReference,
  image: { config: Buffer; layers: readonly PushLayer[]; format?: ManifestFormat; platform?: Platform },
  options: CallOptions = {},
): Promise<PushedImage> {
  const ref = typeof reference === "string" ? parseImageReference(reference) : reference;
  const format = image.format ?? "docker";
  const layers: Descriptor[] = [];
  for (const [i, layer] of image.layers.entries()) {
    const { digest, size } = await pushBlob(client, ref, layer, {
      ...options,
      what: `layer ${i + 1} of ${image.layers.length}`,
    });
    layers.push({ mediaType: layer.mediaType, digest, size });
  }
  const configDigest = `sha256:${createHash("sha256").update(image.config).digest("hex")}`;
  await pushBlob(
    client,
    ref,
    { digest: configDigest, open: () => bufferStream(image.config) },
    { ...options, what: "the image config" },
  );
  const mediaType = format === "oci" ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: {
        mediaType: format === "oci" ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig,
        digest: configDigest,
        size: image.config.length,
      },
      layers,
    }),
  );
  const manifestDigest = await pushManifest(client, ref, manifest, mediaType, options);
  return {
    id: configDigest,
    manifestDigest,
    manifest,
    descriptor: {
      mediaType,
      digest: manifestDigest,
      size: manifest.length,
      ...(image.platform && { platform: image.platform }),
    },
  };
}

/** Pushes an index of already pushed manifests (a multi-platform image) under the reference. */
export async function pushIndex(
  client: RegistryClient,
  reference: string | ImageReference,
  manifests: readonly Descriptor[],
  options: CallOptions & { format?: ManifestFormat } = {},
): Promise<string> {
  const ref = typeof reference === "string" ? parseImageReference(reference) : reference;
  const mediaType = options.format === "oci" ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList;
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));
  return pushManifest(client, ref, body, mediaType, options);
}

export interface PushArchiveOptions extends CallOptions {
  /** Layers as pushed: gzip (default, as `docker push`) or as stored in the archive, uncompressed. */
  compression?: "gzip" | "none";
  format?: ManifestFormat;
  /** Which image, when the archive holds several. */
  tag?: string;
}

/**
 * Pushes the image of a docker-archive or OCI layout tarball (core's readImageArchive) to a
 * reference, like `skopeo copy docker-archive:FILE docker://REF`: layers are read from the file
 * by offset and gzip-compressed on the way unless `compression` is "none". The image id stays
 * the archive's (the config is pushed as it is).
 */
export async function pushArchive(
  client: RegistryClient,
  archivePath: string,
  reference: string | ImageReference,
  options: PushArchiveOptions = {},
): Promise<PushedImage> {
  const archive = await readImageArchive(archivePath, {
    ...(options.tag !== undefined && { tag: options.tag }),
    ...(options.signal && { signal: options.signal }),
  });
  const gzip = (options.compression ?? "gzip") === "gzip";
  const format = options.format ?? "docker";
  const layers: PushLayer[] = archive.layers.map((layer) => {
    const raw = () =>
      layer.size === 0
        ? bufferStream(Buffer.alloc(0))
        : createReadStream(archivePath, { start: layer.dataOffset, end: layer.dataOffset + layer.size - 1 });
    let open: () => Readable;
    if (layer.compression === (gzip ? "gzip" : "none")) open = raw;
    else if (layer.compression === "none") open = () => raw().pipe(createGzip());
    else if (layer.compression === "gzip") open = () => raw().pipe(createGunzip());
    else {
      throw new RegistryError(
        "push",
        "protocol",
        `layer ${layer.member} is ${layer.compression}-compressed; only uncompressed and gzip layers can be pushed`,
      );
    }
    const mediaType = gzip
      ? format === "oci"
        ? MEDIA_TYPES.ociLayerGzip
        : MEDIA_TYPES.dockerLayerGzip
      : format === "oci"
        ? MEDIA_TYPES.ociLayer
        : "application/vnd.docker.image.rootfs.diff.tar";
    return { open, mediaType, ...(!gzip && layer.diffId && { digest: layer.diffId }) };
  });
  return pushImage(client, reference, { config: archive.configJson, layers, format }, options);
}

function bufferStream(data: Buffer): Readable {
  const s = new PassThrough();
  s.end(data);
  return s;
}
