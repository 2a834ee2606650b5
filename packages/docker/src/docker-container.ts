import { PassThrough, Readable, type Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import {
  CommandNotFoundError,
  type Container,
  type ContainerState,
  ContainerStateError,
  type ExecOptions,
  type ExecProcess,
  type ExecResult,
  type ExitStatus,
  exitStatusFromCode,
  type KillOptions,
  RuntimeUnavailableError,
  raceAbort,
  type SideChannels,
  type Supervision,
  TailBuffer,
  validateArgv,
  type WaitOptions,
} from "@contexec/core";
import type Dockerode from "dockerode";
import { ConnectionLostError, type DaemonLiveness, requestWait } from "./daemon-liveness.js";
import { demuxBuffer, demuxStream } from "./demux-stream.js";
import { daemonMessage, mapDockerError, statusOf } from "./docker-errors.js";
import { runExec, type StartExecOptions, startExec } from "./docker-exec.js";

const DEFAULT_GRACE_MS = 10_000;

/**
 * runc's words when the process cannot be executed (missing binary, not executable, bad
 * interpreter). They arrive as the daemon's start error, or as exec output.
 */
const EXEC_FAILURE =
  /executable file not found|no such file or directory|permission denied|exec format error/i;
/** The init (tini) reports a command it could not execute this way, then exits 126 or 127. */
const INIT_EXEC_FAILURE = /\[FATAL tini \(\d+\)\] exec (.*) failed: (.*)/;
const STDERR_TAIL_BYTES = 4096;

export interface DockerContainerContext {
  where: string;
  /** Runs a short daemon call with the executor's deadline, mapping its errors. */
  short: <T>(operation: string, fn: (signal: AbortSignal) => Promise<T>) => Promise<T>;
  /** Notices a daemon that dies while wait() is pending. */
  liveness: DaemonLiveness;
  /** argv[0], for error messages. */
  program: string;
  /** The image's STOPSIGNAL: kill()'s default first signal, as on every backend. */
  stopSignal: NodeJS.Signals | undefined;
  /** The spec's host commands and supervision files: served while the container exists. */
  sideChannels: SideChannels;
  onRemoved: (c: DockerContainer) => void;
}

export class DockerContainer implements Container {
  readonly id: string;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly supervision: Supervision | undefined;
  readonly #container: Dockerode.Container;
  readonly #attach: NodeJS.ReadWriteStream | null;
  readonly #ctx: DockerContainerContext;
  readonly #outputDone: Promise<void>;
  readonly #stderrTail = new TailBuffer(STDERR_TAIL_BYTES);
  #state: ContainerState = "created";
  #exit: Promise<ExitStatus> | undefined;
  #removing: Promise<void> | undefined;

  /**
   * With `attach` null the container runs detached (a service): its output goes to the daemon's
   * log, stdout/stderr here are empty.
   */
  constructor(
    container: Dockerode.Container,
    attach: NodeJS.ReadWriteStream | null,
    stdin: boolean,
    ctx: DockerContainerContext,
  ) {
    this.id = container.id;
    this.#container = container;
    this.#attach = attach;
    this.#ctx = ctx;
    this.supervision = ctx.sideChannels.supervision;
    if (attach === null) {
      this.stdout = Readable.from([]);
      this.stderr = Readable.from([]);
      this.#outputDone = Promise.resolve();
      this.stdin = null;
      return;
    }
    const { stdout, stderr, done } = demuxStream(attach as unknown as Readable, (chunk) =>
      this.#stderrTail.push(chunk),
    );
    this.stdout = stdout;
    this.stderr = stderr;
    this.#outputDone = done;
    if (stdin) {
      // A separate writable end: ending it half-closes the hijacked connection, which the
      // daemon turns into EOF on the container's stdin.
      const input = new PassThrough();
      input.pipe(attach as unknown as Writable);
      this.stdin = input;
    } else {
      this.stdin = null;
    }
  }

  async state(): Promise<ContainerState> {
    if (this.#state !== "running") return this.#state;
    try {
      const info = await this.#ctx.short("inspecting the container", (signal) =>
        this.#container.inspect({ abortSignal: signal }),
      );
      return info.State.Running ? "running" : "exited";
    } catch (err) {
      if (statusOf((err as Error).cause) === 404) return "removed";
      throw err;
    }
  }

  async start(): Promise<void> {
    if (this.#state !== "created") throw new ContainerStateError("start", this.#state);
    this.#state = "running";
    try {
      await this.#ctx.short("starting the container", (signal) =>
        this.#container.start({ abortSignal: signal }),
      );
    } catch (wrapped) {
      const err = (wrapped as Error).cause ?? wrapped;
      const message = daemonMessage(err);
      this.#closeStreams();
      if (statusOf(err) !== undefined && EXEC_FAILURE.test(message) && /exec/i.test(message)) {
        // The container exists but its process never ran. Report it from wait(), as every
        // backend does: some runtimes only learn this after the process was launched.
        this.#state = "exited";
        this.#exit = Promise.reject(new CommandNotFoundError(this.#ctx.program, message, { cause: err }));
        this.#exit.catch(() => {});
        return;
      }
      this.#state = "created";
      throw wrapped;
    }
    this.#exit = this.#watchExit();
    this.#exit.then(
      () => {
        if (this.#state === "running") this.#state = "exited";
      },
      () => {
        if (this.#state === "running") this.#state = "exited";
      },
    );
  }

  async #watchExit(): Promise<ExitStatus> {
    try {
      const code = await this.#exitCode();
      const info = await this.#ctx.short("inspecting the container", (signal) =>
        this.#container.inspect({ abortSignal: signal }),
      );
      if (code === 126 || code === 127) {
        // The init's message may still be in flight on the attach stream.
        await Promise.race([this.#outputDone, delay(1000)]);
        const failure = INIT_EXEC_FAILURE.exec(await this.#stderrTailNow());
        if (failure) throw new CommandNotFoundError(failure[1] ?? this.#ctx.program, failure[2]);
      }
      return await this.#ctx.sideChannels.completeExit(
        exitStatusFromCode(code, info.State.OOMKilled === true),
      );
    } catch (err) {
      throw this.#map(err, "waiting for the container");
    }
  }

  /**
   * The container's exit code from the daemon's wait, watched: a daemon that dies meanwhile
   * (its connection closes, or it stops answering pings) gives RuntimeUnavailableError within
   * seconds instead of a wait that never ends. A daemon that closed the connection but answers
   * (it restarted) is asked for the container's state.
   */
  async #exitCode(): Promise<number> {
    for (;;) {
      const request = new AbortController();
      const watch = this.#ctx.liveness.watch();
      try {
        return (await Promise.race([requestWait(this.#container, request.signal), watch.gone])).StatusCode;
      } catch (err) {
        if (!(err instanceof ConnectionLostError)) throw err;
        const info = await this.#ctx.short("inspecting the container", (signal) =>
          this.#container.inspect({ abortSignal: signal }),
        );
        // Still running: the daemon restarted with live-restore and kept it; wait again.
        if (!info.State.Running) return info.State.ExitCode ?? 255;
      } finally {
        request.abort();
        watch.stop();
      }
    }
  }

  /** The end of stderr: from the attach stream, or from the daemon's log when detached. */
  async #stderrTailNow(): Promise<string> {
    if (this.#attach) return this.#stderrTail.text();
    const logs = (await this.#ctx.short("reading the container's log", (signal) =>
      this.#container.logs({ stdout: false, stderr: true, tail: 20, follow: false, abortSignal: signal }),
    )) as Buffer;
    return demuxBuffer(logs).stderr.toString("utf8");
  }

  async wait(options: WaitOptions = {}): Promise<ExitStatus> {
    const exit = this.#exit;
    if (!exit) throw new ContainerStateError("wait for", this.#state, "start() it first");
    return raceAbort(exit, options.signal, "waiting for the container");
  }

  async kill(options: KillOptions = {}): Promise<void> {
    if (this.#state !== "running" || !this.#exit) return;
    const exited = this.#exit.then(
      () => true,
      () => true,
    );
    const signal = options.signal ?? this.#ctx.stopSignal ?? "SIGTERM";
    if (await this.#signal(signal)) {
      const graceMs = signal === "SIGKILL" ? 0 : (options.graceMs ?? DEFAULT_GRACE_MS);
      const timer = new AbortController();
      const inTime = await Promise.race([
        exited,
        delay(graceMs, false, { signal: timer.signal }).catch(() => false),
      ]);
      timer.abort();
      // SIGKILL reaches the container's init; the kernel then ends everything in its PID namespace.
      if (!inTime) await this.#signal("SIGKILL");
    }
    await exited;
  }

  /** Sends a signal; false when the container was no longer running. */
  async #signal(signal: NodeJS.Signals): Promise<boolean> {
    try {
      await this.#ctx.short(`sending ${signal}`, (abortSignal) =>
        this.#container.kill({ signal, abortSignal }),
      );
      return true;
    } catch (err) {
      const status = statusOf((err as Error).cause);
      if (status === 409 || status === 404) return false;
      throw err;
    }
  }

  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    validateArgv(argv);
    await this.#mustBeRunning("exec into");
    try {
      return await runExec(this.#container, argv, options);
    } catch (err) {
      throw this.#mapExec(err);
    }
  }

  /** The streaming form of exec (services use it). */
  async execStream(argv: string[], options: StartExecOptions = {}): Promise<ExecProcess> {
    validateArgv(argv);
    await this.#mustBeRunning("exec into");
    try {
      return await startExec(this.#container, argv, options);
    } catch (err) {
      throw this.#mapExec(err);
    }
  }

  async #mustBeRunning(operation: string): Promise<void> {
    const state = await this.state();
    if (state !== "running") throw new ContainerStateError(operation, state);
  }

  #mapExec(err: unknown) {
    if (statusOf(err) === 409) return new ContainerStateError("exec into", "exited");
    return this.#map(err, "exec");
  }

  remove(): Promise<void> {
    this.#removing ??= this.#remove();
    return this.#removing;
  }

  async #remove(): Promise<void> {
    try {
      if (this.#state === "running") await this.kill({ signal: "SIGKILL" });
      await this.#ctx.short("removing the container", (signal) =>
        this.#container.remove({ force: true, v: true, abortSignal: signal }),
      );
    } catch (wrapped) {
      const err = (wrapped as Error).cause ?? wrapped;
      if (
        wrapped instanceof RuntimeUnavailableError ||
        (statusOf(err) !== 404 && !/removal of container .* is already in progress/.test(daemonMessage(err)))
      ) {
        // Tried again by the next remove() (or close()), once the daemon answers.
        this.#removing = undefined;
        throw this.#map(wrapped, "removing the container");
      }
    }
    await this.#ctx.sideChannels.close();
    // The daemon closes the attach connection itself; output not yet read stays readable.
    this.#state = "removed";
    this.#ctx.onRemoved(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }

  /** Ends stdout/stderr for readers when the process never ran. */
  #closeStreams(): void {
    if (!this.#attach) return;
    const attach = this.#attach as unknown as { destroy?: () => void; end?: () => void };
    if (typeof attach.destroy === "function") attach.destroy();
    else attach.end?.();
  }

  /** The dockerode handle, for what this class does not cover (logs, ports). */
  get handle(): Dockerode.Container {
    return this.#container;
  }

  #map(err: unknown, operation: string) {
    return mapDockerError(err, operation, this.#ctx.where);
  }
}
