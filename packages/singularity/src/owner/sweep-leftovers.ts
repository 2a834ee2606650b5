import { rm, rmdir } from "node:fs/promises";
import { basename, isAbsolute, relative } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  defaultStateDir,
  listOwnerFolders,
  readProcStat,
  readResourceRecords,
  type SweepReport,
} from "@contexec/core";
import { execa } from "execa";
import { runtimeProcessEnv } from "../plan/runtime-env.js";
import { instanceStartFolder } from "../process/instance-start-folder.js";
import { findNamespaceInit, listProcesses, signalProcess } from "../process/process-tree.js";
import { parseInstanceList } from "../run/apptainer-service.js";
import {
  type ContainerRecord,
  type ExecutorDetails,
  type LeftoverRecord,
  OWNER_KIND,
  type ProcessRef,
  type ServiceRecord,
} from "./leftover-records.js";

export interface SweepOptions {
  /** The folder of owner records; default {@link defaultStateDir}. */
  stateDir?: string;
  /** The runtime binary, to find instances whose init was never recorded; without it only recorded pids are used. */
  binary?: string;
  /** Where HOME, PATH and the state folder variables are read from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** SIF caches to clear of dead conversions (partial SIFs, their locks); see SifCache.sweep. */
  caches?: { sweep(): Promise<SweepReport> }[];
}

/**
 * Removes what Apptainer executors whose process has died on this host left behind: their
 * services' instances (by the recorded init, or the instance of that name started from the
 * recorded folder), their containers' processes (the session each runtime process led), the
 * containers' cgroups and scratch folders, the executors' scratch folders, and then their owner
 * folders. Owners that still run, and owners on other hosts (a state folder on a shared file
 * system), are never touched. Safe to run at any time, from any process: what `contexec gc` calls.
 */
export async function sweepLeftovers(options: SweepOptions = {}): Promise<SweepReport> {
  const env = options.env ?? process.env;
  const stateDir = options.stateDir ?? defaultStateDir(env);
  const report: SweepReport = { removed: [], failed: [] };
  for (const cache of options.caches ?? []) {
    const swept = await cache.sweep().catch((err: Error) => ({ removed: [], failed: [err.message] }));
    report.removed.push(...swept.removed);
    report.failed.push(...swept.failed);
  }
  for (const folder of await listOwnerFolders<Partial<ExecutorDetails>>(stateDir, OWNER_KIND)) {
    if (folder.liveness !== "dead") continue;
    const who = `owner pid ${folder.owner.pid} on ${folder.owner.host}, dead`;
    const tmpRoot = typeof folder.details.tmpRoot === "string" ? folder.details.tmpRoot : undefined;
    const failedBefore = report.failed.length;
    const records = [...(await readResourceRecords(folder.dir)).values()] as Partial<LeftoverRecord>[];
    // Services first: an instance is a daemon; its processes are no one's children.
    for (const r of records) {
      if (r.kind === "service" && typeof r.name === "string") {
        await endService(r as ServiceRecord, options.binary, env, report, who);
      }
    }
    for (const r of records) {
      if (r.kind === "container" && typeof r.id === "string")
        await endContainer(r as ContainerRecord, report, who);
    }
    for (const r of records) {
      const scratch = (r as { scratch?: unknown }).scratch;
      if (typeof scratch === "string") await removeInside(scratch, tmpRoot, report, who);
    }
    if (tmpRoot && basename(tmpRoot).startsWith("contexec-apptainer-") && isAbsolute(tmpRoot)) {
      await rm(tmpRoot, { recursive: true, force: true }).then(
        () => report.removed.push(`scratch folder ${tmpRoot} (${who})`),
        (err: Error) => report.failed.push(`scratch folder ${tmpRoot}: ${err.message}`),
      );
    }
    // What could not be removed keeps its record for the next sweep.
    if (report.failed.length === failedBefore) await rm(folder.dir, { recursive: true, force: true });
  }
  return report;
}

/** Ends a dead owner's container: its PID namespace's init first, then every process of the runtime's session. */
async function endContainer(r: ContainerRecord, report: SweepReport, who: string): Promise<void> {
  const what = `container ${r.id.slice(0, 12)}`;
  if (r.runtime && isRef(r.runtime)) {
    const killed = await killSession(r.runtime);
    if (killed.length > 0) report.removed.push(`${what}: processes ${killed.join(", ")} (${who})`);
    if (!(await sessionGone(r.runtime)))
      report.failed.push(`${what}: processes of session ${r.runtime.pid} still run`);
  }
  for (const dir of [...(Array.isArray(r.cgroups) ? r.cgroups : [])].reverse()) {
    if (typeof dir !== "string" || !dir.startsWith("/sys/fs/cgroup/")) continue;
    const gone = await removeCgroup(dir);
    if (gone === "removed") report.removed.push(`${what}: cgroup ${dir} (${who})`);
    else if (gone === "busy") report.failed.push(`${what}: cgroup ${dir} is still in use`);
  }
}

