import {
  CommandNotFoundError,
  type ContainerError,
  type ContainerState,
  ContainerStateError,
  type Endpoint,
  type ExecOptions,
  type ExecProcess,
  type ExecResult,
  type ExitStatus,
  exitStatusFromCode,
  exitStatusFromSignal,
  type NetworkMode,
  RuntimeError,
  raceAbort,
  type Service,
  type ServiceLogs,
  type StopOptions,
  validateArgv,
} from "@contexec/core";
import { processRef, type ResourceLedger, type ServiceRecord } from "../owner/leftover-records.js";
import {
  type ApptainerCommand,
  type RenderProbe,
  renderInstanceExec,
} from "../plan/render-apptainer-command.js";
import { envPrefixOf } from "../probe/runtime-version.js";
import { instanceStartFolder } from "../process/instance-start-folder.js";
import {
  findNamespaceInit,
  isSameProcess,
  type ProcessEntry,
  processEntry,
  signalProcess,
} from "../process/process-tree.js";
import { runTool } from "../process/run-tool.js";
import { classifyRuntimeFailure, StreamTail } from "../process/stderr-tail.js";
import { delay, runCollected, startFifoProcess } from "./apptainer-container.js";
import { guardProcess } from "./exit-guard.js";
import type { FifoSource } from "./fifo-stdio.js";

/** Bytes of each stream a service keeps for logs(): the most recent ones. */
const LOG_LIMIT = 1024 * 1024;
const DEFAULT_GRACE_MS = 10_000;
/** How long `instance start` may take before it counts as hung. */
const INSTANCE_START_TIMEOUT_MS = 120_000;

export interface ServicePlan {
  /** The instance's name: unique (the executor adds a random suffix unless told not to). */
  name: string;
  /** `apptainer instance start ...` and `apptainer exec instance://NAME ...` (renderApptainerInstance). */
  start: ApptainerCommand;
  main: ApptainerCommand;
  /** The runtime's own environment for both (allow-listed host variables + APPTAINERENV_*). */
  processEnv: Record<string, string>;
  /** The allow-listed host variables alone, to which an exec adds its APPTAINERENV_*. */
  baseEnv: Record<string, string>;
  render: RenderProbe;
  binary: string;
  runtime: string;
  network: NetworkMode | undefined;
  stopSignal: NodeJS.Signals | undefined;
  /** A private folder for the FIFOs of the standard streams. */
  fifoDir: FifoSource;
  /**
   * The folder `instance start` runs in: this service's own. Apptainer records it in the
   * instance's config, which tells this service's instance from another of the same name.
   */
  startCwd: string;
  /** Its record in the executor's owner folder (written before the instance starts), for a sweep after a crash. */
  ledger: ResourceLedger<ServiceRecord>;
  onStopped: (s: ApptainerService) => void;
}

type Outcome = { status: ExitStatus } | { error: ContainerError };

/**
 * A service as an Apptainer instance: `instance start` makes it (with the mounts, isolation and
 * limits of a batch run; the image's startscript runs in it), and the spec's command runs in it
 * through `exec instance://NAME`, its output kept in a bounded log. Other processes can reach it
 * as `instance://NAME` and see it in `apptainer instance list`. When the command ends, or on
 * stop(), the instance is ended: its init is killed, which ends every process in it.
 */
export class ApptainerService implements Service {
  readonly name: string;
  readonly #plan: ServicePlan;
  readonly #stdout = new LogBuffer(LOG_LIMIT);
  readonly #stderr = new LogBuffer(LOG_LIMIT);
  readonly #stderrTail = new StreamTail(8192);
  #state: ContainerState = "created";
  #instanceInit: ProcessEntry | undefined;
  /** `instance start` succeeded: the instance of this name is this service's. */
  #made = false;
  #mainPid: number | undefined;
  #done: Promise<Outcome> | undefined;
  #outcome: Outcome | undefined;
  #stopping: Promise<ExitStatus> | undefined;
  #ending: Promise<void> | undefined;
  #unguard: (() => void) | undefined;

