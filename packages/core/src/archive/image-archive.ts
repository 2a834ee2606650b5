import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { posix } from "node:path";
import { ImageArchiveError, throwIfAborted } from "../errors.js";
import { parseImageConfig } from "../image-config.js";
import type { ImageConfig, ImageId } from "../spec.js";
import { type ByteSource, fileByteSource, streamByteSource } from "./byte-source.js";
import { type ArchiveLimits, archiveLimits } from "./layer-entries.js";
import { readTarHeaders, type TarHeader } from "./tar-headers.js";

export type LayerCompression = "none" | "gzip" | "zstd" | "bzip2" | "xz";

/** One layer of an image, bottom layer first in {@link ImageArchive.layers}. */
export interface ArchiveLayer {
  /** The member of the archive holding the layer (`<id>/layer.tar`, `blobs/sha256/<hex>`). */
  member: string;
  /** Offset of the layer's bytes in the archive file (meaningful for path sources). */
  dataOffset: number;
  /** Stored (possibly compressed) size. */
  size: number;
  compression: LayerCompression;
  /** The uncompressed layer's digest from the image config's rootfs.diff_ids, when given. */
  diffId: string | undefined;
}

/** What an image archive holds, read without extracting it. */
export interface ImageArchive {
  format: "docker-archive" | "oci-layout";
  /** sha256 of the image config bytes: the image's id on every backend. */
  id: ImageId;
  config: ImageConfig;
  /** The image config exactly as stored. */
  configJson: Buffer;
  repoTags: string[];
  layers: ArchiveLayer[];
  architecture: string;
  os: string;
  /** Bytes of the archive read. */
  archiveBytes: number;
}

export interface ReadArchiveOptions {
  /** Which image, when the archive holds several (a RepoTag or OCI ref name). */
  tag?: string;
  signal?: AbortSignal;
  onProgress?: (progress: { bytesRead: number; totalBytes?: number }) => void;
  /** Bounds on the archive (only `maxMetadataBytes` applies here; the layers are not read). */
  limits?: Partial<ArchiveLimits>;
}

// Manifests and configs are small; layers are not. Only small JSON-ish members are kept while
// reading: from a file, at most this much each (larger ones are read by offset afterwards).
const FILE_CAPTURE_LIMIT = 4 * 1024 * 1024;
const CAPTURE_TOTAL_LIMIT = 128 * 1024 * 1024;

/**
 * Reads a docker-archive (`docker save`) or OCI image layout tarball from a path or a stream:
 * manifest, config, layers, tags. A regular file is read by offset (layers are not read at all);
 * a stream, or a path that is a FIFO or character device, is consumed to its end. Anything that
 * is not such an archive, or is truncated or inconsistent, gives {@link ImageArchiveError}.
 */
