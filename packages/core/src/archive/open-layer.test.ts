import { describe, expect, it } from "vitest";
import { RuntimeUnavailableError } from "../errors.js";
import { checkLayerDecompression } from "./open-layer.js";

describe("checkLayerDecompression", () => {
  it("names the fix when a layer's compression cannot be read here", async () => {
    // gzip layers need nothing outside Node; xz needs the xz command, which PATH="" hides.
    const saved = process.env.PATH;
    process.env.PATH = "";
    try {
      const err = await checkLayerDecompression([
        { member: "blobs/sha256/x", dataOffset: 0, size: 1, compression: "xz", diffId: undefined },
      ]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeUnavailableError);
      expect((err as Error).message).toMatch(/apt-get install xz-utils/);
      await expect(
        checkLayerDecompression([
          { member: "a", dataOffset: 0, size: 1, compression: "gzip", diffId: undefined },
          { member: "b", dataOffset: 0, size: 1, compression: "none", diffId: undefined },
        ]),
      ).resolves.toBeUndefined();
    } finally {
      process.env.PATH = saved;
    }
  });
});
