import { ImageArchiveError } from "../errors.js";
import type { ByteSource, SyncByteSource } from "./byte-source.js";
import { printable } from "./layer-entries.js";

/**
 * The one tar header reader: for an image archive (what `docker save` writes) and for the tar
 * inside each layer. It yields each entry's metadata and skips its data, by seeking when the
 * source is a file, so a large member costs nothing to pass. The layer flattener streams the
 * bytes later with tar-stream; both must see the same entries in the same order, so this reader
 * follows tar-stream's reading rules where tar is ambiguous (see the comments).
 */

export type TarEntryKind =
  | "file"
  | "link"
  | "symlink"
  | "directory"
  | "fifo"
  | "character-device"
  | "block-device"
  | "other";

export interface TarHeader {
  /** Position among the layer's entries (extension headers not counted), from 0. */
  ordinal: number;
  /** The name as stored (pax path, GNU long name or ustar prefix/name). */
  name: string;
  kind: TarEntryKind;
  /** The raw typeflag character, for messages about unsupported kinds. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  linkname: string;
  /** Where the entry's data starts in the source (its position after the header). */
  dataOffset: number;
  /** The entry's data, when `capture` asked for it. */
  data?: Buffer;
  /** The first `headBytes` bytes of a regular file's data, when asked for (to sniff a format). */
  head?: Buffer;
}

export interface ReadTarOptions {
  /** Names the source in errors: "layer <member>", "the archive". */
  what: string;
  /**
   * Refuse a tar that ends between entries without its end-of-archive blocks (a cut archive);
   * by default it is accepted, as tar-stream and Go's archive/tar accept it.
   */
  requireEndMarker?: boolean;
  /** Entries whose data to read and return (small metadata files). */
  capture?: (header: TarHeader) => boolean;
  /** Return this many leading bytes of every regular file's data. */
  headBytes?: number;
  /**
   * Called with the number of bytes the reader is about to read or skip (a header block, an
   * extension's data, an entry's data), before it does: a budget can throw to stop it.
   */
  onBytes?: (n: number) => void;
}

const BLOCK = 512;
const MAX_EXTENSION = 1024 * 1024;

const KINDS: Record<string, TarEntryKind> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "character-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
};

/**
 * Yields the entries of one tar stream. A source ending inside an entry is an error; one ending
 * exactly between entries without the end-of-archive blocks is too with `requireEndMarker`.
 */
export async function* readTarHeaders(
  source: ByteSource,
  options: ReadTarOptions,
): AsyncGenerator<TarHeader> {
  const { what, onBytes } = options;
  const decoder = new TarHeaderDecoder(options);
  for (;;) {
    const offset = source.position;
    onBytes?.(BLOCK);
    const step = decoder.block(await readOrTruncated(source, BLOCK, what, true), offset);
    if (step === null) return;
    if (typeof step === "number") {
      onBytes?.(step);
      decoder.extension((await readOrTruncated(source, step, what, false)) as Buffer, offset);
      continue;
    }
    step.dataOffset = source.position;
    let left = step.size > 0 ? padded(step.size) : 0;
    if (left > 0) onBytes?.(left);
    if (left > 0 && options.capture?.(step)) {
      const bytes = (await readOrTruncated(source, left, what, false)) as Buffer;
      step.data = Buffer.from(bytes.subarray(0, step.size));
      left = 0;
    } else {
      const head = headLength(step, options);
      if (head > 0) step.head = Buffer.from((await readOrTruncated(source, head, what, false)) as Buffer);
      left -= head;
    }
    if (left > 0) await skipOrTruncated(source, left, what, step.name);
    yield step;
  }
}

/**
 * {@link readTarHeaders} over a source read synchronously: the same entries, without a promise
 * per read and per entry. For a file (which is read synchronously anyway) with thousands of
 * entries that is a third less CPU; the caller gives the event loop its turns.
 */
export function* readTarHeadersSync(source: SyncByteSource, options: ReadTarOptions): Generator<TarHeader> {
  const { what, onBytes } = options;
  const decoder = new TarHeaderDecoder(options);
  for (;;) {
    const offset = source.position;
    onBytes?.(BLOCK);
    const step = decoder.block(readOrTruncatedSync(source, BLOCK, what, true), offset);
    if (step === null) return;
    if (typeof step === "number") {
      onBytes?.(step);
      decoder.extension(readOrTruncatedSync(source, step, what, false) as Buffer, offset);
      continue;
    }
    step.dataOffset = source.position;
    let left = step.size > 0 ? padded(step.size) : 0;
    if (left > 0) onBytes?.(left);
    if (left > 0 && options.capture?.(step)) {
      const bytes = readOrTruncatedSync(source, left, what, false) as Buffer;
      step.data = Buffer.from(bytes.subarray(0, step.size));
      left = 0;
    } else {
      const head = headLength(step, options);
      if (head > 0) step.head = Buffer.from(readOrTruncatedSync(source, head, what, false) as Buffer);
      left -= head;
    }
    if (left > 0) skipOrTruncatedSync(source, left, what, step.name);
    yield step;
  }
}

