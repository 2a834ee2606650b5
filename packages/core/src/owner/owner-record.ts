import { readFileSync, readlinkSync } from "node:fs";
import { stat } from "node:fs/promises";
import { hostname } from "node:os";
import { type ProcStat, readProcStat, readProcStatSync } from "./proc-stat.js";

/**
 * Who made a resource (a container, an instance, a scratch folder, a cgroup, a lock): a process
 * on one host. A pid alone is no name (pids are reused): with its start time (ticks since boot,
 * /proc/PID/stat) and the host's boot id it names one process, alive or gone.
 */
export interface OwnerRecord {
  pid: number;
  /** Start time of `pid` in clock ticks since boot. */
  startTime: number;
  /** The host's name (os.hostname()): resources of other hosts are never judged here. */
  host: string;
  /** /proc/sys/kernel/random/boot_id: a record from before a reboot names a dead process. */
  bootId: string;
  /**
   * The PID namespace `pid` belongs to (the link /proc/self/ns/pid, `pid:[N]`): a pid means
   * another process in another namespace. Absent in records written before it was kept.
   */
  pidNs?: string;
}

/** The PID namespace of the host itself (the kernel's fixed inode for it). */
export const INITIAL_PID_NS = "pid:[4026531836]";

/** The host a judgement is made on. */
export interface HostIdentity {
  host: string;
  /** Empty where it cannot be read (no /proc): then nothing can be judged. */
  bootId: string;
  /**
   * /proc hides other users' processes (mounted with hidepid, as on many shared HPC nodes; seen
   * as pid 1 not readable): a pid it does not show is not known to be gone.
   */
  procHidden?: boolean;
  /** This process's PID namespace (see {@link OwnerRecord.pidNs}); absent where it cannot be read. */
  pidNs?: string;
}

/**
 * `alive`: the owner still runs. `dead`: it ended (no such process, a reused pid, a zombie, or
 * the host rebooted since). `unknown`: it is on another host, or this host cannot tell. Only what
 * is `dead` may be cleaned up by someone else.
 */
export type OwnerLiveness = "alive" | "dead" | "unknown";

/**
 * Judges an owner from what /proc says of its pid now (pure). `sameUser`: the owner is known to
 * be this process's user (its record is a file of ours), whose processes /proc always shows.
 */
export function judgeOwner(
  record: OwnerRecord,
  here: HostIdentity,
  now: ProcStat | undefined,
  sameUser = false,
): OwnerLiveness {
  if (record.host !== here.host || here.bootId === "" || record.bootId === "") return "unknown";
  if (record.bootId !== here.bootId) return "dead";
  // Pids of another namespace name other processes here; so may an old record's, seen from a
  // namespace other than the host's.
  if (record.pidNs !== here.pidNs && (record.pidNs !== undefined || here.pidNs !== INITIAL_PID_NS)) {
    return "unknown";
  }
  if (!now) return here.procHidden && !sameUser ? "unknown" : "dead";
  if (now.startTime !== record.startTime) return "dead";
  return now.state === "Z" || now.state === "X" ? "dead" : "alive";
}

let identity: HostIdentity | undefined;
/** This host's name and boot id (read once). */
export function hostIdentity(): HostIdentity {
  if (!identity) {
    let bootId = "";
    try {
      bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      // not Linux: nothing can be judged
    }
    let pidNs: string | undefined;
    try {
      pidNs = readlinkSync("/proc/self/ns/pid");
    } catch {
      // no /proc: bootId decides
    }
    // pid 1 is not readable where /proc hides other users' processes from this one (hidepid,
    // unless root or in the mount's exempt group): asked of the kernel, not of mount options.
    const procHidden = bootId !== "" && readProcStatSync(1) === undefined;
    identity = { host: hostname(), bootId, ...(procHidden && { procHidden }), ...(pidNs && { pidNs }) };
  }
  return identity;
}

let self: OwnerRecord | undefined;
/** This process as an owner (read once). */
export function currentOwner(): OwnerRecord {
  if (!self || self.pid !== process.pid) {
    const { host, bootId, pidNs } = hostIdentity();
    self = {
      pid: process.pid,
      startTime: readProcStatSync("self")?.startTime ?? 0,
      host,
      bootId,
      ...(pidNs && { pidNs }),
    };
  }
  return self;
}

