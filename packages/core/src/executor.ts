import type { Readable, Writable } from "node:stream";
import type { ArchiveLimits } from "./archive/layer-entries.js";
import type { PlanOptions, RunPlan, RuntimeProfile } from "./plan/run-plan.js";
import type { Service, ServiceOptions, ServiceSummary } from "./service.js";
import type { Supervision } from "./side-channels/supervisor-files.js";
import type { ContainerSpec, ImageId } from "./spec.js";

export const CONTAINER_STATES = ["created", "running", "exited", "removed"] as const;
/**
 * `created` after {@link ContainerExecutor.create}, `running` after `start()`, `exited` when its
 * process has ended (on its own or killed), `removed` after `remove()`.
 */
export type ContainerState = (typeof CONTAINER_STATES)[number];

/** How a container's process ended. */
export interface ExitStatus {
  /** The process's exit code; 128+n when signal n ended it. */
  exitCode: number;
  /** The signal that ended it, when the exit code is 128+n for a known signal n. */
  signal?: NodeJS.Signals;
  /** True when the kernel's OOM killer ended it (where the runtime can tell). */
  oomKilled: boolean;
  /** With `spec.supervision`: the job's result file, read after it ended, when it wrote one. */
  result?: string;
}

/**
 * What the runtime is and what it can do here: its {@link RuntimeProfile} (which planning reads,
 * and `contexec probe --json` records) and free-form details for people.
 */
export interface RuntimeInfo extends RuntimeProfile {
  /** Free-form runtime details (API version, binary path, storage driver). */
  details: Record<string, string>;
}

export interface LoadOptions {
  signal?: AbortSignal;
  /** Called as bytes of the archive are read. `totalBytes` is known for paths, not streams. */
  onProgress?: (progress: { bytesRead: number; totalBytes?: number }) => void;
  /**
   * Bounds on the archive, each with a generous default (see {@link ArchiveLimits}): past one,
   * loadImage stops with ImageArchiveError naming the limit.
   */
  limits?: Partial<ArchiveLimits>;
}

export interface KillOptions {
  /** First signal; default: the image's STOPSIGNAL, else SIGTERM (on every backend). */
  signal?: NodeJS.Signals;
  /** How long to wait after the first signal before SIGKILL. Default 10 000 ms. */
  graceMs?: number;
}

export interface WaitOptions {
  signal?: AbortSignal;
}

export interface ExecOptions {
  env?: Record<string, string>;
  workdir?: string;
  /** Bytes given to the command's stdin; otherwise stdin reads EOF at once. */
  input?: string | Uint8Array;
  signal?: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * One container. stdout and stderr must be read (or resumed): like any pipe, an unread one fills
 * and then blocks the container's process.
 */
export interface Container extends AsyncDisposable {
  /** Runtime's id for this container (Docker's container id; a generated id elsewhere). */
  readonly id: string;
  /** Writable end of the container's stdin when `spec.stdin` is true; end() gives it EOF. */
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** With `spec.supervision`: the job's status updates, notifications to it, its result. */
  readonly supervision?: Supervision | undefined;
  state(): Promise<ContainerState>;
  /** Starts the process. Rejects with ContainerStateError unless the container is `created`. */
  start(): Promise<void>;
  /**
   * Sends `signal`, waits up to `graceMs` for the container to exit, then sends SIGKILL to
   * everything the container started. Resolves when it has exited. A no-op unless running.
   */
  kill(options?: KillOptions): Promise<void>;
  /**
   * Resolves with the exit status once the process has ended. Rejects with
   * CommandNotFoundError when the command could not be executed, and with RuntimeError when the
   * runtime failed. Rejects with ContainerStateError before `start()`.
   */
  wait(options?: WaitOptions): Promise<ExitStatus>;
  /** Runs a command inside the running container. */
  exec(argv: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Kills the container if running, then frees everything it held. Idempotent. */
  remove(): Promise<void>;
}

/**
 * One runtime, serving any number of containers at once. Disposable: `await using executor =
 * await createExecutor(...)` closes it at the end of the block.
 */
export interface ContainerExecutor extends AsyncDisposable {
  readonly runtime: string;
  info(): Promise<RuntimeInfo>;
  hasImage(image: string): Promise<boolean>;
  /**
   * Loads a docker-archive or OCI layout tarball (a path, a FIFO, or a stream); resolves with its
   * ImageId. Every backend checks every layer entry the same way first (see checkImageLayers) and
   * refuses a hostile or oversized archive with ImageArchiveError.
   */
  loadImage(archive: string | NodeJS.ReadableStream, options?: LoadOptions): Promise<ImageId>;
  /** Removes a loaded image. A no-op when it is not loaded. */
  removeImage(image: string): Promise<void>;
  /**
   * Plans a run of `spec` without running anything: validates it, checks capabilities and
   * resolves the image as `create()` does, and returns the {@link RunPlan} that `create()` would
   * run. With `options.profile` it plans for another machine (no runtime needed here).
   */
  plan(spec: ContainerSpec, options?: PlanOptions): Promise<RunPlan>;
  /** Validates the spec and creates a container from its plan; nothing runs until `start()`. */
  create(spec: ContainerSpec): Promise<Container>;
  /**
   * Starts a long-running container in the background (Docker: a detached container; Apptainer:
   * an instance) whose output goes to logs, and with `options.ready` waits until it is ready.
   */
  startService(spec: ContainerSpec, options?: ServiceOptions): Promise<Service>;
  /** The services this executor started and has not stopped, with their states. */
  listServices(): Promise<ServiceSummary[]>;
  /** Stops every service and removes every container this executor started. */
  close(): Promise<void>;
  /** The same as close(). */
  [Symbol.asyncDispose](): Promise<void>;
}
