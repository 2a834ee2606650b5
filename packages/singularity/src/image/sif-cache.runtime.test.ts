import { createReadStream } from "node:fs";
import {
  copyFile,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runContainer } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { runChild } from "../test-support/child-process.js";
import { fixtures } from "../test-support/fixtures.js";
import { checkSif } from "./sif-cache.js";

const gate = runtimeGate("apptainer");

const { busybox, layered } = fixtures();
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "contexec-sif-cache-rt-"));
});
afterAll(() => rm(work, { recursive: true, force: true }));

const lines = async (file: string) =>
  (await readFile(file, "utf8").catch(() => "")).split("\n").filter(Boolean);
const cacheFiles = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).sort();

describe.skipIf(gate.skip)(gate.title("SIF cache with real conversions"), () => {
  it("N processes loading one image at once convert it once and all get the same file", async () => {
    const cacheDir = join(work, "concurrent");
    const counter = join(work, "concurrent.count");
    const children = Array.from({ length: 4 }, () =>
      runChild("./load-image-child.ts", [cacheDir, layered, counter]),
    );
    const results = await Promise.all(children.map((c) => c.done));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const outputs = results.map((r) => JSON.parse(r.stdout.trim()) as { id: string; sifPath: string });
    expect(new Set(outputs.map((o) => o.id)).size).toBe(1);
    expect(new Set(outputs.map((o) => o.sifPath)).size).toBe(1);
    expect(await lines(counter)).toHaveLength(1);
    const [first] = outputs as [{ id: string; sifPath: string }];
    await checkSif(first.sifPath);
    // Nothing but the entry: no temporary file, no lock.
    const hex = first.id.slice(7);
    expect(await cacheFiles(cacheDir)).toEqual([`${hex}.json`, `${hex}.sif`]);
  }, 120_000);

  it("a lock left by a killed process is taken over at once (its owner record says it died), and its partial SIF removed", async () => {
    const cacheDir = join(work, "stale");
    const counter = join(work, "stale.count");
    const holder = runChild("./load-image-child.ts", [cacheDir, busybox, counter, "hang"]);
    // Wait until it holds the lock and has started writing.
    for (let i = 0; i < 300 && (await lines(counter)).length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await lines(counter)).toHaveLength(1);
    process.kill(holder.pid, "SIGKILL");
    await holder.done;
    const left = await cacheFiles(cacheDir);
    console.log("[stale lock] left by the killed process:", left);
    expect(left.some((n) => n.endsWith(".lock"))).toBe(true);
    expect(left.some((n) => n.includes(".sif.tmp-"))).toBe(true);
    const lock = left.find((n) => n.endsWith(".lock")) as string;
    expect(JSON.parse(await readFile(join(cacheDir, lock, "owner.json"), "utf8"))).toMatchObject({
      pid: holder.pid,
    });

    const started = Date.now();
    // A minute before the lock would count as stale: only the owner record can make it quick.
    const next = runChild("./load-image-child.ts", [cacheDir, busybox, counter], {
      env: { CONTEXEC_TEST_LOCK_STALE_MS: "60000" },
    });
    const r = await next.done;
    expect(r.code, r.stderr).toBe(0);
    expect(await lines(counter)).toHaveLength(2);
    const { id } = JSON.parse(r.stdout.trim()) as { id: string };
    expect(await cacheFiles(cacheDir)).toEqual([`${id.slice(7)}.json`, `${id.slice(7)}.sif`]);
    const took = Date.now() - started;
    console.log(`[stale lock] taken over and converted in ${took} ms (stale only after 60000 ms)`);
    expect(took).toBeLessThan(30_000);
  }, 120_000);

  it("a truncated or overwritten cached SIF is not trusted and is rebuilt", async () => {
    const cacheDir = join(work, "truncated");
    const first = new ApptainerExecutor({ cacheDir });
    const id = await first.loadImage(busybox);
    const { sifPath } = await first.image(id);
    await first.close();
    const size = (await stat(sifPath)).size;

    await truncate(sifPath, Math.floor(size / 2));
    const second = new ApptainerExecutor({ cacheDir });
    try {
      expect(await second.hasImage(id)).toBe(false);
      await expect(second.create({ image: id, command: ["true"] })).rejects.toMatchObject({
        code: "E_IMAGE_NOT_FOUND",
      });
      expect(await second.loadImage(busybox)).toBe(id);
      expect((await stat(sifPath)).size).toBe(size);
      expect((await runContainer(second, { image: id, command: ["echo", "ok"] })).stdout.toString()).toBe(
        "ok\n",
      );
    } finally {
      await second.close();
    }

    // Same size, bad bytes: the SIF magic is checked too.
    const handle = await open(sifPath, "r+");
    await handle.write(Buffer.from("NOT_A_SIF_AT_ALL"), 0, 16, 32);
    await handle.close();
    const third = new ApptainerExecutor({ cacheDir });
    try {
      expect(await third.hasImage(id)).toBe(false);
      expect(await third.loadImage(busybox)).toBe(id);
      await checkSif(sifPath);
    } finally {
      await third.close();
    }
  }, 120_000);

  it.each(["native", "apptainer-build"] as const)(
    "a hostile or corrupt archive leaves no cache entry (%s)",
    async (converter) => {
      const cacheDir = join(work, `hostile-${converter}`);
      const executor = new ApptainerExecutor({ cacheDir, converter });
      try {
        // A member escaping the archive root: refused by the archive reader.
        const escaping = join(work, "escape.tar");
        await writeFile(escaping, tarOf([{ name: "../evil.txt", data: "x" }]));
        await expect(executor.loadImage(escaping)).rejects.toMatchObject({ code: "E_IMAGE_ARCHIVE" });

        // A well-formed manifest and config whose layer is garbage: refused by the conversion.
        const configJson = JSON.stringify({
          architecture: "amd64",
          os: "linux",
          config: { Cmd: ["/bin/sh"] },
          rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] },
        });
        const { createHash } = await import("node:crypto");
        const hex = createHash("sha256").update(configJson).digest("hex");
        const corrupt = join(work, "corrupt.tar");
        await writeFile(
          corrupt,
          tarOf([
            {
              name: "manifest.json",
              data: JSON.stringify([{ Config: `${hex}.json`, RepoTags: ["bad:1"], Layers: ["layer.tar"] }]),
            },
            { name: `${hex}.json`, data: configJson },
            { name: "layer.tar", data: "this is not a tar file ".repeat(100) },
          ]),
        );
        const err = await executor.loadImage(corrupt).catch((e: unknown) => e);
        // Refused by core's layer checks before either converter runs.
        expect((err as { code: string }).code).toBe("E_IMAGE_ARCHIVE");
        expect(await executor.hasImage("bad:1")).toBe(false);
        expect(await cacheFiles(cacheDir)).toEqual([]);
      } finally {
        await executor.close();
      }
    },
    120_000,
  );

  it("loads from a stream and from a path holding ':' (which `apptainer build` refuses as such)", async () => {
    const cacheDir = join(work, "odd-inputs");
    const executor = new ApptainerExecutor({ cacheDir });
    try {
      const odd = join(work, "odd:name,x.tar");
      await copyFile(busybox, odd);
      const id = await executor.loadImage(odd);
      await executor.removeImage(id);
      expect(await executor.hasImage(id)).toBe(false);
      let progress = 0;
      expect(
        await executor.loadImage(createReadStream(busybox), { onProgress: (p) => (progress = p.bytesRead) }),
      ).toBe(id);
      expect(progress).toBe((await stat(busybox)).size);
      // Tags from the archive name the image.
      const tag = (await executor.image(id)).repoTags[0] as string;
      expect(await executor.hasImage(tag)).toBe(true);
      expect(
        (await runContainer(executor, { image: tag, command: ["echo", "by tag"] })).stdout.toString(),
      ).toBe("by tag\n");
    } finally {
      await executor.close();
    }
  }, 120_000);

  it.each(["native", "apptainer-build"] as const)(
    "converts the fixtures in about a second or less (%s)",
    async (converter) => {
      const cacheDir = join(work, `timing-${converter}`);
      await mkdir(cacheDir);
      const executor = new ApptainerExecutor({ cacheDir, converter });
      try {
        const started = Date.now();
        const id = await executor.loadImage(layered);
        const ms = Date.now() - started;
        console.log(
          `[conversion] ${converter}: layered.tar (${(await stat(layered)).size} bytes) -> SIF in ${ms} ms`,
        );
        expect((await executor.image(id)).converter).toBe(converter);
        const r = await runContainer(executor, { image: id });
        expect(r.stdout.toString()).toBe("entry default-cmd\n");
        const again = Date.now();
        await executor.loadImage(layered);
        console.log(`[conversion] cached load in ${Date.now() - again} ms`);
        expect(Date.now() - again).toBeLessThan(1000);
      } finally {
        await executor.close();
      }
    },
    120_000,
  );
});

/** A ustar archive of the given files, written by hand (names may be hostile on purpose). */
function tarOf(files: { name: string; data: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const body = Buffer.from(f.data);
    const header = Buffer.alloc(512);
    header.write(f.name, 0, "utf8");
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
    header.write("00000000000\0", 136);
    header.write("        ", 148);
    header.write("0", 156);
    header.write("ustar\0", 257);
    header.write("00", 263);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    parts.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