export async function readImageArchive(
  source: string | AsyncIterable<Buffer | string>,
  options: ReadArchiveOptions = {},
): Promise<ImageArchive> {
  throwIfAborted(options.signal, "reading the image archive");
  const { maxMetadataBytes } = archiveLimits(options.limits);
  let bytes: ByteSource;
  let totalBytes: number | undefined;
  // A path that is not a regular file (a FIFO, /dev/stdin) has no size or offsets: read it as a stream.
  const path = typeof source === "string" && (await isRegularFile(source)) ? source : undefined;
  if (path !== undefined) {
    const file = await fileByteSource(path).catch((err: NodeJS.ErrnoException) => {
      throw new ImageArchiveError(`cannot open archive ${path}: ${err.message}`, { cause: err });
    });
    if (file.size === 0) {
      await file.close();
      throw new ImageArchiveError(`the archive ${path} is empty (0 bytes)`);
    }
    bytes = file;
    totalBytes = file.size;
  } else {
    bytes = streamByteSource(typeof source === "string" ? createReadStream(source) : source);
  }
  const captureLimit = path !== undefined ? Math.min(FILE_CAPTURE_LIMIT, maxMetadataBytes) : maxMetadataBytes;
  try {
    const members = new Map<string, { member: TarHeader; head: Buffer }>();
    const captured = new Map<string, Buffer>();
    let capturedTotal = 0;
    const capture = (m: TarHeader) =>
      m.kind === "file" && m.size <= captureLimit && isMetadataName(normalizeMember(m.name) ?? "");
    let sawMember = false;
    const headers = readTarHeaders(bytes, {
      what: "the image archive",
      requireEndMarker: true,
      capture,
      headBytes: 8,
    });
    const emptyStream = (err: unknown) =>
      err instanceof ImageArchiveError && bytes.position === 0 && path === undefined
        ? new ImageArchiveError("the archive stream is empty (0 bytes)", { cause: err })
        : err;
    for await (const member of withErrors(headers, emptyStream)) {
      const { data } = member;
      const head = member.head ?? data?.subarray(0, 8) ?? Buffer.alloc(0);
      sawMember = true;
      throwIfAborted(options.signal, "reading the image archive");
      const name = normalizeMember(member.name);
      if (name === null) {
        throw new ImageArchiveError("member path leaves the archive root", { entry: member.name });
      }
      if (name === "") continue;
      if (members.has(name) && member.kind !== "directory") {
        throw new ImageArchiveError("the archive holds this member twice", { entry: name });
      }
      members.set(name, { member, head });
      if (data) {
        capturedTotal += data.length;
        if (capturedTotal > CAPTURE_TOTAL_LIMIT) {
          throw new ImageArchiveError("the archive holds too many metadata files to be an image archive");
        }
        captured.set(name, data);
      }
      options.onProgress?.({ bytesRead: bytes.position, ...(totalBytes !== undefined && { totalBytes }) });
    }
    if (!sawMember) throw new ImageArchiveError("the archive is empty");
    const archiveBytes = bytes.position;
    const read = async (name: string): Promise<Buffer> => {
      const got = captured.get(name);
      if (got) return got;
      const entry = members.get(name);
      if (entry?.member.kind !== "file") {
        throw new ImageArchiveError("the archive's manifest names a member that is not in it", {
          entry: name,
        });
      }
      if (entry.member.size === 0) return Buffer.alloc(0);
      if (path === undefined || entry.member.size > maxMetadataBytes) {
        throw new ImageArchiveError(
          `metadata member is larger than ${maxMetadataBytes} bytes (the maxMetadataBytes limit)`,
          { entry: name, member: name, limit: "maxMetadataBytes" },
        );
      }
      const file = await fileByteSource(path, { start: entry.member.dataOffset });
      try {
        return (await file.readExact(entry.member.size)) ?? Buffer.alloc(0);
      } finally {
        await file.close();
      }
    };
    const layerOf = (name: string, diffId: string | undefined, mediaType?: string): ArchiveLayer => {
      const entry = members.get(name);
      if (!entry)
        throw new ImageArchiveError("the archive's manifest names a layer that is not in it", {
          entry: name,
          member: name,
        });
      if (entry.member.kind !== "file")
        throw new ImageArchiveError("a layer must be a regular file", { entry: name });
      return {
        member: name,
        dataOffset: entry.member.dataOffset,
        size: entry.member.size,
        compression: compressionOf(entry.head, mediaType),
        diffId,
      };
    };

    let result: Omit<ImageArchive, "archiveBytes">;
    if (members.has("manifest.json")) {
      result = await readDockerArchive(read, layerOf, options.tag);
    } else if (members.has("index.json") && members.has("oci-layout")) {
      result = await readOciLayout(read, layerOf, options.tag);
    } else {
      throw new ImageArchiveError(
        "not an image archive: it has neither manifest.json (docker-archive) nor index.json and oci-layout (OCI layout). Create one with `docker save IMAGE -o image.tar`",
      );
    }
    return { ...result, archiveBytes };
  } finally {
    await bytes.close();
  }
}

async function isRegularFile(path: string): Promise<boolean> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageArchiveError(
      code === "ENOENT"
        ? `archive ${path} does not exist`
        : `cannot open archive ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (info.isDirectory()) {
    throw new ImageArchiveError(`archive ${path} is a folder; give the tarball \`docker save\` wrote`);
  }
  return info.isFile();
}

/** The items of `source`, its errors passed through `map`. */
async function* withErrors<T>(source: AsyncGenerator<T>, map: (err: unknown) => unknown): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw map(err);
  }
}

type ReadMember = (name: string) => Promise<Buffer>;
type LayerOf = (name: string, diffId: string | undefined, mediaType?: string) => ArchiveLayer;