/**
 * The interpretation of header blocks, apart from reading them: the extension headers (pax,
 * GNU long names) carried over to the entry they precede, and the entry's header.
 */
class TarHeaderDecoder {
  readonly #what: string;
  readonly #requireEndMarker: boolean;
  #pax: Record<string, string> | null = null;
  #globalPax: Record<string, string> | null = null;
  #longName: string | null = null;
  #longLink: string | null = null;
  /** The extension whose data extension() takes next: its typeflag and size. */
  #extension: { typeflag: string; size: number } | null = null;
  #ordinal = 0;

  constructor(options: ReadTarOptions) {
    this.#what = options.what;
    this.#requireEndMarker = options.requireEndMarker ?? false;
  }

  /**
   * One header block (null: the source ended there) at `offset`. Returns null at the end of the
   * archive; the number of bytes to read and hand to extension() for an extension header; else the
   * entry's header, whose `dataOffset` the reader sets.
   */
  block(block: Buffer | null, offset: number): TarHeader | number | null {
    const what = this.#what;
    if (block === null && this.#requireEndMarker) {
      throw new ImageArchiveError(
        `${what} ends without tar's end-of-archive marker: it is truncated or not a tar file`,
      );
    }
    if (block === null || isZero(block)) return null;
    verifyChecksum(block, what, offset);
    const typeflag = String.fromCharCode(block[156] as number);
    let size = readNumber(block, 124, 12);
    if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "N" || typeflag === "K") {
      if (size > MAX_EXTENSION) {
        throw new ImageArchiveError(`${what}: tar extension header at offset ${offset} is larger than 1 MiB`);
      }
      this.#extension = { typeflag, size };
      return padded(size);
    }
    let name = nameText(block, 0, 100, what, offset);
    if (isUstar(block) && block[345] !== 0) name = `${nameText(block, 345, 155, what, offset)}/${name}`;
    let linkname = block[157] === 0 ? "" : nameText(block, 157, 100, what, offset);
    let uid = readNumber(block, 108, 8);
    let gid = readNumber(block, 116, 8);
    let mtime = readNumber(block, 136, 12);
    if (this.#longName !== null) name = this.#longName;
    if (this.#longLink !== null) linkname = this.#longLink;
    // tar-stream merges global pax records only into entries that have their own pax header;
    // so must we, or the two readers would disagree about names and sizes.
    const records = this.#pax === null ? null : { ...(this.#globalPax ?? {}), ...this.#pax };
    if (records) {
      if (records.path) name = records.path;
      if (records.linkpath) linkname = records.linkpath;
      if (records.size) size = Number.parseInt(records.size, 10);
      if (records.uid) uid = paxInteger(records.uid, uid);
      if (records.gid) gid = paxInteger(records.gid, gid);
      if (records.mtime) mtime = Math.floor(Number(records.mtime)) || mtime;
    }
    this.#pax = null;
    this.#longName = null;
    this.#longLink = null;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ImageArchiveError(`${what}: bad size in the tar header at offset ${offset}`, { entry: name });
    }
    let kind = KINDS[typeflag] ?? "other";
    // Old tars mark folders by a trailing slash on a regular-file entry (tar-stream does the same).
    if (typeflag === "0" || typeflag === "\0") {
      if (name.endsWith("/")) kind = "directory";
    }
    return {
      ordinal: this.#ordinal++,
      name,
      kind,
      typeflag,
      mode: readNumber(block, 100, 8) & 0o7777,
      uid,
      gid,
      mtime,
      // tar-stream reads no data after a folder entry whatever its size says, and reads data after
      // every other kind; follow it exactly.
      size: kind === "directory" ? 0 : size,
      linkname,
      dataOffset: 0,
    };
  }

  /**
   * The data of the extension header block() announced (padded to whole blocks); `offset` is
   * where that header starts.
   */
  extension(body: Buffer, offset: number): void {
    const { typeflag, size } = this.#extension as { typeflag: string; size: number };
    this.#extension = null;
    const data = body.subarray(0, size);
    if (typeflag === "x") this.#pax = parsePax(data, this.#what);
    else if (typeflag === "g") this.#globalPax = parsePax(data, this.#what);
    else if (typeflag === "K") this.#longLink = nameText(data, 0, data.length, this.#what, offset);
    else this.#longName = nameText(data, 0, data.length, this.#what, offset);
  }
}

