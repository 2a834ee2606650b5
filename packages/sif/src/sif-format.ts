import { randomUUID } from "node:crypto";
import { open } from "node:fs/promises";
import { ImageArchiveError } from "@contexec/core";

/*
 * The Singularity Image Format, as written by sylabs/sif v2 (pkg/sif) and read by Apptainer and
 * SingularityCE. Everything is little-endian and packed (Go's binary.Write, no padding):
 *
 *   0      global header, 128 bytes
 *   4096   descriptor table, DescriptorsTotal x 585 bytes (48 slots by default)
 *   32176  data objects, each aligned (4096 by default) after the previous one
 */

export const SIF_LAUNCH_SCRIPT = "#!/usr/bin/env run-singularity\n";
export const SIF_MAGIC = "SIF_MAGIC";
/** The only SIF specification version there is ("01"). */
export const SIF_VERSION = "01";
export const SIF_HEADER_SIZE = 128;
export const SIF_DESCRIPTOR_SIZE = 585;
/** Where sif's CreateContainer puts the descriptor table, and how many slots it reserves. */
export const SIF_DEFAULT_DESCRIPTORS_OFFSET = 4096;
export const SIF_DEFAULT_DESCRIPTOR_CAPACITY = 48;
/** Default data object alignment (the page size sif uses). */
export const SIF_DATA_ALIGNMENT = 4096;
/** Group and linked ids carry this mask; a linked id with it names a group, not an object. */
export const SIF_GROUP_MASK = 0xf0000000;
/** The group sif puts objects in unless told otherwise. */
export const SIF_DEFAULT_GROUP = 1;

const NAME_LENGTH = 128;
// The last 384 bytes of a descriptor ("extra") hold type-specific fields: for a partition, fstype, parttype, arch.

/** Data object types (`DataType`). */
export const SIF_DATA_TYPES = {
  deffile: 0x4001,
  envVar: 0x4002,
  labels: 0x4003,
  partition: 0x4004,
  signature: 0x4005,
  genericJson: 0x4006,
  generic: 0x4007,
  cryptoMessage: 0x4008,
  sbom: 0x4009,
  ociBlob: 0x400a,
  ociRootIndex: 0x400b,
} as const;

/** File system types of a partition (`FSType`). */
export const SIF_FS_TYPES = {
  squashfs: 1,
  ext3: 2,
  immutableObjects: 3,
  raw: 4,
  encryptedSquashfs: 5,
} as const;

/** Partition types (`PartType`); a runnable image has exactly one primary system partition. */
export const SIF_PARTITION_TYPES = {
  system: 1,
  primarySystem: 2,
  data: 3,
  overlay: 4,
} as const;

/**
 * Architecture codes of the header and of partitions, keyed by Go/OCI architecture name. On
 * disk a code is 3 bytes: two ASCII digits and a NUL ("02\0" for amd64); "00" is unknown.
 */
export const SIF_ARCH_CODES = {
  "386": "01",
  amd64: "02",
  arm: "03",
  arm64: "04",
  ppc64: "05",
  ppc64le: "06",
  mips: "07",
  mipsle: "08",
  mips64: "09",
  mips64le: "10",
  s390x: "11",
  riscv64: "12",
} as const satisfies Record<string, string>;
export const SIF_ARCH_UNKNOWN = "00";

export type SifArch = keyof typeof SIF_ARCH_CODES;

/** The SIF architecture code of an OCI/Go architecture name, or "00" when SIF has none for it. */
export function sifArchCode(arch: string): string {
  return (SIF_ARCH_CODES as Record<string, string>)[arch] ?? SIF_ARCH_UNKNOWN;
}

/** The OCI/Go architecture name of a SIF code, or "unknown". */
export function archOfSifCode(code: string): string {
  for (const [arch, c] of Object.entries(SIF_ARCH_CODES)) if (c === code) return arch;
  return "unknown";
}

/** The global header, fields as sif names them. */
export interface SifHeader {
  launchScript: string;
  magic: string;
  version: string;
  /** Architecture code of the primary partition ("02"). */
  arch: string;
  /** Its OCI/Go name ("amd64", or "unknown"). */
  archName: string;
  /** Image UUID, canonical text form. */
  id: string;
  createdAt: number;
  modifiedAt: number;
  descriptorsFree: number;
  descriptorsTotal: number;
  descriptorsOffset: number;
  descriptorsSize: number;
  dataOffset: number;
  dataSize: number;
}

