import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerArchiveOf, tarOf } from "@contexec/core/testing";
import { expect } from "vitest";
import { configDigestOf } from "../fixture-digest.js";
import type { SuiteContext } from "../suite-context.js";

const UNKNOWN_ID = `sha256:${"0".repeat(64)}`;

export function registerImageCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("loadImage from a path returns the image config's digest as the id", async () => {
    expect(ctx.images().busybox).toBe(await configDigestOf(ctx.options.fixtures.busybox));
    expect(ctx.images().layered).toBe(await configDigestOf(ctx.options.fixtures.layered));
  });

  test("loadImage from a stream gives the same id as from the path", async () => {
    const id = await ctx.executor().loadImage(createReadStream(ctx.options.fixtures.layered));
    expect(id).toBe(ctx.images().layered);
    expect(await ctx.executor().hasImage(id)).toBe(true);
  });

  test("loading the same image twice gives the same id and keeps it loaded", async () => {
    const again = await ctx.executor().loadImage(ctx.options.fixtures.layered);
    expect(again).toBe(ctx.images().layered);
    expect(await ctx.executor().hasImage(again)).toBe(true);
  });

  test("hasImage is false after removeImage and true again after loading", async () => {
    const ex = ctx.executor();
    // An image of this case alone: the fixtures are byte-reproducible, so another run against the
    // same runtime (a shared Docker daemon) may be using an image with the fixtures' ids.
    const dir = await mkdtemp(join(tmpdir(), "contexec-remove-"));
    ctx.defer(() => rm(dir, { recursive: true, force: true }));
    const archive = join(dir, "throwaway.tar");
    const nonce = randomBytes(8).toString("hex");
    await writeFile(
      archive,
      await dockerArchiveOf({
        layers: [await tarOf([{ name: "nonce", content: nonce }])],
        cmd: ["/nonce"],
        tag: `contexec-conformance/throwaway:${nonce}`,
      }),
    );
    const id = await ex.loadImage(archive);
    expect(id).toBe(await configDigestOf(archive));
    expect(await ex.hasImage(id)).toBe(true);
    await ex.removeImage(id);
    expect(await ex.hasImage(id)).toBe(false);
    await ex.removeImage(id); // removing what is not there is a no-op
    expect(await ex.loadImage(archive)).toBe(id);
    expect(await ex.hasImage(id)).toBe(true);
    await ex.removeImage(id);
    expect(await ex.hasImage(id)).toBe(false);
  });

  test("hasImage of an id never loaded is false", async () => {
    expect(await ctx.executor().hasImage(UNKNOWN_ID)).toBe(false);
  });

  test("create with an image that is not loaded gives ImageNotFoundError", async () => {
    await expect(ctx.executor().create({ image: UNKNOWN_ID, command: ["true"] })).rejects.toMatchObject({
      code: "E_IMAGE_NOT_FOUND",
    });
  });

  test("bad archives give ImageArchiveError: random bytes, a tar that is no image, a truncated image", async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-conformance-"));
    ctx.defer(() => rm(dir, { recursive: true, force: true }));
    const random = join(dir, "random.tar");
    await writeFile(random, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251)));
    const noImage = join(dir, "plain.tar");
    await writeFile(noImage, plainTar("hello.txt", "not an image\n"));
    const truncated = join(dir, "truncated.tar");
    const source = await open(ctx.options.fixtures.busybox, "r");
    const { size } = await source.stat();
    const half = Buffer.alloc(Math.floor(size / 2));
    await source.read(half, 0, half.length, 0);
    await source.close();
    await writeFile(truncated, half);
    for (const bad of [random, noImage, truncated]) {
      await expect(ctx.executor().loadImage(bad), bad).rejects.toMatchObject({ code: "E_IMAGE_ARCHIVE" });
    }
    await expect(ctx.executor().loadImage(join(dir, "missing.tar"))).rejects.toMatchObject({
      code: "E_IMAGE_ARCHIVE",
    });
  });
}

/** A one-file ustar archive, written by hand so the case needs no tar tool. */
function plainTar(name: string, content: string): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, "utf8");
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${Buffer.byteLength(content).toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0", 257);
  header.write("00", 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const body = Buffer.alloc(Math.ceil(Buffer.byteLength(content) / 512) * 512);
  body.write(content);
  return Buffer.concat([header, body, Buffer.alloc(1024)]);
}
