import {
  isUnknownJobError,
  type JobReport,
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
  sacctArgs,
  squeueArgs,
} from "../scheduler/job-reports.js";
import type { SchedulerCli } from "../scheduler/scheduler-cli.js";

/** What a tracked job's watcher hears after each query: its report, or that the scheduler has none. */
export type JobUpdate =
  | { kind: "report"; report: JobReport }
  /** The scheduler does not know the job (any more): squeue and scontrol both said so. */
  | { kind: "forgotten" };

export interface JobTrackerOptions {
  cli: SchedulerCli;
  /** Which command answers: decided once (accounting probed) by the executor. */
  mode: () => Promise<"sacct" | "squeue">;
  /** The shortest pause between two queries (and the pause after a change). */
  intervalMs: number;
  /** The longest pause, reached by doubling while nothing changes. */
  maxIntervalMs: number;
  /** Told of every failed or timed-out query (for logs); tracking goes on. */
  onQueryFailed?: (error: string) => void;
}

/** The pause before the next query: back to the shortest after a change, else doubled up to the longest. */
export function nextPollInterval(
  current: number,
  changed: boolean,
  limits: { intervalMs: number; maxIntervalMs: number },
): number {
  return changed
    ? limits.intervalMs
    : Math.min(limits.maxIntervalMs, Math.max(limits.intervalMs, current * 2));
}

interface Watch {
  listener: (update: JobUpdate) => void;
  /** Until then the job is expected to change soon (just submitted, its exit status written, killed): no backing off. */
  hurryUntil: number;
  /** The last report given to the listener, to tell a change. */
  last: string | undefined;
  /** Queries in which the job was missing (squeue mode: asked again with scontrol). */
  missing: number;
}

/**
 * Follows every job of an executor with ONE scheduler query per interval, whatever their
 * number: `sacct` (or `squeue`) for the list of job ids still being watched. The interval starts
 * short, doubles while nothing changes (up to a maximum) and is short again after a change or a
 * {@link nudge}. A query that fails or times out changes nothing: the jobs are "unknown, still
 * active" and the next query asks again. Only in squeue mode, a job missing from squeue's answer
 * (purged after MinJobAge, or not listed yet) is asked about with `scontrol show job`, a few
 * per interval.
 */
export class JobTracker {
  readonly #options: JobTrackerOptions;
  readonly #watches = new Map<string, Watch>();
  #interval: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastQueryAt = 0;
  #closed = false;
  /** A nudge came while a query ran: the interval after it is the shortest. */
  #nudged = false;
  /** Queries made (both kinds), for tests and benchmarks. */
  queries = 0;

  constructor(options: JobTrackerOptions) {
    this.#options = options;
    this.#interval = options.intervalMs;
  }

  /** Starts following a job; `listener` hears its updates until the returned function is called. */
  watch(jobId: string, listener: (update: JobUpdate) => void): () => void {
    this.#watches.set(jobId, { listener, last: undefined, missing: 0, hurryUntil: 0 });
    // sacct shows a job a moment after submission (slurmctld writes it to slurmdbd on its own time).
    this.hurry(jobId);
    return () => {
      this.#watches.delete(jobId);
    };
  }

  /** Something changed (a job was submitted, an exit status file appeared): ask soon, within the shortest interval. */
  nudge(): void {
    this.#interval = this.#options.intervalMs;
    this.#nudged = true;
    this.#schedule();
  }

  /**
   * This job will change soon (its exit status file appeared, it was signalled): ask at the
   * shortest interval until the scheduler reports a change of it, for at most `forMs`. The
   * scheduler's own view can lag (sacct reads the accounting database, which slurmctld fills
   * asynchronously), so one quick query may not be enough.
   */
  hurry(jobId: string, forMs = 30_000): void {
    const watch = this.#watches.get(jobId);
    if (!watch) return;
    watch.hurryUntil = Date.now() + forMs;
    this.nudge();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#closed || this.#running || this.#watches.size === 0) return;
    const due = Math.max(0, this.#lastQueryAt + this.#interval - Date.now());
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#tick()
        .catch((err: unknown) => this.#options.onQueryFailed?.(String((err as Error).message ?? err)))
        .finally(() => {
          this.#running = undefined;
          this.#schedule();
        });
    }, due);
  }

  async #tick(): Promise<void> {
    const ids = [...this.#watches.keys()];
    if (ids.length === 0) return;
    this.#nudged = false;
    this.#lastQueryAt = Date.now();
    const mode = await this.#options.mode();
    this.queries++;
    const r = await this.#options.cli.call(mode, mode === "sacct" ? sacctArgs(ids) : squeueArgs(ids));
    let changed = false;
    if (r.ok || (mode === "squeue" && isUnknownJobError(r.stderr))) {
      const reports = new Map(
        (mode === "sacct" ? parseSacct(r.stdout) : parseSqueue(r.stdout)).map((x) => [x.jobId, x]),
      );
      const missing: string[] = [];
      for (const id of ids) {
        const report = reports.get(id);
        if (report) changed = this.#deliver(id, { kind: "report", report }) || changed;
        else missing.push(id);
      }
      // sacct: a job not in the database yet (it is written there a moment after submission).
      if (mode === "squeue" && missing.length > 0) changed = (await this.#askScontrol(missing)) || changed;
    } else {
      this.#options.onQueryFailed?.(
        `${mode} ${r.timedOut ? "timed out" : `exited ${r.exitCode}: ${r.stderr.trim()}`}`,
      );
    }
    const now = Date.now();
    const hurried = [...this.#watches.values()].some((w) => w.hurryUntil > now);
    this.#interval = nextPollInterval(this.#interval, changed || this.#nudged || hurried, this.#options);
  }

  /** Jobs squeue no longer lists: scontrol may still know them; a few per interval. */
  async #askScontrol(ids: string[]): Promise<boolean> {
    let changed = false;
    for (const id of ids.slice(0, 4)) {
      const watch = this.#watches.get(id);
      if (!watch) continue;
      watch.missing++;
      // Listed a moment ago and gone now is the usual case of a job just submitted: wait a round.
      if (watch.missing < 2) continue;
      this.queries++;
      const r = await this.#options.cli.call("scontrol", ["show", "job", id, "--oneliner"]);
      const report = r.ok ? parseScontrolJobs(r.stdout).find((x) => x.jobId === id) : undefined;
      if (report) changed = this.#deliver(id, { kind: "report", report }) || changed;
      else if (isUnknownJobError(r.stderr)) changed = this.#deliver(id, { kind: "forgotten" }) || changed;
    }
    return changed;
  }

  #deliver(id: string, update: JobUpdate): boolean {
    const watch = this.#watches.get(id);
    if (!watch) return false;
    if (update.kind === "report") watch.missing = 0;
    const key =
      update.kind === "report"
        ? `${update.report.state}|${update.report.exitCode}|${update.report.exitSignal}|${update.report.nodes}`
        : "forgotten";
    if (key === watch.last) return false;
    watch.last = key;
    watch.hurryUntil = 0;
    watch.listener(update);
    return true;
  }
}
