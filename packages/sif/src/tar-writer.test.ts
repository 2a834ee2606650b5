import { Writable } from "node:stream";
import { listTar } from "@contexec/core/testing";
import * as tar from "tar-stream";
import { describe, expect, it } from "vitest";
import type { EntryKind, FlatEntry } from "./flatten-layers.js";
import { encodeTar, OutputClosedError, TarWriter, tarHeaderLength, writeTarHeader } from "./tar-writer.js";

const entry = (path: string, kind: EntryKind, extra: Partial<FlatEntry> = {}): FlatEntry => ({
  path,
  kind,
  mode: kind === "directory" ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  mtime: 1_700_000_000,
  size: 0,
  linkname: "",
  ...extra,
});
const file = (path: string, data: Buffer, extra: Partial<FlatEntry> = {}) => ({
  entry: entry(path, "file", { size: data.length, ...extra }),
  data,
});

const segment = (c: string, n: number) => c.repeat(n);
/** Every case the header encoder distinguishes. */
const CASES: { entry: FlatEntry; data?: Buffer }[] = [
  file("etc/hostname", Buffer.from("box\n")),
  file("empty", Buffer.alloc(0)),
  file("a-block", Buffer.alloc(512, 7)),
  file("odd-size", Buffer.alloc(1000, 9), { mode: 0o4755, uid: 1000, gid: 100 }),
  file("locked", Buffer.from("x"), { mode: 0o000 }),
  { entry: entry("usr", "directory") },
  { entry: entry("tmp", "directory", { mode: 0o1777 }) },
  { entry: entry("usr/lib/libc.so", "symlink", { mode: 0o777, linkname: "libc.so.6" }) },
  { entry: entry("usr/bin/alias", "link", { linkname: "usr/bin/tool" }) },
  { entry: entry("run/fifo", "fifo") },
  // ids beyond ustar's six octal digits travel as pax records
  file("owned-high", Buffer.from("hi"), { uid: 300_000, gid: 2_000_000 }),
  { entry: entry("high-folder", "directory", { uid: 262_144, gid: 0 }) },
  // names over 100 bytes: split at a slash into prefix and name, else pax
  file(`${segment("d", 60)}/${segment("e", 60)}/${segment("f", 60)}`, Buffer.from("split")),
  { entry: entry(`${segment("p", 80)}/${segment("q", 80)}`, "directory") },
  file(segment("n", 100), Buffer.from("exactly 100")),
  file(segment("n", 101), Buffer.from("one too many, no slash")),
  file(`${segment("a", 160)}/b`, Buffer.from("prefix too long")),
  file(`x/${segment("y", 120)}`, Buffer.from("last part too long")),
  // non-ASCII names go to pax; a non-ASCII link target that fits stays in the ustar block
  file("caf\u00e9/men\u00fc.txt", Buffer.from("utf8")),
  { entry: entry("link-to-caf\u00e9", "symlink", { linkname: "caf\u00e9/men\u00fc.txt" }) },
  { entry: entry("long-target", "symlink", { linkname: segment("t/", 60) }) },
  { entry: entry(`${segment("h", 101)}`, "link", { linkname: segment("g", 120) }) },
  // mtimes outside what ustar's field holds are clamped
  file("before-1970", Buffer.from("old"), { mtime: -5 }),
  file("after-2038", Buffer.from("new"), { mtime: 2 ** 33 }),
];

// The header tar-stream's pack was given for each entry before this writer replaced it.
const TYPE_BITS: Record<EntryKind, number> = {
  file: 0o100000,
  link: 0o100000,
  symlink: 0o120000,
  directory: 0o040000,
  fifo: 0o010000,
};
function tarStreamHeader(e: FlatEntry): Partial<tar.Header> & { name: string } {
  return {
    name: e.path,
    type: e.kind,
    mode: (e.mode & 0o7777) | TYPE_BITS[e.kind],
    uid: e.uid,
    gid: e.gid,
    mtime: new Date(Math.min(Math.max(e.mtime, 0), 2 ** 31 - 1) * 1000),
    size: e.kind === "file" ? e.size : 0,
    ...((e.kind === "symlink" || e.kind === "link") && { linkname: e.linkname }),
    ...((e.uid > 0o777777 || e.gid > 0o777777) && { pax: { uid: String(e.uid), gid: String(e.gid) } }),
  } as Partial<tar.Header> & { name: string };
}
async function tarStreamOf(entries: readonly { entry: FlatEntry; data?: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const { entry: e, data } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.kind === "file") pack.entry(tarStreamHeader(e), data ?? Buffer.alloc(0), cb);
      else (pack.entry(tarStreamHeader(e), cb) as unknown as { end(): void }).end();
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/**
 * A Writable that keeps copies of what it is given, taking `delayMs` for each chunk; counts the
 * writes handed to it that have not been called back yet.
 */
function collector(delayMs = 0) {
  const chunks: Buffer[] = [];
  let waiting = 0;
  let maxWaiting = 0;
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      setTimeout(callback, delayMs);
    },
  });
  const write = out.write.bind(out);
  out.write = ((chunk: Buffer, callback: (err?: Error | null) => void) => {
    waiting++;
    maxWaiting = Math.max(maxWaiting, waiting);
    return write(chunk, (err?: Error | null) => {
      waiting--;
      callback(err);
    });
  }) as typeof out.write;
  return {
    out,
    bytes: () => Buffer.concat(chunks),
    maxWaiting: () => maxWaiting,
    writes: () => chunks.length,
  };
}

