import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { PassThrough, type Readable, type Writable } from "node:stream";
import {
  AbortedError,
  type CapabilityStatus,
  CommandNotFoundError,
  type Container,
  type ContainerError,
  type ContainerSpec,
  type ContainerState,
  ContainerStateError,
  type ExecOptions,
  type ExecProcess,
  type ExecResult,
  type ExitStatus,
  exitStatusFromCode,
  exitStatusFromSignal,
  type KillOptions,
  type RunPlan,
  RuntimeError,
  RuntimeUnavailableError,
  raceAbort,
  runCleanupSteps,
  runPlanSteps,
  type SideChannels,
  type Supervision,
  throwIfAborted,
  UnsupportedError,
  validateArgv,
  type WaitOptions,
} from "@contexec/core";
import { type ContainerRecord, processRef, type ResourceLedger } from "../owner/leftover-records.js";
import type { ApptainerCommand } from "../plan/render-apptainer-command.js";
import { type CgroupPlan, moveIntoCgroups, oomKilledIn } from "../process/cgroup-limits.js";
import { cgroupProcsFiles, joinCgroupsArgv, nsenterArgv } from "../process/nsenter.js";
import {
  type ContainerProcesses,
  descendantsOf,
  findContainerProcesses,
  findNamespaceInit,
  isSameProcess,
  listProcesses,
  namespaceOf,
  type ProcessEntry,
  processEntry,
  processesInNamespace,
  signalProcess,
} from "../process/process-tree.js";
import { classifyRuntimeFailure, StreamTail } from "../process/stderr-tail.js";
import { guardProcess } from "./exit-guard.js";
import { type FifoSource, type FifoStdio, openFifoStdio } from "./fifo-stdio.js";

/** Everything a container needs to run, decided by the executor at create(). */
export interface ContainerPlan {
  /** 64 hex digits, like Docker's ids. */
  id: string;
  spec: ContainerSpec;
  /** The run as planned: its steps before and after, and the runtime command (argv, env) it runs. */
  run: RunPlan;
  /** The rendered runtime command (the container's argv, folder and environment). */
  command: ApptainerCommand;
  /** "apptainer" or "singularity": names the runtime in errors. */
  runtime: string;
  /** Image STOPSIGNAL, the default first signal of kill(). */
  stopSignal: NodeJS.Signals | undefined;
  exec: CapabilityStatus;
  nsenter: string | undefined;
  /** The container's own cgroups (limits): made by the plan's steps at start, removed by its steps after exit. */
  cgroups: CgroupPlan | undefined;
  /** A private folder for the FIFOs of the standard streams. */
  fifoDir: FifoSource;
  /** The container's scratch folder (the plan makes it and removes it). */
  scratch: string;
  /** Its record in the executor's owner folder, for a sweep after a crash. */
  ledger: ResourceLedger<ContainerRecord>;
  /** The spec's host commands and supervision files: served while the container exists. */
  sideChannels: SideChannels;
  /** Called once the container is removed. */
  onRemoved: (c: ApptainerContainer) => void;
  /** Called when the runtime itself failed (not the command): what the probe found may no longer hold. */
  onRuntimeFailure?: () => void;
}

type Outcome = { status: ExitStatus } | { error: ContainerError };

const DEFAULT_GRACE_MS = 10_000;
// util-linux 2.38: "nsenter: failed to execute nosuch: No such file or directory" (exit 127).
const NSENTER_NOT_FOUND =
  /^nsenter: failed to execute (.*?): (No such file or directory|Permission denied)$/m;
/** After SIGKILL to the container's PID 1, how long Apptainer gets to clean up before it is killed too. */
const CLEANUP_MS = 2000;

/** One container run by `apptainer exec` in its own process group. */
export class ApptainerContainer implements Container {
  readonly id: string;
  readonly name: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly image: string;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly supervision: Supervision | undefined;

