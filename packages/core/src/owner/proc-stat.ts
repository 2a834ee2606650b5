import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** One process as /proc/PID/stat shows it (Linux). */
export interface ProcStat {
  pid: number;
  ppid: number;
  /** Process group. */
  pgid: number;
  /** Session: a process started detached (setsid) leads one; what it starts stays in it unless it leaves. */
  sid: number;
  /** Start time in clock ticks since boot: with the pid, it names one process (pids are reused). */
  startTime: number;
  /** One letter: R running, S sleeping, D disk wait, Z zombie (ended, not yet reaped), ... */
  state: string;
}

/** Parses /proc/PID/stat; the command name is in parentheses and may hold spaces or ")". */
export function parseProcStat(stat: string): ProcStat | undefined {
  const close = stat.lastIndexOf(")");
  const pid = Number.parseInt(stat, 10);
  if (close < 0 || !Number.isFinite(pid)) return undefined;
  const fields = stat.slice(close + 2).split(" ");
  // fields[0] is field 3 of proc_pid_stat(5) (the state); then ppid, pgrp, session, ...; starttime is field 22.
  const ppid = Number(fields[1]);
  const pgid = Number(fields[2]);
  const sid = Number(fields[3]);
  const startTime = Number(fields[19]);
  if (!Number.isFinite(ppid) || !Number.isFinite(pgid)) return undefined;
  return {
    pid,
    ppid,
    pgid,
    sid: Number.isFinite(sid) ? sid : 0,
    startTime: Number.isFinite(startTime) ? startTime : 0,
    state: fields[0] ?? "?",
  };
}

/** One process's stat; undefined once it has gone (or where there is no /proc). */
export async function readProcStat(pid: number | "self"): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** {@link readProcStat}, synchronously (for exit handlers, where nothing async runs). */
export function readProcStatSync(pid: number | "self"): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}
