import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageArchiveError, RuntimeError, RuntimeUnavailableError } from "@contexec/core";
import { dockerArchiveOf, type TarSpec, tarOf } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertArchiveToSif } from "./convert-archive.js";
import { sqfstarArgs } from "./sqfstar.js";

// These tests run a stand-in for sqfstar (a shell script), so they need no squashfs-tools: they
// check what happens around it. Real conversions are in convert-archive.runtime.test.ts.

let dir: string;
let fakeSqfstar: string;
let sqfstarLog: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sif-convert-"));
  sqfstarLog = join(dir, "sqfstar-ran");
  fakeSqfstar = join(dir, "fake-sqfstar");
  // Records that it ran, swallows the tar, writes a squashfs-looking file at the offset.
  await writeFile(
    fakeSqfstar,
    [
      "#!/bin/sh",
      `echo "$@" >> ${sqfstarLog}`,
      "offset=0",
      'while [ $# -gt 1 ]; do [ "$1" = -offset ] && offset=$2; shift; done',
      "cat > /dev/null",
      'truncate -s "$offset" "$1"',
      "printf 'hsqs' >> \"$1\"",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function archiveFile(name: string, layers: TarSpec[][], options: { omitLayer?: number } = {}) {
  const path = join(dir, name);
  await writeFile(path, await dockerArchiveOf({ layers: await Promise.all(layers.map(tarOf)) }, options));
  return path;
}

async function convertFails(archive: string, out: string, options = {}) {
  await rm(sqfstarLog, { force: true });
  const err = await convertArchiveToSif(archive, out, { sqfstarPath: fakeSqfstar, ...options }).catch(
    (e: unknown) => e,
  );
  expect(existsSync(out)).toBe(false);
  return err as Error;
}

describe("convertArchiveToSif refuses hostile archives before writing anything", () => {
  it.each<[string, TarSpec[][], RegExp]>([
    ["dot-dot", [[{ name: "../../etc/cron.d/evil", content: "x" }]], /leaves the image root/],
    [
      "absolute escape",
      [[{ name: "/../../root/.ssh/authorized_keys", content: "x" }]],
      /leaves the image root/,
    ],
    ["link outside", [[{ name: "l", type: "link", linkname: "../../../etc/shadow" }]], /outside the image/],
    [
      "link to nothing",
      [[{ name: "a", content: "a" }], [{ name: "l", type: "link", linkname: "missing" }]],
      /not in the image/,
    ],
    ["NUL name", [[{ name: "x", content: "x", pax: { path: "a\0b" } }]], /NUL/],
  ])("%s", async (name, layers, message) => {
    const out = join(dir, `${name}.sif`);
    const err = await convertFails(await archiveFile(`${name}.tar`, layers), out);
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect(err.message).toMatch(message);
    // sqfstar never started: the planning pass refused the archive first.
    expect(existsSync(sqfstarLog)).toBe(false);
  });

  it("a manifest naming a missing layer", async () => {
    const archive = await archiveFile(
      "missing-layer.tar",
      [[{ name: "a", content: "a" }], [{ name: "b", content: "b" }]],
      {
        omitLayer: 1,
      },
    );
    const err = await convertFails(archive, join(dir, "missing-layer.sif"));
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect(err.message).toMatch(/names a layer that is not in it/);
  });

  it("a truncated layer tar", async () => {
    const layer = await tarOf([{ name: "big", content: Buffer.alloc(10_000, 1) }]);
    const archive = join(dir, "cut-layer.tar");
    // The archive is consistent; the layer inside it ends in the middle of its only file.
    await writeFile(archive, await dockerArchiveOf({ layers: [layer.subarray(0, 4096)] }));
    const err = await convertFails(archive, join(dir, "cut-layer.sif"));
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect(err.message).toMatch(/is truncated/);
  });

  it("a file that is not an image archive", async () => {
    const path = join(dir, "not-an-image.tar");
    await writeFile(path, await tarOf([{ name: "hello.txt", content: "hi" }]));
    const err = await convertFails(path, join(dir, "not-an-image.sif"));
    expect(err).toBeInstanceOf(ImageArchiveError);
  });
});

describe("convertArchiveToSif and its tools", () => {
  it("names the package to install when sqfstar is missing", async () => {
    const archive = await archiveFile("ok.tar", [[{ name: "a", content: "a" }]]);
    const err = await convertFails(archive, join(dir, "no-sqfstar.sif"), {
      sqfstarPath: join(dir, "nope/sqfstar"),
    });
    expect(err).toBeInstanceOf(RuntimeUnavailableError);
    expect(err.message).toMatch(/apt-get install squashfs-tools/);
  });

  it("carries sqfstar's stderr when it fails", async () => {
    const failing = join(dir, "failing-sqfstar");
    await writeFile(
      failing,
      "#!/bin/sh\ncat > /dev/null\necho 'FATAL ERROR: Failed to write' >&2\nexit 1\n",
      { mode: 0o755 },
    );
    const archive = await archiveFile("ok2.tar", [[{ name: "a", content: "a" }]]);
    const err = await convertFails(archive, join(dir, "failed.sif"), { sqfstarPath: failing });
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).stderr).toBe("FATAL ERROR: Failed to write");
    expect((err as RuntimeError).runtimeExitCode).toBe(1);
  });

  it("writes the SIF prefix in front of what sqfstar wrote, at the offset it was given", async () => {
    const archive = await archiveFile("fine.tar", [[{ name: "a", content: "a" }]]);
    const out = join(dir, "fine.sif");
    await rm(sqfstarLog, { force: true });
    const result = await convertArchiveToSif(archive, out, { sqfstarPath: fakeSqfstar, compression: "lz4" });
    const argv = (await readFile(sqfstarLog, "utf8")).trim().split(" ");
    expect(argv).toContain("lz4");
    const offset = Number(argv[argv.indexOf("-offset") + 1]);
    expect(offset % 4096).toBe(0);
    const sif = await readFile(out);
    expect(sif.subarray(32, 41).toString()).toBe("SIF_MAGIC");
    expect(result.sifBytes).toBe(sif.length);
    expect(result.id).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("refuses an unknown compression", async () => {
    const archive = await archiveFile("ok3.tar", [[{ name: "a", content: "a" }]]);
    const err = await convertFails(archive, join(dir, "bad.sif"), { compression: "brotli" });
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect(err.message).toMatch(/unknown squashfs compression "brotli"/);
  });
});

describe("sqfstarArgs", () => {
  it("puts every option before the output, root 0755 and root-owned", () => {
    expect(sqfstarArgs("/x.sif", { compression: "zstd", offset: 40960, processors: 2 })).toEqual([
      "-force",
      "-no-progress",
      "-quiet",
      "-exit-on-error",
      "-no-xattrs",
      "-root-mode",
      "0755",
      "-root-uid",
      "0",
      "-root-gid",
      "0",
      "-comp",
      "zstd",
      "-processors",
      "2",
      "-offset",
      "40960",
      "/x.sif",
    ]);
  });

  it("turns every compression off for none", () => {
    const args = sqfstarArgs("/x.sif", { compression: "none" });
    expect(args).toEqual(expect.arrayContaining(["-noI", "-noD", "-noF", "-noX"]));
    expect(args).not.toContain("-comp");
  });
});
