import { execFile, execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ContainerExecutor, ImageArchiveError, IoError, readImageArchive } from "@contexec/core";
import { dockerArchiveOf, hostileLayerCases, ociArchiveOf, tarOf } from "@contexec/core/testing";
import { DockerExecutor } from "@contexec/docker";
import { ApptainerExecutor } from "@contexec/singularity";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";

// Both backends are compared: the cases run only where both are tested.
const gate = [runtimeGate("docker"), runtimeGate("apptainer")].find((g) => g.skip) ?? runtimeGate("docker");

/*
 * loadImage under bad input and faults, on both backends side by side: a hostile archive is
 * refused by each with the same error (class, code, message, member, entry), and nothing of it
 * is loaded; a FIFO path loads; a full disk while a stream is spooled is IoError with no
 * partial file left. Docker is the shared daemon; Apptainer gets a cache of its own.
 */

const busybox = join(inject("fixturesDir"), "busybox.tar");
const isRoot = process.getuid?.() === 0;
let dir: string;
let docker: DockerExecutor;
let apptainer: ApptainerExecutor;
// Images of the hostile archives: none may load; should one, it is removed again.
const tried = new Set<string>();

beforeAll(async () => {
  if (gate.skip) return;
  dir = await mkdtemp(join(tmpdir(), "contexec-load-faults-"));
  docker = new DockerExecutor();
  apptainer = new ApptainerExecutor({ cacheDir: join(dir, "sif-cache"), tmpDir: join(dir, "scratch") });
});
afterAll(async () => {
  if (gate.skip) return;
  await Promise.allSettled([...tried].map((id) => docker.removeImage(id)));
  await Promise.allSettled([docker.close(), apptainer.close()]);
  await rm(dir, { recursive: true, force: true });
});

interface Refusal {
  name: string;
  code: string;
  message: string;
  member: string | undefined;
  entry: string | undefined;
  limit: string | undefined;
}

