import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
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

// The built package, as a user's process loads it (a child process cannot run the TypeScript
// sources); `npm test` builds it first.
const built = fileURLToPath(new URL("../dist/layer-digests.js", import.meta.url));
const source = fileURLToPath(new URL("./layer-digests.ts", import.meta.url));
const builtIsFresh = existsSync(built) && statSync(built).mtimeMs >= statSync(source).mtimeMs;

describe("checkLayerDigests in a host process started with --input-type=module", () => {
  // The worker inherited the host's execArgv, and with it --input-type=module: its CommonJS script
  // then failed with "require is not defined".
  it.skipIf(!builtIsFresh)(
    "checks the layers and finds a mismatch (needs packages/sif/dist built from these sources: npx tsc -b)",
    async () => {
      const script = `
        import { checkLayerDigests } from ${JSON.stringify(pathToFileURL(built).href)};
        const [file, good, bad] = JSON.parse(process.argv[1]);
        const outcome = async (layers) => checkLayerDigests(file, layers).done.then(() => "matched", (e) => e.message);
        console.log(JSON.stringify([await outcome([good]), await outcome([good, bad])]));
      `;
      const good = layer(first, 512);
      const bad = layer(second, 512 + first.length, sha256(first));
      const { stdout } = await promisify(execFile)(process.execPath, [
        "--input-type=module",
        "-e",
        script,
        JSON.stringify([file, good, bad]),
      ]);
      const [matched, mismatched] = JSON.parse(stdout) as [string, string];
      expect(matched).toBe("matched");
      expect(mismatched).toMatch(new RegExp(`layer ${bad.member} does not match its diff_id`));
    },
  );
});
