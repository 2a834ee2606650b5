import type { SchedulerCli } from "../scheduler/scheduler-cli.js";

/**
 * How a job is ended: `cancel` (scancel: the whole job, queued or running), `cancel-pending`
 * (scancel --state=PENDING: the job only if it still waits in the queue; a running one is left
 * alone), or `signal` (scancel --batch --signal=SIG: only the batch shell, which passes it on to
 * the container; SIGKILL ends the batch shell, and SLURM then ends every process of the job).
 */
export type CancelRequest =
  | { kind: "cancel" }
  | { kind: "cancel-pending" }
  | { kind: "signal"; signal: string };

/** The scancel arguments for one group of jobs (pure). */
export function scancelArgs(request: CancelRequest, jobIds: readonly string[]): string[] {
  const ids = [...jobIds];
  switch (request.kind) {
    case "cancel":
      return ids;
    case "cancel-pending":
      return ["--state=PENDING", ...ids];
    case "signal":
      return ["--batch", `--signal=${request.signal.replace(/^SIG/, "")}`, ...ids];
  }
}

/**
 * Many kills, one scancel: requests made within a short window are grouped by what they ask
 * and sent as one `scancel` per group. A failed scancel is not an error for anyone: jobs that
 * ended meanwhile are refused by it, and the tracker reports what really happened.
 */
export class CancelBatcher {
  readonly #cli: SchedulerCli;
  readonly #windowMs: number;
  #pending = new Map<string, { request: CancelRequest; ids: Set<string>; done: (() => void)[] }>();
  #timer: NodeJS.Timeout | undefined;
  /** scancel calls made, for tests. */
  calls = 0;

  constructor(cli: SchedulerCli, windowMs = 50) {
    this.#cli = cli;
    this.#windowMs = windowMs;
  }

  /** Resolves once the scancel carrying this request has returned (whatever it said). */
  request(jobId: string, request: CancelRequest): Promise<void> {
    const key = request.kind === "signal" ? `signal:${request.signal}` : request.kind;
    let group = this.#pending.get(key);
    if (!group) {
      group = { request, ids: new Set(), done: [] };
      this.#pending.set(key, group);
    }
    group.ids.add(jobId);
    const sent = new Promise<void>((resolve) => group.done.push(resolve));
    this.#timer ??= setTimeout(() => void this.#flush(), this.#windowMs);
    return sent;
  }

  async #flush(): Promise<void> {
    this.#timer = undefined;
    const groups = [...this.#pending.values()];
    this.#pending.clear();
    await Promise.all(
      groups.map(async (g) => {
        this.calls++;
        await this.#cli.call("scancel", scancelArgs(g.request, [...g.ids])).catch(() => undefined);
        for (const done of g.done) done();
      }),
    );
  }
}
