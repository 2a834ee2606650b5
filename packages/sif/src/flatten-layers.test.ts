import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type ArchiveLimits, checkImageLayers, ImageArchiveError, readImageArchive } from "@contexec/core";
import {
  dockerArchiveOf,
  hostileLayerCases,
  type ListedEntry,
  listTar,
  sha256,
  type TarSpec,
  tarOf,
} from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FlattenPlan, planFlatten as planOneWay } from "./flatten-layers.js";
import { archiveLayerSource, bufferLayerSource, type LayerSource } from "./layer-source.js";
import { writeFlattened } from "./write-flattened.js";

/**
 * Plans with the headers read synchronously (as for uncompressed layers) and, for the same layers
 * without that, asynchronously (as for compressed ones): both ways must give the same plan or fail
 * with the same error.
 */
async function planFlatten(
  sources: LayerSource[],
  options: { limits?: Partial<ArchiveLimits> } = {},
): Promise<FlattenPlan> {
  const streamed = sources.map((s) => ({ ...s, readHeadersSync: undefined }));
  const [sync, async] = await Promise.allSettled([
    planOneWay(sources, options),
    planOneWay(streamed, options),
  ]);
  if (sync.status === "rejected") {
    expect(async.status).toBe("rejected");
    const [a, b] = [sync.reason, (async as PromiseRejectedResult).reason] as ImageArchiveError[];
    expect(String(b)).toBe(String(a));
    expect([b?.entry, b?.member, b?.limit]).toEqual([a?.entry, a?.member, a?.limit]);
    throw sync.reason;
  }
  expect(async.status).toBe("fulfilled");
  expect((async as PromiseFulfilledResult<FlattenPlan>).value).toEqual(sync.value);
  return sync.value;
}

/** Flattens layers given bottom first; returns the output tar's entries in order. */
async function flatten(...layers: TarSpec[][]): Promise<ListedEntry[]> {
  const sources = await Promise.all(
    layers.map(async (entries, i) => bufferLayerSource(`layer ${i}`, await tarOf(entries))),
  );
  const plan = await planFlatten(sources);
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  await writeFlattened(plan, sources, out);
  return listTar(Buffer.concat(chunks));
}

const byName = (entries: ListedEntry[]) => new Map(entries.map((e) => [e.name, e]));
const names = (entries: ListedEntry[]) => entries.map((e) => e.name).sort();

async function rejection(p: Promise<unknown>): Promise<ImageArchiveError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageArchiveError);
  return err as ImageArchiveError;
}

describe("flattening: replacement", () => {
  it("keeps the upper version of a file and the lower files beside it", async () => {
    const out = await flatten(
      [
        { name: "a/", type: "directory" },
        { name: "a/f", content: "old" },
        { name: "a/g", content: "lower" },
      ],
      [{ name: "a/f", content: "new", mode: 0o600 }],
    );
    const m = byName(out);
    expect(m.get("a/f")).toMatchObject({ content: "new", mode: 0o600 });
    expect(m.get("a/g")?.content).toBe("lower");
    expect(out.filter((e) => e.name === "a/f")).toHaveLength(1);
  });

  it("merges a folder over a folder, with the upper folder's metadata", async () => {
    const out = await flatten(
      [
        { name: "d", type: "directory", mode: 0o700, uid: 5 },
        { name: "d/low", content: "1" },
      ],
      [
        { name: "d", type: "directory", mode: 0o750, uid: 7 },
        { name: "d/up", content: "2" },
      ],
    );
    const m = byName(out);
    expect(m.get("d")).toMatchObject({ type: "directory", mode: 0o750, uid: 7 });
    expect(names(out)).toEqual(["d", "d/low", "d/up"]);
  });

  it("replaces a folder by a file, hiding everything that was in it", async () => {
    const out = await flatten(
      [
        { name: "x", type: "directory" },
        { name: "x/child", content: "c" },
      ],
      [{ name: "x", content: "file" }],
    );
    expect(names(out)).toEqual(["x"]);
    expect(byName(out).get("x")?.type).toBe("file");
  });

  it("replaces a file by a folder", async () => {
    const out = await flatten(
      [{ name: "x", content: "file" }],
      [
        { name: "x", type: "directory" },
        { name: "x/in", content: "i" },
      ],
    );
    expect(byName(out).get("x")?.type).toBe("directory");
    expect(names(out)).toEqual(["x", "x/in"]);
  });

  it("keeps the last of two entries for one path in the same layer", async () => {
    const out = await flatten([
      { name: "f", content: "first" },
      { name: "f", content: "second" },
    ]);
    expect(out.filter((e) => e.name === "f").map((e) => e.content)).toEqual(["second"]);
  });

  it("keeps a lower file when an upper layer only adds files below its folder", async () => {
    const out = await flatten(
      [
        { name: "etc/", type: "directory" },
        { name: "etc/a", content: "a" },
      ],
      [{ name: "etc/b", content: "b" }],
    );
    expect(names(out)).toEqual(["etc", "etc/a", "etc/b"]);
  });
});

