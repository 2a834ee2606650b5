import { open } from "node:fs/promises";
import { ImageArchiveError } from "../errors.js";

/**
 * A small tar header reader for the *outer* image archive (what `docker save` writes). It yields
 * each member with the offset of its data, so that a path source can later read one layer by
 * offset without scanning again; layer contents are skipped, never buffered. The entries
 * *inside* a layer are read with tar-stream instead (see the sif package).
 */

export const TAR_BLOCK = 512;

export type TarEntryType =
  | "file"
  | "hardlink"
  | "symlink"
  | "character-device"
  | "block-device"
  | "directory"
  | "fifo"
  | "other";

export interface TarMember {
  name: string;
  type: TarEntryType;
  size: number;
  mode: number;
  linkname: string;
  /** Byte offset of the member's data in the archive. */
  dataOffset: number;
}

/** Random or sequential access to the archive's bytes. */
export interface ByteSource {
  /** Reads exactly `length` bytes at the current position; throws when the source ends first. */
  readExact(length: number): Promise<Buffer | null>;
  /** Moves forward `length` bytes without returning them; throws when the source ends first. */
  skip(length: number): Promise<void>;
  readonly position: number;
  close(): Promise<void>;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "character-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
};

/**
 * Yields the archive's members in order. `capture(member)` says which members' data to return
 * (small JSON documents); the data of every other member is skipped. The first few bytes of every
 * regular file are returned as `head` (to sniff compression).
 */
export async function* scanTar(
  source: ByteSource,
  capture: (member: TarMember) => boolean,
  headBytes = 8,
): AsyncGenerator<{ member: TarMember; data: Buffer | null; head: Buffer }> {
  let pax: Record<string, string> = {};
  let globalPax: Record<string, string> = {};
  let longName: string | null = null;
  let longLink: string | null = null;
  for (;;) {
    const headerOffset = source.position;
    const block = await source.readExact(TAR_BLOCK);
    if (block === null) {
      throw new ImageArchiveError(
        "the archive ends without tar's end-of-archive marker: it is truncated or not a tar file",
      );
    }
    if (isZeroBlock(block)) return; // end of archive (a second zero block may follow; it is not read)
    const header = parseHeader(block, headerOffset);
    const size = numberField(pax.size ?? globalPax.size, header.size);
    const dataOffset = source.position;
    const padded = Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    if (
      header.typeflag === "x" ||
      header.typeflag === "g" ||
      header.typeflag === "L" ||
      header.typeflag === "K"
    ) {
      if (size > 1024 * 1024)
        throw new ImageArchiveError(`tar extension header at offset ${headerOffset} is too large`);
      const data = await mustRead(source, padded, header.name);
      const body = data.subarray(0, size);
      if (header.typeflag === "x") pax = { ...pax, ...parsePax(body, header.name) };
      else if (header.typeflag === "g") globalPax = { ...globalPax, ...parsePax(body, header.name) };
      else if (header.typeflag === "L") longName = cString(body);
      else longLink = cString(body);
      continue;
    }
    const name = pax.path ?? longName ?? header.name;
    const linkname = pax.linkpath ?? longLink ?? header.linkname;
    pax = {};
    longName = null;
    longLink = null;
    const member: TarMember = {
      name,
      type: TYPES[header.typeflag] ?? "other",
      size: dataSize(header.typeflag, size),
      mode: header.mode,
      linkname,
      dataOffset,
    };
    let data: Buffer | null = null;
    let head: Buffer = Buffer.alloc(0);
    if (member.size > 0 && capture(member)) {
      data = (await mustRead(source, padded, name)).subarray(0, member.size);
      head = data.subarray(0, headBytes);
    } else if (member.size > 0) {
      const h = Math.min(headBytes, member.size);
      head = Buffer.from(await mustRead(source, h, name));
      await skipOrThrow(source, padded - h, name);
    } else if (padded > 0) {
      await skipOrThrow(source, padded, name);
    }
    yield { member, data, head };
  }
}

// Links, directories and devices carry no data, whatever their size field says.
function dataSize(typeflag: string, size: number): number {
  return typeflag === "1" || typeflag === "2" || typeflag === "5" || typeflag === "3" || typeflag === "4"
    ? 0
    : size;
}

async function mustRead(source: ByteSource, length: number, name: string): Promise<Buffer> {
  const data = await source.readExact(length);
  if (data === null) throw truncated(name);
  return data;
}

async function skipOrThrow(source: ByteSource, length: number, name: string): Promise<void> {
  try {
    await source.skip(length);
  } catch (err) {
    throw truncated(name, err);
  }
}

function truncated(name: string, cause?: unknown): ImageArchiveError {
  return new ImageArchiveError("the archive is truncated: it ends inside a member", { entry: name, cause });
}

interface RawHeader {
  name: string;
  mode: number;
  size: number;
  typeflag: string;
  linkname: string;
}

