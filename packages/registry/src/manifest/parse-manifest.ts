import { RegistryError } from "@contexec/core";
import type { Platform } from "../reference/platform.js";

export const MEDIA_TYPES = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

/** What a manifest request accepts: both image manifest kinds and both index kinds. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(", ");

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const IMAGE_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

/** A content descriptor: what a manifest says about a blob or another manifest. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export type Manifest =
  | { kind: "index"; mediaType: string; manifests: Descriptor[] }
  | { kind: "image"; mediaType: string; config: Descriptor; layers: Descriptor[] };

export type LayerCompression = "none" | "gzip" | "zstd";

const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Reads a manifest or index as a registry serves it. The media type comes from the body's
 * `mediaType`, else the response's Content-Type, else the shape (OCI makes the field optional).
 * Schema 1 manifests (deprecated since 2017) and anything malformed give RegistryError
 * ("protocol"), naming `what`.
 */
export function parseManifest(
  body: Buffer,
  contentType: string | undefined,
  registry: string,
  what: string,
): Manifest {
  const bad = (why: string) =>
    new RegistryError(registry, "protocol", `${what} is not a usable manifest: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new RegistryError(registry, "protocol", `${what} is not JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("not a JSON object");
  const m = raw as Record<string, unknown>;
  if (m.schemaVersion === 1) {
    throw bad(
      "it is a schema 1 manifest, which registries stopped serving in 2017; push the image again with a current Docker or tool",
    );
  }
  if (m.schemaVersion !== 2) throw bad(`schemaVersion is ${JSON.stringify(m.schemaVersion)}, not 2`);
  const header = contentType?.split(";")[0]?.trim();
  let mediaType = typeof m.mediaType === "string" ? m.mediaType : header;
  if (mediaType === undefined || !(INDEX_TYPES.has(mediaType) || IMAGE_TYPES.has(mediaType))) {
    if (Array.isArray(m.manifests)) mediaType = MEDIA_TYPES.ociIndex;
    else if (m.config !== undefined && Array.isArray(m.layers)) mediaType = MEDIA_TYPES.ociManifest;
    else throw bad(`unknown media type ${JSON.stringify(mediaType ?? null)}`);
  }
  if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(m.manifests)) throw bad("an index without manifests");
    return {
      kind: "index",
      mediaType,
      manifests: m.manifests.map((d, i) => readDescriptor(d, `manifests[${i}]`, bad)),
    };
  }
  if (!Array.isArray(m.layers)) throw bad("no layers");
  return {
    kind: "image",
    mediaType,
    config: readDescriptor(m.config, "config", bad),
    layers: m.layers.map((d, i) => readDescriptor(d, `layers[${i}]`, bad)),
  };
}

function readDescriptor(d: unknown, where: string, bad: (why: string) => RegistryError): Descriptor {
  if (typeof d !== "object" || d === null) throw bad(`${where} is not a descriptor`);
  const r = d as Record<string, unknown>;
  if (typeof r.digest !== "string" || !DIGEST.test(r.digest)) {
    throw bad(`${where} has a malformed digest ${JSON.stringify(r.digest)}`);
  }
  if (typeof r.size !== "number" || !Number.isSafeInteger(r.size) || r.size < 0) {
    throw bad(`${where} has a malformed size ${JSON.stringify(r.size)}`);
  }
  const out: Descriptor = {
    mediaType: typeof r.mediaType === "string" ? r.mediaType : "",
    digest: r.digest,
    size: r.size,
  };
  const p = r.platform as Record<string, unknown> | undefined;
  if (p && typeof p.os === "string" && typeof p.architecture === "string") {
    out.platform = {
      os: p.os,
      architecture: p.architecture,
      ...(typeof p.variant === "string" && { variant: p.variant }),
    };
  }
  if (r.annotations && typeof r.annotations === "object")
    out.annotations = r.annotations as Record<string, string>;
  if (Array.isArray(r.urls)) out.urls = r.urls.filter((u): u is string => typeof u === "string");
  return out;
}

/**
 * A layer's compression by its media type: `+gzip`/`.gzip` gzip, `+zstd` zstd, a plain `.tar`
 * none. Anything else is not a file system layer (a Helm chart, a signature, an attestation):
 * RegistryError.
 */
export function layerCompression(mediaType: string, registry: string): LayerCompression {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd")) return "zstd";
  if (mediaType.endsWith(".tar") || mediaType === "") return "none";
  throw new RegistryError(
    registry,
    "protocol",
    `a layer of media type ${mediaType} is not a container file system layer; this reference is not a container image`,
  );
}