describe("flattening: whiteouts and opaque folders", () => {
  it("deletes a lower file and a lower folder with everything in it", async () => {
    const out = await flatten(
      [
        { name: "data/", type: "directory" },
        { name: "data/gone.txt", content: "x" },
        { name: "data/gone-dir/", type: "directory" },
        { name: "data/gone-dir/deep/", type: "directory" },
        { name: "data/gone-dir/deep/f", content: "y" },
        { name: "data/kept", content: "k" },
      ],
      [{ name: "data/", type: "directory" }, { name: "data/.wh.gone.txt" }, { name: "data/.wh.gone-dir" }],
    );
    expect(names(out)).toEqual(["data", "data/kept"]);
  });

  it("applies a whiteout to lower layers only, not to its own layer", async () => {
    const out = await flatten(
      [{ name: "f", content: "lower" }],
      [{ name: "f", content: "same layer" }, { name: ".wh.f" }],
    );
    expect(byName(out).get("f")?.content).toBe("same layer");
  });

  it("lets a higher layer re-create a deleted path", async () => {
    const out = await flatten(
      [{ name: "f", content: "1" }],
      [{ name: ".wh.f" }],
      [{ name: "f", content: "3" }],
    );
    expect(byName(out).get("f")?.content).toBe("3");
  });

  it("hides a lower folder's content under an opaque marker, wherever the marker sits in its layer", async () => {
    const out = await flatten(
      [
        { name: "r/", type: "directory" },
        { name: "r/old", content: "old" },
        { name: "r/sub/", type: "directory" },
        { name: "r/sub/x", content: "x" },
      ],
      [
        { name: "r/", type: "directory", mode: 0o700 },
        { name: "r/new", content: "new" },
        { name: "r/.wh..wh..opq" },
      ],
    );
    expect(names(out)).toEqual(["r", "r/new"]);
    expect(byName(out).get("r")?.mode).toBe(0o700);
  });

  it("hides every lower entry under an opaque marker at the root", async () => {
    const out = await flatten(
      [
        { name: "a", content: "a" },
        { name: "d/", type: "directory" },
      ],
      [{ name: ".wh..wh..opq" }, { name: "b", content: "b" }],
    );
    expect(names(out)).toEqual(["b"]);
  });

  it("never writes whiteout or aufs bookkeeping entries", async () => {
    const out = await flatten(
      [{ name: "a", content: "a" }],
      [{ name: ".wh.a" }, { name: ".wh..wh.plnk/", type: "directory" }, { name: ".wh..wh.aufs" }],
    );
    expect(out.filter((e) => e.name.includes(".wh."))).toEqual([]);
  });
});

