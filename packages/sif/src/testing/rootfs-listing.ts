import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { inspectSif } from "../sif-format.js";

const run = promisify(execFile);

/** One entry of a root file system as the equivalence checks compare it. */
export interface RootfsEntry {
  path: string;
  type: "file" | "directory" | "symlink" | "fifo" | "char" | "block" | "socket";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  target?: string;
  /** Other paths sharing the inode (hard links), sorted; absent when there are none. */
  links?: string[];
}

/**
 * Extracts the primary partition of a SIF with `unsquashfs` (as root, so owners and modes are
 * kept) and lists every entry, content hashed, hard-link groups resolved by inode.
 */
export async function listSifRootfs(sifPath: string): Promise<Map<string, RootfsEntry>> {
  const info = await inspectSif(sifPath);
  if (!info.primaryPartition) throw new Error(`${sifPath} has no primary partition`);
  const dir = await mkdtemp(join(tmpdir(), "sif-rootfs-"));
  const root = join(dir, "root");
  try {
    await run("unsquashfs", ["-n", "-o", String(info.primaryPartition.offset), "-d", root, sifPath], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return await listTree(root);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function listTree(root: string): Promise<Map<string, RootfsEntry>> {
  const out = new Map<string, RootfsEntry>();
  const inodes = new Map<number, string[]>();
  const walk = async (rel: string): Promise<void> => {
    const full = rel === "/" ? root : join(root, rel);
    const st = await lstat(full);
    const type = st.isFile()
      ? "file"
      : st.isDirectory()
        ? "directory"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isFIFO()
            ? "fifo"
            : st.isCharacterDevice()
              ? "char"
              : st.isBlockDevice()
                ? "block"
                : "socket";
    const entry: RootfsEntry = {
      path: rel,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === "file" ? st.size : 0,
    };
    if (type === "file") {
      entry.sha256 = createHash("sha256")
        .update(await readFile(full))
        .digest("hex");
      if (st.nlink > 1) {
        const group = inodes.get(st.ino) ?? [];
        group.push(rel);
        inodes.set(st.ino, group);
      }
    }
    if (type === "symlink") entry.target = await readlink(full);
    out.set(rel, entry);
    if (type === "directory") {
      for (const name of (await readdir(full)).sort())
        await walk(rel === "/" ? `/${name}` : `${rel}/${name}`);
    }
  };
  await walk("/");
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    for (const p of group) (out.get(p) as RootfsEntry).links = group.filter((q) => q !== p).sort();
  }
  return out;
}

/**
 * Differences between two listings, one line each, for paths not matched by `ignore`. Files
 * matched by `ignoreContent` are compared by presence, type and mode only.
 */
export function compareRootfs(
  expected: Map<string, RootfsEntry>,
  actual: Map<string, RootfsEntry>,
  options: { ignore?: (path: string) => boolean; ignoreContent?: (path: string) => boolean } = {},
): string[] {
  const diffs: string[] = [];
  const ignore = options.ignore ?? (() => false);
  const ignoreContent = options.ignoreContent ?? (() => false);
  for (const [path, e] of expected) {
    if (ignore(path)) continue;
    const a = actual.get(path);
    if (!a) {
      diffs.push(`missing ${path} (${e.type})`);
      continue;
    }
    const fields: (keyof RootfsEntry)[] = ignoreContent(path)
      ? ["type", "mode", "uid", "gid"]
      : ["type", "mode", "uid", "gid", "size", "sha256", "target", "links"];
    for (const f of fields) {
      const x = JSON.stringify(e[f]);
      const y = JSON.stringify(a[f]);
      if (x !== y) diffs.push(`${path}: ${f} ${x} != ${y}`);
    }
  }
  for (const path of actual.keys()) {
    if (!ignore(path) && !expected.has(path)) diffs.push(`unexpected ${path}`);
  }
  return diffs;
}
