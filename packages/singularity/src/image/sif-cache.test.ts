import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ImageArchive, ImageId } from "@contexec/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultCacheDir, normalizeTag, parseImageRef, SifCache } from "./sif-cache.js";
import type { SifConverter } from "./sif-converter.js";

const ID_A = `sha256:${"a".repeat(64)}` as ImageId;
const ID_B = `sha256:${"b".repeat(64)}` as ImageId;

function archive(id: ImageId, repoTags: string[] = []): ImageArchive {
  return {
    format: "docker-archive",
    id,
    config: {
      env: ["PATH=/bin"],
      entrypoint: null,
      cmd: ["sh"],
      workingDir: "",
      user: "",
      labels: {},
      exposedPorts: [],
      stopSignal: undefined,
    },
    configJson: Buffer.from("{}"),
    repoTags,
    layers: [],
    architecture: "amd64",
    os: "linux",
    archiveBytes: 0,
  };
}

/** A converter that writes a "SIF" the test validator accepts, and counts its calls. */
function fakeConverter(options: { delayMs?: number; fail?: boolean } = {}): SifConverter & { calls: number } {
  const converter = {
    name: "fake",
    calls: 0,
    async convert(input: { archive: ImageArchive }, out: string) {
      converter.calls++;
      await new Promise((r) => setTimeout(r, options.delayMs ?? 20));
      if (options.fail) throw new Error("conversion failed");
      await writeFile(out, `SIF ${input.archive.id}`);
    },
  };
  return converter;
}
const validate = async (path: string) => {
  if (!(await readFile(path, "utf8")).startsWith("SIF ")) throw new Error(`${path} is not a SIF`);
};

let dir: string;
let cache: SifCache;
const ensure = (a: ImageArchive, c: SifConverter, signal?: AbortSignal) =>
  cache.ensure(a, "/archive.tar", c, { tmpDir: dir, ...(signal && { signal }) });
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-sif-cache-"));
  cache = new SifCache({ dir: join(dir, "cache"), validate, lockStaleMs: 2000 });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("cache folder and references", () => {
  it("defaults to $CONTEXEC_SIF_CACHE, then $XDG_CACHE_HOME/contexec/sif, then ~/.cache/contexec/sif", () => {
    expect(defaultCacheDir({ CONTEXEC_SIF_CACHE: "/c", XDG_CACHE_HOME: "/x" }, "/home/u")).toBe("/c");
    expect(defaultCacheDir({ XDG_CACHE_HOME: "/x" }, "/home/u")).toBe("/x/contexec/sif");
    expect(defaultCacheDir({ XDG_CACHE_HOME: "relative" }, "/home/u")).toBe("/home/u/.cache/contexec/sif");
    expect(defaultCacheDir({}, "/home/u")).toBe("/home/u/.cache/contexec/sif");
  });

  it("names files by the image id", () => {
    expect(cache.paths(ID_A)).toMatchObject({
      sif: join(dir, "cache", `${"a".repeat(64)}.sif`),
      meta: join(dir, "cache", `${"a".repeat(64)}.json`),
      lock: join(dir, "cache", `${"a".repeat(64)}.lock`),
    });
    expect(() => cache.paths("sha256:../../etc" as ImageId)).toThrow(/not an image id/);
  });

  it("reads ids, bare digests and tags", () => {
    expect(parseImageRef(ID_A)).toEqual({ kind: "id", id: ID_A });
    expect(parseImageRef("a".repeat(64))).toEqual({ kind: "id", id: ID_A });
    expect(parseImageRef("busybox")).toEqual({ kind: "tag", tag: "busybox:latest" });
    expect(normalizeTag("docker.io/library/busybox:1.36")).toBe("busybox:1.36");
    expect(normalizeTag("localhost:5000/app")).toBe("localhost:5000/app:latest");
    expect(normalizeTag("repo/app@sha256:abc")).toBe("repo/app@sha256:abc");
  });
});