describe("flattening: order, links and metadata", () => {
  it("writes every folder before anything inside it, inventing missing parents", async () => {
    const out = await flatten([
      { name: "z/y/x/file", content: "deep" },
      { name: "a/", type: "directory" },
    ]);
    const position = new Map(out.map((e, i) => [e.name, i]));
    for (const e of out) {
      const parent = e.name.split("/").slice(0, -1).join("/");
      if (parent) expect(position.get(parent)).toBeLessThan(position.get(e.name) as number);
    }
    expect(byName(out).get("z/y")).toMatchObject({ type: "directory", mode: 0o755, uid: 0 });
  });

  it("keeps a hard link in the same layer as a link to its target, target first", async () => {
    const out = await flatten([
      { name: "f", content: "data" },
      { name: "g", type: "link", linkname: "f" },
    ]);
    const f = out.findIndex((e) => e.name === "f");
    const g = out.findIndex((e) => e.name === "g");
    expect(out[g]).toMatchObject({ type: "link", linkname: "f" });
    expect(f).toBeLessThan(g);
  });

  it("links to a file of a lower layer, written before the link", async () => {
    const out = await flatten(
      [
        { name: "lib/", type: "directory" },
        { name: "lib/real", content: "payload" },
      ],
      [{ name: "lib/alias", type: "link", linkname: "/lib/real" }],
    );
    const real = out.findIndex((e) => e.name === "lib/real");
    const alias = out.findIndex((e) => e.name === "lib/alias");
    expect(out[alias]).toMatchObject({ type: "link", linkname: "lib/real" });
    expect(real).toBeLessThan(alias);
    expect(out[real]?.content).toBe("payload");
  });

  it("keeps the content a link had when its target is later replaced", async () => {
    const out = await flatten(
      [{ name: "t", content: "v1" }],
      [{ name: "l", type: "link", linkname: "t" }],
      [{ name: "t", content: "v2" }],
    );
    const m = byName(out);
    expect(m.get("t")?.content).toBe("v2");
    expect(m.get("l")).toMatchObject({ type: "file", content: "v1" });
  });

  it("keeps a file alive under its links when its own name is deleted above", async () => {
    const out = await flatten(
      [
        { name: "bin/", type: "directory" },
        { name: "bin/perl5", content: "perl", mode: 0o755 },
        { name: "bin/perl", type: "link", linkname: "bin/perl5" },
        { name: "bin/perl-alt", type: "link", linkname: "bin/perl5" },
      ],
      [{ name: "bin/.wh.perl5" }],
    );
    const m = byName(out);
    expect(m.has("bin/perl5")).toBe(false);
    expect(m.get("bin/perl")).toMatchObject({ type: "file", content: "perl", mode: 0o755 });
    expect(m.get("bin/perl-alt")).toMatchObject({ type: "link", linkname: "bin/perl" });
  });

  it("follows a link to a link", async () => {
    const out = await flatten(
      [{ name: "a", content: "A" }],
      [{ name: "b", type: "link", linkname: "a" }],
      [{ name: "c", type: "link", linkname: "b" }],
    );
    expect(byName(out).get("c")).toMatchObject({ type: "link", linkname: "a" });
  });

  it("keeps modes (setuid, 0000), numeric owners large and small, and symlinks as they are", async () => {
    const out = await flatten([
      { name: "suid", content: "#!/bin/sh\n", mode: 0o4755 },
      { name: "shadow", content: "secret", mode: 0 },
      { name: "owned", content: "o", uid: 1234, gid: 5678 },
      { name: "userns", content: "u", uid: 1_000_000, gid: 1_000_001 },
      { name: "abs", type: "symlink", linkname: "/etc/passwd" },
      { name: "rel", type: "symlink", linkname: "../../outside" },
      { name: "pipe", type: "fifo" },
    ]);
    const m = byName(out);
    expect(m.get("suid")?.mode).toBe(0o4755);
    expect(m.get("shadow")?.mode).toBe(0);
    expect(m.get("owned")).toMatchObject({ uid: 1234, gid: 5678 });
    expect(m.get("abs")).toMatchObject({ type: "symlink", linkname: "/etc/passwd" });
    expect(m.get("rel")).toMatchObject({ type: "symlink", linkname: "../../outside" });
    expect(m.get("pipe")?.type).toBe("fifo");
    // ids beyond ustar's 0o777777 travel as pax records
    expect(m.get("userns")).toMatchObject({ uid: 1_000_000, gid: 1_000_001 });
  });

  it("drops device nodes", async () => {
    const sources = [
      bufferLayerSource(
        "layer 0",
        await tarOf([
          { name: "dev/", type: "directory" },
          { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3 },
          { name: "dev/sda", type: "block-device", devmajor: 8 },
        ]),
      ),
    ];
    const plan = await planFlatten(sources);
    expect(plan.droppedDevices).toEqual(["/dev/null", "/dev/sda"]);
    expect(plan.memoryEntries.map((e) => e.path)).toEqual(["dev"]);
  });

  it("normalises names: ./ prefixes, absolute names, inner .. that stays inside", async () => {
    const out = await flatten([
      { name: "./etc/", type: "directory" },
      { name: "/etc/abs", content: "1" },
      { name: "etc/sub/../inner", content: "2" },
    ]);
    expect(names(out)).toEqual(["etc", "etc/abs", "etc/inner"]);
  });

  it("reads the content of big files through without mixing them up", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    const other = Buffer.alloc(70_000, 9);
    const out = await flatten(
      [
        { name: "big", content: big },
        { name: "small", content: "s" },
      ],
      [{ name: "other", content: other }],
    );
    const m = byName(out);
    expect(m.get("big")?.size).toBe(big.length);
    expect(sha256(Buffer.from(m.get("other")?.content ?? "", "utf8"))).toBe(
      sha256(Buffer.from(other.toString("utf8"))),
    );
  });
});