async function readDockerArchive(
  read: ReadMember,
  layerOf: LayerOf,
  tag: string | undefined,
): Promise<Omit<ImageArchive, "archiveBytes">> {
  const manifest = parseJson(await read("manifest.json"), "manifest.json");
  if (!Array.isArray(manifest) || manifest.length === 0) {
    throw new ImageArchiveError("manifest.json must be a non-empty array of images", {
      entry: "manifest.json",
    });
  }
  const images = manifest as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }[];
  const image = pickImage(
    images,
    (m) => (Array.isArray(m.RepoTags) ? m.RepoTags.filter((t): t is string => typeof t === "string") : []),
    tag,
  );
  if (typeof image.Config !== "string" || !Array.isArray(image.Layers)) {
    throw new ImageArchiveError("manifest.json entry lacks Config or Layers", { entry: "manifest.json" });
  }
  const configName = memberPath(image.Config, "manifest.json");
  const configJson = await read(configName);
  const id = digestOf(configJson);
  const named = /([0-9a-f]{64})(\.json)?$/.exec(configName)?.[1];
  if (named && `sha256:${named}` !== id) {
    throw new ImageArchiveError(`the image config does not match its digest (content is ${id})`, {
      entry: configName,
    });
  }
  const { config, diffIds, architecture, os } = readConfig(configJson, configName);
  const layerNames = image.Layers.map((l) => {
    if (typeof l !== "string") throw new ImageArchiveError("manifest.json Layers must be strings");
    return memberPath(l, "manifest.json");
  });
  checkLayerCount(layerNames.length, diffIds);
  return {
    format: "docker-archive",
    id,
    config,
    configJson,
    repoTags: Array.isArray(image.RepoTags)
      ? image.RepoTags.filter((t): t is string => typeof t === "string")
      : [],
    layers: layerNames.map((name, i) => layerOf(name, diffIds?.[i])),
    architecture,
    os,
  };
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string };
}

const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

async function readOciLayout(
  read: ReadMember,
  layerOf: LayerOf,
  tag: string | undefined,
): Promise<Omit<ImageArchive, "archiveBytes">> {
  const layout = parseJson(await read("oci-layout"), "oci-layout") as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== "string") {
    throw new ImageArchiveError("oci-layout lacks imageLayoutVersion", { entry: "oci-layout" });
  }
  const blob = async (d: Descriptor, what: string): Promise<Buffer> => {
    const name = blobPath(d, what);
    const data = await read(name);
    if (digestOf(data, d.digest.split(":")[0]) !== d.digest) {
      throw new ImageArchiveError(`the ${what} does not match its digest ${d.digest}`, { entry: name });
    }
    return data;
  };
  let index = parseJson(await read("index.json"), "index.json") as { manifests?: Descriptor[] };
  let refNames: string[] = [];
  for (let depth = 0; ; depth++) {
    if (!Array.isArray(index?.manifests) || index.manifests.length === 0) {
      throw new ImageArchiveError("the OCI index lists no manifests", { entry: "index.json" });
    }
    const descriptor: Descriptor = pickImage(
      index.manifests,
      (d) => refNamesOf(d),
      depth === 0 ? tag : undefined,
      true,
    );
    if (depth === 0) refNames = refNamesOf(descriptor);
    const body = parseJson(await blob(descriptor, "manifest"), descriptor.digest);
    if (descriptor.mediaType && INDEX_TYPES.has(descriptor.mediaType)) {
      if (depth > 4) throw new ImageArchiveError("OCI indexes nest too deeply");
      index = body as { manifests?: Descriptor[] };
      continue;
    }
    const manifest = body as { config?: Descriptor; layers?: Descriptor[] };
    if (!manifest.config || !Array.isArray(manifest.layers)) {
      throw new ImageArchiveError("the OCI manifest lacks config or layers", {
        entry: blobPath(descriptor, "manifest"),
      });
    }
    const configJson = await blob(manifest.config, "image config");
    const configName = blobPath(manifest.config, "image config");
    const { config, diffIds, architecture, os } = readConfig(configJson, configName);
    checkLayerCount(manifest.layers.length, diffIds);
    return {
      format: "oci-layout",
      id: digestOf(configJson),
      config,
      configJson,
      repoTags: refNames,
      layers: manifest.layers.map((l, i) => layerOf(blobPath(l, "layer"), diffIds?.[i], l.mediaType)),
      architecture,
      os,
    };
  }
}

function refNamesOf(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  return [a["io.containerd.image.name"], a["org.opencontainers.image.ref.name"]].filter(
    (x): x is string => typeof x === "string",
  );
}