/** Ends a dead owner's service: its instance (only the one it started) and its command's exec process. */
async function endService(
  r: ServiceRecord,
  binary: string | undefined,
  env: NodeJS.ProcessEnv,
  report: SweepReport,
  who: string,
): Promise<void> {
  const what = `service ${r.name}`;
  let init: ProcessRef | undefined = r.init && isRef(r.init) && (await isSame(r.init)) ? r.init : undefined;
  let listedPid: number | undefined;
  if (binary) {
    listedPid = await listedInstancePid(binary, r.name, env);
    // Never recorded (the owner died while it started): the instance of that name started from its folder.
    if (!init && listedPid !== undefined && (await instanceStartFolder(listedPid)) === r.startCwd) {
      const stat = await readProcStat(listedPid);
      if (stat) init = { pid: listedPid, startTime: stat.startTime };
    }
  }
  if (init) {
    signalProcess(init.pid, "SIGKILL");
    report.removed.push(`${what}: instance init ${init.pid} (${who})`);
  }
  if (r.main && isRef(r.main)) await killSession(r.main);
  if (!init || !binary) return;
  // Apptainer removes the instance once its init has gone (0.15 s here); a stale entry is stopped by name only while it still names that init.
  for (let i = 0; i < 60; i++) {
    if ((await listedInstancePid(binary, r.name, env)) !== init.pid) return;
    await delay(50);
  }
  await execa(binary, ["instance", "stop", "--force", r.name], {
    env: runtimeProcessEnv(env),
    extendEnv: false,
    reject: false,
    timeout: 30_000,
    stdin: "ignore",
  });
}

/**
 * SIGKILLs every process of the session `leader` started (a runtime spawned detached leads its
 * own): the leader if it still runs, and whatever it started that stayed in the session, even
 * orphaned (Apptainer's squashfuse_ll). A session id is not given to a new process while anything
 * still belongs to the old session, and a member starts after its leader. The PID namespace's
 * init goes first: it ends everything in the container at once.
 */
async function killSession(leader: ProcessRef): Promise<number[]> {
  if (await isSame(leader)) {
    const init = await findNamespaceInit(leader.pid);
    if (init) signalProcess(init.pid, "SIGKILL");
  } else if ((await readProcStat(leader.pid)) !== undefined) {
    // The pid names another process now: whose session this is cannot be told.
    return [];
  }
  const members = (await listProcesses()).filter(
    (p) => p.sid === leader.pid && p.startTime >= leader.startTime && p.state !== "Z",
  );
  for (const p of members) signalProcess(p.pid, "SIGKILL");
  return members.map((p) => p.pid);
}

async function sessionGone(leader: ProcessRef): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const left = (await listProcesses()).filter(
      (p) => p.sid === leader.pid && p.startTime >= leader.startTime && p.state !== "Z" && p.state !== "X",
    );
    if (left.length === 0) return true;
    await delay(20);
  }
  return false;
}

/** A cgroup whose processes have ended can stay busy for a moment while the kernel lets go. */
async function removeCgroup(dir: string): Promise<"removed" | "absent" | "busy"> {
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      await rmdir(dir);
      return "removed";
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return "absent";
      if (code !== "EBUSY") return "busy";
      await delay(50);
    }
  }
  return "busy";
}

/** Removes a folder the records name, only when it lies inside the owner's scratch folder. */
async function removeInside(
  dir: string,
  tmpRoot: string | undefined,
  report: SweepReport,
  who: string,
): Promise<void> {
  if (!tmpRoot || !isAbsolute(dir)) return;
  const rel = relative(tmpRoot, dir);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return;
  await rm(dir, { recursive: true, force: true }).then(
    () => report.removed.push(`scratch folder ${dir} (${who})`),
    (err: Error) => report.failed.push(`scratch folder ${dir}: ${err.message}`),
  );
}

async function listedInstancePid(
  binary: string,
  name: string,
  env: NodeJS.ProcessEnv,
): Promise<number | undefined> {
  const r = await execa(binary, ["instance", "list", "--json", name], {
    env: runtimeProcessEnv(env),
    extendEnv: false,
    reject: false,
    timeout: 30_000,
    stdin: "ignore",
  });
  return parseInstanceList(String(r.stdout)).find((i) => i.name === name)?.pid;
}

async function isSame(ref: ProcessRef): Promise<boolean> {
  const now = await readProcStat(ref.pid);
  return now !== undefined && now.startTime === ref.startTime && now.state !== "Z";
}

function isRef(v: unknown): v is ProcessRef {
  const r = v as ProcessRef;
  return Number.isSafeInteger(r?.pid) && r.pid > 1 && Number.isSafeInteger(r?.startTime);
}