/** Whether the owner still runs, judged on this host. */
export async function ownerLiveness(
  record: OwnerRecord,
  options: LivenessOptions = {},
): Promise<OwnerLiveness> {
  const here = hostIdentity();
  if (record.host !== here.host) return "unknown";
  return judgeOwner(record, here, await readProcStat(record.pid), options.sameUser);
}

/** {@link ownerLiveness}, synchronously. */
export function ownerLivenessSync(record: OwnerRecord, options: LivenessOptions = {}): OwnerLiveness {
  const here = hostIdentity();
  if (record.host !== here.host) return "unknown";
  return judgeOwner(record, here, readProcStatSync(record.pid), options.sameUser);
}

export interface LivenessOptions {
  /** The owner is this process's user (see {@link judgeOwner}); default false. */
  sameUser?: boolean;
}

/** Whether `path` (an owner's record on disk) belongs to this process's user; false when it cannot be told. */
export async function ownedByThisUser(path: string): Promise<boolean> {
  const uid = process.getuid?.();
  return (
    uid !== undefined &&
    (await stat(path).then(
      (s) => s.uid === uid,
      () => false,
    ))
  );
}

/** An owner record from parsed JSON, checked; undefined when it is not one. */
export function parseOwnerRecord(value: unknown): OwnerRecord | undefined {
  const v = value as Partial<OwnerRecord> | null;
  if (
    typeof v !== "object" ||
    v === null ||
    !Number.isSafeInteger(v.pid) ||
    (v.pid as number) <= 0 ||
    !Number.isSafeInteger(v.startTime) ||
    typeof v.host !== "string" ||
    v.host === "" ||
    typeof v.bootId !== "string" ||
    (v.pidNs !== undefined && (typeof v.pidNs !== "string" || !/^pid:\[\d+\]$/.test(v.pidNs)))
  ) {
    return undefined;
  }
  return {
    pid: v.pid as number,
    startTime: v.startTime as number,
    host: v.host,
    bootId: v.bootId,
    ...(v.pidNs !== undefined && { pidNs: v.pidNs }),
  };
}

/** Labels that carry an owner record (on Docker containers). */
export const OWNER_LABELS = {
  pid: "io.contexec.owner.pid",
  startTime: "io.contexec.owner.start-time",
  host: "io.contexec.owner.host",
  bootId: "io.contexec.owner.boot-id",
  pidNs: "io.contexec.owner.pid-ns",
} as const;

/** What an owner label's number may look like (see {@link ownerFromLabels}). */
export const OWNER_LABEL_FORMS = {
  pid: /^[1-9]\d{0,9}$/,
  startTime: /^(0|[1-9]\d{0,14})$/,
} as const;

/** An owner record as labels (pure). */
export function ownerLabels(record: OwnerRecord): Record<string, string> {
  return {
    [OWNER_LABELS.pid]: String(record.pid),
    [OWNER_LABELS.startTime]: String(record.startTime),
    [OWNER_LABELS.host]: record.host,
    [OWNER_LABELS.bootId]: record.bootId,
    ...(record.pidNs !== undefined && { [OWNER_LABELS.pidNs]: record.pidNs }),
  };
}

/** The owner record in a resource's labels; undefined when they hold none (or a broken one). */
export function ownerFromLabels(
  labels: Readonly<Record<string, string>> | undefined,
): OwnerRecord | undefined {
  if (!labels) return undefined;
  // Decimal as /proc writes them (no sign, no leading zero), within what a pid and a start time
  // can be: the job scripts' sweeps (SLURM, Docker inside) read labels by the same rule.
  const number = (s: string | undefined, form: RegExp) =>
    s !== undefined && form.test(s) ? Number(s) : Number.NaN;
  return parseOwnerRecord({
    pid: number(labels[OWNER_LABELS.pid], OWNER_LABEL_FORMS.pid),
    startTime: number(labels[OWNER_LABELS.startTime], OWNER_LABEL_FORMS.startTime),
    host: labels[OWNER_LABELS.host],
    bootId: labels[OWNER_LABELS.bootId],
    pidNs: labels[OWNER_LABELS.pidNs],
  });
}