/**
 * The one image to read: the tagged one, the only one, or (in a multi-platform index) the one
 * for this machine's platform.
 */
function pickImage<T>(
  items: T[],
  tagsOf: (item: T) => string[],
  tag: string | undefined,
  byPlatform = false,
): T {
  if (tag !== undefined) {
    const found = items.find((i) =>
      tagsOf(i).some((t) => t === tag || t.endsWith(`/${tag}`) || t.endsWith(`:${tag}`)),
    );
    if (!found) {
      const all = items.flatMap(tagsOf);
      throw new ImageArchiveError(
        `the archive has no image tagged ${tag}; it has: ${all.join(", ") || "no tags"}`,
      );
    }
    return found;
  }
  if (items.length === 1) return items[0] as T;
  if (byPlatform) {
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const match = items.find((i) => {
      const p = (i as Descriptor).platform;
      return p?.os === "linux" && p.architecture === arch;
    });
    if (match) return match;
  }
  throw new ImageArchiveError(
    `the archive holds ${items.length} images (${items.flatMap(tagsOf).join(", ")}); say which one with the tag option`,
  );
}

function readConfig(
  json: Buffer,
  name: string,
): { config: ImageConfig; diffIds: string[] | undefined; architecture: string; os: string } {
  const raw = parseJson(json, name) as {
    config?: unknown;
    rootfs?: { diff_ids?: unknown };
    architecture?: unknown;
    os?: unknown;
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ImageArchiveError("the image config is not a JSON object", { entry: name });
  }
  const diffIds = Array.isArray(raw.rootfs?.diff_ids)
    ? raw.rootfs.diff_ids.filter((d): d is string => typeof d === "string")
    : undefined;
  return {
    config: parseImageConfig(raw),
    diffIds,
    architecture: typeof raw.architecture === "string" ? raw.architecture : "amd64",
    os: typeof raw.os === "string" ? raw.os : "linux",
  };
}

function checkLayerCount(layers: number, diffIds: string[] | undefined): void {
  if (diffIds && diffIds.length !== layers) {
    throw new ImageArchiveError(
      `the manifest lists ${layers} layers but the image config's rootfs lists ${diffIds.length}`,
    );
  }
}

function blobPath(d: Descriptor, what: string): string {
  if (typeof d?.digest !== "string" || !/^[a-z0-9]+:[a-f0-9]{32,}$/.test(d.digest)) {
    throw new ImageArchiveError(`the ${what} descriptor has a malformed digest "${String(d?.digest)}"`);
  }
  const [alg, hex] = d.digest.split(":") as [string, string];
  return `blobs/${alg}/${hex}`;
}

function memberPath(name: string, from: string): string {
  const normalized = normalizeMember(name);
  if (!normalized)
    throw new ImageArchiveError(`${from} names a path outside the archive: "${name}"`, { entry: from });
  return normalized;
}

/** Archive member names as stored, without "./"; null when the name leaves the root. */
export function normalizeMember(name: string): string | null {
  if (name.includes("\0")) return null;
  const n = posix.normalize(`/${name}`).slice(1).replace(/\/$/, "");
  if (name.startsWith("/") || name.split("/").includes("..")) return null;
  return n === "." ? "" : n;
}

function isMetadataName(name: string): boolean {
  return (
    name === "manifest.json" ||
    name === "index.json" ||
    name === "oci-layout" ||
    name === "repositories" ||
    name.endsWith(".json") ||
    name.startsWith("blobs/")
  );
}

function compressionOf(head: Buffer, mediaType: string | undefined): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  if (head.length >= 3 && head.subarray(0, 3).toString("latin1") === "BZh") return "bzip2";
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return "xz";
  if (mediaType?.endsWith("+gzip") || mediaType?.endsWith(".gzip")) return "gzip";
  if (mediaType?.endsWith("+zstd")) return "zstd";
  return "none";
}

function parseJson(data: Buffer, name: string): unknown {
  try {
    return JSON.parse(data.toString("utf8"));
  } catch (err) {
    throw new ImageArchiveError(`invalid JSON: ${(err as Error).message}`, { entry: name, cause: err });
  }
}

/** `<alg>:<hex digest>` of bytes. */
export function digestOf(data: Buffer, algorithm = "sha256"): ImageId {
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    throw new ImageArchiveError(`unsupported digest algorithm ${algorithm}`);
  }
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}` as ImageId;
}
