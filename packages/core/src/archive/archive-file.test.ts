import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AbortedError, ImageArchiveError } from "../errors.js";
import { archiveFile } from "./archive-file.js";

let dir: string;
let spools: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-archive-file-"));
  spools = join(dir, "spools");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("archiveFile", () => {
  it("uses a regular file where it is, and copies nothing", async () => {
    const path = join(dir, "plain.tar");
    await writeFile(path, "bytes");
    const file = await archiveFile(path, { tmpDir: spools });
    expect(file).toMatchObject({ path, spooled: false, bytes: 5 });
    await file.remove();
    expect(existsSync(path)).toBe(true);
  });

  it("copies a stream into a private folder, counting bytes, and remove() deletes the copy", async () => {
    const seen: number[] = [];
    const file = await archiveFile(Readable.from([Buffer.from("abc"), Buffer.from("defg")]), {
      tmpDir: spools,
      onProgress: (p) => seen.push(p.bytesRead),
    });
    expect(file.spooled).toBe(true);
    expect(await readFile(file.path, "utf8")).toBe("abcdefg");
    expect(seen).toEqual([3, 7]);
    await file.remove();
    expect(await readdir(spools)).toEqual([]);
  });

  it("copies a FIFO given by path, as a stream", async () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const writing = writeFile(fifo, "through a pipe");
    const file = await archiveFile(fifo, { tmpDir: spools });
    await writing;
    expect(file.spooled).toBe(true);
    expect(await readFile(file.path, "utf8")).toBe("through a pipe");
    await file.remove();
  });

  it("a stream that fails while read is ImageArchiveError, and no partial copy is left", async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new Error("connection reset by the registry"));
      },
    });
    const err = await archiveFile(failing, { tmpDir: spools }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect((err as Error).message).toMatch(/cannot read the image archive stream: connection reset/);
    expect(await readdir(spools)).toEqual([]);
  });

  it("an abort is AbortedError, and no partial copy is left", async () => {
    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(64 * 1024));
      },
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const err = await archiveFile(endless, { tmpDir: spools, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AbortedError);
    expect(await readdir(spools)).toEqual([]);
  });

  it("a missing path or a folder is ImageArchiveError saying which", async () => {
    await expect(archiveFile(join(dir, "nope.tar"))).rejects.toThrow(/does not exist/);
    await expect(archiveFile(dir)).rejects.toThrow(/is a folder/);
  });

  it("a folder it cannot write to is IoError with the system's error as cause", async () => {
    const file = join(dir, "not-a-folder");
    await writeFile(file, "");
    const err = await archiveFile(Readable.from(["x"]), { tmpDir: join(file, "sub") }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "E_IO", cause: expect.objectContaining({ code: "ENOTDIR" }) });
  });
});
