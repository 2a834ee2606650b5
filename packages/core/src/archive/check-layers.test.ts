import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageArchiveError } from "../errors.js";
import { dockerArchiveOf, hostileLayerCases, ociArchiveOf, type TarSpec, tarOf } from "../testing/index.js";
import { checkImageLayers, readLayerHeaders, readLayerHeadersSync } from "./check-layers.js";
import { type ArchiveLayer, readImageArchive } from "./image-archive.js";
import { type ArchiveLimits, LayerBudget } from "./layer-entries.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-check-layers-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let n = 0;
async function check(layers: Buffer[], options: { gzip?: boolean; limits?: Partial<ArchiveLimits> } = {}) {
  const path = join(dir, `image-${n++}.tar`);
  await writeFile(path, options.gzip ? await ociArchiveOf({ layers }) : await dockerArchiveOf({ layers }));
  const archive = await readImageArchive(path);
  await checkImageLayers(path, archive, options.limits ? { limits: options.limits } : {});
  return archive;
}
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a refusal");
    },
    (e: unknown) => {
      expect(e).toBeInstanceOf(ImageArchiveError);
      return e as ImageArchiveError;
    },
  );
const layersOf = (...layers: TarSpec[][]) => Promise.all(layers.map(tarOf));

describe("checkImageLayers refuses every class of hostile entry, naming the layer and the entry", async () => {
  const cases = await hostileLayerCases();
  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    for (const gzip of [false, true]) {
      const err = await refusal(check(c.layers, { gzip }));
      expect(err.code).toBe("E_IMAGE_ARCHIVE");
      expect(err.message).toMatch(c.message);
      expect(err.entry).toBe(c.entry);
      const archive = await readImageArchive(join(dir, `image-${n - 1}.tar`));
      expect(err.member).toBe(archive.layers[c.layer]?.member);
    }
  });
});

describe("checkImageLayers accepts what images hold", () => {
  it("links to earlier entries and to lower layers, whiteouts, opaque folders, devices, absolute names", async () => {
    await check(
      await layersOf(
        [
          { name: "bin", type: "directory" },
          { name: "bin/busybox", content: "b" },
          { name: "d/old", content: "o" },
          { name: "gone/x", content: "x" },
          { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3 },
        ],
        [
          { name: "bin/sh", type: "link", linkname: "bin/busybox" },
          { name: "/abs/inside", content: "a" },
          { name: "./rel/../kept", content: "k" },
          { name: "s", type: "symlink", linkname: "../../../../etc/passwd" },
          { name: "p", type: "fifo" },
          { name: "lp", type: "link", linkname: "p" },
          { name: "d/.wh..wh..opq" },
          { name: ".wh.gone" },
          { name: ".wh..wh.plnk" },
        ],
        [
          { name: "l2", type: "link", linkname: "/bin/sh" },
          { name: "bin", type: "directory" },
          { name: "x", content: "1" },
          { name: "y", type: "link", linkname: "x" },
        ],
      ),
    );
  });

  it("a hard link to a file that replaced a folder below, and a file below that a folder replaces", async () => {
    await check(
      await layersOf(
        [
          { name: "f", content: "file" },
          { name: "d/x", content: "x" },
        ],
        [
          { name: "f/inside", content: "now a folder" },
          { name: "d", content: "now a file" },
        ],
        [{ name: "l", type: "link", linkname: "d" }],
      ),
    );
  });

  it("a file replacing a folder of its own layer takes the folder's content away", async () => {
    const err = await refusal(
      check(
        await layersOf([
          { name: "d/t", content: "t" },
          { name: "d", content: "file now" },
          { name: "l", type: "link", linkname: "d/t" },
        ]),
      ),
    );
    expect(err.message).toMatch(/points to \/d\/t, which is not in the image/);
  });

  it("a link to a deleted file re-created by a middle layer", async () => {
    await check(
      await layersOf(
        [{ name: "t", content: "t" }],
        [{ name: ".wh.t" }],
        [{ name: "t", content: "again" }],
        [{ name: "l", type: "link", linkname: "t" }],
      ),
    );
  });
});

