import { type CapabilityStatus, SUPPORTED, unsupported } from "@contexec/core";

/** One partition, as `scontrol show partition` gives it. */
export interface PartitionInfo {
  name: string;
  /** "UP", "DOWN", "DRAIN", "INACTIVE". */
  state: string;
  isDefault: boolean;
  /** "UNLIMITED" or a SLURM time. */
  maxTime: string;
  nodes: number;
}

/** What the executor knows of the cluster: version, accounting, partitions, and the settings that decide its capabilities. */
export interface ClusterInfo {
  name: string;
  version: string;
  /** sacct answers (slurmdbd accounting is on and reachable). */
  accounting: boolean;
  partitions: PartitionInfo[];
  /** How the cluster confines a job: memory to --mem (task/cgroup, ConstrainRAMSpace, memory as a consumable). */
  confinesMemory: boolean;
  /** CPUs to --cpus-per-task (task/cgroup with ConstrainCores). */
  confinesCores: boolean;
  /** Seconds a finished job stays in squeue and scontrol. */
  minJobAgeSec: number | undefined;
  /** Seconds between SIGTERM and SIGKILL when the scheduler ends a job. */
  killWaitSec: number | undefined;
}

/** Reads `scontrol show config` ("Key = value" lines, the cgroup section included). */
export function parseScontrolConfig(output: string): Map<string, string> {
  const config = new Map<string, string>();
  for (const line of output.split("\n")) {
    const m = /^(\S+)\s+=\s?(.*)$/.exec(line);
    if (m) config.set(m[1] as string, (m[2] as string).trim());
  }
  return config;
}

/** Reads `scontrol show partition --oneliner`. */
export function parsePartitions(output: string): PartitionInfo[] {
  const partitions: PartitionInfo[] = [];
  for (const line of output.split("\n")) {
    const field = (key: string) => new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(line)?.[1];
    const name = field("PartitionName");
    if (!name) continue;
    partitions.push({
      name,
      state: field("State") ?? "UNKNOWN",
      isDefault: field("Default") === "YES",
      maxTime: field("MaxTime") ?? "UNLIMITED",
      nodes: Number(field("TotalNodes") ?? 0),
    });
  }
  return partitions;
}

/** The cluster from its recorded answers (pure). */
export function clusterInfoOf(input: {
  version: string;
  config: Map<string, string>;
  partitions: PartitionInfo[];
  accounting: boolean;
}): ClusterInfo {
  const c = input.config;
  const cgroupTask = (c.get("TaskPlugin") ?? "").split(",").includes("task/cgroup");
  const seconds = (v: string | undefined) => {
    const m = /^(\d+)\s*sec/.exec(v ?? "");
    return m ? Number(m[1]) : undefined;
  };
  return {
    name: c.get("ClusterName") ?? "",
    version: c.get("SLURM_VERSION") ?? input.version.replace(/^slurm(-wlm)?\s+/, ""),
    accounting: input.accounting,
    partitions: input.partitions,
    confinesMemory:
      cgroupTask &&
      /^yes$/i.test(c.get("ConstrainRAMSpace") ?? "") &&
      /MEMORY/i.test(c.get("SelectTypeParameters") ?? ""),
    confinesCores: cgroupTask && /^yes$/i.test(c.get("ConstrainCores") ?? ""),
    minJobAgeSec: seconds(c.get("MinJobAge")),
    killWaitSec: seconds(c.get("KillWait")),
  };
}

/** What the cluster itself decides of a container's capabilities: its memory and CPU limits. */
export function clusterCapabilities(cluster: ClusterInfo): {
  "memory-limit": CapabilityStatus;
  "oom-detection": CapabilityStatus;
  "cpu-limit": CapabilityStatus;
} {
  const memory = cluster.confinesMemory
    ? SUPPORTED
    : unsupported(
        "this cluster does not hold a job to its --mem: it needs TaskPlugin=task/cgroup, ConstrainRAMSpace=yes in cgroup.conf and memory as a consumable resource (SelectTypeParameters=CR_*_Memory)",
      );
  return {
    "memory-limit": memory,
    // A job over its memory ends OUT_OF_MEMORY where the cluster confines memory.
    "oom-detection": cluster.confinesMemory
      ? SUPPORTED
      : unsupported("this cluster does not confine a job's memory, so it reports no OUT_OF_MEMORY"),
    "cpu-limit": cluster.confinesCores
      ? SUPPORTED
      : unsupported(
          "this cluster does not confine a job to its CPUs (ConstrainCores=no in cgroup.conf): --cpus-per-task only reserves them",
        ),
  };
}
