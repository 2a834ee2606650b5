// Builders for image archives used by the unit tests (not exported from the package).
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";

export interface Member {
  name: string;
  data?: Buffer | string;
  type?: "file" | "directory" | "symlink" | "link";
  linkname?: string;
}

/** A tar archive of the given members, as one Buffer. */
export async function tarOf(members: Member[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on("end", resolve);
    p.on("error", reject);
  });
  for (const m of members) {
    const data = m.data === undefined ? undefined : Buffer.from(m.data);
    await new Promise<void>((resolve, reject) =>
      p.entry(
        { name: m.name, type: m.type ?? "file", ...(m.linkname && { linkname: m.linkname }), mode: 0o644 },
        data ?? Buffer.alloc(0),
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

export function imageConfig(layers: Buffer[], config: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/bin"], Cmd: ["/bin/sh"], ...config },
      rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${sha256(l)}`) },
    }),
  );
}

/** A docker-archive (what `docker save` writes) with the given layer tars. */
export async function dockerArchive(
  layers: Buffer[],
  options: { config?: Record<string, unknown>; tags?: string[]; extra?: Member[] } = {},
): Promise<{ archive: Buffer; configDigest: string }> {
  const config = imageConfig(layers, options.config);
  const configName = `${sha256(config)}.json`;
  const layerNames = layers.map((l, i) => `${sha256(`${i}${sha256(l)}`)}/layer.tar`);
  const manifest = [{ Config: configName, RepoTags: options.tags ?? ["test/image:1"], Layers: layerNames }];
  const archive = await tarOf([
    ...layers.map((l, i) => ({ name: layerNames[i] as string, data: l })),
    { name: configName, data: config },
    ...(options.extra ?? []),
    { name: "manifest.json", data: JSON.stringify(manifest) },
  ]);
  return { archive, configDigest: `sha256:${sha256(config)}` };
}

/** An OCI image layout archive with gzip-compressed layers, optionally behind a platform index. */
export async function ociArchive(
  layers: Buffer[],
  options: { multiPlatform?: boolean; refName?: string } = {},
): Promise<{ archive: Buffer; configDigest: string }> {
  const config = imageConfig(layers);
  const blobs = new Map<string, Buffer>();
  const add = (b: Buffer) => {
    const d = sha256(b);
    blobs.set(d, b);
    return { digest: `sha256:${d}`, size: b.length };
  };
  const gz = layers.map((l) => gzipSync(l));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...add(config) },
      layers: gz.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...add(l) })),
    }),
  );
  let top = { mediaType: "application/vnd.oci.image.manifest.v1+json", ...add(manifest) } as Record<
    string,
    unknown
  >;
  if (options.multiPlatform) {
    const other = add(Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] })));
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const index = Buffer.from(
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
    top = { mediaType: "application/vnd.oci.image.index.v1+json", ...add(index) };
  }
  if (options.refName) top.annotations = { "org.opencontainers.image.ref.name": options.refName };
  const archive = await tarOf([
    { name: "oci-layout", data: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "blobs/", type: "directory" },
    { name: "blobs/sha256/", type: "directory" },
    ...[...blobs].map(([d, b]) => ({ name: `blobs/sha256/${d}`, data: b })),
    { name: "index.json", data: JSON.stringify({ schemaVersion: 2, manifests: [top] }) },
  ]);
  return { archive, configDigest: `sha256:${sha256(config)}` };
}