describe("checkImageLayers limits", () => {
  it("a decompression bomb stops at maxLayerBytes, naming the limit", async () => {
    // 8 MiB of zeros gzip to a few KiB.
    const bomb = await tarOf([{ name: "zeros", content: Buffer.alloc(8 * 1024 * 1024) }]);
    expect(gzipSync(bomb).length).toBeLessThan(64 * 1024);
    const err = await refusal(check([bomb], { gzip: true, limits: { maxLayerBytes: 1024 * 1024 } }));
    expect(err.limit).toBe("maxLayerBytes");
    expect(err.message).toMatch(/more than 1 MiB once uncompressed \(the maxLayerBytes limit/);
    expect(err.member).toMatch(/^blobs\/sha256\//);
    // The same image within the limit passes.
    await check([bomb], { gzip: true, limits: { maxLayerBytes: 16 * 1024 * 1024 } });
  });

  it("the byte budget covers all layers together", async () => {
    const half = await tarOf([{ name: "a", content: Buffer.alloc(600 * 1024) }]);
    const other = await tarOf([{ name: "b", content: Buffer.alloc(600 * 1024) }]);
    await check([half], { limits: { maxLayerBytes: 1024 * 1024 } });
    const err = await refusal(check([half, other], { limits: { maxLayerBytes: 1024 * 1024 } }));
    expect(err.limit).toBe("maxLayerBytes");
  });

  it("maxEntries counts the entries of all layers", async () => {
    const many = (prefix: string) =>
      tarOf(Array.from({ length: 30 }, (_, i) => ({ name: `${prefix}${i}`, content: "x" })));
    await check([await many("a")], { limits: { maxEntries: 30 } });
    const err = await refusal(check([await many("a"), await many("b")], { limits: { maxEntries: 50 } }));
    expect(err.limit).toBe("maxEntries");
    expect(err.message).toMatch(/more than 50 entries/);
  });

  it("refuses limits that are not positive integers", async () => {
    await expect(check([await tarOf([])], { limits: { maxEntries: 0 } })).rejects.toMatchObject({
      code: "E_INVALID_CONFIG",
    });
    await expect(
      check([await tarOf([])], { limits: { maxEntry: 5 } as unknown as Partial<ArchiveLimits> }),
    ).rejects.toThrow(/unknown archive limit "maxEntry"/);
  });
});

describe("readLayerHeadersSync reads what readLayerHeaders reads, with the same budget", () => {
  async function archiveOf(layers: Buffer[], gzip = false) {
    const path = join(dir, `image-${n++}.tar`);
    await writeFile(path, gzip ? await ociArchiveOf({ layers }) : await dockerArchiveOf({ layers }));
    return { path, archive: await readImageArchive(path) };
  }
  /** Every layer's headers read both ways under one budget each; the outcome of each way. */
  async function bothWays(path: string, layers: ArchiveLayer[], limits: Partial<ArchiveLimits> = {}) {
    const read = async (sync: boolean) => {
      const budget = new LayerBudget(limits);
      const names: string[] = [];
      try {
        for (const layer of layers) {
          if (sync) for (const h of readLayerHeadersSync(path, layer, { budget })) names.push(h.name);
          else for await (const h of readLayerHeaders(path, layer, { budget })) names.push(h.name);
        }
        return { names, bytes: budget.bytes, entries: budget.entries };
      } catch (err) {
        const e = err as ImageArchiveError;
        return { names, error: [e.constructor.name, e.message, e.member, e.entry, e.limit] };
      }
    };
    const [sync, async] = [await read(true), await read(false)];
    expect(sync).toEqual(async);
    return sync;
  }

  it("the same headers and the same count of bytes and entries", async () => {
    const { path, archive } = await archiveOf(
      await layersOf(
        [
          { name: "d", type: "directory" },
          { name: "d/f", content: Buffer.alloc(3000, 1) },
          { name: `long/${"n".repeat(150)}`, content: "x" },
        ],
        [{ name: "p", content: "y", pax: { path: "pax/path" } }],
      ),
    );
    const read = await bothWays(path, archive.layers);
    expect(read.names).toEqual(["d", "d/f", `long/${"n".repeat(150)}`, "pax/path"]);
    expect(read.entries).toBe(4);
    expect(read.bytes).toBeGreaterThan(3000);
  });

  it("stops at the same limit with the same error, naming the layer", async () => {
    const many = (prefix: string) =>
      tarOf(Array.from({ length: 30 }, (_, i) => ({ name: `${prefix}${i}`, content: "x" })));
    const { path, archive } = await archiveOf([await many("a"), await many("b")]);
    const entries = await bothWays(path, archive.layers, { maxEntries: 50 });
    expect(entries.error?.[4]).toBe("maxEntries");
    expect(entries.error?.[2]).toBe(archive.layers[1]?.member);
    const bytes = await bothWays(path, archive.layers, { maxLayerBytes: 20 * 1024 });
    expect(bytes.error?.[4]).toBe("maxLayerBytes");
  });

  it("refuses a header name with bytes after its NUL alike, naming the layer", async () => {
    const cases = await hostileLayerCases();
    const nul = cases.find((c) => /after the NUL/.test(c.name)) as (typeof cases)[number];
    const { path, archive } = await archiveOf(nul.layers);
    const read = await bothWays(path, archive.layers);
    expect(read.error?.[1]).toMatch(nul.message);
    expect(read.error?.[2]).toBe(archive.layers[0]?.member);
  });

  it("is for uncompressed layers only", async () => {
    const { path, archive } = await archiveOf([await tarOf([{ name: "a", content: "a" }])], true);
    const layer = archive.layers[0] as ArchiveLayer;
    expect(() => [...readLayerHeadersSync(path, layer)]).toThrow(/reads uncompressed layers; .* is gzip/);
  });
});
