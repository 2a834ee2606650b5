import { copyFile, mkdir, open, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { findOnPath } from "./find-binary.js";

/** A tiny container root folder for probe runs, with the host's static busybox when there is one. */
export interface ProbeSandbox {
  path: string;
  /** True when /bin/sh, cat, true, sleep exist in it. */
  hasBusybox: boolean;
}

const APPLETS = ["sh", "cat", "true", "sleep"];
// Mount points Apptainer needs in a folder image ("destination /dev doesn't exist in container").
const FOLDERS = ["bin", "dev", "proc", "sys", "tmp", "root", "etc", "home", "var/tmp", "run"];

/**
 * Makes a folder image for the probe runs in `dir`. Apptainer runs folder images directly, so no
 * SIF has to be built (about 0.06 s a run here). Without a static busybox on the host the folder
 * holds no program and probes read success from Apptainer reaching the exec step.
 */
export async function makeProbeSandbox(
  dir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ProbeSandbox> {
  const path = join(dir, "probe-root");
  await Promise.all(FOLDERS.map((f) => mkdir(join(path, f), { recursive: true })));
  await Promise.all(
    ["passwd", "group", "hosts", "resolv.conf"].map((f) => writeFile(join(path, "etc", f), "")),
  );
  const busybox = await findStaticBusybox(env);
  if (!busybox) return { path, hasBusybox: false };
  await copyFile(busybox, join(path, "bin", "busybox"));
  await Promise.all(APPLETS.map((a) => symlink("busybox", join(path, "bin", a))));
  return { path, hasBusybox: true };
}

/** The host's static busybox, if there is one (a dynamic one cannot run in the probe's empty root). */
export async function findStaticBusybox(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const candidates = [await findOnPath("busybox", env.PATH ?? ""), "/bin/busybox", "/usr/bin/busybox"];
  for (const c of candidates) if (c && (await isStaticElf(c))) return c;
  return undefined;
}

/** True for an ELF executable without a program interpreter (a static binary runs in any root). */
export async function isStaticElf(path: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const head = Buffer.alloc(64);
    await handle.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return false; // ELF64 LE only
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return false; // PT_INTERP
    return true;
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}