  readonly #plan: ContainerPlan;
  readonly #stdout = new PassThrough();
  readonly #stderr = new StreamTail(8192);
  readonly #stdin: PassThrough | null;
  #state: ContainerState = "created";
  #started = false;
  #child: ChildProcess | undefined;
  #processes: ContainerProcesses | undefined;
  #starting: Promise<void> | undefined;
  #done: Promise<Outcome> | undefined;
  #outcome: Outcome | undefined;
  #removing: Promise<void> | undefined;
  #forceKilling: Promise<void> | undefined;
  #unguard: (() => void) | undefined;
  /** Processes seen under the runtime when it was killed: checked again after it exits. */
  #killSnapshot: ProcessEntry[] = [];

  constructor(plan: ContainerPlan) {
    this.#plan = plan;
    this.id = plan.id;
    this.name = plan.spec.name;
    this.labels = Object.freeze({ ...(plan.spec.labels ?? {}) });
    this.image = plan.spec.image;
    this.#stdin = plan.spec.stdin ? new PassThrough() : null;
    this.stdin = this.#stdin;
    this.stdout = this.#stdout;
    this.stderr = this.#stderr;
    this.supervision = plan.sideChannels.supervision;
  }

  /** The runtime command this container runs (for logs and dry runs). */
  get command(): ApptainerCommand {
    return this.#plan.command;
  }

