import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageArchiveError } from "../errors.js";
import {
  dockerArchiveOf,
  type ImageSpec,
  imageConfigOf,
  ociArchiveOf,
  patched,
  sha256,
  tarOf,
} from "../testing/index.js";
import { readImageArchive } from "./image-archive.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-archive-test-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const layer = (name: string, content: string) => tarOf([{ name, content }]);
/** A docker-archive of `spec`, with the id it must be read as. */
const dockerArchive = async (spec: ImageSpec, extra?: Parameters<typeof dockerArchiveOf>[1]) => ({
  archive: await dockerArchiveOf(spec, extra),
  configDigest: sha256(imageConfigOf(spec)),
});
const ociArchive = async (spec: ImageSpec, multiPlatform = false) => ({
  archive: await ociArchiveOf(spec, undefined, { multiPlatform }),
  configDigest: sha256(imageConfigOf(spec)),
});
let n = 0;
async function both(archive: Buffer, tag?: string) {
  const path = join(dir, `a${n++}.tar`);
  await writeFile(path, archive);
  const opts = tag ? { tag } : {};
  return {
    fromPath: await readImageArchive(path, opts),
    fromStream: await readImageArchive(Readable.from([archive]), opts),
  };
}
async function failure(archive: Buffer, tag?: string): Promise<ImageArchiveError[]> {
  const path = join(dir, `bad${n++}.tar`);
  await writeFile(path, archive);
  const opts = tag ? { tag } : {};
  const errors = await Promise.all([
    readImageArchive(path, opts).then(
      () => null,
      (e: unknown) => e,
    ),
    // Small chunks: the stream reader must not depend on chunk boundaries.
    readImageArchive(Readable.from(chunks(archive, 100)), opts).then(
      () => null,
      (e: unknown) => e,
    ),
  ]);
  for (const e of errors) expect(e).toBeInstanceOf(ImageArchiveError);
  return errors as ImageArchiveError[];
}
function* chunks(b: Buffer, size: number) {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

describe("readImageArchive: docker-archive", () => {
  it("gives the config digest as id, the layers bottom first, the config and the tags; path and stream agree", async () => {
    const layers = [await layer("bin/a", "aaa"), await layer("etc/b", "bbbb")];
    const { archive, configDigest } = await dockerArchive({
      layers,
      entrypoint: ["/bin/echo"],
      workingDir: "/w",
      env: ["A=1", "B=x=y"],
      user: "1000",
      tag: "example/app:2",
    });
    const { fromPath, fromStream } = await both(archive);
    expect(fromPath.id).toBe(configDigest);
    expect(fromPath.format).toBe("docker-archive");
    expect(fromPath.repoTags).toEqual(["example/app:2"]);
    expect(fromPath.layers.map((l) => l.size)).toEqual(layers.map((l) => l.length));
    expect(fromPath.layers.every((l) => l.compression === "none")).toBe(true);
    expect(fromPath.config).toMatchObject({
      entrypoint: ["/bin/echo"],
      cmd: ["/bin/sh"],
      workingDir: "/w",
      env: ["A=1", "B=x=y"],
      user: "1000",
    });
    expect(fromStream.id).toBe(fromPath.id);
    expect(fromStream.layers).toEqual(fromPath.layers);
    expect(fromPath.archiveBytes).toBe(fromStream.archiveBytes);
  });

  it("records where each layer's bytes are, so a path source can read one layer by offset", async () => {
    const layers = [await layer("x", "first"), await layer("y", "second layer")];
    const { archive } = await dockerArchive({ layers });
    const { fromPath } = await both(archive);
    for (const [i, l] of fromPath.layers.entries()) {
      expect(archive.subarray(l.dataOffset, l.dataOffset + l.size).equals(layers[i] as Buffer)).toBe(true);
    }
  });

  it("reads gzip-compressed layers' compression from their magic bytes", async () => {
    const { gzipSync } = await import("node:zlib");
    const { archive } = await dockerArchive({ layers: [gzipSync(await layer("x", "y"))] });
    expect((await both(archive)).fromPath.layers[0]?.compression).toBe("gzip");
  });

  it("picks one image of several by tag, and asks for a tag otherwise", async () => {
    const one = await dockerArchive({ layers: [await layer("a", "1")], tag: "one:1" });
    const two = await dockerArchive({ layers: [await layer("b", "2")], tag: "two:2" });
    // Two images in one archive: merge members and manifests.
    const { extract } = await import("tar-stream");
    const members: { name: string; data: Buffer }[] = [];
    const manifests: unknown[] = [];
    for (const a of [one.archive, two.archive]) {
      const x = extract();
      x.on("entry", (h, s, next) => {
        const parts: Buffer[] = [];
        s.on("data", (c: unknown) => parts.push(c as Buffer));
        s.on("end", () => {
          const data = Buffer.concat(parts);
          if (h.name === "manifest.json") manifests.push(...JSON.parse(data.toString()));
          else members.push({ name: h.name, data });
          next();
        });
      });
      x.end(a);
      await new Promise<void>((r) => x.on("finish", () => r()));
    }
    const merged = await tarOf([
      ...members.map((m) => ({ name: m.name, content: m.data })),
      { name: "manifest.json", content: JSON.stringify(manifests) },
    ]);
    expect((await both(merged, "two:2")).fromPath.id).toBe(two.configDigest);
    const [err] = await failure(merged);
    expect(err?.message).toMatch(/holds 2 images.*one:1.*two:2/);
    const [noSuch] = await failure(merged, "three:3");
    expect(noSuch?.message).toContain("no image tagged three:3");
  });
});

describe("readImageArchive: a path that is a FIFO", () => {
  it("is read as a stream (not taken as an empty file)", async () => {
    const { archive, configDigest } = await dockerArchive({ layers: [await layer("a", "1")] });
    const fifo = join(dir, `fifo${n++}`);
    execFileSync("mkfifo", [fifo]);
    const writing = writeFile(fifo, archive);
    const read = await readImageArchive(fifo);
    await writing;
    expect(read.id).toBe(configDigest);
    expect(read.layers).toHaveLength(1);
  });
});

describe("readImageArchive: OCI image layout", () => {
  it("follows index.json to the manifest and config, with gzip layers", async () => {
    const layers = [await layer("a", "1"), await layer("b", "2")];
    const { archive, configDigest } = await ociArchive({ layers, tag: "v1" });
    const { fromPath, fromStream } = await both(archive);
    expect(fromPath.format).toBe("oci-layout");
    expect(fromPath.id).toBe(configDigest);
    expect(fromPath.repoTags).toEqual(["v1"]);
    expect(fromPath.layers.map((l) => l.compression)).toEqual(["gzip", "gzip"]);
    expect(fromStream.id).toBe(configDigest);
  });

  it("picks this machine's platform from a multi-platform index", async () => {
    const { archive, configDigest } = await ociArchive({ layers: [await layer("a", "1")] }, true);
    expect((await both(archive)).fromPath.id).toBe(configDigest);
  });
});

describe("readImageArchive: bad archives are ImageArchiveError with a message that says what is wrong", () => {
  it("random bytes: not a tar archive", async () => {
    const [err] = await failure(Buffer.alloc(2048, 7));
    expect(err?.message).toMatch(/not a tar file/);
  });

  it("an empty file or stream says it is empty", async () => {
    const errors = await failure(Buffer.alloc(0));
    for (const err of errors) expect(err.message).toMatch(/is empty \(0 bytes\)/);
  });

  it("a metadata member larger than maxMetadataBytes, naming the limit", async () => {
    const { archive } = await dockerArchive({
      layers: [await layer("x", "1")],
      env: [`BIG=${"x".repeat(4000)}`],
    });
    const path = join(dir, `big${n++}.tar`);
    await writeFile(path, archive);
    await expect(readImageArchive(path, { limits: { maxMetadataBytes: 1000 } })).rejects.toMatchObject({
      code: "E_IMAGE_ARCHIVE",
      limit: "maxMetadataBytes",
      message: expect.stringMatching(/larger than 1000 bytes \(the maxMetadataBytes limit\)/),
    });
    await expect(
      readImageArchive(Readable.from([archive]), { limits: { maxMetadataBytes: 1000 } }),
    ).rejects.toMatchObject({ limit: "maxMetadataBytes" });
    expect((await readImageArchive(path)).config.env).toHaveLength(1);
  });

  it("a member name with bytes after its NUL terminator", async () => {
    const tar = await patched([{ name: "manifest.json", content: "[]" }], (h) => h.write("x", 20, "latin1"));
    const [err] = await failure(tar);
    expect(err?.message).toMatch(/bytes after its NUL terminator/);
  });

  it("a tar without manifest.json or index.json", async () => {
    const [err] = await failure(await tarOf([{ name: "hello.txt", content: "hi" }]));
    expect(err?.message).toMatch(/not an image archive.*docker save/);
  });

  it("a truncated archive: cut inside a member, or before the end marker", async () => {
    const { archive } = await dockerArchive({ layers: [await layer("x", "y".repeat(5000))] });
    await failure(archive.subarray(0, 1700));
    await failure(archive.subarray(0, archive.length - 1024 - 512));
    const [cut] = await failure(archive.subarray(0, 512 * 3));
    expect(cut?.message).toMatch(/truncated/);
  });

  it("a manifest naming a layer that is not in the archive", async () => {
    const config = Buffer.from(JSON.stringify({ config: {}, rootfs: { diff_ids: ["sha256:x"] } }));
    const archive = await tarOf([
      { name: "c.json", content: config },
      {
        name: "manifest.json",
        content: JSON.stringify([{ Config: "c.json", Layers: ["missing/layer.tar"] }]),
      },
    ]);
    const [err] = await failure(archive);
    expect(err?.entry).toBe("missing/layer.tar");
  });

  it("a config whose content does not match the digest in its name", async () => {
    const name = `${"a".repeat(64)}.json`;
    const archive = await tarOf([
      { name, content: JSON.stringify({ config: {} }) },
      { name: "manifest.json", content: JSON.stringify([{ Config: name, Layers: [] }]) },
    ]);
    const [err] = await failure(archive);
    expect(err?.message).toMatch(/does not match its digest/);
  });

  it("a layer count that disagrees with the config's rootfs", async () => {
    const l = await layer("x", "1");
    const config = Buffer.from(
      JSON.stringify({ config: {}, rootfs: { diff_ids: ["sha256:1", "sha256:2"] } }),
    );
    const archive = await tarOf([
      { name: "l.tar", content: l },
      { name: "c.json", content: config },
      { name: "manifest.json", content: JSON.stringify([{ Config: "c.json", Layers: ["l.tar"] }]) },
    ]);
    const [err] = await failure(archive);
    expect(err?.message).toMatch(/1 layers .* lists 2/);
  });

  it("member paths or manifest paths that leave the archive root", async () => {
    const l = await layer("x", "1");
    const [leaving] = await failure(await tarOf([{ name: "../evil", content: "x" }]));
    expect(leaving?.entry).toBe("../evil");
    const archive = await tarOf([
      { name: "l.tar", content: l },
      { name: "c.json", content: JSON.stringify({ config: {} }) },
      {
        name: "manifest.json",
        content: JSON.stringify([{ Config: "c.json", Layers: ["../../etc/passwd"] }]),
      },
    ]);
    await failure(archive);
  });

  it("invalid JSON in the manifest", async () => {
    const [err] = await failure(await tarOf([{ name: "manifest.json", content: "{not json" }]));
    expect(err?.entry).toBe("manifest.json");
  });

  it("an OCI blob whose content does not match its digest", async () => {
    const { archive } = await ociArchive({ layers: [await layer("a", "1")] });
    // Flip one byte inside the first blob's JSON content (a manifest or config).
    const text = archive.toString("latin1");
    const at = text.indexOf('"schemaVersion":2,"mediaType"');
    const tampered = Buffer.from(archive);
    tampered[at + 17] = "3".charCodeAt(0);
    // The header checksum is unaffected (data only), so the digest check must catch it.
    const [err] = await failure(tampered);
    expect(err?.message).toMatch(/does not match its digest/);
  });

  it("an endless stream of garbage is refused at once, not read to its end", async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 65536;
        this.push(Buffer.alloc(65536, 0x41));
      },
    });
    await expect(readImageArchive(endless)).rejects.toMatchObject({ code: "E_IMAGE_ARCHIVE" });
    expect(produced).toBeLessThan(1024 * 1024);
    expect(endless.destroyed).toBe(true);
  });

  it("a folder given as the archive", async () => {
    await expect(readImageArchive(dir)).rejects.toMatchObject({
      code: "E_IMAGE_ARCHIVE",
      message: expect.stringContaining("is a folder"),
    });
  });

  it("a path that does not exist", async () => {
    await expect(readImageArchive(join(dir, "nope.tar"))).rejects.toMatchObject({
      code: "E_IMAGE_ARCHIVE",
      message: expect.stringContaining("does not exist"),
    });
  });
});
