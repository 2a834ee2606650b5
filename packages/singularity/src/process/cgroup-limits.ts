import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import { parseCgroupFile, parseCgroupMounts } from "./nsenter.js";

/** Where this process's memory and CPU cgroups are, as seen from here. */
export interface CgroupLayout {
  version: 1 | 2;
  /** v1: the memory hierarchy; v2: the unified one. */
  memory: { mount: string; own: string } | undefined;
  /** v1: the hierarchy holding "cpu" (maybe "cpu,cpuacct"); v2: the unified one. */
  cpu: { mount: string; own: string } | undefined;
}

/** Reads this process's cgroup layout from /proc/self/cgroup and /proc/self/mountinfo. */
export async function detectCgroupLayout(): Promise<CgroupLayout | undefined> {
  try {
    const [cgroups, mountinfo] = await Promise.all([
      readFile("/proc/self/cgroup", "utf8"),
      readFile("/proc/self/mountinfo", "utf8"),
    ]);
    return cgroupLayoutOf(cgroups, mountinfo);
  } catch {
    return undefined;
  }
}

/** {@link detectCgroupLayout} from the two files' text (pure). */
export function cgroupLayoutOf(cgroupFile: string, mountinfo: string): CgroupLayout | undefined {
  const own = parseCgroupFile(cgroupFile);
  const mounts = parseCgroupMounts(mountinfo);
  const place = (key: string) => {
    const mount = mounts.get(key);
    const path = own.get(key);
    if (!mount || path === undefined) return undefined;
    if (mount.root !== "/" && !path.startsWith(mount.root)) return undefined;
    const rel = mount.root === "/" ? path : path.slice(mount.root.length) || "/";
    return { mount: mount.point, own: posix.join(mount.point, rel).replace(/(.)\/$/, "$1") };
  };
  const memoryKey = [...mounts.keys()].find((k) => k.split(",").includes("memory"));
  const cpuKey = [...mounts.keys()].find((k) => k.split(",").includes("cpu"));
  if (memoryKey !== undefined || cpuKey !== undefined) {
    return {
      version: 1,
      memory: memoryKey !== undefined ? place(memoryKey) : undefined,
      cpu: cpuKey !== undefined ? place(cpuKey) : undefined,
    };
  }
  const unified = place("");
  return unified ? { version: 2, memory: unified, cpu: unified } : undefined;
}

/** What a container's own cgroups are: folders, files to write, binds, the procs files to join. */
export interface CgroupPlan {
  version: 1 | 2;
  /** Folders to make, parents first. */
  dirs: string[];
  /** Files to write after the folders exist (limits; on v2 the parent's subtree_control). */
  writes: { file: string; value: string }[];
  /** Writes that may fail without harm (kernel features that may be missing). */
  optionalWrites: { file: string; value: string }[];
  /** cgroup.procs files a process writes its pid to, to join. */
  procsFiles: string[];
  /**
   * Each container cgroup bound read-only over its hierarchy's mount point in the container, so
   * the container reads its own limits at /sys/fs/cgroup (Docker's view, a cgroup namespace's).
   */
  binds: { source: string; target: string }[];
  /** Where the OOM kill count is: v1 memory.oom_control, v2 memory.events ("oom_kill N"). */
  oomFile: string | undefined;
  /**
   * v1: a host folder of empty mount points bound over the hierarchies' parent (/sys/fs/cgroup)
   * first. Without a user namespace Apptainer mounts a fresh sysfs, where /sys/fs/cgroup is empty
   * and a bind onto /sys/fs/cgroup/memory fails ("destination ... doesn't exist in container").
   */
  skeleton: { dir: string; entries: string[] } | undefined;
}

/**
 * The cgroups for one container's limits, under this process's own cgroups (pure). Undefined
 * when no limit is asked or the layout lacks the controller.
 */
