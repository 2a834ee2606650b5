import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageArchiveError } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeSifDescriptor,
  decodeSifHeader,
  encodeSifDescriptor,
  encodeSifHeader,
  inspectSif,
  SIF_DATA_TYPES,
  SIF_DESCRIPTOR_SIZE,
  SIF_FS_TYPES,
  SIF_HEADER_SIZE,
  SIF_PARTITION_TYPES,
  sifArchCode,
} from "./sif-format.js";
import { planSifLayout, writeSifFile } from "./sif-writer.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sif-format-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fake squashfs: the superblock magic and bytes_used, then filler. */
function fakeSquashfs(size: number): Buffer {
  const b = Buffer.alloc(size, 0xab);
  b.writeUInt32LE(0x73717368, 0);
  b.writeBigUInt64LE(BigInt(size - 100), 40);
  return b;
}

const objects = [
  { dataType: SIF_DATA_TYPES.deffile, data: Buffer.from("bootstrap: docker-archive\nfrom: x.tar\n") },
  {
    dataType: SIF_DATA_TYPES.genericJson,
    name: "oci-config.json",
    data: Buffer.from('{"architecture":"amd64"}'),
  },
];

async function validSif(name: string, partitionSize = 10_000): Promise<string> {
  const path = join(dir, name);
  await writeSifFile(
    path,
    objects,
    fakeSquashfs(partitionSize),
    { arch: "amd64" },
    { createdAt: 1_700_000_000 },
  );
  return path;
}

describe("SIF header and descriptors", () => {
  it("encode to the packed sizes sif uses", () => {
    expect(
      encodeSifHeader({
        arch: "amd64",
        createdAt: 1,
        descriptorsFree: 45,
        descriptorsTotal: 48,
        descriptorsOffset: 4096,
        dataOffset: 32176,
        dataSize: 0,
      }).length,
    ).toBe(SIF_HEADER_SIZE);
    expect(
      encodeSifDescriptor({
        dataType: SIF_DATA_TYPES.deffile,
        id: 1,
        groupId: 1,
        offset: 0,
        size: 0,
        sizeWithPadding: 0,
        createdAt: 1,
      }).length,
    ).toBe(SIF_DESCRIPTOR_SIZE);
  });

  it("round-trip a header field by field", () => {
    const id = "b2659d4e-bd50-4ea5-bd17-eec5e54f918e";
    const h = decodeSifHeader(
      encodeSifHeader({
        arch: "arm64",
        id,
        createdAt: 1_504_657_553,
        modifiedAt: 1_504_657_653,
        descriptorsFree: 45,
        descriptorsTotal: 48,
        descriptorsOffset: 4096,
        dataOffset: 32176,
        dataSize: 619_362,
      }),
    );
    expect(h).toEqual({
      launchScript: "#!/usr/bin/env run-singularity\n",
      magic: "SIF_MAGIC",
      version: "01",
      arch: "04",
      archName: "arm64",
      id,
      createdAt: 1_504_657_553,
      modifiedAt: 1_504_657_653,
      descriptorsFree: 45,
      descriptorsTotal: 48,
      descriptorsOffset: 4096,
      descriptorsSize: 48 * 585,
      dataOffset: 32176,
      dataSize: 619_362,
    });
  });

  it("round-trip a partition descriptor, group mask and arch included", () => {
    const raw = encodeSifDescriptor({
      dataType: SIF_DATA_TYPES.partition,
      id: 3,
      groupId: 1,
      linkedId: 2,
      linkedIsGroup: true,
      offset: 36_864,
      size: 1_234_567,
      sizeWithPadding: 1_235_000,
      createdAt: 42,
      name: "rootfs",
      partition: {
        fsType: SIF_FS_TYPES.squashfs,
        partType: SIF_PARTITION_TYPES.primarySystem,
        arch: "amd64",
      },
    });
    // Group ids carry the 0xf0000000 mask on disk.
    expect(raw.readUInt32LE(9)).toBe(0xf0000001);
    expect(raw.readUInt32LE(13)).toBe(0xf0000002);
    expect(raw.subarray(201 + 8, 201 + 11).toString("latin1")).toBe("02\0");
    expect(decodeSifDescriptor(raw)).toEqual({
      dataType: SIF_DATA_TYPES.partition,
      id: 3,
      groupId: 1,
      linkedId: 2,
      linkedIsGroup: true,
      offset: 36_864,
      size: 1_234_567,
      sizeWithPadding: 1_235_000,
      createdAt: 42,
      modifiedAt: 42,
      name: "rootfs",
      fsType: 1,
      partType: 2,
      arch: "amd64",
    });
    expect(decodeSifDescriptor(Buffer.alloc(SIF_DESCRIPTOR_SIZE))).toBeUndefined();
  });

  it("map architectures both ways", () => {
    expect(sifArchCode("amd64")).toBe("02");
    expect(sifArchCode("riscv64")).toBe("12");
    expect(sifArchCode("sparc")).toBe("00");
  });
});

