import { type TarSpec, tarOf } from "./index.js";

/**
 * One class of hostile (or unsupported) layer content, as layers bottom first: what every
 * backend's loadImage must refuse with ImageArchiveError, naming the entry at fault in the
 * layer `layer` (an index into `layers`).
 */
export interface HostileLayerCase {
  name: string;
  layers: Buffer[];
  /** What the message says. */
  message: RegExp;
  /** The entry the error names. */
  entry: string;
  /** Index of the layer at fault. */
  layer: number;
}

/** Every class of hostile layer entry contexec refuses, for tests of any backend's load path. */
export async function hostileLayerCases(): Promise<HostileLayerCase[]> {
  const one = async (name: string, entries: TarSpec[], message: RegExp, entry: string) => ({
    name,
    layers: [await tarOf(entries)],
    message,
    entry,
    layer: 0,
  });
  return [
    await one(
      "a name climbing out with ../",
      [{ name: "../escape", content: "x" }],
      /leaves the image root/,
      "../escape",
    ),
    await one(
      "an absolute name climbing out",
      [{ name: "/../../root/.ssh/authorized_keys", content: "x" }],
      /leaves the image root/,
      "/../../root/.ssh/authorized_keys",
    ),
    await one(
      "a name climbing out from inside",
      [{ name: "a/../../x", content: "x" }],
      /leaves the image root/,
      "a/../../x",
    ),
    await one(
      "a NUL byte in a pax path",
      [{ name: "innocent", content: "x", pax: { path: "evil\0name" } }],
      /name contains a NUL byte/,
      "evil\\x00name",
    ),
    {
      name: "bytes after the NUL of a header's name",
      layers: [
        await patched([{ name: "safe", content: "x" }], (h) => h.write("../../etc/cron.d/x", 5, "latin1")),
      ],
      message: /bytes after its NUL terminator/,
      entry: "safe\\x00../../etc/cron.d/x",
      layer: 0,
    },
    await one(
      "a hard link out of the image",
      [{ name: "l", type: "link", linkname: "../../etc/shadow" }],
      /hard link pointing outside the image/,
      "l",
    ),
    await one(
      "a hard link to the root",
      [{ name: "l", type: "link", linkname: "/" }],
      /hard link to the root folder/,
      "l",
    ),
    await one(
      "a hard link to a folder",
      [
        { name: "d", type: "directory" },
        { name: "l", type: "link", linkname: "d" },
      ],
      /hard link to the folder \/d/,
      "l",
    ),
    await one(
      "a hard link before its target",
      [
        { name: "l", type: "link", linkname: "t" },
        { name: "t", content: "t" },
      ],
      /hard link points to \/t, which is not in the image below it/,
      "/l",
    ),
    {
      name: "a hard link to a file a lower layer deleted",
      layers: await Promise.all([
        tarOf([{ name: "t", content: "t" }]),
        tarOf([{ name: ".wh.t" }]),
        tarOf([{ name: "l", type: "link", linkname: "t" }]),
      ]),
      message: /hard link points to \/t, which is not in the image below it/,
      entry: "/l",
      layer: 2,
    },
    await one(
      "an entry inside a file of the same layer",
      [
        { name: "f", content: "x" },
        { name: "f/inside", content: "y" },
      ],
      /puts an entry inside \/f, which the same layer makes a file/,
      "f/inside",
    ),
    await one(
      "the root replaced by a file",
      [{ name: ".", content: "x" }],
      /replaces the image's root folder/,
      ".",
    ),
    await one("a malformed whiteout", [{ name: ".wh..", content: "" }], /malformed whiteout/, ".wh.."),
    await one(
      "a symlink target holding a NUL",
      [{ name: "s", type: "symlink", linkname: "x", pax: { linkpath: "a\0b" } }],
      /symlink with an empty or NUL-holding target/,
      "s",
    ),
    {
      name: "a symlink without a target",
      layers: [await patched([{ name: "s", type: "symlink", linkname: "x" }], (h) => h.fill(0, 157, 257))],
      message: /symlink with an empty or NUL-holding target/,
      entry: "s",
      layer: 0,
    },
    {
      name: "an unsupported entry type",
      layers: [await patched([{ name: "sparse", content: "x" }], (h) => h.write("S", 156, "latin1"))],
      message: /unsupported tar type 'S'/,
      entry: "sparse",
      layer: 0,
    },
  ];
}

/** A tar of `entries` whose first header block is changed by `change`, checksum fixed. */
export async function patched(entries: TarSpec[], change: (header: Buffer) => void): Promise<Buffer> {
  const tar = await tarOf(entries);
  const header = tar.subarray(0, 512);
  change(header);
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += header[i] as number;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return tar;
}
