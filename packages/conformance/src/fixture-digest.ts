import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { extract } from "tar-stream";

/**
 * The sha256 of a docker-archive's image config, read with an independent tar reader (not the
 * library's own), so the suite checks the id a backend returns against the archive itself.
 */
export async function configDigestOf(archivePath: string): Promise<string> {
  const jsons = new Map<string, Buffer>();
  const reader = extract();
  reader.on("entry", (header, stream, next) => {
    const name = header.name.replace(/^\.\//, "");
    if (header.type === "file" && name.endsWith(".json")) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        jsons.set(name, Buffer.concat(chunks));
        next();
      });
    } else {
      stream.on("end", next);
      stream.resume();
    }
  });
  await pipeline(createReadStream(archivePath), reader);
  const manifest = JSON.parse((jsons.get("manifest.json") ?? Buffer.from("[]")).toString()) as {
    Config: string;
  }[];
  const configName = manifest[0]?.Config;
  const config = configName ? jsons.get(configName) : undefined;
  if (!config) throw new Error(`${archivePath} is not a docker-archive with a config`);
  return `sha256:${createHash("sha256").update(config).digest("hex")}`;
}
