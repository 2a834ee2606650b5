import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir, release } from "node:os";
import { dirname, join } from "node:path";
import { detectCgroupLayout } from "../process/cgroup-limits.js";
import type { RuntimeProbe } from "./interpret-probe.js";
import { findStaticBusybox } from "./probe-sandbox.js";

/** Bumped when what a probe finds, or how it is stored, changes: older entries are then ignored. */
const FORMAT = 2;

/** The probe cache folder: $XDG_CACHE_HOME/contexec/probe, else ~/.cache/contexec/probe (per user). */
export function defaultProbeCacheDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const base = env.XDG_CACHE_HOME?.startsWith("/") ? env.XDG_CACHE_HOME : join(home, ".cache");
  return join(base, "contexec", "probe");
}

/** What a probe's findings depend on; when any of it changes, the runtime is probed again. */
export interface ProbeKey {
  format: number;
  /** The binary's real path, size and modification time (an upgrade changes them). */
  binary: { path: string; size: number; mtimeMs: number };
  /** apptainer.conf beside the installation (allow setuid, user namespaces, cgroups), when found. */
  config: { path: string; size: number; mtimeMs: number } | null;
  /** The static busybox the probe image uses, if any (without it some capabilities cannot be measured). */
  busybox: { path: string; mtimeMs: number } | null;
  kernel: string;
  uid: number;
  gid: number;
  /** This process's cgroups: the library's own cgroups for limits are made under them. */
  cgroups: string;
  /** Where nsenter and GPU tools are looked for. */
  path: string;
  /** Executor options the probe reads. */
  userns: boolean;
}

/**
 * The key of a probe on this machine, now: a few stat calls and two /proc reads, far cheaper
 * than the probe's container starts.
 */
export async function probeKey(
  binary: string,
  options: { env: NodeJS.ProcessEnv; userns: boolean },
): Promise<ProbeKey> {
  const real = await realpath(binary);
  const [bin, config, busybox, layout] = await Promise.all([
    stat(real),
    // The installation's etc (a relocated prefix or /usr): <prefix>/bin/apptainer -> <prefix>/etc/apptainer.
    statOrNull(join(dirname(dirname(real)), "etc", "apptainer", "apptainer.conf")).then(
      async (s) => s ?? (await statOrNull("/etc/apptainer/apptainer.conf")),
    ),
    findStaticBusybox(options.env).then(async (p) =>
      p ? { path: p, mtimeMs: (await stat(p)).mtimeMs } : null,
    ),
    detectCgroupLayout(),
  ]);
  return {
    format: FORMAT,
    binary: { path: real, size: bin.size, mtimeMs: bin.mtimeMs },
    config,
    busybox,
    kernel: release(),
    uid: process.getuid?.() ?? -1,
    gid: process.getgid?.() ?? -1,
    cgroups: JSON.stringify(layout ?? null),
    path: options.env.PATH ?? "",
    userns: options.userns,
  };
}

async function statOrNull(path: string): Promise<{ path: string; size: number; mtimeMs: number } | null> {
  try {
    const s = await stat(path);
    return { path, size: s.size, mtimeMs: s.mtimeMs };
  } catch {
    return null;
  }
}

/**
 * Probe findings kept on disk across processes, one file per key (per user, in their cache
 * folder): a fresh process that finds its key pays no container starts. An entry is written to
 * a temporary name and renamed, so a reader sees a whole file or none; anything unreadable is
 * a miss.
 */
export class ProbeCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  #file(key: ProbeKey): string {
    return join(
      this.dir,
      `${createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 32)}.json`,
    );
  }

  async get(key: ProbeKey): Promise<RuntimeProbe | undefined> {
    try {
      const stored = JSON.parse(await readFile(this.#file(key), "utf8")) as {
        key: ProbeKey;
        probe: RuntimeProbe;
      };
      // The file name is a hash: the key inside must be this one.
      return JSON.stringify(stored.key) === JSON.stringify(key) ? stored.probe : undefined;
    } catch {
      return undefined;
    }
  }

  async set(key: ProbeKey, probe: RuntimeProbe): Promise<void> {
    const file = this.#file(key);
    const partial = `${file}.${randomBytes(6).toString("hex")}.partial`;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(partial, JSON.stringify({ key, probe }), { mode: 0o600 });
      await rename(partial, file);
    } catch {
      // A cache that cannot be written costs a probe next time, nothing more.
      await rm(partial, { force: true });
    }
  }

  async delete(key: ProbeKey): Promise<void> {
    await rm(this.#file(key), { force: true });
  }
}