function parseHeader(block: Buffer, offset: number): RawHeader {
  const stored = readNumber(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored === null || (stored !== unsigned && stored !== signed)) {
    throw new ImageArchiveError(
      `not a tar archive, or corrupt: bad header checksum at offset ${offset}. Give a tarball written by \`docker save\` (docker-archive) or an OCI image layout archive`,
    );
  }
  const magic = block.subarray(257, 263).toString("latin1");
  let name = cString(block.subarray(0, 100));
  if (magic === "ustar\0") {
    const prefix = cString(block.subarray(345, 500));
    if (prefix) name = `${prefix}/${name}`;
  }
  const size = readNumber(block.subarray(124, 136));
  if (size === null || size < 0)
    throw new ImageArchiveError(`bad size field in the tar header at offset ${offset}`);
  return {
    name,
    mode: readNumber(block.subarray(100, 108)) ?? 0,
    size,
    typeflag: String.fromCharCode(block[156] as number),
    linkname: cString(block.subarray(157, 257)),
  };
}

function isZeroBlock(block: Buffer): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end === -1 ? buf.length : end).toString("utf8");
}

/** Octal ASCII, or GNU base-256 when the top bit of the first byte is set. */
function readNumber(field: Buffer): number | null {
  if (field.length > 0 && ((field[0] as number) & 0x80) !== 0) {
    let n = (field[0] as number) & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] as number);
    return Number.isSafeInteger(n) ? n : null;
  }
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) return null;
  return Number.parseInt(text, 8);
}

function numberField(paxValue: string | undefined, fallback: number): number {
  if (paxValue === undefined) return fallback;
  const n = Number(paxValue);
  if (!Number.isSafeInteger(n) || n < 0) throw new ImageArchiveError(`bad pax size "${paxValue}"`);
  return n;
}

/** pax records: "<length> <key>=<value>\n", length counting the whole record. */
function parsePax(body: Buffer, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break;
    const space = body.indexOf(0x20, pos);
    const len = space === -1 ? Number.NaN : Number(body.subarray(pos, space).toString("latin1"));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > body.length) {
      throw new ImageArchiveError("corrupt pax extended header", { entry: name });
    }
    const record = body.subarray(space + 1, pos + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** A {@link ByteSource} over a file, reading by offset: skipping costs nothing. */
export async function fileByteSource(path: string, start = 0): Promise<ByteSource & { size: number }> {
  const handle = await open(path, "r");
  const { size } = await handle.stat();
  let position = start;
  return {
    size,
    get position() {
      return position;
    },
    async readExact(length) {
      if (position + length > size) {
        if (position >= size) return null;
        throw new ImageArchiveError(
          `the archive is truncated: ${size} bytes, expected more than ${position + length}`,
        );
      }
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      if (done < length) throw new ImageArchiveError("the archive is truncated");
      position += length;
      return buf;
    },
    async skip(length) {
      if (position + length > size) throw new ImageArchiveError("the archive is truncated");
      position += length;
    },
    close: () => handle.close(),
  };
}

/**
 * A {@link ByteSource} over a stream, consuming it in order. `onBytes` sees every chunk (to hash
 * or count); skipping still reads the bytes. close() stops reading (and destroys a Node stream):
 * a bad or endless stream is never read to its end.
 */
export function streamByteSource(
  stream: AsyncIterable<Buffer | string>,
  onBytes?: (chunk: Buffer) => void,
): ByteSource {
  const iterator = stream[Symbol.asyncIterator]();
  let pending: Buffer = Buffer.alloc(0);
  let position = 0;
  let ended = false;
  const fill = async (want: number): Promise<boolean> => {
    const parts = [pending];
    let have = pending.length;
    while (have < want && !ended) {
      const { value, done } = await iterator.next();
      if (done) {
        ended = true;
        break;
      }
      const chunk = typeof value === "string" ? Buffer.from(value) : value;
      onBytes?.(chunk);
      parts.push(chunk);
      have += chunk.length;
    }
    pending = parts.length === 1 ? pending : Buffer.concat(parts, have);
    return have >= want;
  };
  return {
    get position() {
      return position;
    },
    async readExact(length) {
      if (!(await fill(length))) {
        if (pending.length === 0) return null;
        throw new ImageArchiveError("the archive is truncated");
      }
      const out = pending.subarray(0, length);
      pending = pending.subarray(length);
      position += length;
      return out;
    },
    async skip(length) {
      let left = length;
      while (left > 0) {
        if (pending.length === 0 && !(await fill(1))) throw new ImageArchiveError("the archive is truncated");
        const n = Math.min(left, pending.length);
        pending = pending.subarray(n);
        left -= n;
        position += n;
      }
    },
    async close() {
      if (!ended) await iterator.return?.();
    },
  };
}
