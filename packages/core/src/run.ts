import type { Readable } from "node:stream";
import type { ContainerExecutor, ExitStatus, KillOptions } from "./executor.js";
import type { StatusUpdate } from "./side-channels/supervisor-files.js";
import type { ContainerSpec } from "./spec.js";

export interface RunOptions {
  /** Bytes for the container's stdin (sets `spec.stdin`). */
  input?: string | Uint8Array;
  /** Aborting kills the container (with `kill`'s options) and rejects. */
  signal?: AbortSignal;
  kill?: KillOptions;
  /** With `spec.supervision`: called with each status update of the job, in order. */
  onStatus?: (update: StatusUpdate) => void;
}

/** The exit status (with the job's `result` under `spec.supervision`) and the whole output. */
export interface RunResult extends ExitStatus {
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * Runs a container to its end and returns its output: create, start, feed `input`, collect
 * stdout and stderr, wait, remove. For output too large to hold, use `create()` and the streams.
 */
export async function runContainer(
  executor: ContainerExecutor,
  spec: ContainerSpec,
  options: RunOptions = {},
): Promise<RunResult> {
  const container = await executor.create(options.input !== undefined ? { ...spec, stdin: true } : spec);
  try {
    const stdout = collect(container.stdout);
    const stderr = collect(container.stderr);
    // Awaited only on success; a failed start must not leave them as unhandled rejections.
    stdout.catch(() => {});
    stderr.catch(() => {});
    if (options.onStatus) container.supervision?.onStatus(options.onStatus);
    const onAbort = () => void container.kill(options.kill).catch(() => {});
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await container.start();
      if (container.stdin) container.stdin.end(options.input ?? "");
      const status = await container.wait(options.signal ? { signal: options.signal } : {});
      return { ...status, stdout: await stdout, stderr: await stderr };
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  } finally {
    await container.remove();
  }
}

/** Reads a stream to its end into one Buffer. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}
