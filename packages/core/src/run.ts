import type { Readable } from "node:stream";
import { AbortedError, ContainerError, InvalidConfigError, RuntimeError, TimeoutError } from "./errors.js";
import type { ContainerExecutor, ExitStatus, KillOptions } from "./executor.js";
import { TailBuffer } from "./io/tail-buffer.js";
import type { StatusUpdate } from "./side-channels/supervisor-files.js";
import type { ContainerSpec } from "./spec.js";

export interface RunOptions {
  /** Bytes for the container's stdin (sets `spec.stdin`). */
  input?: string | Uint8Array;
  /**
   * Aborting kills the container (with `kill`'s options) and rejects with AbortedError, or with
   * TimeoutError when the reason is a timeout (`AbortSignal.timeout(ms)`).
   */
  signal?: AbortSignal;
  /**
   * Kills the container (with `kill`'s options: its grace period, then SIGKILL) once it has run
   * this long, and rejects with TimeoutError carrying what it printed and how it ended.
   */
  timeoutMs?: number;
  /**
   * Bytes of stdout, and of stderr, kept; past it the earliest bytes are dropped (and counted in
   * `truncatedBytes`) while the container runs on. Default 100 MiB each.
   */
  maxBuffer?: number;
  kill?: KillOptions;
  /** With `spec.supervision`: called with each status update of the job, in order. */
  onStatus?: (update: StatusUpdate) => void;
}

/** How a run went, in execa's shape: its exit status (with the job's `result` under `spec.supervision`) and output. */
export interface RunResult extends ExitStatus {
  stdout: Buffer;
  stderr: Buffer;
  /** Bytes dropped from the start of each stream to stay within `maxBuffer`. */
  truncatedBytes: { stdout: number; stderr: number };
  /** From the call to its end, container creation and removal included. */
  durationMs: number;
  /** True when `timeoutMs` (or a timeout signal) ended the run. */
  timedOut: boolean;
  /** True when the caller's signal ended the run. */
  isCanceled: boolean;
}

/**
 * What an error of a run carries as `err.result`: the output so far, and the exit status when
 * the container ran to an end (after a timeout or abort, the status of the killed process).
 */
export interface RunErrorResult extends Omit<RunResult, "exitCode" | "oomKilled"> {
  exitCode: number | undefined;
  oomKilled: boolean | undefined;
}

export const DEFAULT_MAX_BUFFER = 100 * 1024 * 1024;

/**
 * Runs a container to its end and returns its output: create, start, feed `input`, collect
 * stdout and stderr, wait, remove. Every error it rejects with is a {@link ContainerError}
 * whose `result` holds what the run had done. For output too large to hold, use `create()` and
 * the streams.
 */
