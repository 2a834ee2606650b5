import { open } from "node:fs/promises";
import {
  alignUp,
  encodeSifDescriptor,
  encodeSifHeader,
  SIF_DATA_ALIGNMENT,
  SIF_DATA_TYPES,
  SIF_DEFAULT_DESCRIPTOR_CAPACITY,
  SIF_DEFAULT_DESCRIPTORS_OFFSET,
  SIF_DEFAULT_GROUP,
  SIF_DESCRIPTOR_SIZE,
  SIF_FS_TYPES,
  SIF_PARTITION_TYPES,
} from "./sif-format.js";

/**
 * Writes SIF files the way sylabs/sif's CreateContainer lays them out (header, 48 descriptor
 * slots at 4096, data objects one after the other from 32176), split in two steps so that
 * the big partition never passes through this process: the layout is planned first, the
 * partition is written in place by its producer (sqfstar writes at an offset), then the prefix
 * (header, descriptors, small objects) is written in front of it.
 */

/** A small data object held in memory: the definition file, the image config. */
export interface SifSmallObject {
  dataType: number;
  name?: string;
  data: Buffer;
}

/** Where everything goes. The partition is last, so its size need not be known in advance. */
export interface SifLayout {
  descriptorsOffset: number;
  descriptorCapacity: number;
  dataOffset: number;
  /** Offsets of the small objects, in the order given. */
  objectOffsets: number[];
  /** Aligned offset of the partition, after the small objects. */
  partitionOffset: number;
}

export interface SifPartition {
  size: number;
  fsType?: number;
  partType?: number;
  /** OCI/Go architecture name: "amd64". */
  arch: string;
  name?: string;
}

export interface SifPrefixOptions {
  /** Seconds since the epoch for the header and descriptors. */
  createdAt?: number;
  /** Image UUID; random when not given. */
  id?: string;
}

/**
 * Plans the offsets of the small objects and of the partition that follows them. As in SIFs that
 * `apptainer build` writes, the small objects follow one another unaligned and only the partition
 * is aligned (to 4096, so it can be mounted at its offset).
 */
export function planSifLayout(
  objects: readonly SifSmallObject[],
  alignment = SIF_DATA_ALIGNMENT,
  objectAlignment = 1,
): SifLayout {
  const descriptorsOffset = SIF_DEFAULT_DESCRIPTORS_OFFSET;
  const descriptorCapacity = SIF_DEFAULT_DESCRIPTOR_CAPACITY;
  if (objects.length + 1 > descriptorCapacity) throw new RangeError("too many SIF data objects");
  const dataOffset = descriptorsOffset + descriptorCapacity * SIF_DESCRIPTOR_SIZE;
  let end = dataOffset;
  const objectOffsets: number[] = [];
  for (const o of objects) {
    const offset = alignUp(end, objectAlignment);
    objectOffsets.push(offset);
    end = offset + o.data.length;
  }
  return {
    descriptorsOffset,
    descriptorCapacity,
    dataOffset,
    objectOffsets,
    partitionOffset: alignUp(end, alignment),
  };
}

/**
 * The bytes from 0 to the partition's offset: header, descriptor table (small objects first, the
 * primary partition last, ids from 1), and the small objects' data, zero padding between them.
 */
export function encodeSifPrefix(
  layout: SifLayout,
  objects: readonly SifSmallObject[],
  partition: SifPartition,
  options: SifPrefixOptions = {},
): Buffer {
  const createdAt = options.createdAt ?? Math.floor(Date.now() / 1000);
  const prefix = Buffer.alloc(layout.partitionOffset);
  let previousEnd = layout.dataOffset;
  let id = 0;
  const descriptors: Buffer[] = [];
  const place = (offset: number, size: number) => {
    const sizeWithPadding = offset - previousEnd + size;
    previousEnd = offset + size;
    return sizeWithPadding;
  };
  objects.forEach((o, i) => {
    const offset = layout.objectOffsets[i] as number;
    o.data.copy(prefix, offset);
    descriptors.push(
      encodeSifDescriptor({
        dataType: o.dataType,
        id: ++id,
        groupId: SIF_DEFAULT_GROUP,
        offset,
        size: o.data.length,
        sizeWithPadding: place(offset, o.data.length),
        createdAt,
        ...(o.name !== undefined && { name: o.name }),
      }),
    );
  });
  descriptors.push(
    encodeSifDescriptor({
      dataType: SIF_DATA_TYPES.partition,
      id: ++id,
      groupId: SIF_DEFAULT_GROUP,
      offset: layout.partitionOffset,
      size: partition.size,
      sizeWithPadding: place(layout.partitionOffset, partition.size),
      createdAt,
      ...(partition.name !== undefined && { name: partition.name }),
      partition: {
        fsType: partition.fsType ?? SIF_FS_TYPES.squashfs,
        partType: partition.partType ?? SIF_PARTITION_TYPES.primarySystem,
        arch: partition.arch,
      },
    }),
  );
  encodeSifHeader({
    arch: partition.arch,
    ...(options.id !== undefined && { id: options.id }),
    createdAt,
    descriptorsFree: layout.descriptorCapacity - descriptors.length,
    descriptorsTotal: layout.descriptorCapacity,
    descriptorsOffset: layout.descriptorsOffset,
    dataOffset: layout.dataOffset,
    dataSize: previousEnd - layout.dataOffset,
  }).copy(prefix, 0);
  descriptors.forEach((d, i) => {
    d.copy(prefix, layout.descriptorsOffset + i * SIF_DESCRIPTOR_SIZE);
  });
  return prefix;
}

/**
 * Fills in the prefix of a SIF whose partition already sits at `layout.partitionOffset` in
 * `path` and runs to the end of the file. Returns the file's size.
 */
export async function finishSif(
  path: string,
  layout: SifLayout,
  objects: readonly SifSmallObject[],
  partition: Omit<SifPartition, "size">,
  options: SifPrefixOptions = {},
): Promise<number> {
  const handle = await open(path, "r+");
  try {
    const { size: fileSize } = await handle.stat();
    if (fileSize < layout.partitionOffset) {
      throw new RangeError(
        `${path} is ${fileSize} bytes, shorter than the partition offset ${layout.partitionOffset}`,
      );
    }
    const prefix = encodeSifPrefix(
      layout,
      objects,
      { ...partition, size: fileSize - layout.partitionOffset },
      options,
    );
    await handle.write(prefix, 0, prefix.length, 0);
    return fileSize;
  } finally {
    await handle.close();
  }
}

/** Writes a whole SIF from in-memory parts (tests, small images). */
export async function writeSifFile(
  path: string,
  objects: readonly SifSmallObject[],
  partitionData: Buffer,
  partition: Omit<SifPartition, "size">,
  options: SifPrefixOptions = {},
): Promise<number> {
  const layout = planSifLayout(objects);
  const prefix = encodeSifPrefix(layout, objects, { ...partition, size: partitionData.length }, options);
  const handle = await open(path, "w");
  try {
    await handle.write(prefix, 0, prefix.length, 0);
    await handle.write(partitionData, 0, partitionData.length, layout.partitionOffset);
  } finally {
    await handle.close();
  }
  return layout.partitionOffset + partitionData.length;
}