/** How many leading bytes of an entry's data to return (headBytes, for regular files). */
function headLength(header: TarHeader, options: ReadTarOptions): number {
  const headBytes = options.headBytes ?? 0;
  return headBytes > 0 && header.kind === "file" && header.size > 0 ? Math.min(headBytes, header.size) : 0;
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

async function readOrTruncated(
  source: ByteSource,
  length: number,
  what: string,
  atBoundary: boolean,
): Promise<Buffer | null> {
  let data: Buffer | null;
  try {
    data = await source.readExact(length);
  } catch (err) {
    throw truncated(what, undefined, err);
  }
  if (data === null && !atBoundary) throw truncated(what);
  return data;
}

async function skipOrTruncated(
  source: ByteSource,
  length: number,
  what: string,
  name: string,
): Promise<void> {
  try {
    await source.skip(length);
  } catch (err) {
    throw truncated(what, name, err);
  }
}

function readOrTruncatedSync(
  source: SyncByteSource,
  length: number,
  what: string,
  atBoundary: boolean,
): Buffer | null {
  let data: Buffer | null;
  try {
    data = source.readExactSync(length);
  } catch (err) {
    throw truncated(what, undefined, err);
  }
  if (data === null && !atBoundary) throw truncated(what);
  return data;
}

function skipOrTruncatedSync(source: SyncByteSource, length: number, what: string, name: string): void {
  try {
    source.skipSync(length);
  } catch (err) {
    throw truncated(what, name, err);
  }
}

function truncated(what: string, entry?: string, cause?: unknown): ImageArchiveError {
  return new ImageArchiveError(`${what} is truncated: its tar ends inside an entry`, {
    ...(entry !== undefined && { entry }),
    cause,
  });
}

function verifyChecksum(block: Buffer, what: string, offset: number): void {
  // The checksum field itself counts as eight spaces.
  let unsigned = 8 * 0x20;
  for (let i = 0; i < 148; i++) unsigned += block[i] as number;
  for (let i = 156; i < BLOCK; i++) unsigned += block[i] as number;
  const stored = readNumber(block, 148, 8);
  if (stored === unsigned) return;
  // Some old tars summed signed bytes.
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    const b = block[i] as number;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== signed) {
    throw new ImageArchiveError(
      `${what} is not a tar file or is corrupt: bad header checksum at offset ${offset}`,
    );
  }
}

function isZero(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/**
 * A name from a header field or a GNU long name: the text up to its first NUL. Anything but NULs
 * after that is refused: readers disagree on such a name (one stops at the NUL, another keeps the
 * rest), which is how a hostile archive shows each tool a different file.
 */
function nameText(buf: Buffer, at: number, length: number, what: string, offset: number): string {
  let end = at;
  const limit = at + length;
  while (end < limit && buf[end] !== 0) end++;
  const text = buf.toString("utf8", at, end);
  for (let i = end; i < limit; i++) {
    if (buf[i] !== 0) {
      throw new ImageArchiveError(
        `${what}: the tar header at offset ${offset} has a name with bytes after its NUL terminator`,
        { entry: printable(buf.toString("latin1", at, limit).replace(/\0+$/, "")) },
      );
    }
  }
  return text;
}

const USTAR = [0x75, 0x73, 0x74, 0x61, 0x72, 0x00]; // "ustar\0"

function isUstar(block: Buffer): boolean {
  for (let i = 0; i < 6; i++) if (block[257 + i] !== USTAR[i]) return false;
  return true;
}

/** Octal ASCII (leading spaces and NULs allowed), or GNU base-256 when the top bit is set. */
function readNumber(block: Buffer, at: number, length: number): number {
  const end = at + length;
  const first = block[at] as number;
  if (first & 0x80) {
    let n = first === 0xff ? -1 : first & 0x7f;
    for (let i = at + 1; i < end; i++) n = n * 256 + (block[i] as number);
    return n;
  }
  let i = at;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let n = 0;
  for (; i < end; i++) {
    const c = block[i] as number;
    if (c < 0x30 || c > 0x37) break;
    n = n * 8 + (c - 0x30);
  }
  return n;
}

function paxInteger(value: string, fallback: number): number {
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : fallback;
}

/** pax records: "<length> <key>=<value>\n"; values may hold any byte but NUL-free keys. */
function parsePax(body: Buffer, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break;
    const space = body.indexOf(0x20, pos);
    const len = space === -1 ? Number.NaN : Number(body.subarray(pos, space).toString("latin1"));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > body.length) {
      throw new ImageArchiveError(`${what}: corrupt pax extended header`);
    }
    const record = body.subarray(space + 1, pos + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}