describe("the tar header encoder", () => {
  it("writes byte for byte what tar-stream's pack wrote for every kind of entry", async () => {
    expect(encodeTar(CASES).equals(await tarStreamOf(CASES))).toBe(true);
  });

  it("is read back by tar-stream with every name, target, id, mode and time intact", async () => {
    const listed = await listTar(encodeTar(CASES));
    expect(listed.map((e) => e.name)).toEqual(CASES.map((c) => c.entry.path));
    for (const [i, l] of listed.entries()) {
      const e = (CASES[i] as { entry: FlatEntry }).entry;
      expect(l.uid).toBe(e.uid);
      expect(l.gid).toBe(e.gid);
      expect((l.mode ?? 0) & 0o7777).toBe(e.mode & 0o7777);
      if (e.kind === "symlink" || e.kind === "link") expect(l.linkname).toBe(e.linkname);
    }
    expect(listed.find((l) => l.name === "odd-size")?.content?.length).toBe(1000);
  });

  it("takes the room it says it takes, and sizes past 8 GiB in base-256", () => {
    const big = entry("huge", "file", { size: 10 * 2 ** 30 });
    const out = Buffer.alloc(tarHeaderLength(big));
    expect(writeTarHeader(big, out, 0)).toBe(512);
    expect(out[124]).toBe(0x80);
    expect(out.readUIntBE(124 + 6, 6)).toBe(10 * 2 ** 30);
    for (const c of CASES) {
      const buf = Buffer.alloc(tarHeaderLength(c.entry) + 8, 0xee);
      expect(writeTarHeader(c.entry, buf, 4)).toBe(4 + tarHeaderLength(c.entry));
      expect(buf.readUInt32BE(0)).toBe(0xeeeeeeee); // nothing written before or after its room
      expect(buf.readUInt32BE(buf.length - 4)).toBe(0xeeeeeeee);
    }
  });

  it("refuses data that does not match a file's size", () => {
    expect(() => encodeTar([{ entry: entry("f", "file", { size: 3 }), data: Buffer.from("four") }])).toThrow(
      RangeError,
    );
  });
});

describe("TarWriter", () => {
  it("writes the same tar as the encoder, data fed in pieces across batch boundaries", async () => {
    for (const batches of [1, 2]) {
      const sink = collector();
      const writer = new TarWriter(sink.out, { batchBytes: 2048, batches });
      for (const c of CASES) {
        await writer.entry(c.entry);
        const data = c.data ?? Buffer.alloc(0);
        for (let at = 0; at < data.length; at += 300) await writer.data(data.subarray(at, at + 300));
      }
      await writer.finish();
      expect(sink.bytes().equals(encodeTar(CASES))).toBe(true);
      expect(sink.writes()).toBeGreaterThan(1);
    }
  });

  it("has no more than its batches waiting in a slow output", async () => {
    const sink = collector(2);
    const writer = new TarWriter(sink.out, { batchBytes: 4096, batches: 3 });
    const data = Buffer.alloc(100_000, 1);
    await writer.entry(entry("big", "file", { size: data.length }));
    for (let at = 0; at < data.length; at += 1000) await writer.data(data.subarray(at, at + 1000));
    await writer.finish();
    expect(sink.maxWaiting()).toBe(3);
    expect(sink.bytes().length).toBe(512 + 100_352 + 1024);
  });

  it("fails with OutputClosedError once the output fails, and keeps failing", async () => {
    const out = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error("EPIPE: sqfstar went away"));
      },
    });
    out.on("error", () => {});
    const writer = new TarWriter(out, { batchBytes: 2048, batches: 1 });
    const data = Buffer.alloc(10_000);
    await writer.entry(entry("f", "file", { size: data.length }));
    const err = await writer.data(data).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputClosedError);
    expect((err as Error).message).toMatch(/sqfstar went away/);
    await expect(writer.entry(entry("g", "directory"))).rejects.toBeInstanceOf(OutputClosedError);
  });

  it("refuses more data than a file's size, and a file cut short", async () => {
    const writer = new TarWriter(collector().out);
    await writer.entry(entry("f", "file", { size: 4 }));
    await expect(writer.data(Buffer.from("12345"))).rejects.toThrow(/5 bytes of data where 4 are left/);
    await writer.data(Buffer.from("12"));
    await expect(writer.entry(entry("g", "directory"))).rejects.toThrow(/2 bytes short/);
    await expect(writer.finish()).rejects.toThrow(/2 bytes short/);
  });
});