describe("inspectSif", () => {
  it("reads what the writer wrote: descriptors in order, the partition aligned to 4096, the primary partition", async () => {
    const path = await validSif("ok.sif");
    const info = await inspectSif(path);
    const layout = planSifLayout(objects);
    expect(info.header.dataOffset).toBe(4096 + 48 * 585);
    expect(info.header.descriptorsFree).toBe(45);
    expect(info.header.archName).toBe("amd64");
    // As apptainer build lays them out: small objects packed from 32176, the partition aligned.
    expect(info.descriptors.map((d) => [d.id, d.dataType, d.name, d.offset])).toEqual([
      [1, SIF_DATA_TYPES.deffile, "", 32176],
      [2, SIF_DATA_TYPES.genericJson, "oci-config.json", 32176 + (objects[0]?.data.length ?? 0)],
      [3, SIF_DATA_TYPES.partition, "", 32768],
    ]);
    expect(info.primaryPartition).toMatchObject({
      id: 3,
      offset: layout.partitionOffset,
      size: 10_000,
      fsType: 1,
      partType: 2,
    });
    expect(info.fileSize).toBe(layout.partitionOffset + 10_000);
    // Sizes with padding add up to the header's data size.
    expect(info.descriptors.reduce((n, d) => n + d.sizeWithPadding, 0)).toBe(info.header.dataSize);
  });

  const rejects = async (path: string, message: RegExp) => {
    const err = await inspectSif(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageArchiveError);
    expect((err as Error).message).toMatch(message);
  };

  it("rejects a missing file", async () => {
    await rejects(join(dir, "nope.sif"), /does not exist/);
  });

  it("rejects bad magic", async () => {
    const path = join(dir, "magic.sif");
    await writeFile(path, Buffer.alloc(40_000, 1));
    await rejects(path, /not a SIF image: bad magic/);
  });

  it("rejects a truncated header", async () => {
    const path = await validSif("short-header.sif");
    await truncate(path, 100);
    await rejects(path, /shorter than the 128-byte SIF header/);
  });

  it("rejects a truncated descriptor table", async () => {
    const path = await validSif("short-table.sif");
    await truncate(path, 5000);
    await rejects(path, /truncated: its descriptor table ends/);
  });

  it("rejects a descriptor pointing past the end of the file", async () => {
    const path = await validSif("short-data.sif");
    const { primaryPartition } = await inspectSif(path);
    await truncate(path, (primaryPartition?.offset ?? 0) + 5000);
    await rejects(path, /descriptor 3 \(FS\) covers bytes .* but the file has/);
  });

  it("rejects a primary partition that is not squashfs", async () => {
    const path = join(dir, "not-squashfs.sif");
    await writeSifFile(path, objects, Buffer.alloc(8192, 7), { arch: "amd64" });
    await rejects(path, /does not start with a squashfs superblock/);
  });
});