/** One used descriptor: what a data object is and where its bytes are. */
export interface SifDescriptor {
  dataType: number;
  /** Object id, 1-based, unique in the file. */
  id: number;
  /** Group number without {@link SIF_GROUP_MASK}; 0 when the object is in no group. */
  groupId: number;
  /** Linked object id (or group number, see `linkedIsGroup`) without the mask; 0 when unlinked. */
  linkedId: number;
  /** True when `linkedId` names a group rather than an object. */
  linkedIsGroup: boolean;
  offset: number;
  size: number;
  /** Bytes the object takes including the alignment padding before it. */
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt: number;
  name: string;
  /** Partitions only. */
  fsType?: number;
  partType?: number;
  /** Partitions only: OCI/Go architecture name ("amd64"). */
  arch?: string;
}

export interface SifInfo {
  fileSize: number;
  header: SifHeader;
  /** Used descriptors, in table order. */
  descriptors: SifDescriptor[];
  /** The primary system partition (the container's root file system), if there is one. */
  primaryPartition: SifDescriptor | undefined;
}

/** What the writer needs to say about a header; the rest is derived. */
export interface SifHeaderFields {
  arch: string;
  id?: string;
  createdAt: number;
  modifiedAt?: number;
  descriptorsFree: number;
  descriptorsTotal: number;
  descriptorsOffset: number;
  dataOffset: number;
  dataSize: number;
  launchScript?: string;
}

/** What the writer needs to say about a descriptor. */
export interface SifDescriptorFields {
  dataType: number;
  id: number;
  groupId: number;
  linkedId?: number;
  linkedIsGroup?: boolean;
  offset: number;
  size: number;
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt?: number;
  name?: string;
  partition?: { fsType: number; partType: number; arch: string };
}

/** Encodes a global header (128 bytes). */
export function encodeSifHeader(fields: SifHeaderFields): Buffer {
  const b = Buffer.alloc(SIF_HEADER_SIZE);
  const launch = Buffer.from(fields.launchScript ?? SIF_LAUNCH_SCRIPT, "utf8");
  if (launch.length >= 32) throw new RangeError("SIF launch script must be shorter than 32 bytes");
  launch.copy(b, 0);
  b.write(SIF_MAGIC, 32, "latin1");
  b.write(SIF_VERSION, 42, "latin1");
  b.write(sifArchCode(fields.arch), 45, "latin1");
  uuidBytes(fields.id ?? randomUUID()).copy(b, 48);
  b.writeBigInt64LE(BigInt(fields.createdAt), 64);
  b.writeBigInt64LE(BigInt(fields.modifiedAt ?? fields.createdAt), 72);
  b.writeBigInt64LE(BigInt(fields.descriptorsFree), 80);
  b.writeBigInt64LE(BigInt(fields.descriptorsTotal), 88);
  b.writeBigInt64LE(BigInt(fields.descriptorsOffset), 96);
  b.writeBigInt64LE(BigInt(fields.descriptorsTotal * SIF_DESCRIPTOR_SIZE), 104);
  b.writeBigInt64LE(BigInt(fields.dataOffset), 112);
  b.writeBigInt64LE(BigInt(fields.dataSize), 120);
  return b;
}

/** Encodes one used descriptor (585 bytes). */
export function encodeSifDescriptor(fields: SifDescriptorFields): Buffer {
  const b = Buffer.alloc(SIF_DESCRIPTOR_SIZE);
  b.writeInt32LE(fields.dataType, 0);
  b.writeUInt8(1, 4);
  b.writeUInt32LE(fields.id, 5);
  b.writeUInt32LE(fields.groupId === 0 ? 0 : (fields.groupId | SIF_GROUP_MASK) >>> 0, 9);
  const linked = fields.linkedId ?? 0;
  b.writeUInt32LE(fields.linkedIsGroup && linked !== 0 ? (linked | SIF_GROUP_MASK) >>> 0 : linked, 13);
  b.writeBigInt64LE(BigInt(fields.offset), 17);
  b.writeBigInt64LE(BigInt(fields.size), 25);
  b.writeBigInt64LE(BigInt(fields.sizeWithPadding), 33);
  b.writeBigInt64LE(BigInt(fields.createdAt), 41);
  b.writeBigInt64LE(BigInt(fields.modifiedAt ?? fields.createdAt), 49);
  // 57..72: uid and gid, deprecated and always 0.
  const name = Buffer.from(fields.name ?? "", "utf8");
  if (name.length > NAME_LENGTH)
    throw new RangeError(`SIF descriptor name is longer than ${NAME_LENGTH} bytes`);
  name.copy(b, 73);
  if (fields.partition) {
    const extra = 73 + NAME_LENGTH;
    b.writeInt32LE(fields.partition.fsType, extra);
    b.writeInt32LE(fields.partition.partType, extra + 4);
    b.write(sifArchCode(fields.partition.arch), extra + 8, "latin1");
  }
  return b;
}

