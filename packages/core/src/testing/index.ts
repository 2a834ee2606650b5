import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import * as tar from "tar-stream";

/**
 * Builders of small tars, layers and image archives, for tests of contexec and of backends built
 * on it: `import { dockerArchiveOf } from "@contexec/core/testing"`.
 */

export interface TarSpec {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "fifo" | "character-device" | "block-device";
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  /** Extra pax records (e.g. a path with a NUL). */
  pax?: Record<string, string>;
  devmajor?: number;
  devminor?: number;
}

const TYPE_BITS: Record<string, number> = {
  file: 0o100000,
  link: 0o100000,
  symlink: 0o120000,
  directory: 0o040000,
  fifo: 0o010000,
  "character-device": 0o020000,
  "block-device": 0o060000,
};

/** A tar of the given entries (tar-stream pack). */
export async function tarOf(entries: readonly TarSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    const mode = (e.mode ?? (type === "directory" ? 0o755 : 0o644)) | (TYPE_BITS[type] ?? 0);
    const header = {
      name: e.name,
      type,
      mode,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date((e.mtime ?? 1_700_000_000) * 1000),
      ...(e.linkname !== undefined && { linkname: e.linkname }),
      ...((e.pax || (e.uid ?? 0) > 0o777777 || (e.gid ?? 0) > 0o777777) && {
        pax: {
          ...(e.pax ?? {}),
          ...((e.uid ?? 0) > 0o777777 && { uid: String(e.uid), gid: String(e.gid ?? 0) }),
        },
      }),
      ...(e.devmajor !== undefined && { devmajor: e.devmajor, devminor: e.devminor ?? 0 }),
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === "file") pack.entry(header, e.content ?? "", cb);
      else (pack.entry(header, cb) as unknown as { end(): void }).end();
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export interface ImageSpec {
  layers: Buffer[];
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
  architecture?: string;
  tag?: string;
  /** The STOPSIGNAL ("SIGINT"). */
  stopSignal?: string;
  /** The config's `created` time (RFC 3339). */
  created?: string;
  /** The config's build history, one entry per instruction (Docker's form). */
  history?: { created: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

/** The image config JSON of a spec (its sha256 is the image's id). */
export function imageConfigOf(spec: ImageSpec): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: spec.architecture ?? "amd64",
      os: "linux",
      ...(spec.created !== undefined && { created: spec.created }),
      config: {
        Env: spec.env ?? ["PATH=/bin"],
        Entrypoint: spec.entrypoint ?? null,
        Cmd: spec.cmd ?? ["/bin/sh"],
        WorkingDir: spec.workingDir ?? "",
        ...(spec.user !== undefined && { User: spec.user }),
        Labels: spec.labels ?? null,
        ...(spec.stopSignal !== undefined && { StopSignal: spec.stopSignal }),
      },
      ...(spec.history !== undefined && { history: spec.history }),
      rootfs: { type: "layers", diff_ids: spec.layers.map((l) => sha256(l)) },
    }),
  );
}

/**
 * A docker-archive (`docker save` layout) of uncompressed layers. `omitLayer` leaves one layer
 * out of the archive while the manifest still names it.
 */
export async function dockerArchiveOf(
  spec: ImageSpec,
  options: { omitLayer?: number; extra?: TarSpec[] } = {},
): Promise<Buffer> {
  const config = imageConfigOf(spec);
  const configName = `${sha256(config).slice(7)}.json`;
  const layerNames = spec.layers.map((l) => `${sha256(l).slice(7)}/layer.tar`);
  const manifest = [{ Config: configName, RepoTags: [spec.tag ?? "test/image:latest"], Layers: layerNames }];
  const entries: TarSpec[] = [{ name: configName, content: config }];
  spec.layers.forEach((l, i) => {
    if (i !== options.omitLayer) entries.push({ name: layerNames[i] as string, content: l });
  });
  entries.push(...(options.extra ?? []), { name: "manifest.json", content: JSON.stringify(manifest) });
  return tarOf(entries);
}

/**
 * An OCI image layout archive; layers gzip-compressed unless `compress` says otherwise. With
 * `multiPlatform`, the manifest sits behind an index that also lists another platform's.
 */
export async function ociArchiveOf(
  spec: ImageSpec,
  compress: { mediaType: string; apply: (layer: Buffer) => Buffer } = {
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    apply: (l) => gzipSync(l),
  },
  options: { multiPlatform?: boolean } = {},
): Promise<Buffer> {
  const config = imageConfigOf(spec);
  const blobs: TarSpec[] = [];
  const blob = (data: Buffer) => {
    const digest = sha256(data);
    blobs.push({ name: `blobs/sha256/${digest.slice(7)}`, content: data });
    return { digest, size: data.length };
  };
  const layers = spec.layers.map((l) => ({ mediaType: compress.mediaType, ...blob(compress.apply(l)) }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...blob(config) },
      layers,
    }),
  );
  const annotations = { "org.opencontainers.image.ref.name": spec.tag ?? "latest" };
  let top: Record<string, unknown> = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    ...blob(manifest),
  };
  if (options.multiPlatform) {
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const other = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] })));
    const platforms = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...other,
            platform: { os: "linux", architecture: "s390x" },
          },
          { ...top, platform: { os: "linux", architecture: arch } },
        ],
      }),
    );
    top = { mediaType: "application/vnd.oci.image.index.v1+json", ...blob(platforms) };
  }
  const index = { schemaVersion: 2, manifests: [{ ...top, annotations }] };
  return tarOf([
    { name: "oci-layout", content: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", content: JSON.stringify(index) },
    ...blobs,
  ]);
}

/** The entries of a tar, data included (small tars only). */
export interface ListedEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname: string | null;
  content: string;
}

export async function listTar(data: Buffer): Promise<ListedEntry[]> {
  const extract = tar.extract();
  const out: ListedEntry[] = [];
  const feeding = (async () => {
    extract.end(data);
  })();
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
    const h = entry.header;
    // tar-stream leaves pax uid/gid in header.pax; a reader such as sqfstar applies them.
    const pax = (h.pax ?? {}) as Record<string, string>;
    out.push({
      name: h.name,
      type: h.type,
      mode: h.mode & 0o7777,
      uid: pax.uid ? Number(pax.uid) : h.uid,
      gid: pax.gid ? Number(pax.gid) : h.gid,
      size: h.size,
      linkname: h.linkname,
      content: Buffer.concat(chunks).toString("utf8"),
    });
  }
  await feeding;
  return out;
}

export { type HostileLayerCase, hostileLayerCases, patched } from "./hostile-layers.js";
export { PYTHON_LIKE_CLIENT_SH, SUPERVISED_JOB_SH } from "./side-channel-scripts.js";
