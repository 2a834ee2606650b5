import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbortedError, type ArchiveLayer, ImageArchiveError } from "@contexec/core";
import { sha256 } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkableByOffset, checkLayerDigests } from "./layer-digests.js";

let dir: string;
let file: string;
const first = Buffer.alloc(300_000, 1);
const second = Buffer.alloc(5_000_000, 2);
const layer = (data: Buffer, dataOffset: number, diffId = sha256(data)): ArchiveLayer => ({
  member: `layer-${dataOffset}`,
  dataOffset,
  size: data.length,
  compression: "none",
  diffId,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sif-digests-"));
  file = join(dir, "archive");
  await writeFile(file, Buffer.concat([Buffer.alloc(512), first, second]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("checkLayerDigests", () => {
  it("resolves when every uncompressed layer matches its diff_id", async () => {
    await expect(
      checkLayerDigests(file, [layer(first, 512), layer(second, 512 + first.length)]).done,
    ).resolves.toBeUndefined();
  });

  it("rejects naming the layer that does not match", async () => {
    const wrong = layer(second, 512 + first.length, sha256(first));
    const err = await checkLayerDigests(file, [layer(first, 512), wrong]).done.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect((err as ImageArchiveError).entry).toBe(wrong.member);
    expect((err as Error).message).toMatch(/does not match its diff_id/);
  });

  it("leaves compressed layers and layers without a diff_id to others", () => {
    expect(checkableByOffset({ ...layer(first, 0), compression: "gzip" })).toBe(false);
    expect(checkableByOffset({ ...layer(first, 0), diffId: undefined })).toBe(false);
    expect(checkableByOffset(layer(first, 0))).toBe(true);
  });

  it("stops on abort", async () => {
    const controller = new AbortController();
    const check = checkLayerDigests(file, [layer(second, 512 + first.length)], controller.signal);
    controller.abort();
    await expect(check.done).rejects.toBeInstanceOf(AbortedError);
  });
});