  /** The runtime process's pid while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async state(): Promise<ContainerState> {
    return this.#state;
  }

  async start(): Promise<void> {
    if (this.#state !== "created") throw new ContainerStateError("start", this.#state);
    this.#state = "running";
    this.#started = true;
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { command } = this.#plan.run;
    // Recorded before anything is made: a crash from here on leaves nothing a sweep cannot find.
    await this.#plan.ledger.write({
      kind: "container",
      id: this.id,
      scratch: this.#plan.scratch,
      cgroups: this.#plan.cgroups?.dirs ?? [],
    });
    try {
      await runPlanSteps(this.#plan.run.before);
    } catch (err) {
      return this.#failStart(
        new RuntimeError(
          this.#plan.runtime,
          `cannot prepare the container (its scratch folder or cgroups): ${(err as Error).message}`,
          { cause: err },
        ),
      );
    }
    let stdio: FifoStdio;
    try {
      stdio = await openFifoStdio(this.#plan.fifoDir, this.#stdin !== null);
    } catch (err) {
      return this.#failStart(
        new RuntimeError(
          this.#plan.runtime,
          `cannot make the container's standard streams: ${(err as Error).message}`,
          {
            cause: err,
          },
        ),
      );
    }
    // node:child_process, not execa: the container is a long-lived detached process group whose
    // streams go to the caller untouched, and its exit is observed apart from its streams ending.
    const child = spawn(command.argv[0] as string, command.argv.slice(1), {
      cwd: command.cwd,
      env: command.env,
      stdio: stdio.childStdio,
      detached: true,
    });
    this.#child = child;
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once("spawn", () => resolve(undefined));
      child.once("error", (err) => resolve(err));
    });
    stdio.closeChildEnds();
    if (spawned) {
      stdio.stdout.destroy();
      stdio.stderr.destroy();
      stdio.stdin?.destroy();
      return this.#failStart(
        new RuntimeUnavailableError(
          this.#plan.runtime,
          `cannot run ${command.argv[0]}: ${spawned.message}; check the installation (scripts/setup-apptainer.sh)`,
          { cause: spawned },
        ),
      );
    }
    const pid = child.pid as number;
    const self = this;
    this.#unguard = guardProcess({
      pid,
      get initPid() {
        return self.#processes?.init.pid;
      },
    });
    stdio.stdout.pipe(this.#stdout);
    stdio.stderr.pipe(this.#stderr);
    if (this.#stdin && stdio.stdin) {
      // A container that exits before reading its input must not crash us with EPIPE.
      stdio.stdin.on("error", () => {});
      this.#stdin.pipe(stdio.stdin);
    }
    this.#done = new Promise<Outcome>((resolve) => {
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let open = 2;
      let settled = false;
      const settle = () => {
        if (settled || !exit || open > 0) return;
        settled = true;
        stdio.stdin?.destroy();
        const { code, signal } = exit;
        void this.#oomKilled()
          .then((oom) => this.#outcomeOf(code, signal, oom))
          .then(async (o) =>
            "status" in o ? { status: await this.#plan.sideChannels.completeExit(o.status) } : o,
          )
          .then((o) => resolve(this.#finish(o)));
      };
      for (const stream of [stdio.stdout, stdio.stderr]) {
        stream.once("close", () => {
          open--;
          settle();
        });
      }
      child.once("exit", (code, signal) => {
        exit = { code, signal };
        settle();
        // The streams end when every writer is gone; one that escaped with them must not hold wait().
        setTimeout(() => {
          if (settled) return;
          stdio.stdout.destroy();
          stdio.stderr.destroy();
          this.#stdout.end();
          this.#stderr.end();
        }, 3000).unref();
      });
    });
    // Spawned detached, the runtime leads a session: what it starts stays in it (squashfuse_ll
    // too), which is how a sweep finds it all after a crash. (Not awaited: the exit must be
    // listened for from the start.)
    void processRef(pid).then((runtime) => runtime && this.#plan.ledger.write({ runtime }));
    // With limits, find the container's processes at once and put them under their limits.
    // (Without, nothing is looked up until kill or exec need it: a batch run pays nothing.)
    const cgroups = this.#plan.cgroups;
    if (cgroups) {
      void this.#findProcesses(5000)
        .then((found) => (found ? this.#confine(found, cgroups) : undefined))
        .catch(() => undefined);
    }
  }

  #failStart(error: ContainerError): never {
    void runCleanupSteps(this.#plan.run.after).then(() => this.#plan.ledger.forget());
    this.#state = "exited";
    this.#stdout.end();
    this.#stderr.end();
    this.#finish({ error });
    throw error;
  }

  async wait(options: WaitOptions = {}): Promise<ExitStatus> {
    if (!this.#started) throw new ContainerStateError("wait", this.#state, "start it first");
    const outcome =
      this.#outcome ??
      (await raceAbort(this.#done as Promise<Outcome>, options.signal, "waiting for the container"));
    if ("error" in outcome) throw outcome.error;
    return outcome.status;
  }

  async kill(options: KillOptions = {}): Promise<void> {
    if (this.#state !== "running" || !this.#done) return;
    const signal = options.signal ?? this.#plan.stopSignal ?? "SIGTERM";
    const grace = options.graceMs ?? DEFAULT_GRACE_MS;
    if (signal !== "SIGKILL") {
      // The runtime forwards the signal to the container's PID 1, as `docker kill` delivers it.
      signalProcess(this.#child?.pid as number, signal);
      const ended = await Promise.race([this.#done.then(() => true), delay(grace).then(() => false)]);
      if (ended) return;
    }
    await this.#forceKill();
  }

  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { argvIn, env } = await this.#prepareExec(argv, options);
    const r = await runCollected(argvIn, env, this.#plan.fifoDir, options.input, options.signal);
    if (options.signal?.aborted) throw new AbortedError("exec", { cause: options.signal.reason });
    const { stdout, stderr } = r;
    const notFound = NSENTER_NOT_FOUND.exec(stderr);
    if (notFound && (r.exitCode === 126 || r.exitCode === 127)) {
      throw new CommandNotFoundError(argv[0] as string, notFound[2]?.toLowerCase());
    }
    if (r.exitCode === 1 && /^nsenter: /.test(stderr) && !stdout) {
      if (this.#state !== "running") throw new ContainerStateError("exec", this.#state);
      throw new RuntimeError(this.#plan.runtime, `cannot enter the container: ${stderr.trim()}`, {
        runtimeExitCode: 1,
        stderr,
      });
    }
    const exitCode = r.exitCode ?? (r.signal ? exitStatusFromSignal(r.signal).exitCode : 255);
    return { exitCode, stdout, stderr };
  }

  /**
   * The streaming form of exec: the command's stdin (with `options.stdin`), stdout and stderr
   * as streams, and its exit code (128+n after signal n; 127 when nsenter could not execute it).
   */
  async execStream(
    argv: string[],
    options: Omit<ExecOptions, "input"> & { stdin?: boolean } = {},
  ): Promise<ExecProcess> {
    const { argvIn, env } = await this.#prepareExec(argv, options);
    return startFifoProcess(
      argvIn,
      env,
      this.#plan.fifoDir,
      options.stdin === true,
      options.signal,
      this.#plan.runtime,
    );
  }