describe("flattening: hostile layers", () => {
  const plan = async (...layers: TarSpec[][]) =>
    planFlatten(
      await Promise.all(layers.map(async (l, i) => bufferLayerSource(`layer ${i}`, await tarOf(l)))),
    );

  it.each([["../escape"], ["/../escape"], ["a/../../escape"], ["./../../etc/passwd"]])(
    "refuses %s, which leaves the root",
    async (name) => {
      const err = await rejection(plan([{ name, content: "x" }]));
      expect(err.message).toMatch(/leaves the image root/);
      expect(err.entry).toBe(name);
    },
  );

  it("refuses a hard link pointing outside the image", async () => {
    const err = await rejection(plan([{ name: "l", type: "link", linkname: "../../etc/shadow" }]));
    expect(err.message).toMatch(/hard link pointing outside the image/);
    expect(err.entry).toBe("l");
  });

  it("refuses a hard link to a missing target", async () => {
    const err = await rejection(
      plan([{ name: "a", content: "a" }], [{ name: "l", type: "link", linkname: "nope" }]),
    );
    expect(err.message).toMatch(/hard link points to \/nope, which is not in the image/);
    expect(err.entry).toBe("/l");
  });

  it("refuses a hard link to a target deleted below it", async () => {
    const err = await rejection(
      plan([{ name: "t", content: "t" }], [{ name: ".wh.t" }], [{ name: "l", type: "link", linkname: "t" }]),
    );
    expect(err.message).toMatch(/not in the image/);
  });

  it("refuses a hard link to a folder", async () => {
    const err = await rejection(
      plan([
        { name: "d", type: "directory" },
        { name: "l", type: "link", linkname: "d" },
      ]),
    );
    expect(err.message).toMatch(/hard link to the folder \/d/);
  });

  it("refuses a name holding a NUL byte", async () => {
    const err = await rejection(plan([{ name: "innocent", content: "x", pax: { path: "evil\0name" } }]));
    expect(err.message).toMatch(/NUL/);
  });

  it("refuses an entry inside a file of the same layer", async () => {
    const err = await rejection(
      plan([
        { name: "f", content: "x" },
        { name: "f/inside", content: "y" },
      ]),
    );
    expect(err.message).toMatch(/inside \/f, which the same layer makes a file/);
  });

  it("refuses a symlink without a target", async () => {
    const header = await tarOf([{ name: "s", type: "symlink", linkname: "x" }]);
    // Blank the linkname field (157..257) and fix the header checksum.
    header.fill(0, 157, 257);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += header[i] as number;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const err = await rejection(planFlatten([bufferLayerSource("layer 0", header)]));
    expect(err.message).toMatch(/symlink with an empty/);
  });

  it("refuses a truncated layer, naming it", async () => {
    const whole = await tarOf([
      { name: "a", content: Buffer.alloc(5000, 1) },
      { name: "b", content: "b" },
    ]);
    const err = await rejection(planFlatten([bufferLayerSource("layer cut", whole.subarray(0, 2048))]));
    expect(err.message).toMatch(/layer cut is truncated/);
  });

  it("refuses a layer that is not a tar", async () => {
    const err = await rejection(planFlatten([bufferLayerSource("layer junk", Buffer.alloc(1024, 0x41))]));
    expect(err.message).toMatch(/layer junk is not a tar file or is corrupt/);
  });

  it("refuses unsupported entry types", async () => {
    const layer = await tarOf([{ name: "sparse", content: "x" }]);
    layer[156] = "S".charCodeAt(0);
    layer.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += layer[i] as number;
    layer.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const err = await rejection(planFlatten([bufferLayerSource("layer 0", layer)]));
    expect(err.message).toMatch(/unsupported tar type 'S'/);
  });
});

