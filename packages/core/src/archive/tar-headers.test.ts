import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageArchiveError } from "../errors.js";
import { tarOf } from "../testing/index.js";
import { fileByteSource, streamByteSource } from "./byte-source.js";
import { type ReadTarOptions, readTarHeaders, readTarHeadersSync, type TarHeader } from "./tar-headers.js";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tar-headers-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * The headers of `data` as readTarHeaders reads them from a stream; readTarHeadersSync, reading
 * the same bytes from a file, must give exactly the same headers, or fail with the same error.
 */
async function headers(data: Buffer, options: Partial<ReadTarOptions> = {}): Promise<TarHeader[]> {
  const opts = { what: "layer test", ...options };
  const viaStream = async () => {
    const out: TarHeader[] = [];
    for await (const h of readTarHeaders(streamByteSource(Readable.from([data])), opts)) out.push(h);
    return out;
  };
  const file = join(dir, `tar-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, data);
  const source = await fileByteSource(file);
  let synchronous: TarHeader[] | Error;
  try {
    synchronous = [...readTarHeadersSync(source, opts)];
  } catch (err) {
    synchronous = err as Error;
  } finally {
    source.closeSync();
  }
  const streamed = await viaStream().catch((err: Error) => err);
  if (streamed instanceof Error) {
    expect(synchronous).toBeInstanceOf(streamed.constructor);
    expect((synchronous as Error).message).toBe(streamed.message);
    throw streamed;
  }
  expect(synchronous).toEqual(streamed);
  return streamed;
}

/** The entries tar-stream's own reader sees, for comparison. */
async function tarStreamNames(data: Buffer): Promise<string[]> {
  const extract = tar.extract();
  extract.end(data);
  const names: string[] = [];
  for await (const entry of extract) {
    names.push(entry.header.name);
    entry.resume();
  }
  return names;
}

/** Rewrites a header block's checksum after editing it. */
function fixChecksum(block: Buffer, at = 0): void {
  block.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += block[at + i] as number;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, at + 148, "latin1");
}

describe("readTarHeaders", () => {
  it("reads names, kinds, modes, owners, times, sizes and data offsets", async () => {
    const data = await tarOf([
      { name: "dir/", type: "directory", mode: 0o750, uid: 3, gid: 4, mtime: 1_600_000_000 },
      { name: "dir/file", content: "hello", mode: 0o4755 },
      { name: "dir/sym", type: "symlink", linkname: "../x" },
      { name: "dir/hard", type: "link", linkname: "dir/file" },
      { name: "fifo", type: "fifo" },
    ]);
    const hs = await headers(data);
    expect(hs.map((h) => [h.ordinal, h.name, h.kind, h.size, h.linkname])).toEqual([
      [0, "dir/", "directory", 0, ""],
      [1, "dir/file", "file", 5, ""],
      [2, "dir/sym", "symlink", 0, "../x"],
      [3, "dir/hard", "link", 0, "dir/file"],
      [4, "fifo", "fifo", 0, ""],
    ]);
    expect(hs[0]).toMatchObject({ mode: 0o750, uid: 3, gid: 4, mtime: 1_600_000_000 });
    expect(hs[1]?.mode).toBe(0o4755);
    const file = hs[1] as TarHeader;
    expect(data.subarray(file.dataOffset, file.dataOffset + 5).toString()).toBe("hello");
  });

  it("takes long names from pax records and ustar prefixes, as tar-stream does", async () => {
    const long = `${"a".repeat(120)}/${"b".repeat(90)}`;
    const unicode = "données/фото.txt";
    const data = await tarOf([
      { name: long, content: "1" },
      { name: unicode, content: "2" },
      { name: "x", type: "symlink", linkname: `/${"t".repeat(150)}` },
    ]);
    const hs = await headers(data);
    expect(hs.map((h) => h.name)).toEqual([long, unicode, "x"]);
    expect(hs[2]?.linkname).toBe(`/${"t".repeat(150)}`);
    expect(hs.map((h) => h.name)).toEqual(await tarStreamNames(data));
  });

  it("reads GNU long names", async () => {
    const name = `gnu/${"n".repeat(200)}`;
    const body = Buffer.alloc(512);
    body.write(name);
    const header = Buffer.alloc(512);
    header.write("././@LongLink");
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write(`${name.length.toString(8).padStart(11, "0")}\0`, 124);
    header.write("00000000000\0", 136);
    header[156] = "L".charCodeAt(0);
    header.write("ustar  \0", 257, "latin1");
    fixChecksum(header);
    const rest = await tarOf([{ name: "short", content: "z" }]);
    const hs = await headers(Buffer.concat([header, body, rest]));
    expect(hs.map((h) => h.name)).toEqual([name]);
  });

  it("reads an old-style folder: a regular-file entry whose name ends in a slash", async () => {
    const data = await tarOf([{ name: "old", content: "" }]);
    data.write("old/\0", 0, "latin1");
    fixChecksum(data);
    const hs = await headers(data);
    expect(hs[0]).toMatchObject({ name: "old/", kind: "directory" });
  });

  it("reads sizes in GNU base-256", async () => {
    const data = await tarOf([{ name: "f", content: "abc" }]);
    data.fill(0, 124, 136);
    data[124] = 0x80;
    data[135] = 3;
    fixChecksum(data);
    expect((await headers(data))[0]?.size).toBe(3);
  });

  it("accepts a tar that ends between entries without the end-of-archive blocks", async () => {
    const data = await tarOf([{ name: "a", content: "a" }]);
    expect((await headers(data.subarray(0, 1024))).map((h) => h.name)).toEqual(["a"]);
  });

  it("captures chosen entries' data and reads the head of the others, then goes on", async () => {
    const data = await tarOf([
      { name: "manifest.json", content: "[1,2]" },
      { name: "layer.tar", content: Buffer.alloc(5000, 7) },
      { name: "after", content: "x" },
    ]);
    const hs = await headers(data, { capture: (h) => h.name.endsWith(".json"), headBytes: 4 });
    expect(hs.map((h) => [h.name, h.data?.toString(), h.head?.length])).toEqual([
      ["manifest.json", "[1,2]", undefined],
      ["layer.tar", undefined, 4],
      ["after", undefined, 1],
    ]);
  });

  it("refuses a tar that ends inside an entry, and a bad checksum", async () => {
    const data = await tarOf([{ name: "a", content: Buffer.alloc(3000) }]);
    await expect(headers(data.subarray(0, 1024))).rejects.toThrow(/layer test is truncated/);
    const bad = Buffer.from(data);
    bad[0] = "b".charCodeAt(0);
    await expect(headers(bad)).rejects.toBeInstanceOf(ImageArchiveError);
  });
});
