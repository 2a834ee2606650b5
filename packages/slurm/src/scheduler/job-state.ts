import { type ExitStatus, exitStatusFromCode, exitStatusFromSignal } from "@contexec/core";
import type { JobReport } from "./job-reports.js";

/** Why a job ended other than by its container's own exit. */
export const END_REASONS = ["time-limit", "out-of-memory", "cancelled"] as const;
export type EndReason = (typeof END_REASONS)[number];

/** How a container run as a SLURM job ended: the ExitStatus every backend gives, and the job's side. */
export interface SlurmExitStatus extends ExitStatus {
  jobId: string;
  /** The job's final state: "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED". */
  jobState: string;
  /** Set when the scheduler ended it: its time limit, its memory limit, a cancellation. */
  reason?: EndReason;
}

/** The container's exit status as the job script wrote it (see renderJobScript). */
export interface ExitFile {
  phase: "container" | "setup";
  code: number;
  /** The container's own memory cgroup counted an OOM kill. */
  oom: boolean;
}

/** Reads the exit status file; undefined when it is not a whole, valid one. */
export function parseExitFile(text: string): ExitFile | undefined {
  const phase = /^phase=(container|setup)$/m.exec(text)?.[1];
  const code = /^code=(\d{1,3})$/m.exec(text)?.[1];
  if (!phase || code === undefined || !text.endsWith("\n")) return undefined;
  return { phase: phase as ExitFile["phase"], code: Number(code), oom: /^oom=1$/m.test(text) };
}

const PENDING = new Set([
  "PENDING",
  "CONFIGURING",
  "REQUEUED",
  "REQUEUE_FED",
  "REQUEUE_HOLD",
  "RESV_DEL_HOLD",
  // Preempted with requeue: the job goes back to the queue and runs again.
  "PREEMPTED",
]);
const RUNNING = new Set([
  "RUNNING",
  "COMPLETING",
  "SUSPENDED",
  "STOPPED",
  "SIGNALING",
  "STAGE_OUT",
  "RESIZING",
]);
const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"]);
const BROKEN = new Set(["NODE_FAIL", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"]);

/** What a scheduler state means for the container. */
export type JobView =
  | { kind: "pending" }
  | { kind: "running"; nodes: string }
  | { kind: "finished"; report: JobReport }
  | { kind: "broken"; report: JobReport }
  | { kind: "unknown" };

/** A scheduler state, read: queued, running, ended (the container's status follows), or ended by a failure of the cluster. */
export function viewOf(report: JobReport | undefined): JobView {
  if (!report) return { kind: "unknown" };
  if (PENDING.has(report.state)) return { kind: "pending" };
  if (RUNNING.has(report.state)) return { kind: "running", nodes: report.nodes };
  if (FINISHED.has(report.state)) return { kind: "finished", report };
  if (BROKEN.has(report.state)) return { kind: "broken", report };
  return { kind: "unknown" };
}

/**
 * The container's exit status from a finished job's report and its exit status file (pure).
 * The file, written by the job script, has the container's own code; the scheduler's ExitCode
 * is the fallback when the script did not get to write it (killed, out of memory). A job that
 * ended by a signal the scheduler does not name reports `signalSent` (what kill() sent), else
 * SIGKILL for a cancellation after a grace period and SIGTERM for a time limit.
 */
export function exitStatusOf(
  report: JobReport,
  exitFile: ExitFile | undefined,
  signalSent?: NodeJS.Signals,
): SlurmExitStatus {
  const fromFile = exitFile?.phase === "container" ? exitStatusFromCode(exitFile.code) : undefined;
  const fromScheduler = (fallback: NodeJS.Signals): ExitStatus => {
    // ExitCode is "code:signal": a signal n reads as 128+n, as shells report it.
    if (report.exitSignal) return exitStatusFromCode(128 + report.exitSignal);
    if (report.exitCode) return exitStatusFromCode(report.exitCode);
    return exitStatusFromSignal(fallback);
  };
  const job = { jobId: report.jobId, jobState: report.state };
  // The container's own cgroup ran out of memory: the job itself may have ended FAILED.
  if (exitFile?.phase === "container" && exitFile.oom && fromFile) {
    return { ...fromFile, oomKilled: true, ...job, reason: "out-of-memory" };
  }
  switch (report.state) {
    case "TIMEOUT":
      return { ...(fromFile ?? fromScheduler("SIGTERM")), ...job, reason: "time-limit" };
    case "OUT_OF_MEMORY":
      return {
        ...(fromFile ?? exitStatusFromSignal("SIGKILL")),
        oomKilled: true,
        ...job,
        reason: "out-of-memory",
      };
    case "CANCELLED":
      return { ...(fromFile ?? exitStatusFromSignal(signalSent ?? "SIGKILL")), ...job, reason: "cancelled" };
    default: {
      if (fromFile) return { ...fromFile, ...job };
      // No status file: the batch shell itself was killed (kill() after its grace: SIGKILL).
      const status =
        report.exitSignal === 0 && report.exitCode === 0 && signalSent === undefined
          ? exitStatusFromCode(0)
          : fromScheduler(signalSent ?? "SIGKILL");
      return { ...status, ...job };
    }
  }
}