describe("flattening: core's checks on every entry, read either way", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sif-flatten-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  let n = 0;
  /** The layers of a docker-archive file holding `layers`, read by offset (the converter's way). */
  async function archiveLayers(layers: Buffer[]): Promise<LayerSource[]> {
    const path = join(dir, `image-${n++}.tar`);
    await writeFile(path, await dockerArchiveOf({ layers }));
    const archive = await readImageArchive(path);
    return archive.layers.map((l) => archiveLayerSource(path, l));
  }

  it("the layers of an uncompressed archive are read synchronously", async () => {
    const [layer] = await archiveLayers([await tarOf([{ name: "a", content: "a" }])]);
    expect(layer?.readHeadersSync).toBeTypeOf("function");
  });

  describe("refuses every hostile case checkImageLayers refuses, with its message and entry", async () => {
    const cases = await hostileLayerCases();
    it.each(cases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
      const layers = await archiveLayers(c.layers);
      const err = await rejection(planFlatten(layers));
      expect(err.message).toMatch(c.message);
      expect(err.entry).toBe(c.entry);
      // The same archive, through the check every backend runs first: the same refusal.
      const path = join(dir, `image-${n - 1}.tar`);
      const checked = await rejection(checkImageLayers(path, await readImageArchive(path)));
      expect(checked.message).toMatch(c.message);
      expect(checked.entry).toBe(c.entry);
    });
  });

  it("maxEntries counts the entries of all layers, naming the limit and the layer", async () => {
    const many = (prefix: string) =>
      tarOf(Array.from({ length: 30 }, (_, i) => ({ name: `${prefix}${i}`, content: "x" })));
    const layers = await archiveLayers([await many("a"), await many("b")]);
    await planFlatten(layers, { limits: { maxEntries: 60 } });
    const err = await rejection(planFlatten(layers, { limits: { maxEntries: 50 } }));
    expect(err.limit).toBe("maxEntries");
    expect(err.message).toMatch(/more than 50 entries/);
    expect(err.member).toMatch(/\/layer\.tar$|^[0-9a-f]{64}/);
  });

  it("maxLayerBytes counts the uncompressed bytes of all layers, in memory or in the archive", async () => {
    const half = await tarOf([{ name: "a", content: Buffer.alloc(600 * 1024) }]);
    const other = await tarOf([{ name: "b", content: Buffer.alloc(600 * 1024) }]);
    const limits = { maxLayerBytes: 1024 * 1024 };
    await planFlatten(await archiveLayers([half]), { limits });
    let err = await rejection(planFlatten(await archiveLayers([half, other]), { limits }));
    expect(err.limit).toBe("maxLayerBytes");
    expect(err.message).toMatch(/more than 1 MiB once uncompressed/);
    err = await rejection(
      planFlatten([bufferLayerSource("layer 0", half), bufferLayerSource("layer 1", other)], { limits }),
    );
    expect(err.limit).toBe("maxLayerBytes");
    // Layers are planned top down: the bottom one is where the budget runs out.
    expect(err.member).toBe("layer 0");
  });
});