export function planCgroups(
  layout: CgroupLayout,
  name: string,
  limits: { memoryBytes?: number | undefined; cpus?: number | undefined },
  skeletonDir?: string,
): CgroupPlan | undefined {
  const plan: CgroupPlan = {
    version: layout.version,
    dirs: [],
    writes: [],
    optionalWrites: [],
    procsFiles: [],
    binds: [],
    oomFile: undefined,
    skeleton: undefined,
  };
  const period = 100_000;
  const quota = limits.cpus !== undefined ? Math.max(1000, Math.round(limits.cpus * period)) : undefined;
  if (layout.version === 2) {
    const base = layout.memory;
    if (!base || (limits.memoryBytes === undefined && quota === undefined)) return undefined;
    const dir = posix.join(base.own, name);
    const controllers = [
      ...(limits.memoryBytes !== undefined ? ["+memory"] : []),
      ...(quota !== undefined ? ["+cpu"] : []),
    ];
    plan.writes.push({ file: posix.join(base.own, "cgroup.subtree_control"), value: controllers.join(" ") });
    plan.dirs.push(dir);
    if (limits.memoryBytes !== undefined) {
      plan.writes.push({ file: posix.join(dir, "memory.max"), value: String(limits.memoryBytes) });
      plan.oomFile = posix.join(dir, "memory.events");
    }
    if (quota !== undefined)
      plan.writes.push({ file: posix.join(dir, "cpu.max"), value: `${quota} ${period}` });
    plan.procsFiles.push(posix.join(dir, "cgroup.procs"));
    plan.binds.push({ source: dir, target: base.mount });
    return plan;
  }
  if (limits.memoryBytes !== undefined) {
    if (!layout.memory) return undefined;
    const dir = posix.join(layout.memory.own, name);
    plan.dirs.push(dir);
    plan.writes.push({ file: posix.join(dir, "memory.limit_in_bytes"), value: String(limits.memoryBytes) });
    // What a process allocated before it was moved in is charged here too (v1 only).
    plan.optionalWrites.push({ file: posix.join(dir, "memory.move_charge_at_immigrate"), value: "3" });
    plan.procsFiles.push(posix.join(dir, "cgroup.procs"));
    plan.binds.push({ source: dir, target: layout.memory.mount });
    plan.oomFile = posix.join(dir, "memory.oom_control");
  }
  if (quota !== undefined) {
    if (!layout.cpu) return undefined;
    const dir = posix.join(layout.cpu.own, name);
    plan.dirs.push(dir);
    plan.writes.push({ file: posix.join(dir, "cpu.cfs_period_us"), value: String(period) });
    plan.writes.push({ file: posix.join(dir, "cpu.cfs_quota_us"), value: String(quota) });
    plan.procsFiles.push(posix.join(dir, "cgroup.procs"));
    plan.binds.push({ source: dir, target: layout.cpu.mount });
  }
  if (plan.dirs.length === 0) return undefined;
  if (skeletonDir) {
    const parents = [...new Set(plan.binds.map((b) => posix.dirname(b.target)))];
    if (parents.length === 1) {
      plan.skeleton = { dir: skeletonDir, entries: plan.binds.map((b) => posix.basename(b.target)) };
      plan.binds.unshift({ source: skeletonDir, target: parents[0] as string });
    }
  }
  return plan;
}

/** Makes the cgroups of a plan and writes their limits; undoes what it made when a step fails. */
export async function applyCgroups(plan: CgroupPlan): Promise<void> {
  const made: string[] = [];
  if (plan.skeleton) {
    for (const e of plan.skeleton.entries) await mkdir(posix.join(plan.skeleton.dir, e), { recursive: true });
  }
  try {
    // v2: the parent's subtree_control comes first, then the child and its limits.
    for (const w of plan.writes.filter((w) => w.file.endsWith("cgroup.subtree_control"))) {
      await writeFile(w.file, w.value);
    }
    for (const dir of plan.dirs) {
      await mkdir(dir);
      made.push(dir);
    }
    for (const w of plan.writes.filter((w) => !w.file.endsWith("cgroup.subtree_control"))) {
      await writeFile(w.file, w.value);
    }
    for (const w of plan.optionalWrites) await writeFile(w.file, w.value).catch(() => {});
  } catch (err) {
    for (const dir of made.reverse()) await rmdir(dir).catch(() => {});
    throw err;
  }
}

/** True when the kernel's OOM killer killed a process of the plan's memory cgroup. */
export async function oomKilledIn(plan: CgroupPlan): Promise<boolean> {
  if (!plan.oomFile) return false;
  try {
    return parseOomKills(await readFile(plan.oomFile, "utf8")) > 0;
  } catch {
    return false;
  }
}

/** The "oom_kill N" count of memory.oom_control (v1) or memory.events (v2). */
export function parseOomKills(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Removes the plan's cgroups once their processes are gone (retries while the kernel still counts them). */
export async function removeCgroups(plan: CgroupPlan): Promise<void> {
  for (const dir of [...plan.dirs].reverse()) {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") break;
        if (code !== "EBUSY") break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/**
 * Moves processes into the plan's cgroups. Returns the pids moved (a process that ended
 * meanwhile is skipped).
 */
export async function moveIntoCgroups(plan: CgroupPlan, pids: number[]): Promise<number[]> {
  const moved: number[] = [];
  for (const pid of pids) {
    let ok = true;
    for (const file of plan.procsFiles) {
      try {
        await writeFile(file, String(pid));
      } catch {
        ok = false;
      }
    }
    if (ok) moved.push(pid);
  }
  return moved;
}
