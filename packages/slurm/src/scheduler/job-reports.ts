/** What the scheduler says of one job, from any of sacct, squeue or scontrol. */
export interface JobReport {
  jobId: string;
  /** The base state, upper case: "PENDING", "CANCELLED" (without sacct's " by UID"). */
  state: string;
  /** The batch script's exit code, when the scheduler gives one. */
  exitCode: number | undefined;
  /** The signal that ended the batch script (0 when none), when the scheduler gives one. */
  exitSignal: number | undefined;
  /** Where it runs or ran ("" while pending). */
  nodes: string;
  /** Why it waits or ended ("Priority", "TimeLimit", "None"). */
  reason: string;
}

/** The sacct arguments whose output {@link parseSacct} reads: one line per job, no steps. */
export function sacctArgs(jobIds: readonly string[]): string[] {
  return [
    "--noheader",
    "--parsable2",
    "--allocations",
    `--jobs=${jobIds.join(",")}`,
    "--format=JobIDRaw,State,ExitCode,NodeList,Reason",
  ];
}

/** Reads `sacct --parsable2 --format=JobIDRaw,State,ExitCode,NodeList,Reason` (slurm 22.05 and later). */
export function parseSacct(output: string): JobReport[] {
  const reports: JobReport[] = [];
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue;
    const [jobId, state, exit, nodes, reason] = line.split("|");
    if (!jobId || !state || !/^\d+$/.test(jobId)) continue;
    const [code, signal] = (exit ?? "").split(":");
    reports.push({
      jobId,
      state: baseState(state),
      exitCode: toInt(code),
      exitSignal: toInt(signal),
      nodes: nodeList(nodes),
      reason: reason ?? "",
    });
  }
  return reports;
}

/** The squeue arguments whose output {@link parseSqueue} reads: every state, so jobs that just ended still show. */
export function squeueArgs(jobIds: readonly string[]): string[] {
  return [
    "--noheader",
    "--states=all",
    `--jobs=${jobIds.join(",")}`,
    "--Format=JobID:|,State:|,exit_code:|,NodeList:|,Reason:|",
  ];
}

/**
 * Reads `squeue --Format=JobID:|,State:|,exit_code:|,NodeList:|,Reason:|`. squeue's exit_code is
 * the raw wait status (768 for exit 3, 9 for SIGKILL).
 */
export function parseSqueue(output: string): JobReport[] {
  const reports: JobReport[] = [];
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue;
    const [jobId, state, status, nodes, reason] = line.split("|").map((f) => f.trim());
    if (!jobId || !state || !/^\d+$/.test(jobId)) continue;
    const raw = toInt(status);
    reports.push({
      jobId,
      state: baseState(state),
      exitCode: raw === undefined ? undefined : (raw >> 8) & 0xff,
      exitSignal: raw === undefined ? undefined : raw & 0x7f,
      nodes: nodeList(nodes),
      reason: reason ?? "",
    });
  }
  return reports;
}

/** Reads `scontrol show job ID --oneliner` (one or more jobs, one per line). */
export function parseScontrolJobs(output: string): JobReport[] {
  const reports: JobReport[] = [];
  for (const line of output.split("\n")) {
    const field = (key: string) => new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(line)?.[1];
    const jobId = field("JobId");
    const state = field("JobState");
    if (!jobId || !state) continue;
    const [code, signal] = (field("ExitCode") ?? "").split(":");
    reports.push({
      jobId,
      state: baseState(state),
      exitCode: toInt(code),
      exitSignal: toInt(signal),
      nodes: nodeList(field("NodeList")),
      reason: field("Reason") ?? "",
    });
  }
  return reports;
}

/** squeue and scontrol say this when none of the ids asked about is known (any more). */
export function isUnknownJobError(stderr: string): boolean {
  return /Invalid job id specified/i.test(stderr);
}

function baseState(state: string): string {
  // sacct: "CANCELLED by 0"; a requeued job's state may carry a "+" suffix.
  return (state.trim().split(/\s+/)[0] ?? "").replace(/\+$/, "").toUpperCase();
}

function nodeList(nodes: string | undefined): string {
  const n = (nodes ?? "").trim();
  return n === "None assigned" || n === "(null)" ? "" : n;
}

function toInt(s: string | undefined): number | undefined {
  return s !== undefined && /^\d+$/.test(s.trim()) ? Number(s.trim()) : undefined;
}