describe("SifCache", () => {
  it("converts once for concurrent loads of one image and stores the config beside the SIF", async () => {
    const converter = fakeConverter({ delayMs: 100 });
    const results = await Promise.all(
      Array.from({ length: 5 }, () => ensure(archive(ID_A, ["app:1"]), converter)),
    );
    expect(converter.calls).toBe(1);
    expect(results.filter((r) => r.converted)).toHaveLength(1);
    expect(new Set(results.map((r) => r.entry.sifPath)).size).toBe(1);
    const meta = JSON.parse(await readFile(cache.paths(ID_A).meta, "utf8"));
    expect(meta).toMatchObject({
      schema: 1,
      id: ID_A,
      repoTags: ["app:1"],
      converter: "fake",
      config: { cmd: ["sh"] },
    });
    expect(await readdir(join(dir, "cache"))).toEqual([`${"a".repeat(64)}.json`, `${"a".repeat(64)}.sif`]);
  });

  it("finds images by id and by tag; the newest load of a tag wins", async () => {
    const converter = fakeConverter();
    await ensure(archive(ID_A, ["app:latest"]), converter);
    await new Promise((r) => setTimeout(r, 5));
    await ensure(archive(ID_B, ["app:latest", "other:1"]), converter);
    expect((await cache.lookup(ID_A))?.id).toBe(ID_A);
    expect((await cache.lookup("app"))?.id).toBe(ID_B);
    expect((await cache.lookup("other:1"))?.id).toBe(ID_B);
    expect(await cache.lookup("missing:1")).toBeUndefined();
  });

  it("adds the tags of a later load of the same image", async () => {
    const converter = fakeConverter();
    await ensure(archive(ID_A, ["one:1"]), converter);
    const again = await ensure(archive(ID_A, ["two:2"]), converter);
    expect(converter.calls).toBe(1);
    expect(again.entry.repoTags).toEqual(["one:1", "two:2"]);
  });

  it("rebuilds a SIF that fails its check, and does not trust it meanwhile", async () => {
    const converter = fakeConverter();
    await ensure(archive(ID_A), converter);
    await writeFile(cache.paths(ID_A).sif, "garbage!");
    // Same size as recorded would still be caught by the check; a different size even sooner.
    expect(await cache.lookup(ID_A)).toBeUndefined();
    const r = await ensure(archive(ID_A), converter);
    expect(r.converted).toBe(true);
    expect(converter.calls).toBe(2);
    expect(await readFile(r.entry.sifPath, "utf8")).toBe(`SIF ${ID_A}`);
  });

  it("leaves no entry and no temporary file when conversion fails", async () => {
    await expect(ensure(archive(ID_A), fakeConverter({ fail: true }))).rejects.toThrow(/conversion failed/);
    expect(await readdir(join(dir, "cache"))).toEqual([]);
    expect(await cache.lookup(ID_A)).toBeUndefined();
  });

  it("removes by id or tag; removing what is not there is a no-op", async () => {
    const converter = fakeConverter();
    await ensure(archive(ID_A, ["app:1"]), converter);
    await ensure(archive(ID_B), converter);
    expect(await cache.remove("app:1")).toBe(true);
    expect(await cache.lookup(ID_A)).toBeUndefined();
    expect(await cache.remove(ID_B)).toBe(true);
    expect(await cache.remove(ID_B)).toBe(false);
    expect(await readdir(join(dir, "cache"))).toEqual([]);
  });

  it("waiting for the lock honours an AbortSignal", async () => {
    const slow = fakeConverter({ delayMs: 1000 });
    const first = ensure(archive(ID_A), slow);
    await new Promise((r) => setTimeout(r, 100));
    const controller = new AbortController();
    const second = ensure(archive(ID_A), slow, controller.signal);
    setTimeout(() => controller.abort(), 50);
    await expect(second).rejects.toMatchObject({ code: "E_ABORTED" });
    await first;
    expect(slow.calls).toBe(1);
  });
});

describe("FallbackConverter", () => {
  it("uses the second converter only where the first lacks a tool", async () => {
    const { FallbackConverter } = await import("./sif-converter.js");
    const { RuntimeUnavailableError } = await import("@contexec/core");
    const out = join(dir, "out.sif");
    const second = fakeConverter();
    const missingTool: SifConverter = {
      name: "native",
      async convert(_input, outPath) {
        await writeFile(outPath, "half");
        throw new RuntimeUnavailableError("sqfstar", "not found on PATH");
      },
    };
    const fallback = new FallbackConverter(missingTool, async () => second);
    await fallback.convert({ archivePath: "/a.tar", archive: archive(ID_A) }, out, { tmpDir: dir });
    expect(second.calls).toBe(1);
    expect(fallback.name).toBe("fake");
    expect(await readFile(out, "utf8")).toBe(`SIF ${ID_A}`);

    const failing: SifConverter = {
      name: "native",
      async convert() {
        throw new Error("bad archive");
      },
    };
    await expect(
      new FallbackConverter(failing, async () => second).convert(
        { archivePath: "/a", archive: archive(ID_A) },
        out,
        {
          tmpDir: dir,
        },
      ),
    ).rejects.toThrow("bad archive");
    expect(second.calls).toBe(1);
  });
});