  /** Checks that exec can run now and builds its nsenter argv and environment. */
  async #prepareExec(
    argv: string[],
    options: Omit<ExecOptions, "input">,
  ): Promise<{ argvIn: string[]; env: Record<string, string> }> {
    validateArgv(argv);
    throwIfAborted(options.signal, "exec");
    if (this.#state !== "running") throw new ContainerStateError("exec", this.#state);
    if (!this.#plan.exec.supported || !this.#plan.nsenter) {
      throw new UnsupportedError(
        "exec",
        this.#plan.exec.supported ? "nsenter is not installed" : this.#plan.exec.reason,
      );
    }
    const found = await this.#findProcesses(10_000);
    if (!found || this.#state !== "running")
      throw new ContainerStateError("exec", this.#outcome ? "exited" : this.#state);

    // The container's environment as its program got it; the caller's variables over it.
    const env: Record<string, string> = {
      ...((await readEnviron(found.main.pid)) ?? this.#plan.command.containerEnv),
    };
    Object.assign(env, options.env ?? {});
    const workdir = options.workdir ?? this.#plan.command.workdir;
    try {
      const argvIn = joinCgroupsArgv(
        await cgroupProcsFiles(found.main.pid).catch(() => []),
        await nsenterArgv(this.#plan.nsenter, found.main.pid, argv, workdir),
      );
      return { argvIn, env };
    } catch (err) {
      if (this.#state !== "running") throw new ContainerStateError("exec", this.#state);
      const code = (err as NodeJS.ErrnoException).code;
      throw new RuntimeError(
        this.#plan.runtime,
        code === "ENOENT" || code === "ENOTDIR"
          ? `cannot run ${argv[0]} in ${workdir}: no such folder in the container`
          : `cannot enter the container to run ${argv[0]}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  async remove(): Promise<void> {
    this.#removing ??= (async () => {
      // A start() under way finishes first, so that its process is known and can be killed.
      await this.#starting?.catch(() => {});
      if (this.#state === "running") await this.#forceKill();
      if (!this.#started) {
        this.#stdout.end();
        this.#stderr.end();
      }
      this.#stdin?.destroy();
      // Steps after are idempotent: a container that never started (or whose exit already ran them) loses nothing.
      await runCleanupSteps(this.#plan.run.after);
      await this.#plan.sideChannels.close();
      await this.#plan.ledger.forget();
      this.#state = "removed";
      this.#plan.onRemoved(this);
    })();
    return this.#removing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }

  /**
   * SIGKILL to the container's PID 1 ends every process of its PID namespace at once; Apptainer
   * then unmounts and exits by itself. Whatever is left after that (the runtime, its squashfuse
   * helper, anything in its process group) is killed by pid, from a snapshot taken first.
   */
  #forceKill(): Promise<void> {
    this.#forceKilling ??= (async () => {
      const done = this.#done as Promise<Outcome>;
      const pid = this.#child?.pid;
      if (pid === undefined || this.#outcome) return;
      const all = await listProcesses();
      const tree = new Set(descendantsOf(pid, all));
      const init = (this.#processes ?? (await this.#findProcesses(0)))?.init ?? (await this.#nsInit(pid));
      if (init) {
        const ns = await namespaceOf(init.pid, "pid");
        if (ns) for (const p of await processesInNamespace(ns)) tree.add(p);
      }
      this.#killSnapshot = all.filter((p) => tree.has(p.pid) || p.pid === pid);
      if (init && (await isSameProcess(init))) signalProcess(init.pid, "SIGKILL");
      if (init && (await Promise.race([done.then(() => true), delay(CLEANUP_MS).then(() => false)]))) return;
      signalProcess(-pid, "SIGKILL");
      for (const p of this.#killSnapshot) if (await isSameProcess(p)) signalProcess(p.pid, "SIGKILL");
      await done;
    })();
    return this.#forceKilling.then(() => this.#done).then(() => this.#reapSnapshot());
  }

  /** The PID namespace's init even while the container is still being set up. */
  async #nsInit(pid: number): Promise<ProcessEntry | undefined> {
    const ns = await findNamespaceInit(pid);
    return ns ? processEntry(ns.pid) : undefined;
  }

  /** Kills what a killed runtime left behind (its squashfuse helper has a process group of its own). */
  async #reapSnapshot(): Promise<void> {
    const left = this.#killSnapshot;
    this.#killSnapshot = [];
    for (const p of left) if (await isSameProcess(p)) signalProcess(p.pid, "SIGKILL");
  }

  /** The container's init and main process, waiting up to `timeoutMs` for them to appear. */
  async #findProcesses(timeoutMs: number): Promise<ContainerProcesses | undefined> {
    const pid = this.#child?.pid;
    if (pid === undefined) return undefined;
    const known = this.#processes;
    if (known && (await isSameProcess(known.init)) && (await isSameProcess(known.main))) return known;
    const started = Date.now();
    const deadline = started + timeoutMs;
    for (;;) {
      if (this.#outcome) return undefined;
      const found = await findContainerProcesses(pid);
      if (found) {
        this.#processes = found;
        return found;
      }
      if (Date.now() >= deadline) return undefined;
      // Often at first: the sooner the processes are found, the sooner they are under their limits.
      await delay(Date.now() - started < 300 ? 3 : 20);
    }
  }

  /**
   * Moves the container's processes (all of its PID namespace but Apptainer's init shim) into its
   * own cgroups, sweeping until no new process shows up; what they fork later is born inside.
   * Memory allocated before the move is charged along with them (v1 move_charge_at_immigrate).
   */
  async #confine(found: ContainerProcesses, plan: CgroupPlan): Promise<void> {
    const ns = await namespaceOf(found.init.pid, "pid");
    if (!ns) return;
    const done = new Set<number>([found.init.pid]);
    for (let sweep = 0; sweep < 10; sweep++) {
      const fresh = (await processesInNamespace(ns)).filter((p) => !done.has(p));
      if (fresh.length === 0) return;
      for (const p of await moveIntoCgroups(plan, fresh)) done.add(p);
      for (const p of fresh) done.add(p);
    }
  }

  /** Reads the OOM count of the container's memory cgroup, then runs the plan's steps after (its cgroups, its scratch folder go). */
  async #oomKilled(): Promise<boolean> {
    const plan = this.#plan.cgroups;
    try {
      return plan ? await oomKilledIn(plan) : false;
    } finally {
      await runCleanupSteps(this.#plan.run.after);
    }
  }

  #outcomeOf(code: number | null, signal: NodeJS.Signals | null, oomKilled: boolean): Outcome {
    // The runtime re-raises the signal its container died of, or exits 128+n.
    if (signal) return { status: exitStatusFromSignal(signal, oomKilled) };
    const exitCode = code ?? 255;
    const failure = classifyRuntimeFailure(
      exitCode,
      this.#stderr.text(),
      this.#plan.command.command[0] as string,
    );
    if (failure?.kind === "command-not-found") {
      return { error: new CommandNotFoundError(failure.command, failure.message) };
    }
    if (failure) {
      this.#plan.onRuntimeFailure?.();
      return {
        error: new RuntimeError(this.#plan.runtime, failure.message, {
          runtimeExitCode: exitCode,
          stderr: this.#stderr.text(),
        }),
      };
    }
    return { status: exitStatusFromCode(exitCode, oomKilled) };
  }

  #finish(outcome: Outcome): Outcome {
    this.#outcome ??= outcome;
    if (this.#state === "running") this.#state = "exited";
    this.#unguard?.();
    this.#unguard = undefined;
    void this.#reapSnapshot();
    return this.#outcome;
  }
}

async function readEnviron(pid: number): Promise<Record<string, string> | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/environ`, "utf8");
    const env: Record<string, string> = {};
    for (const entry of raw.split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch {
    return undefined;
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts a helper command (nsenter, `exec instance://`) with FIFO standard streams, as an
 * {@link ExecProcess}: its exit code is 128+n after signal n. Aborting kills its process group.
 */
export async function startFifoProcess(
  argv: string[],
  env: Record<string, string>,
  fifoDir: FifoSource,
  withStdin: boolean,
  signal: AbortSignal | undefined,
  runtime: string,
): Promise<ExecProcess & { pid: number | undefined }> {
  const stdio = await openFifoStdio(fifoDir, withStdin);
  const child = spawn(argv[0] as string, argv.slice(1), {
    env,
    cwd: "/",
    stdio: stdio.childStdio,
    detached: true,
  });
  const exitCode = new Promise<number>((resolve, reject) => {
    child.once("exit", (code, sig) => resolve(code ?? (sig ? exitStatusFromSignal(sig).exitCode : 255)));
    child.once("error", (err) =>
      reject(new RuntimeError(runtime, `cannot run ${argv[0]}: ${err.message}`, { cause: err })),
    );
  });
  exitCode.catch(() => {});
  stdio.closeChildEnds();
  stdio.stdin?.on("error", () => {});
  const onAbort = () => {
    if (child.pid !== undefined) signalProcess(-child.pid, "SIGKILL");
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  void exitCode.finally(() => signal?.removeEventListener("abort", onAbort)).catch(() => {});
  return { stdin: stdio.stdin, stdout: stdio.stdout, stderr: stdio.stderr, exitCode, pid: child.pid };
}

/**
 * Runs a helper command to its end with FIFO standard streams (so `> /dev/stderr` works in it),
 * collecting its output as text. Aborting kills its whole process group.
 */
export async function runCollected(
  argv: string[],
  env: Record<string, string>,
  fifoDir: FifoSource,
  input: string | Uint8Array | undefined,
  signal: AbortSignal | undefined,
): Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const stdio = await openFifoStdio(fifoDir, input !== undefined);
  const child = spawn(argv[0] as string, argv.slice(1), {
    env,
    cwd: "/",
    stdio: stdio.childStdio,
    detached: true,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdio.stdout.on("data", (b: Buffer) => out.push(b));
  stdio.stderr.on("data", (b: Buffer) => err.push(b));
  const closed = Promise.all([stdio.stdout, stdio.stderr].map((s) => new Promise((r) => s.once("close", r))));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once("exit", (code, sig) => resolve({ code, signal: sig }));
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
    },
  );
  stdio.closeChildEnds();
  const onAbort = () => {
    if (child.pid !== undefined) signalProcess(-child.pid, "SIGKILL");
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  if (stdio.stdin) {
    stdio.stdin.on("error", () => {});
    stdio.stdin.end(input ?? "");
  }
  try {
    const result = await exited;
    if (result.error) {
      stdio.stdout.destroy();
      stdio.stderr.destroy();
      throw result.error;
    }
    await closed;
    return {
      exitCode: result.code,
      signal: result.signal,
      stdout: Buffer.concat(out).toString("utf8"),
      stderr: Buffer.concat(err).toString("utf8"),
    };
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stdio.stdin?.destroy();
  }
}
