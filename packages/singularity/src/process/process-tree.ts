import { readdirSync, readFileSync } from "node:fs";
import { readdir, readFile, readlink } from "node:fs/promises";
import { type ProcStat, parseProcStat as parseStat, readProcStat } from "@contexec/core";

/** One process as /proc shows it (pid, parent, group, session, start time, state). */
export type ProcessEntry = ProcStat;

/** Reads pid, parent and process group of every process from /proc (Linux only). */
export async function listProcesses(): Promise<ProcessEntry[]> {
  const names = await readdir("/proc").catch(() => [] as string[]);
  const entries = await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (n) => {
        try {
          return parseStat(await readFile(`/proc/${n}/stat`, "utf8"));
        } catch {
          return undefined; // the process ended while we looked
        }
      }),
  );
  return entries.filter((e): e is ProcessEntry => e !== undefined);
}

/** {@link listProcesses}, synchronously (for exit handlers, where nothing async runs). */
export function listProcessesSync(): ProcessEntry[] {
  let names: string[] = [];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: ProcessEntry[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const e = parseStat(readFileSync(`/proc/${n}/stat`, "utf8"));
      if (e) out.push(e);
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Every descendant of `root` (not `root` itself), parents before children. */
export function descendantsOf(root: number, processes: readonly ProcessEntry[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of processes) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const out: number[] = [];
  const queue = [root];
  const seen = new Set<number>([root]);
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const child of children.get(pid) ?? []) {
      if (seen.has(child)) continue;
      seen.add(child);
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** The namespace link of a process ("pid:[4026531836]"); undefined once it has gone. */
export async function namespaceOf(
  pid: number | "self",
  kind: "pid" | "user" | "mnt" | "net",
): Promise<string | undefined> {
  try {
    return await readlink(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** The processes whose namespace of `kind` is `ns`. */
export async function processesInNamespace(ns: string, kind: "pid" | "user" = "pid"): Promise<number[]> {
  const all = await listProcesses();
  const inNs = await Promise.all(all.map(async (p) => ((await namespaceOf(p.pid, kind)) === ns ? p.pid : 0)));
  return inNs.filter((p) => p !== 0);
}

/** The children of a process, from /proc/PID/task/TID/children (no scan of all of /proc). */
export async function childrenOf(pid: number): Promise<number[]> {
  try {
    const tasks = await readdir(`/proc/${pid}/task`);
    const lists = await Promise.all(
      tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, "utf8").catch(() => "")),
    );
    return lists.flatMap((l) => l.split(" ").filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/**
 * The first descendant of `root` (breadth first) that lives in another PID namespace than
 * `root`: the container's init when the runtime made a PID namespace. Undefined when there is
 * none (yet).
 */
export async function findNamespaceInit(root: number): Promise<{ pid: number; pidNs: string } | undefined> {
  const own = await namespaceOf(root, "pid");
  if (own === undefined) return undefined;
  const queue = [root];
  const seen = new Set(queue);
  while (queue.length > 0) {
    for (const pid of await childrenOf(queue.shift() as number)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      const ns = await namespaceOf(pid, "pid");
      if (ns !== undefined && ns !== own) return { pid, pidNs: ns };
      queue.push(pid);
    }
  }
  return undefined;
}

/** One process's entry; undefined once it has gone. */
export function processEntry(pid: number): Promise<ProcessEntry | undefined> {
  return readProcStat(pid);
}

/** The same process still runs: same pid and start time. */
export async function isSameProcess(p: ProcessEntry): Promise<boolean> {
  const now = await processEntry(p.pid);
  return now !== undefined && now.startTime === p.startTime;
}

/** The same process still runs and has not ended (a zombie has ended: it only waits to be reaped). */
export async function isRunning(p: ProcessEntry): Promise<boolean> {
  const now = await processEntry(p.pid);
  return now !== undefined && now.startTime === p.startTime && now.state !== "Z" && now.state !== "X";
}

/** The executable of a process (as seen from its own root); undefined once it has gone. */
export async function executableOf(pid: number): Promise<string | undefined> {
  try {
    return await readlink(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Sends `signal` and ignores "no such process" (it ended first). */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** The container's processes as the host sees them. */
export interface ContainerProcesses {
  /** PID 1 of the container's PID namespace (Apptainer's init shim): killing it ends them all. */
  init: ProcessEntry;
  /** The container's own program, a child of the init once it runs. */
  main: ProcessEntry;
}

/**
 * Finds the container's init and main process under the runtime process `root`: the first
 * descendant in another PID namespace, and its child that no longer runs Apptainer's starter
 * binary (the init shim and the setup stages do; the program runs once it has been exec'd).
 * Undefined while the container is still being set up.
 */
export async function findContainerProcesses(root: number): Promise<ContainerProcesses | undefined> {
  const ns = await findNamespaceInit(root);
  if (!ns) return undefined;
  const starter = await executableOf(root);
  if (starter === undefined) return undefined;
  const init = await processEntry(ns.pid);
  if (!init) return undefined;
  for (const pid of await childrenOf(init.pid)) {
    const exe = await executableOf(pid);
    if (exe === undefined || exe === starter) continue;
    const main = await processEntry(pid);
    if (main) return { init, main };
  }
  return undefined;
}
