import type { Readable, Writable } from "node:stream";
import type { ContainerState, ExecOptions, ExecResult, ExitStatus } from "./executor.js";

/**
 * How to tell that a service is ready. Checked repeatedly until it passes or the deadline ends:
 * - `tcp`: a container port accepts a connection (at {@link Service.endpoint});
 * - `http`: a GET of `path` on a container port answers with a status below 400 (or `status`);
 * - `log`: a line of the service's output matches;
 * - `exec`: a command run inside exits 0.
 */
export type ReadinessCheck =
  | { tcp: number }
  | { http: number; path?: string; status?: number }
  | { log: string | RegExp }
  | { exec: string[] };

export interface ReadinessOptions {
  /** Overall deadline; default 60 s. */
  timeoutMs?: number;
  /** Pause between attempts; default 200 ms. */
  intervalMs?: number;
  signal?: AbortSignal;
}

export interface ServiceOptions {
  /**
   * Use `spec.name` as the service's name as is. By default the library adds a random suffix
   * (`NAME-1a2b3c4d`, or `contexec-svc-...` without a name) so that names never collide.
   */
  exactName?: boolean;
  /** Wait for this before startService() resolves. */
  ready?: ReadinessCheck;
  readyOptions?: ReadinessOptions;
  signal?: AbortSignal;
}

export interface StopOptions {
  /** Time between the stop signal and SIGKILL; default 10 000 ms. */
  graceMs?: number;
  signal?: NodeJS.Signals;
}

/** A command running inside a service, with its streams. */
export interface ExecProcess {
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves with the exit code once the command has ended. */
  readonly exitCode: Promise<number>;
}

export interface ServiceLogs {
  stdout: string;
  stderr: string;
}

/** Where the caller reaches a container port. */
export interface Endpoint {
  host: string;
  port: number;
}

/**
 * A long-running container (a Docker container started detached, an Apptainer instance). Its
 * output goes to logs rather than to streams the caller must read.
 */
export interface Service extends AsyncDisposable {
  readonly id: string;
  /** The runtime's name for it (unique; made so by the library). */
  readonly name: string;
  state(): Promise<ContainerState>;
  exec(argv: string[], options?: ExecOptions): Promise<ExecResult>;
  /** The streaming form of exec: stdin (when `options.stdin`), stdout and stderr as streams. */
  execStream(
    argv: string[],
    options?: Omit<ExecOptions, "input"> & { stdin?: boolean },
  ): Promise<ExecProcess>;
  /** The service's output so far (the last `tail` lines of each stream, when given). */
  logs(options?: { tail?: number }): Promise<ServiceLogs>;
  /** Where a container port is reachable from the caller. */
  endpoint(containerPort: number): Promise<Endpoint>;
  /** Resolves when the service's process ends on its own (or is stopped). */
  wait(options?: { signal?: AbortSignal }): Promise<ExitStatus>;
  /**
   * Stops the service: signal, grace period, SIGKILL to everything it started; then frees what
   * it held. Resolves with how it ended. Stopping a stopped service returns the same status.
   */
  stop(options?: StopOptions): Promise<ExitStatus>;
}

/** What the executor reports of the services it started. */
export interface ServiceSummary {
  id: string;
  name: string;
  state: ContainerState;
}
