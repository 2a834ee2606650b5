import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { readImageArchive } from "@contexec/core";
import { imageConfigOf, tarOf } from "@contexec/core/testing";
import { MEDIA_TYPES } from "../manifest/parse-manifest.js";
import { type PushedImage, pushImage } from "../push/push-image.js";
import type { RegistryClient } from "../registry-client.js";

export interface UniqueImage extends PushedImage {
  reference: string;
  /** What /unique.txt holds in the image. */
  marker: string;
}

/**
 * Pushes an image no one else has: the busybox fixture's layer and a layer with a random
 * /unique.txt, `ENV PATH=/bin MARKER=<marker>`, `WORKDIR /srv`. Its id is new, so a test may
 * remove it from a shared Docker daemon without touching anyone's images.
 */
export async function pushUniqueImage(
  client: RegistryClient,
  reference: string,
  busyboxArchive: string,
): Promise<UniqueImage> {
  const archive = await readImageArchive(busyboxArchive);
  const base = archive.layers[0];
  if (base?.compression !== "none") throw new Error(`${busyboxArchive}: expected one uncompressed layer`);
  const baseLayer = (await readFile(busyboxArchive)).subarray(base.dataOffset, base.dataOffset + base.size);
  const marker = randomBytes(8).toString("hex");
  const top = await tarOf([
    { name: "srv", type: "directory" },
    { name: "unique.txt", content: `${marker}\n` },
  ]);
  const layers = [Buffer.from(baseLayer), top];
  const config = imageConfigOf({
    layers,
    env: ["PATH=/bin", `MARKER=${marker}`],
    cmd: ["/bin/sh", "-c", "echo $MARKER; pwd; cat /unique.txt"],
    workingDir: "/srv",
  });
  const pushed = await pushImage(client, reference, {
    config,
    layers: layers.map((l) => {
      const gz = gzipSync(l);
      return { mediaType: MEDIA_TYPES.dockerLayerGzip, open: () => Readable.from([gz]) };
    }),
  });
  return { ...pushed, reference, marker };
}