  constructor(plan: ServicePlan) {
    this.#plan = plan;
    this.name = plan.name;
    this.#stderrTail.resume();
  }

  get id(): string {
    return this.name;
  }

  /** The commands this service runs (for logs and dry runs). */
  get commands(): { start: ApptainerCommand; main: ApptainerCommand } {
    return { start: this.#plan.start, main: this.#plan.main };
  }

  /** Makes the instance and starts the service's command in it. */
  async start(): Promise<void> {
    if (this.#state !== "created") throw new ContainerStateError("start", this.#state);
    this.#state = "running";
    const { start, processEnv, runtime } = this.#plan;
    const made = await runTool(start.argv, {
      env: processEnv,
      cwd: this.#plan.startCwd,
      timeoutMs: INSTANCE_START_TIMEOUT_MS,
    });
    if (made.exitCode !== 0) {
      this.#state = "exited";
      const stderr = String(made.stderr);
      const failure = classifyRuntimeFailure(made.exitCode ?? 255, stderr, start.command[0] as string);
      const error = new RuntimeError(
        runtime,
        `instance start failed: ${failure?.message ?? (stderr.trim() || `exit ${made.exitCode}`)}`,
        { ...(made.exitCode !== undefined && { runtimeExitCode: made.exitCode }), stderr },
      );
      this.#outcome = { error };
      // A half-made instance must not stay behind; one of the same name that was there first
      // (a refused duplicate) is not this service's and is left alone.
      await this.#endInstance();
      throw error;
    }
    this.#made = true;
    this.#instanceInit = await this.#findInstanceInit();
    const init = this.#instanceInit;
    if (init) await this.#plan.ledger.write({ init: { pid: init.pid, startTime: init.startTime } });
    await this.#startMain();
  }

  async #startMain(): Promise<void> {
    const { main, processEnv } = this.#plan;
    const proc = await startFifoProcess(
      main.argv,
      processEnv,
      this.#plan.fifoDir,
      false,
      undefined,
      this.#plan.runtime,
    );
    this.#mainPid = proc.pid;
    // If this process exits first, the instance goes with it (its init) and so does the command's exec.
    if (proc.pid !== undefined) {
      const initPid = this.#instanceInit?.pid;
      this.#unguard = guardProcess({ pid: proc.pid, initPid });
      void processRef(proc.pid).then((ref) => ref && this.#plan.ledger.write({ main: ref }));
    }
    proc.stdout.on("data", (b: Buffer) => this.#stdout.push(b));
    proc.stderr.on("data", (b: Buffer) => {
      this.#stderr.push(b);
      this.#stderrTail.write(b);
    });
    const closed = Promise.all(
      [proc.stdout, proc.stderr].map((s) => new Promise<void>((r) => s.once("close", () => r()))),
    );
    this.#done = proc.exitCode.then(
      // The output is complete once both streams have closed (bounded: a stray writer must not hold us).
      async (code) => {
        await Promise.race([closed, delay(3000)]);
        const outcome = this.#outcomeOf(code);
        // The command is the service: when it ends, so does the instance.
        void this.#endInstance();
        return this.#finish(outcome);
      },
      (error: ContainerError) => this.#finish({ error }),
    );
  }

  async state(): Promise<ContainerState> {
    return this.#state;
  }

  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { argvIn, env } = this.#prepareExec(argv, options);
    const r = await runCollected(argvIn, env, this.#plan.fifoDir, options.input, options.signal);
    const exitCode = r.exitCode ?? (r.signal ? exitStatusFromSignal(r.signal).exitCode : 255);
    this.#throwIfRuntimeFailed(exitCode, r.stderr, argv);
    return { exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async execStream(
    argv: string[],
    options: Omit<ExecOptions, "input"> & { stdin?: boolean } = {},
  ): Promise<ExecProcess> {
    const { argvIn, env } = this.#prepareExec(argv, options);
    return startFifoProcess(
      argvIn,
      env,
      this.#plan.fifoDir,
      options.stdin === true,
      options.signal,
      this.#plan.runtime,
    );
  }

  #prepareExec(
    argv: string[],
    options: Omit<ExecOptions, "input">,
  ): { argvIn: string[]; env: Record<string, string> } {
    validateArgv(argv);
    if (this.#state !== "running") throw new ContainerStateError("exec into", this.#state);
    const prefix = envPrefixOf(this.#plan.render.flavor);
    const extra = Object.fromEntries(Object.entries(options.env ?? {}).map(([k, v]) => [`${prefix}${k}`, v]));
    return {
      argvIn: renderInstanceExec(
        this.#plan.render,
        this.name,
        argv,
        options.workdir ?? this.#plan.main.workdir,
        {
          binary: this.#plan.binary,
        },
      ),
      env: { ...this.#plan.baseEnv, ...this.#plan.main.env, ...extra },
    };
  }

  #throwIfRuntimeFailed(exitCode: number, stderr: string, argv: string[]): void {
    const failure = classifyRuntimeFailure(exitCode, stderr, argv[0] as string);
    if (!failure) return;
    if (failure.kind === "command-not-found")
      throw new CommandNotFoundError(failure.command, failure.message);
    if (this.#state !== "running") throw new ContainerStateError("exec into", this.#state);
    throw new RuntimeError(this.#plan.runtime, failure.message, { runtimeExitCode: exitCode, stderr });
  }

  async logs(options: { tail?: number } = {}): Promise<ServiceLogs> {
    return { stdout: this.#stdout.text(options.tail), stderr: this.#stderr.text(options.tail) };
  }

  /** Apptainer shares the host's network (no port publishing): a port is reached on the host. */
  async endpoint(containerPort: number): Promise<Endpoint> {
    if (this.#state !== "running") throw new ContainerStateError("reach", this.#state);
    if (this.#plan.network === "none") {
      throw new ContainerStateError(
        "reach",
        "without a network",
        `port ${containerPort} is in a network namespace of its own (network "none")`,
      );
    }
    return { host: "127.0.0.1", port: containerPort };
  }

  async wait(options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    if (!this.#done && !this.#outcome)
      throw new ContainerStateError("wait for", this.#state, "start it first");
    const outcome =
      this.#outcome ??
      (await raceAbort(this.#done as Promise<Outcome>, options.signal, "waiting for the service"));
    if ("error" in outcome) throw outcome.error;
    return outcome.status;
  }

  stop(options: StopOptions = {}): Promise<ExitStatus> {
    this.#stopping ??= this.#stop(options);
    return this.#stopping;
  }

  async #stop(options: StopOptions): Promise<ExitStatus> {
    if (this.#state === "running" && this.#done) {
      // The signal goes to the command itself: Apptainer's exec process does not pass it on
      // (it dies of it, leaving a trap in the command unrun).
      const signal = options.signal ?? this.#plan.stopSignal ?? "SIGTERM";
      const target = await this.#mainPayload();
      if (target) signalProcess(target.pid, signal);
      else if (this.#mainPid !== undefined) signalProcess(this.#mainPid, signal);
      const graceMs = signal === "SIGKILL" ? 0 : (options.graceMs ?? DEFAULT_GRACE_MS);
      const ended = await Promise.race([this.#done.then(() => true), delay(graceMs).then(() => false)]);
      // Killing the instance's init ends every process in it, the command included.
      if (!ended) await this.#endInstance();
    }
    const outcome = this.#outcome ?? (this.#done ? await this.#done : undefined);
    await this.#endInstance();
    if (this.#state !== "created") this.#state = "removed";
    this.#plan.onStopped(this);
    if (!outcome) throw new ContainerStateError("stop", "created", "it was never started");
    if ("error" in outcome) throw outcome.error;
    return outcome.status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop().catch(() => {});
  }

  /** The command's own process: the first process of our exec in the instance's PID namespace. */
  async #mainPayload(): Promise<ProcessEntry | undefined> {
    const pid = this.#mainPid;
    if (pid === undefined) return undefined;
    const found = await findNamespaceInit(pid);
    return found ? processEntry(found.pid) : undefined;
  }

  /**
   * This service's instance's init (the pid `instance list` gives), to end the instance by. An
   * instance of this name started from another folder is another's. Where the start folder cannot
   * be read (a setuid starter's processes), the name is trusted only once `instance start` has
   * succeeded.
   */
  async #findInstanceInit(): Promise<ProcessEntry | undefined> {
    const pid = await this.#listedPid();
    if (pid === undefined) return undefined;
    const folder = await instanceStartFolder(pid);
    const ours = folder !== undefined ? folder === this.#plan.startCwd : this.#made;
    return ours ? processEntry(pid) : undefined;
  }

  /**
   * Ends this service's instance, and nothing else: SIGKILL to its init ends every process in
   * its PID namespace and Apptainer cleans up after it (0.15 s here, where `instance stop` takes
   * 1.5-3.5 s). `instance stop --force` is the fallback while the name is still listed with that
   * init's pid.
   */
  #endInstance(): Promise<void> {
    this.#ending ??= (async () => {
      const init = this.#instanceInit ?? (await this.#findInstanceInit().catch(() => undefined));
      this.#unguard?.();
      this.#unguard = undefined;
      if (!init) return;
      if (await isSameProcess(init)) signalProcess(init.pid, "SIGKILL");
      for (let i = 0; i < 100; i++) {
        if ((await this.#listedPid()) !== init.pid) return;
        await delay(50);
      }
      await runTool([this.#plan.binary, "instance", "stop", "--force", this.name], {
        env: this.#plan.baseEnv,
      });
    })();
    return this.#ending;
  }

  /** The pid `instance list` gives for this service's name, whoever's instance that is. */
  async #listedPid(): Promise<number | undefined> {
    const r = await runTool([this.#plan.binary, "instance", "list", "--json", this.name], {
      env: this.#plan.baseEnv,
    });
    return parseInstanceList(String(r.stdout)).find((i) => i.name === this.name)?.pid;
  }

  /** The exit code comes as 128+n when signal n ended the runtime process. */
  #outcomeOf(exitCode: number): Outcome {
    const failure = classifyRuntimeFailure(
      exitCode,
      this.#stderrTail.text(),
      this.#plan.main.command[0] as string,
    );
    if (failure?.kind === "command-not-found")
      return { error: new CommandNotFoundError(failure.command, failure.message) };
    if (failure) {
      return {
        error: new RuntimeError(this.#plan.runtime, failure.message, {
          runtimeExitCode: exitCode,
          stderr: this.#stderrTail.text(),
        }),
      };
    }
    return { status: exitStatusFromCode(exitCode) };
  }

  #finish(outcome: Outcome): Outcome {
    this.#outcome ??= outcome;
    if (this.#state === "running") this.#state = "exited";
    return this.#outcome;
  }
}

/** `apptainer instance list --json`: `{ instances: [{ instance, pid, img, ... }] }`. */
export function parseInstanceList(json: string): { name: string; pid: number; image: string }[] {
  try {
    const parsed = JSON.parse(json) as { instances?: { instance?: unknown; pid?: unknown; img?: unknown }[] };
    return (parsed.instances ?? [])
      .filter((i) => typeof i.instance === "string" && typeof i.pid === "number")
      .map((i) => ({ name: i.instance as string, pid: i.pid as number, image: String(i.img ?? "") }));
  } catch {
    return [];
  }
}

/** The last `limit` bytes of a stream, read back as text or as its last lines. */
export class LogBuffer {
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#chunks.length > 1 && this.#size - (this.#chunks[0] as Buffer).length >= this.#limit) {
      this.#size -= (this.#chunks.shift() as Buffer).length;
    }
  }

  text(tail?: number): string {
    const all = Buffer.concat(this.#chunks);
    const s = all.subarray(Math.max(0, all.length - this.#limit)).toString("utf8");
    if (tail === undefined) return s;
    const lines = s.split("\n");
    const complete = lines.at(-1) === "" ? lines.slice(0, -1) : lines;
    return complete.length <= tail ? s : `${complete.slice(-tail).join("\n")}\n`;
  }
}
