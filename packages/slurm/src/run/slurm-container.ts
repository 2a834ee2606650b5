import { open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import {
  CommandNotFoundError,
  type Container,
  type ContainerSpec,
  type ContainerState,
  ContainerStateError,
  type ExecResult,
  type KillOptions,
  RuntimeError,
  raceAbort,
  type SideChannels,
  type Supervision,
  UnsupportedError,
  type WaitOptions,
} from "@contexec/core";
import { FileFollower } from "../io/file-follower.js";
import { StdinFile } from "../io/stdin-file.js";
import type { JobFiles } from "../job/job-files.js";
import type { JobReport } from "../scheduler/job-reports.js";
import {
  type ExitFile,
  exitStatusOf,
  parseExitFile,
  type SlurmExitStatus,
  viewOf,
} from "../scheduler/job-state.js";
import type { SchedulerCli } from "../scheduler/scheduler-cli.js";
import type { CancelBatcher } from "../track/cancel-batcher.js";
import type { JobTracker, JobUpdate } from "../track/job-tracker.js";
import { classifyInnerFailure } from "./inner-failure.js";

/** Why exec() is not offered on SLURM (see the README). */
export const EXEC_UNSUPPORTED =
  "the container runs as a batch job on another machine; running a command inside it would need a job step into the allocation (srun --overlap) and the inner runtime's own exec on the node, which this backend does not do";

export interface SlurmContainerContext {
  id: string;
  spec: ContainerSpec;
  files: JobFiles;
  /** The batch script, written to files.script at create(). */
  script: string;
  inner: "apptainer" | "docker";
  /** argv[0] of the container's process, for error messages. */
  program: string;
  stopSignal: NodeJS.Signals;
  cli: SchedulerCli;
  tracker: JobTracker;
  cancels: CancelBatcher;
  startWaitsForRunning: boolean;
  /** Runs a submission when the executor allows one more at once. */
  submit: <T>(fn: () => Promise<T>) => Promise<T>;
  /** The spec's host commands and supervision files, served from this machine while the container exists. */
  sideChannels?: SideChannels;
  onRemoved: (container: SlurmContainer) => void;
}

type Phase = "created" | "queued" | "running" | "exited" | "removed";
type Outcome = { status: SlurmExitStatus } | { error: Error };

const STDERR_TAIL_BYTES = 8192;

/**
 * One container run as a SLURM job. create() writes the job's folder and script; start()
 * submits it (sbatch) and, by default, resolves once the job runs. The executor's tracker
 * reports the job's state; stdout and stderr are the job's files, streamed as they grow;
 * wait() resolves with the container's status once the job has ended (its exit status file,
 * the scheduler's final state for time and memory limits).
 */
export class SlurmContainer implements Container {
  readonly id: string;
  readonly stdin: StdinFile | null;
  readonly stdout: FileFollower;
  readonly stderr: FileFollower;
  readonly supervision: Supervision | undefined;
  readonly #ctx: SlurmContainerContext;
  #phase: Phase = "created";
  #jobId: string | undefined;
  #nodes = "";
  #signalSent: NodeJS.Signals | undefined;
  #unwatch: (() => void) | undefined;
  #outcome: Outcome | undefined;
  readonly #done: Promise<SlurmExitStatus>;
  #settle!: (outcome: Outcome) => void;
  #runningWaiters: (() => void)[] = [];
  #exitPoll: NodeJS.Timeout | undefined;
  #submittedAt = 0;
  #finalizing = false;

  constructor(ctx: SlurmContainerContext) {
    this.#ctx = ctx;
    this.id = ctx.id;
    this.stdout = new FileFollower(ctx.files.stdout);
    this.stderr = new FileFollower(ctx.files.stderr);
    this.stdin = ctx.spec.stdin === true ? new StdinFile(ctx.files.stdin, ctx.files.stdinEnd) : null;
    this.supervision = ctx.sideChannels?.supervision;
    this.#done = new Promise<SlurmExitStatus>((resolve, reject) => {
      this.#settle = (outcome) => {
        if ("status" in outcome) resolve(outcome.status);
        else reject(outcome.error);
      };
    });
    // Nobody may be waiting: a failed job must not become an unhandled rejection.
    this.#done.catch(() => {});
  }

  /** The job's id, once submitted. */
  get jobId(): string | undefined {
    return this.#jobId;
  }

  /** The node(s) the job runs on, once running ("" before). */
  get nodes(): string {
    return this.#nodes;
  }

  get name(): string | undefined {
    return this.#ctx.spec.name;
  }

  get labels(): Record<string, string> {
    return this.#ctx.spec.labels ?? {};
  }

  get files(): JobFiles {
    return this.#ctx.files;
  }

  async state(): Promise<ContainerState> {
    switch (this.#phase) {
      case "created":
      case "queued":
        return "created";
      default:
        return this.#phase;
    }
  }

  async start(): Promise<void> {
    if (this.#phase !== "created" || this.#jobId !== undefined) {
      throw new ContainerStateError(
        "start",
        await this.state(),
        this.#jobId ? `job ${this.#jobId} was submitted already` : undefined,
      );
    }
    const out = await this.#ctx.submit(() =>
      this.#ctx.cli.run("sbatch", ["--parsable", this.#ctx.files.script], {
        cwd: this.#ctx.files.dir,
        // sbatch retries by itself while the controller is busy; give it time.
        timeoutMs: 300_000,
      }),
    );
    const m = /^(\d+)(?:;\S+)?\s*$/m.exec(out.trim());
    if (!m) throw new RuntimeError("slurm", `sbatch answered no job id: ${out.trim()}`);
    this.#jobId = m[1] as string;
    this.#phase = "queued";
    this.#submittedAt = Date.now();
    this.#unwatch = this.#ctx.tracker.watch(this.#jobId, (update) => this.#onUpdate(update));
    // A short job may have ended before the scheduler's answer shows it running (sacct lags).
    this.#pollExitFile(false);
    if (this.#ctx.startWaitsForRunning) await this.untilRunning();
  }

  /** Resolves once the job runs (or has ended already). */
  untilRunning(): Promise<void> {
    if (this.#phase === "running" || this.#phase === "exited" || this.#phase === "removed")
      return Promise.resolve();
    return new Promise((resolve) => this.#runningWaiters.push(resolve));
  }

  async wait(options: WaitOptions = {}): Promise<SlurmExitStatus> {
    if (this.#jobId === undefined) {
      throw new ContainerStateError("wait for", await this.state(), "start it first");
    }
    return raceAbort(this.#done, options.signal, "waiting for the container");
  }

  async kill(options: KillOptions = {}): Promise<void> {
    const jobId = this.#jobId;
    if (jobId === undefined || this.#outcome || this.#phase === "exited" || this.#phase === "removed") return;
    const signal = options.signal ?? this.#ctx.stopSignal;
    const graceMs = options.graceMs ?? 10_000;
    if (this.#phase === "queued") {
      // Queued as far as the tracker knows, which lags (sacct: a moment; an interval at most): a
      // job still waiting is cancelled, one that runs already is left to the signal below, so
      // its container still gets its stop signal and grace period.
      this.#signalSent = signal;
      await this.#ctx.cancels.request(jobId, { kind: "cancel-pending" });
    }
    if (signal === "SIGKILL") {
      this.#signalSent = "SIGKILL";
      await this.#ctx.cancels.request(jobId, { kind: "signal", signal: "KILL" });
    } else {
      this.#signalSent = signal;
      await this.#ctx.cancels.request(jobId, { kind: "signal", signal });
      // The end comes soon (or the job was cancelled in the queue): ask at the shortest interval.
      this.#ctx.tracker.hurry(jobId);
      this.#pollExitFile(true);
      const ended = await Promise.race([
        this.#done.then(
          () => true,
          () => true,
        ),
        delay(graceMs).then(() => false),
      ]);
      if (!ended && !this.#outcome) {
        this.#signalSent = "SIGKILL";
        await this.#ctx.cancels.request(jobId, { kind: "signal", signal: "KILL" });
      }
    }
    this.#ctx.tracker.hurry(jobId);
    await this.#done.catch(() => {});
  }

  async exec(_argv: string[]): Promise<ExecResult> {
    if (this.#phase !== "running") throw new ContainerStateError("exec into", await this.state());
    throw new UnsupportedError("exec", EXEC_UNSUPPORTED);
  }

  async remove(): Promise<void> {
    if (this.#phase === "removed") return;
    if (this.#jobId !== undefined && !this.#outcome) await this.kill({ graceMs: 2000 }).catch(() => {});
    this.#phase = "removed";
    this.#stopWatching();
    this.stdout.stop();
    this.stderr.stop();
    this.stdin?.destroy();
    for (const resolve of this.#runningWaiters.splice(0)) resolve();
    if (!this.#outcome) {
      this.#outcome = { error: new ContainerStateError("wait for", "removed") };
      this.#settle(this.#outcome);
    }
    await this.#ctx.sideChannels?.close();
    await rm(this.#ctx.files.dir, { recursive: true, force: true });
    this.#ctx.onRemoved(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }

  #onUpdate(update: JobUpdate): void {
    if (this.#outcome || this.#phase === "removed") return;
    if (update.kind === "forgotten") {
      void this.#finalizeForgotten();
      return;
    }
    const view = viewOf(update.report);
    switch (view.kind) {
      case "pending":
        // Requeued (preempted, node failure with requeue): back in the queue.
        if (this.#phase === "running") this.#phase = "queued";
        return;
      case "running":
        this.#nodes = view.nodes;
        if (this.#phase !== "running") {
          this.#phase = "running";
          this.stdout.follow();
          this.stderr.follow();
          this.#pollExitFile(false);
          for (const resolve of this.#runningWaiters.splice(0)) resolve();
        }
        return;
      case "finished":
        if (update.report.nodes) this.#nodes = update.report.nodes;
        void this.#finalize(view.report);
        return;
      case "broken":
        this.#finish({
          error: new RuntimeError(
            "slurm",
            `job ${view.report.jobId} ended ${view.report.state} (${view.report.reason}): the cluster failed, not the container; run it again`,
          ),
        });
        return;
      case "unknown":
        return;
    }
  }

  async #finalize(report: JobReport): Promise<void> {
    if (this.#finalizing) return;
    this.#finalizing = true;
    // The job script writes the status file before it exits; on a network file system it may
    // show a moment later than the scheduler's state. A job killed outright has none.
    let exitFile = await this.#readExitFile();
    const expectFile = report.state === "COMPLETED" || (report.state === "FAILED" && !report.exitSignal);
    for (let i = 0; !exitFile && expectFile && i < 20; i++) {
      await delay(100);
      exitFile = await this.#readExitFile();
    }
    if (exitFile?.phase === "setup") {
      const log = await tail(this.#ctx.files.log);
      this.#finish({
        error: new RuntimeError(
          "slurm",
          `job ${report.jobId} could not prepare the container (image or host steps) on ${this.#nodes || "its node"}: ${log.trim() || "no output"}`,
          { runtimeExitCode: exitFile.code, stderr: log },
        ),
      });
      return;
    }
    const status = exitStatusOf(report, exitFile, this.#signalSent);
    if (exitFile && !status.reason) {
      const stderrTail = await tail(this.#ctx.files.stderr);
      const failure = classifyInnerFailure(this.#ctx.inner, exitFile.code, stderrTail, this.#ctx.program);
      if (failure?.kind === "command-not-found") {
        this.#finish({ error: new CommandNotFoundError(failure.command, failure.message) });
        return;
      }
      if (failure) {
        this.#finish({
          error: new RuntimeError(this.#ctx.inner, failure.message, {
            runtimeExitCode: exitFile.code,
            stderr: stderrTail,
          }),
        });
        return;
      }
    }
    this.#finish({ status });
  }

  async #finalizeForgotten(): Promise<void> {
    const exitFile = await this.#readExitFile();
    if (exitFile?.phase === "container") {
      const report: JobReport = {
        jobId: this.#jobId as string,
        state: exitFile.code === 0 ? "COMPLETED" : "FAILED",
        exitCode: exitFile.code,
        exitSignal: 0,
        nodes: this.#nodes,
        reason: "None",
      };
      await this.#finalize(report);
      return;
    }
    this.#finish({
      error: new RuntimeError(
        "slurm",
        `job ${this.#jobId} is no longer known to the scheduler (purged after MinJobAge?) and left no exit status in ${this.#ctx.files.dir}; use tracking "sacct" where accounting is on`,
      ),
    });
  }

  #finish(outcome: Outcome): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    if (this.#phase !== "removed") this.#phase = "exited";
    this.#stopWatching();
    this.stdout.finish();
    this.stderr.finish();
    for (const resolve of this.#runningWaiters.splice(0)) resolve();
    const sideChannels = this.#ctx.sideChannels;
    if (!sideChannels || !("status" in outcome)) {
      this.#settle(outcome);
      return;
    }
    // The supervision's last status, and the job's result file, belong to the exit status.
    sideChannels.completeExit(outcome.status).then(
      (status) => this.#settle({ status }),
      (error: Error) => this.#settle({ error }),
    );
  }

  #stopWatching(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
    if (this.#exitPoll) clearTimeout(this.#exitPoll);
    this.#exitPoll = undefined;
  }

  /**
   * Looks for the exit status file while the job runs (and in its first 30 s, queued or not):
   * when it appears, the tracker asks the scheduler at its shortest interval until it reports
   * the end, instead of after a long pause. A queued job stops looking after 30 s; running
   * starts it again.
   */
  #pollExitFile(soon: boolean): void {
    if (this.#exitPoll) {
      if (!soon) return;
      clearTimeout(this.#exitPoll);
    }
    let pause = soon ? 50 : 200;
    const check = async () => {
      this.#exitPoll = undefined;
      if (this.#outcome || this.#phase === "removed") return;
      if (this.#phase === "queued" && Date.now() - this.#submittedAt > 30_000) return;
      const there = await stat(this.#ctx.files.exit).then(
        () => true,
        () => false,
      );
      if (there) {
        this.#ctx.tracker.hurry(this.#jobId as string);
        return;
      }
      pause = Math.min(pause * 2, 2000);
      this.#exitPoll = setTimeout(check, pause);
    };
    this.#exitPoll = setTimeout(check, pause);
  }

  async #readExitFile(): Promise<ExitFile | undefined> {
    try {
      return parseExitFile(await readFile(this.#ctx.files.exit, "utf8"));
    } catch {
      return undefined;
    }
  }

  /** Writes the job's folder: its script and an empty stdin file (the job reads it as it grows). */
  async prepare(): Promise<void> {
    await writeFile(this.#ctx.files.script, this.#ctx.script, { mode: 0o700 });
    if (this.stdin) await writeFile(this.#ctx.files.stdin, "");
  }
}

/** The last bytes of a file as text ("" when it is missing). */
async function tail(path: string, bytes = STDERR_TAIL_BYTES): Promise<string> {
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - bytes);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      return buffer.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return "";
  }
}