export async function runContainer(
  executor: ContainerExecutor,
  spec: ContainerSpec,
  options: RunOptions = {},
): Promise<RunResult> {
  const started = performance.now();
  const maxBuffer = checkOptions(options);
  const out = { stdout: new TailBuffer(maxBuffer), stderr: new TailBuffer(maxBuffer) };
  let status: ExitStatus | undefined;
  let ended: "timeout" | "abort" | undefined;
  const result = (): RunErrorResult => ({
    exitCode: status?.exitCode,
    ...(status?.signal && { signal: status.signal }),
    oomKilled: status?.oomKilled,
    stdout: out.stdout.bytes(),
    stderr: out.stderr.bytes(),
    truncatedBytes: { stdout: out.stdout.droppedBytes, stderr: out.stderr.droppedBytes },
    durationMs: Math.round(performance.now() - started),
    timedOut: ended === "timeout",
    isCanceled: ended === "abort",
  });
  const fail = (err: unknown): never => {
    const error =
      err instanceof ContainerError
        ? err
        : new RuntimeError(
            executor.runtime,
            `running the container failed: ${(err as Error)?.message ?? err}`,
            {
              cause: err,
            },
          );
    error.result = result();
    throw error;
  };
  const { signal } = options;
  const stopReason = (): "timeout" | "abort" => (isTimeoutReason(signal?.reason) ? "timeout" : "abort");
  if (signal?.aborted) {
    ended = stopReason();
    fail(stoppedError(ended, options, signal));
  }

  const container = await executor
    .create(options.input !== undefined ? { ...spec, stdin: true } : spec)
    .catch(fail);
  let outcome: { ok: true } | { ok: false; error: unknown } = { ok: true };
  let timer: NodeJS.Timeout | undefined;
  const stop = (why: "timeout" | "abort") => {
    if (ended) return;
    ended = why;
    void container.kill(options.kill).catch(() => {});
  };
  const onAbort = () => stop(stopReason());
  try {
    const draining = [drain(container.stdout, out.stdout), drain(container.stderr, out.stderr)];
    if (options.onStatus) container.supervision?.onStatus(options.onStatus);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (options.timeoutMs !== undefined) timer = setTimeout(() => stop("timeout"), options.timeoutMs);
    await container.start();
    // A stop that came while it was starting found nothing running yet.
    if (ended) void container.kill(options.kill).catch(() => {});
    if (container.stdin) container.stdin.end(options.input ?? "");
    // No signal here: after a stop, wait() still gives the killed process's status.
    status = await container.wait();
    const streamError = (await Promise.all(draining)).find((e) => e !== undefined);
    if (ended) throw stoppedError(ended, options, signal);
    if (streamError !== undefined) {
      throw new RuntimeError(
        executor.runtime,
        `reading the container's output failed: ${(streamError as Error).message}`,
        {
          cause: streamError,
        },
      );
    }
  } catch (err) {
    outcome = { ok: false, error: err };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  try {
    await container.remove();
  } catch (err) {
    if (outcome.ok) outcome = { ok: false, error: err };
  }
  if (!outcome.ok) fail(outcome.error);
  const done = result();
  return {
    // A backend's own fields of its exit status (SLURM's jobId, jobState, reason) stay.
    ...status,
    ...done,
    exitCode: status?.exitCode as number,
    oomKilled: status?.oomKilled === true,
    ...(status?.result !== undefined && { result: status.result }),
  };
}

function checkOptions(options: RunOptions): number {
  const { timeoutMs, maxBuffer = DEFAULT_MAX_BUFFER } = options;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new InvalidConfigError(
      `runContainer: timeoutMs must be a positive number of milliseconds, not ${timeoutMs}`,
    );
  }
  if (!Number.isSafeInteger(maxBuffer) || maxBuffer < 0) {
    throw new InvalidConfigError(`runContainer: maxBuffer must be a number of bytes, not ${maxBuffer}`);
  }
  return maxBuffer;
}

function stoppedError(
  why: "timeout" | "abort",
  options: RunOptions,
  signal: AbortSignal | undefined,
): ContainerError {
  if (why === "abort") return new AbortedError("running the container", { cause: signal?.reason });
  const after =
    options.timeoutMs !== undefined && !signal?.aborted
      ? ` after ${options.timeoutMs} ms (timeoutMs)`
      : " (its signal timed out)";
  return new TimeoutError(`the container was killed: it was still running${after}`, {
    ...(signal?.aborted && { cause: signal.reason }),
  });
}

/** An abort reason that means "time is up": what AbortSignal.timeout() gives, or our own TimeoutError. */
function isTimeoutReason(reason: unknown): boolean {
  return (
    (reason instanceof DOMException && reason.name === "TimeoutError") ||
    (reason instanceof ContainerError && reason.code === "E_TIMEOUT")
  );
}

/** Reads a stream to its end into a tail buffer; resolves with its error instead of rejecting. */
function drain(stream: Readable, into: TailBuffer): Promise<unknown> {
  return new Promise((resolve) => {
    if (stream.readableEnded) return resolve(undefined);
    stream.on("data", (chunk: Buffer | string) => into.push(chunk));
    stream.once("end", () => resolve(undefined));
    stream.once("error", (err) => resolve(err));
    stream.once("close", () => resolve(undefined));
  });
}

/** Reads a stream to its end into one Buffer. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}