/** Decodes a global header; throws {@link ImageArchiveError} when it is not one. */
export function decodeSifHeader(b: Buffer, source = "the file"): SifHeader {
  if (b.length < SIF_HEADER_SIZE) {
    throw new ImageArchiveError(
      `${source} is not a SIF image: it is ${b.length} bytes, shorter than the ${SIF_HEADER_SIZE}-byte SIF header`,
    );
  }
  const magic = cString(b, 32, 10);
  if (magic !== SIF_MAGIC) {
    throw new ImageArchiveError(
      `${source} is not a SIF image: bad magic (expected "${SIF_MAGIC}" at offset 32)`,
    );
  }
  const version = cString(b, 42, 3);
  if (version !== SIF_VERSION) {
    throw new ImageArchiveError(
      `${source} has SIF version "${version}"; only version ${SIF_VERSION} is known`,
    );
  }
  const arch = cString(b, 45, 3);
  return {
    launchScript: cString(b, 0, 32),
    magic,
    version,
    arch,
    archName: archOfSifCode(arch),
    id: uuidText(b.subarray(48, 64)),
    createdAt: int64(b, 64),
    modifiedAt: int64(b, 72),
    descriptorsFree: int64(b, 80),
    descriptorsTotal: int64(b, 88),
    descriptorsOffset: int64(b, 96),
    descriptorsSize: int64(b, 104),
    dataOffset: int64(b, 112),
    dataSize: int64(b, 120),
  };
}

/** Decodes one descriptor slot; `undefined` for an unused slot. */
export function decodeSifDescriptor(b: Buffer): SifDescriptor | undefined {
  if (b.length < SIF_DESCRIPTOR_SIZE) throw new RangeError("a SIF descriptor is 585 bytes");
  if (b.readUInt8(4) === 0) return undefined;
  const dataType = b.readInt32LE(0);
  const rawGroup = b.readUInt32LE(9);
  const rawLink = b.readUInt32LE(13);
  const d: SifDescriptor = {
    dataType,
    id: b.readUInt32LE(5),
    groupId: (rawGroup & ~SIF_GROUP_MASK) >>> 0,
    linkedId: (rawLink & ~SIF_GROUP_MASK) >>> 0,
    linkedIsGroup: (rawLink & SIF_GROUP_MASK) >>> 0 === SIF_GROUP_MASK,
    offset: int64(b, 17),
    size: int64(b, 25),
    sizeWithPadding: int64(b, 33),
    createdAt: int64(b, 41),
    modifiedAt: int64(b, 49),
    name: cString(b, 73, NAME_LENGTH),
  };
  if (dataType === SIF_DATA_TYPES.partition) {
    const extra = 73 + NAME_LENGTH;
    d.fsType = b.readInt32LE(extra);
    d.partType = b.readInt32LE(extra + 4);
    d.arch = archOfSifCode(cString(b, extra + 8, 3));
  }
  return d;
}

// A real image has 48 slots; this bound only keeps a corrupt header from asking for gigabytes.
const MAX_DESCRIPTORS = 65_536;
const SQUASHFS_MAGIC = 0x73717368; // "hsqs"

/**
 * Reads and checks a SIF file's header and descriptor table, without reading the data objects
 * (only the first bytes of the primary partition, to check it is what it claims to be). Throws
 * {@link ImageArchiveError} when the file is not a valid SIF: bad magic, unknown version, a header
 * or descriptor table cut short, a descriptor pointing past the end of the file, or a squashfs
 * primary partition without a squashfs superblock or cut short.
 */