async function refusal(executor: ContainerExecutor, archive: string, options = {}): Promise<Refusal> {
  const err = await executor.loadImage(archive, options).then(
    () => {
      throw new Error(`${executor.runtime} loaded a hostile archive`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageArchiveError);
  const e = err as ImageArchiveError;
  return { name: e.name, code: e.code, message: e.message, member: e.member, entry: e.entry, limit: e.limit };
}

let n = 0;
async function archiveFile(data: Buffer): Promise<string> {
  const path = join(dir, `archive-${n++}.tar`);
  await writeFile(path, data);
  return path;
}

describe.skipIf(gate.skip)(
  gate.title("both backends refuse every class of hostile layer entry alike, and load none of it"),
  async () => {
    const cases = await hostileLayerCases();
    it.each(cases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
      const path = await archiveFile(
        await dockerArchiveOf({ layers: c.layers, tag: `contexec-hostile/case-${n}:x` }),
      );
      const { id, layers } = await readImageArchive(path);
      tried.add(id);
      const [fromDocker, fromApptainer] = [await refusal(docker, path), await refusal(apptainer, path)];
      expect(fromDocker).toEqual(fromApptainer);
      expect(fromDocker).toMatchObject({
        code: "E_IMAGE_ARCHIVE",
        entry: c.entry,
        member: layers[c.layer]?.member,
      });
      expect(fromDocker.message).toMatch(c.message);
      expect(await docker.hasImage(id)).toBe(false);
      expect(await apptainer.hasImage(id)).toBe(false);
    });
  },
);

describe.skipIf(gate.skip)(gate.title("limits stop both backends alike"), () => {
  it("a decompression bomb (8 MiB of zeros in a few KiB of gzip) past maxLayerBytes, naming the limit", async () => {
    const bomb = await tarOf([{ name: "zeros", content: Buffer.alloc(8 * 1024 * 1024) }]);
    const path = await archiveFile(await ociArchiveOf({ layers: [bomb], tag: "bomb" }));
    const limits = { maxLayerBytes: 1024 * 1024 };
    const [fromDocker, fromApptainer] = [
      await refusal(docker, path, { limits }),
      await refusal(apptainer, path, { limits }),
    ];
    expect(fromDocker).toEqual(fromApptainer);
    expect(fromDocker).toMatchObject({ limit: "maxLayerBytes" });
    expect(fromDocker.message).toMatch(/more than 1 MiB once uncompressed/);
  });

  it("more entries than maxEntries", async () => {
    const many = await tarOf(Array.from({ length: 100 }, (_, i) => ({ name: `f${i}`, content: "" })));
    const path = await archiveFile(await dockerArchiveOf({ layers: [many], tag: "contexec-hostile/many:x" }));
    const limits = { maxEntries: 50 };
    const [fromDocker, fromApptainer] = [
      await refusal(docker, path, { limits }),
      await refusal(apptainer, path, { limits }),
    ];
    expect(fromDocker).toEqual(fromApptainer);
    expect(fromDocker.limit).toBe("maxEntries");
  });
});

describe.skipIf(gate.skip)(gate.title("archives that are not what they should be"), () => {
  it("a 0-byte file says the archive is empty, on both", async () => {
    const path = await archiveFile(Buffer.alloc(0));
    const [fromDocker, fromApptainer] = [await refusal(docker, path), await refusal(apptainer, path)];
    expect(fromDocker).toEqual(fromApptainer);
    expect(fromDocker.message).toMatch(/is empty \(0 bytes\)/);
  });

  it("a manifest naming a missing layer names that layer, on both", async () => {
    const layers = [await tarOf([{ name: "a", content: "a" }]), await tarOf([{ name: "b", content: "b" }])];
    const path = await archiveFile(await dockerArchiveOf({ layers }, { omitLayer: 1 }));
    const [fromDocker, fromApptainer] = [await refusal(docker, path), await refusal(apptainer, path)];
    expect(fromDocker).toEqual(fromApptainer);
    expect(fromDocker.message).toMatch(/names a layer that is not in it/);
    expect(fromDocker.member).toMatch(/^[0-9a-f]{64}\/layer\.tar$/);
    expect(fromDocker.entry).toBe(fromDocker.member);
  });

  it.each(["docker", "apptainer"])(
    "a FIFO path loads on %s (read as a stream, not as an empty file)",
    async (name) => {
      const executor = name === "docker" ? docker : apptainer;
      const fifo = join(dir, `fifo-${name}`);
      execFileSync("mkfifo", [fifo]);
      // Opening a FIFO for writing blocks until a reader opens it: fed from a child process.
      const feeding = promisify(execFile)("sh", ["-c", 'cat "$1" > "$2"', "sh", busybox, fifo]);
      const id = await executor.loadImage(fifo);
      await feeding;
      expect(id).toBe((await readImageArchive(busybox)).id);
      expect(await executor.hasImage(id)).toBe(true);
    },
  );
});

describe.skipIf(!isRoot)(
  "a full disk while a stream is spooled (a 256 KiB tmpfs; needs root to mount it)",
  () => {
    let full: string;
    beforeAll(async () => {
      full = join(dir, "full");
      await mkdir(full);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", full]);
    });
    afterAll(() => {
      if (full) execFileSync("umount", [full]);
    });

    it.each(["docker", "apptainer"])(
      "%s: IoError (E_IO) with ENOSPC as its cause, and no partial file left",
      async (name) => {
        const scratch = join(full, name);
        await mkdir(scratch);
        const executor =
          name === "docker"
            ? new DockerExecutor({ tmpDir: scratch })
            : new ApptainerExecutor({ cacheDir: join(dir, "sif-cache"), tmpDir: scratch });
        try {
          const err = await executor.loadImage(createReadStream(busybox)).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(IoError);
          expect(err).toMatchObject({
            code: "E_IO",
            errno: "ENOSPC",
            cause: expect.objectContaining({ code: "ENOSPC" }),
          });
          expect((err as Error).message).toMatch(/no space left for .*image\.tar; free some space/);
          expect(await filesUnder(scratch)).toEqual([]);
        } finally {
          await executor.close();
        }
        expect(await filesUnder(scratch)).toEqual([]);
      },
    );
  },
);

/** Every file (not folder) under `root`. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => !e.isDirectory()).map((e) => join(e.parentPath, e.name));
}
