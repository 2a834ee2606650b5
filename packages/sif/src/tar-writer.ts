import type { Writable } from "node:stream";
import type { EntryKind, FlatEntry } from "./flatten-layers.js";

/*
 * The converter's tar writer: headers encoded straight into a few reused batch buffers, file data
 * copied in beside them, each full batch handed to the output with one write(). The bytes are
 * those tar-stream's pack writes for the same entries (ustar; a pax header where ustar cannot
 * hold the name, the link target or the ids), which the tests check, so sqfstar reads the same
 * tar as before; the CPU is a fraction (no stream object, callback and buffer per entry).
 */

const BLOCK = 512;
const END_OF_ARCHIVE = 2 * BLOCK;
const USTAR_ID_MAX = 0o777777;
const OCTAL_SIZE_MAX = 0o77777777777;
const TAR_TIME_MAX = 2 ** 31 - 1;

const TYPEFLAGS: Record<EntryKind | "pax", number> = {
  file: 0x30,
  link: 0x31,
  symlink: 0x32,
  directory: 0x35,
  fifo: 0x36,
  pax: 0x78, // 'x'
};

/** Bytes of `e`'s header: one block, or more with a pax extended header in front. */
export function tarHeaderLength(e: FlatEntry): number {
  const pax = paxRecordsOf(e);
  return pax === null ? BLOCK : BLOCK + padded(Buffer.byteLength(pax)) + BLOCK;
}

/**
 * Writes `e`'s header at `out[at]` (room for {@link tarHeaderLength} bytes is the caller's
 * business); returns the position after it. Modes keep their permission bits (setuid, 0000);
 * mtimes are clamped to what a ustar field holds.
 */
export function writeTarHeader(e: FlatEntry, out: Buffer, at: number): number {
  const pax = paxRecordsOf(e);
  const size = e.kind === "file" ? e.size : 0;
  if (pax === null) {
    writeBlock(out, at, e.path, e.kind, e.mode, e.uid, e.gid, size, e.mtime, e.linkname);
    return at + BLOCK;
  }
  // As tar-stream: a pax header named "PaxHeader", then the entry's ustar block under that name.
  const records = Buffer.from(pax, "utf8");
  const linkname = e.linkname === "" ? "" : "PaxHeader";
  writeBlock(out, at, "PaxHeader", "pax", e.mode, e.uid, e.gid, records.length, e.mtime, linkname);
  let p = at + BLOCK;
  records.copy(out, p);
  out.fill(0, p + records.length, p + padded(records.length));
  p += padded(records.length);
  writeBlock(out, p, "PaxHeader", e.kind, e.mode, e.uid, e.gid, size, e.mtime, linkname);
  return p + BLOCK;
}

/** A whole tar of `entries` in memory (small tars: the generated metadata). */
export function encodeTar(entries: readonly { entry: FlatEntry; data?: Buffer }[]): Buffer {
  let length = END_OF_ARCHIVE;
  for (const { entry, data } of entries) {
    if (entry.kind === "file" && (data?.length ?? 0) !== entry.size)
      throw new RangeError(`/${entry.path}: ${data?.length ?? 0} bytes of data for a size of ${entry.size}`);
    length += tarHeaderLength(entry) + padded(entry.kind === "file" ? entry.size : 0);
  }
  const out = Buffer.alloc(length);
  let at = 0;
  for (const { entry, data } of entries) {
    at = writeTarHeader(entry, out, at);
    if (entry.kind === "file" && data) {
      data.copy(out, at);
      at += padded(data.length);
    }
  }
  return out;
}

/**
 * The pax records `e` needs, or null when a ustar block holds it all. tar-stream's rules: a name
 * that is not ASCII, or longer than 100 bytes and not splittable into a 155-byte prefix and a
 * 100-byte name at a slash; a link target over 100 bytes; ids beyond ustar's 0o777777.
 */
function paxRecordsOf(e: FlatEntry): string | null {
  const bigIds = e.uid > USTAR_ID_MAX || e.gid > USTAR_ID_MAX;
  if (!bigIds && splitName(e.path) !== null && Buffer.byteLength(e.linkname) <= 100) return null;
  let records = record("path", e.path);
  if (e.linkname !== "") records += record("linkpath", e.linkname);
  if (bigIds) records += record("uid", String(e.uid)) + record("gid", String(e.gid));
  return records;
}