export async function inspectSif(path: string): Promise<SifInfo> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ImageArchiveError(
      e.code === "ENOENT" ? `SIF file ${path} does not exist` : `cannot open SIF file ${path}: ${e.message}`,
      { cause: err },
    );
  }
  try {
    const { size: fileSize } = await handle.stat();
    const readAt = async (position: number, length: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    };
    const header = decodeSifHeader(await readAt(0, SIF_HEADER_SIZE), `${path}`);
    const { descriptorsTotal: total, descriptorsOffset: tableOffset, descriptorsSize: tableSize } = header;
    if (total < 0 || total > MAX_DESCRIPTORS || tableOffset < SIF_HEADER_SIZE) {
      throw new ImageArchiveError(
        `${path} is not a valid SIF image: implausible descriptor table (${total} descriptors at offset ${tableOffset})`,
      );
    }
    if (tableSize < total * SIF_DESCRIPTOR_SIZE) {
      throw new ImageArchiveError(
        `${path} is not a valid SIF image: the descriptor table is ${tableSize} bytes, too small for ${total} descriptors`,
      );
    }
    if (tableOffset + total * SIF_DESCRIPTOR_SIZE > fileSize) {
      throw new ImageArchiveError(
        `${path} is truncated: its descriptor table ends at byte ${tableOffset + total * SIF_DESCRIPTOR_SIZE} but the file has ${fileSize}`,
      );
    }
    const table = await readAt(tableOffset, total * SIF_DESCRIPTOR_SIZE);
    const descriptors: SifDescriptor[] = [];
    for (let i = 0; i < total; i++) {
      const d = decodeSifDescriptor(table.subarray(i * SIF_DESCRIPTOR_SIZE, (i + 1) * SIF_DESCRIPTOR_SIZE));
      if (!d) continue;
      if (d.offset < 0 || d.size < 0 || d.offset + d.size > fileSize) {
        throw new ImageArchiveError(
          `${path} is truncated or corrupt: descriptor ${d.id} (${dataTypeName(d.dataType)}) covers bytes ${d.offset}..${d.offset + d.size} but the file has ${fileSize}`,
        );
      }
      descriptors.push(d);
    }
    const primaryPartition = descriptors.find(
      (d) => d.dataType === SIF_DATA_TYPES.partition && d.partType === SIF_PARTITION_TYPES.primarySystem,
    );
    if (primaryPartition?.fsType === SIF_FS_TYPES.squashfs) {
      const superblock = await readAt(primaryPartition.offset, 96);
      if (superblock.length < 96 || superblock.readUInt32LE(0) !== SQUASHFS_MAGIC) {
        throw new ImageArchiveError(
          `${path} is corrupt: its primary partition (descriptor ${primaryPartition.id}) does not start with a squashfs superblock`,
        );
      }
      // bytes_used, at offset 40 of the superblock: the file system's own length.
      const bytesUsed = Number(superblock.readBigUInt64LE(40));
      if (bytesUsed > primaryPartition.size) {
        throw new ImageArchiveError(
          `${path} is truncated or corrupt: its squashfs partition says it is ${bytesUsed} bytes but the descriptor gives ${primaryPartition.size}`,
        );
      }
    }
    return { fileSize, header, descriptors, primaryPartition };
  } finally {
    await handle.close();
  }
}

/** sif's own short name of a data type ("Def.FILE", "FS", "JSON.Generic"). */
export function dataTypeName(dataType: number): string {
  const names: Record<number, string> = {
    [SIF_DATA_TYPES.deffile]: "Def.FILE",
    [SIF_DATA_TYPES.envVar]: "Env.Vars",
    [SIF_DATA_TYPES.labels]: "JSON.Labels",
    [SIF_DATA_TYPES.partition]: "FS",
    [SIF_DATA_TYPES.signature]: "Signature",
    [SIF_DATA_TYPES.genericJson]: "JSON.Generic",
    [SIF_DATA_TYPES.generic]: "Generic/Raw",
    [SIF_DATA_TYPES.cryptoMessage]: "Cryptographic Message",
    [SIF_DATA_TYPES.sbom]: "SBOM",
    [SIF_DATA_TYPES.ociBlob]: "OCI.Blob",
    [SIF_DATA_TYPES.ociRootIndex]: "OCI.RootIndex",
  };
  return names[dataType] ?? `unknown type 0x${dataType.toString(16)}`;
}

/** The next multiple of `alignment` at or after `offset`. */
export function alignUp(offset: number, alignment = SIF_DATA_ALIGNMENT): number {
  return alignment <= 1 ? offset : Math.ceil(offset / alignment) * alignment;
}

function int64(b: Buffer, at: number): number {
  const v = b.readBigInt64LE(at);
  // Offsets and sizes beyond 2^53 are not a real file; clamp so the bounds checks fail.
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

function cString(b: Buffer, at: number, length: number): string {
  const field = b.subarray(at, at + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString("utf8");
}

function uuidBytes(id: string): Buffer {
  const hex = id.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new RangeError(`not a UUID: ${id}`);
  return Buffer.from(hex, "hex");
}

function uuidText(b: Buffer): string {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
