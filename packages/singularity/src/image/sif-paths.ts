import { posix } from "node:path";
import { inspectSif } from "@contexec/sif/format";
import { runTool } from "../process/run-tool.js";

/**
 * Whether a folder exists in a SIF's root file system, read with `unsquashfs -lls` at the
 * partition's offset (about 2 ms; nothing is extracted). "unknown" when it cannot be told: no
 * unsquashfs, or a symlink on the way.
 *
 * Apptainer fails a run whose --pwd is missing ("failed to set working directory: chdir X: no
 * such file or directory") where Docker creates the folder; the backend uses this to give such a
 * workdir an empty private folder instead.
 */
export async function pathInSif(
  unsquashfs: string,
  sifPath: string,
  path: string,
): Promise<"present" | "missing" | "unknown"> {
  const target = posix.normalize(path).replace(/\/+$/, "") || "/";
  if (target === "/") return "present";
  let offset: number;
  try {
    const info = await inspectSif(sifPath);
    if (!info.primaryPartition) return "unknown";
    offset = info.primaryPartition.offset;
  } catch {
    return "unknown";
  }
  const r = await runTool(
    [unsquashfs, "-o", String(offset), "-lls", "-no-wildcards", "-d", "", sifPath, target],
    {
      env: { PATH: "/usr/bin:/bin" },
      timeoutMs: 10_000,
    },
  );
  if (r.exitCode !== 0) return "unknown";
  return parseListing(String(r.stdout), target);
}

/** Reads `unsquashfs -lls -d ""` output for `target` and its ancestors. */
export function parseListing(listing: string, target: string): "present" | "missing" | "unknown" {
  for (const line of listing.split("\n")) {
    // "drwxr-xr-x root/root  26 2026-11-21 19:18 /work" or "lrwxrwxrwx ... /bin/sh -> busybox"
    const m = /^(\S)\S{9}\s+\S+\s+\d+\s+\S+\s+\S+\s+(\/.*)$/.exec(line);
    if (!m) continue;
    const type = m[1];
    const name = type === "l" ? (m[2] as string).replace(/ -> .*$/, "") : (m[2] as string);
    if (name === target) return "present";
    if (type === "l" && target.startsWith(`${name}/`)) return "unknown";
  }
  return "missing";
}

/** A file of a SIF's root file system (`unsquashfs -cat`); undefined when it is not there. */
export async function readFileInSif(
  unsquashfs: string,
  sifPath: string,
  path: string,
): Promise<string | undefined> {
  let offset: number;
  try {
    const info = await inspectSif(sifPath);
    if (!info.primaryPartition) return undefined;
    offset = info.primaryPartition.offset;
  } catch {
    return undefined;
  }
  const r = await runTool([unsquashfs, "-o", String(offset), "-no-wildcards", "-cat", sifPath, path], {
    env: { PATH: "/usr/bin:/bin" },
    timeoutMs: 10_000,
    keepFinalNewline: true,
  });
  return r.exitCode === 0 ? String(r.stdout) : undefined;
}