/** One pax record: "<length> key=value\n", the length counting its own digits. */
function record(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const length = Buffer.byteLength(body);
  let digits = String(length).length;
  if (length + digits >= 10 ** digits) digits++;
  return `${length + digits}${body}`;
}

/** [prefix, name] for ustar, or null when the name must go into a pax record. */
function splitName(name: string): [string, string] | null {
  // Non-ASCII names go to pax (as tar-stream does): byte and character counts then differ.
  if (name.length <= 100) return Buffer.byteLength(name) === name.length ? ["", name] : null;
  if (Buffer.byteLength(name) !== name.length) return null;
  let rest = name;
  let prefix = "";
  while (rest.length > 100) {
    const slash = rest.indexOf("/");
    if (slash === -1) return null;
    prefix += prefix ? `/${rest.slice(0, slash)}` : rest.slice(0, slash);
    rest = rest.slice(slash + 1);
  }
  return prefix.length > 155 ? null : [prefix, rest];
}

function writeBlock(
  out: Buffer,
  at: number,
  path: string,
  kind: EntryKind | "pax",
  mode: number,
  uid: number,
  gid: number,
  size: number,
  mtime: number,
  linkname: string,
): void {
  out.fill(0, at, at + BLOCK);
  // Folder names carry no trailing slash: tar-stream meant to add one but never does (it tests a
  // `typeflag` its own headers do not have), and the output stays byte for byte what it wrote.
  const [prefix, rest] = splitName(path) ?? ["", path];
  out.write(rest, at, 100, "utf8");
  writeOctal(out, at + 100, mode & 0o7777, 6);
  writeOctal(out, at + 108, uid, 6);
  writeOctal(out, at + 116, gid, 6);
  if (size > OCTAL_SIZE_MAX) writeBase256(out, at + 124, size);
  else writeOctal(out, at + 124, size, 11);
  writeOctal(out, at + 136, Math.min(Math.max(Math.trunc(mtime), 0), TAR_TIME_MAX), 11);
  out[at + 156] = TYPEFLAGS[kind];
  if (linkname !== "") out.write(linkname, at + 157, 100, "utf8");
  out.write("ustar\u000000", at + 257, 8, "latin1");
  writeOctal(out, at + 329, 0, 6);
  writeOctal(out, at + 337, 0, 6);
  if (prefix !== "") out.write(prefix, at + 345, 155, "utf8");
  // The checksum counts its own field as eight spaces.
  let sum = 8 * 0x20;
  for (let i = at; i < at + 148; i++) sum += out[i] as number;
  for (let i = at + 156; i < at + BLOCK; i++) sum += out[i] as number;
  writeOctal(out, at + 148, sum, 6);
}

/** `digits` octal digits, zero-padded, then a space; all sevens when the value does not fit. */
function writeOctal(out: Buffer, at: number, value: number, digits: number): void {
  let v = value;
  for (let i = digits - 1; i >= 0; i--) {
    out[at + i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  if (v > 0) out.fill(0x37, at, at + digits);
  out[at + digits] = 0x20;
}

/** GNU base-256 size: 0x80, then the value big-endian in 11 bytes. */
function writeBase256(out: Buffer, at: number, value: number): void {
  out[at] = 0x80;
  let v = value;
  for (let i = 11; i > 0; i--) {
    out[at + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** The output closed under the writer (sqfstar stopped): a consequence, not a cause. */
export class OutputClosedError extends Error {
  constructor(cause: unknown) {
    super(`the output tar was closed: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

export interface TarWriterOptions {
  /** Bytes per write to the output (default 1 MiB). */
  batchBytes?: number;
  /** Batches that may be in flight at once (default 3); the writer waits when all are. */
  batches?: number;
}

/**
 * Writes a tar into `out`: `entry()` for each entry, then for a file exactly its size in `data()`
 * calls, and `finish()`. Memory is `batches` × `batchBytes`, reused; at most that much waits in
 * the output, which is the backpressure. A failed write fails every later call with
 * {@link OutputClosedError}. Not for concurrent use: await each call before the next.
 *
 * A batch is filled again once `out` calls back its write, as files, sockets and pipes do when
 * they are done with the bytes; an `out` that keeps written chunks for later (a PassThrough read
 * at leisure, an array) must copy them. (A fresh buffer per batch cost a quarter more CPU in a
 * conversion, and, collected late, 300 MB more memory.)
 */
export class TarWriter {
  readonly #out: Writable;
  readonly #batchBytes: number;
  readonly #free: Buffer[] = [];
  /** Writes handed to the output, oldest first, each with the buffer it holds. */
  readonly #writing: { buffer: Buffer; done: Promise<void> }[] = [];
  #batch: Buffer;
  #used = 0;
  /** Data bytes the current file still needs, and the padding after them. */
  #dataLeft = 0;
  #padding = 0;
  #error: Error | undefined;
  #finished = false;

  constructor(out: Writable, options: TarWriterOptions = {}) {
    this.#out = out;
    this.#batchBytes = Math.max(options.batchBytes ?? 1024 * 1024, 4 * BLOCK);
    for (let i = 0; i < Math.max(options.batches ?? 3, 1); i++)
      this.#free.push(Buffer.allocUnsafe(this.#batchBytes));
    this.#batch = this.#free.pop() as Buffer;
  }

  /** Starts an entry; a file's data follows through data(). */
  async entry(e: FlatEntry): Promise<void> {
    this.#check();
    if (this.#dataLeft > 0) throw new Error(`tar writer: the previous file is ${this.#dataLeft} bytes short`);
    const length = tarHeaderLength(e);
    if (length > this.#batchBytes - this.#used) {
      await this.#flush();
      // A header longer than a batch (pax records of huge names) is written by itself.
      if (length > this.#batchBytes) {
        const own = Buffer.alloc(length);
        writeTarHeader(e, own, 0);
        await this.#send(own, false);
        this.#expect(e);
        return;
      }
    }
    this.#used = writeTarHeader(e, this.#batch, this.#used);
    this.#expect(e);
  }

  /** Data of the current file; no more than it still needs. */
  async data(chunk: Uint8Array): Promise<void> {
    if (chunk.length > this.#dataLeft)
      throw new Error(`tar writer: ${chunk.length} bytes of data where ${this.#dataLeft} are left`);
    let from = 0;
    while (from < chunk.length) {
      this.#check();
      if (this.#used === this.#batchBytes) await this.#flush();
      const n = Math.min(chunk.length - from, this.#batchBytes - this.#used);
      this.#batch.set(chunk.subarray(from, from + n), this.#used);
      this.#used += n;
      from += n;
    }
    this.#dataLeft -= chunk.length;
    if (this.#dataLeft === 0) await this.#pad();
  }

  /** The end-of-archive blocks; then every batch written and `out` ended. */
  async finish(): Promise<void> {
    this.#check();
    if (this.#dataLeft > 0) throw new Error(`tar writer: the last file is ${this.#dataLeft} bytes short`);
    this.#padding = END_OF_ARCHIVE;
    await this.#pad();
    await this.#flush();
    while (this.#writing.length > 0) await this.#writing.shift()?.done;
    this.#check();
    this.#finished = true;
    await new Promise<void>((resolve, reject) => {
      this.#out.end((err?: Error | null) => (err ? reject(new OutputClosedError(err)) : resolve()));
    });
  }

  get finished(): boolean {
    return this.#finished;
  }

  #expect(e: FlatEntry): void {
    const size = e.kind === "file" ? e.size : 0;
    this.#dataLeft = size;
    this.#padding = padded(size) - size;
  }

  async #pad(): Promise<void> {
    while (this.#padding > 0) {
      if (this.#used === this.#batchBytes) await this.#flush();
      const n = Math.min(this.#padding, this.#batchBytes - this.#used);
      this.#batch.fill(0, this.#used, this.#used + n);
      this.#used += n;
      this.#padding -= n;
    }
  }

  /** Hands the current batch to the output and takes a free one, waiting for one if needed. */
  async #flush(): Promise<void> {
    if (this.#used === 0) return;
    const full = this.#batch;
    const used = this.#used;
    this.#used = 0;
    await this.#send(full.subarray(0, used), true, full);
    if (this.#free.length === 0) {
      const oldest = this.#writing.shift() as { buffer: Buffer; done: Promise<void> };
      await oldest.done;
      this.#free.push(oldest.buffer);
    }
    this.#batch = this.#free.pop() as Buffer;
  }

  /** Writes `bytes`; a pooled batch returns to the pool once written. */
  async #send(bytes: Buffer, pooled: boolean, buffer = bytes): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.#out.write(bytes, (err?: Error | null) => {
        if (err) {
          this.#error ??= new OutputClosedError(err);
          reject(this.#error);
        } else resolve();
      });
    });
    done.catch(() => {});
    if (pooled) this.#writing.push({ buffer, done });
    else await done;
  }

  #check(): void {
    if (this.#error) throw this.#error;
  }
}
