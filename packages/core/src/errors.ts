import type { RunErrorResult } from "./run.js";

/**
 * Every error contexec throws on purpose is a {@link ContainerError} with a stable `code`, so a
 * caller can branch on `err.code` without parsing messages. Messages say what was wrong and
 * what to do about it. The original error, when there is one, is kept as `cause`.
 */

export const ERROR_CODES = [
  "E_INVALID_SPEC",
  "E_INVALID_CONFIG",
  "E_IMAGE_ARCHIVE",
  "E_IMAGE_NOT_FOUND",
  "E_RUNTIME_UNAVAILABLE",
  "E_RUNTIME",
  "E_CONTAINER_STATE",
  "E_COMMAND_NOT_FOUND",
  "E_UNSUPPORTED",
  "E_ABORTED",
  "E_TIMEOUT",
  "E_IO",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ContainerErrorOptions {
  cause?: unknown;
}

/** Root of every error contexec throws on purpose. */
export class ContainerError extends Error {
  readonly code: ErrorCode;
  /**
   * What the run had done when it failed (output so far, exit status when there is one, duration),
   * set on every error {@link runContainer} rejects with.
   */
  result?: RunErrorResult;
  constructor(code: ErrorCode, message: string, options: ContainerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found in a spec: where (`env.FOO`, `mounts[1].source`) and what. */
export interface SpecIssue {
  path: string;
  message: string;
}

/** A {@link ContainerSpec} that cannot run as given. Raised before anything is started. */
export class InvalidSpecError extends ContainerError {
  readonly issues: readonly SpecIssue[];
  constructor(issues: readonly SpecIssue[]) {
    const lines = issues.map((i) => `  ${i.path}: ${i.message}`).join("\n");
    super("E_INVALID_SPEC", `invalid container spec:\n${lines}`);
    this.issues = issues;
  }
}

/** An executor configuration that names an unknown backend or carries a bad option. */
export class InvalidConfigError extends ContainerError {
  constructor(message: string, options?: ContainerErrorOptions) {
    super("E_INVALID_CONFIG", message, options);
  }
}

/**
 * An image archive that is not a docker-archive or OCI layout tarball, is truncated or corrupt,
 * holds something hostile (a path escaping the root, a link outside the image), or goes past a
 * limit ({@link ArchiveLimits}). `member` names the archive member at fault (a layer, the
 * manifest) and `entry` the entry inside it (a layer's file), when there are such.
 */
export class ImageArchiveError extends ContainerError {
  readonly entry: string | undefined;
  /** Set by whoever knows which member was being read, when the reader itself did not. */
  member: string | undefined;
  /** The limit that was passed, when that is what went wrong: "maxLayerBytes", ... */
  readonly limit: string | undefined;
  constructor(
    message: string,
    options: ContainerErrorOptions & { entry?: string; member?: string; limit?: string } = {},
  ) {
    super("E_IMAGE_ARCHIVE", options.entry ? `${message} (entry "${options.entry}")` : message, options);
    this.entry = options.entry;
    this.member = options.member;
    this.limit = options.limit;
  }
}

/** The image is not loaded in this executor. */
export class ImageNotFoundError extends ContainerError {
  readonly image: string;
  constructor(image: string, options?: ContainerErrorOptions) {
    super(
      "E_IMAGE_NOT_FOUND",
      `image ${image} is not loaded in this executor; load it first with loadImage(archive)`,
      options,
    );
    this.image = image;
  }
}

/** The runtime cannot be reached: binary missing, daemon not running, socket refused. */
export class RuntimeUnavailableError extends ContainerError {
  readonly runtime: string;
  constructor(runtime: string, message: string, options?: ContainerErrorOptions) {
    super("E_RUNTIME_UNAVAILABLE", `${runtime} is not available: ${message}`, options);
    this.runtime = runtime;
  }
}

/**
 * The runtime itself failed (as opposed to the container's process exiting non-zero): a bad
 * image, a refused flag, an API error. Carries the runtime's own message and, for CLI runtimes,
 * its exit code.
 */
export class RuntimeError extends ContainerError {
  readonly runtime: string;
  readonly runtimeExitCode: number | undefined;
  readonly stderr: string | undefined;
  constructor(
    runtime: string,
    message: string,
    options: ContainerErrorOptions & { runtimeExitCode?: number; stderr?: string } = {},
  ) {
    super("E_RUNTIME", `${runtime}: ${message}`, options);
    this.runtime = runtime;
    this.runtimeExitCode = options.runtimeExitCode;
    this.stderr = options.stderr;
  }
}

/** An operation that the container's current state does not allow (start twice, exec when stopped). */
export class ContainerStateError extends ContainerError {
  readonly state: string;
  readonly operation: string;
  constructor(operation: string, state: string, detail?: string) {
    super(
      "E_CONTAINER_STATE",
      `cannot ${operation} a container that is ${state}${detail ? `: ${detail}` : ""}`,
    );
    this.state = state;
    this.operation = operation;
  }
}

/** The container's command could not be executed: not found in the image, or not executable. */
export class CommandNotFoundError extends ContainerError {
  readonly command: string;
  constructor(command: string, detail?: string, options?: ContainerErrorOptions) {
    super(
      "E_COMMAND_NOT_FOUND",
      `cannot execute "${command}" in the container${detail ? `: ${detail}` : ""}; check the spec's command/entrypoint and the image's PATH`,
      options,
    );
    this.command = command;
  }
}

/** The spec asks for something this runtime cannot do here; `capability` names it. */
export class UnsupportedError extends ContainerError {
  readonly capability: string;
  constructor(capability: string, reason: string) {
    super("E_UNSUPPORTED", `${capability} is not supported: ${reason}`);
    this.capability = capability;
  }
}

/** The caller's AbortSignal fired. */
export class AbortedError extends ContainerError {
  constructor(operation: string, options?: ContainerErrorOptions) {
    super("E_ABORTED", `${operation} was aborted`, options);
  }
}

/** A deadline passed. */
export class TimeoutError extends ContainerError {
  constructor(message: string, options?: ContainerErrorOptions) {
    super("E_TIMEOUT", message, options);
  }
}

/**
 * Reading or writing a file on the host failed inside a contexec operation: the disk is full, a
 * folder is read-only or not writable. `path` is the file, `errno` the system's code (ENOSPC).
 */
export class IoError extends ContainerError {
  readonly path: string;
  readonly errno: string | undefined;
  constructor(operation: string, path: string, cause: unknown) {
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
    super("E_IO", `${operation}: ${ioAdvice(errno, path, cause)}`, { cause });
    this.path = path;
    this.errno = errno;
  }
}

function ioAdvice(errno: string | undefined, path: string, cause: unknown): string {
  switch (errno) {
    case "ENOSPC":
    case "EDQUOT":
      return `no space left for ${path}; free some space there or point the tmpDir/cacheDir option at a folder with room`;
    case "EACCES":
    case "EPERM":
      return `no permission to write ${path}; use a folder this user may write to`;
    case "EROFS":
      return `${path} is on a read-only filesystem; use a writable folder`;
    default:
      return `cannot write ${path}: ${(cause as Error | undefined)?.message ?? String(cause)}`;
  }
}

/** An I/O failure as a {@link ContainerError}: an {@link IoError} unless it already is one. */
export function toIoError(err: unknown, operation: string, path: string): ContainerError {
  return err instanceof ContainerError ? err : new IoError(operation, path, err);
}

/** Throws {@link AbortedError} when `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, operation: string): void {
  if (signal?.aborted) throw new AbortedError(operation, { cause: signal.reason });
}

/**
 * Settles like `promise`, or rejects with {@link AbortedError} as soon as `signal` fires. The
 * operation itself is not cancelled: use it for waits whose abort must not stop the work.
 */
export async function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  operation: string,
): Promise<T> {
  if (!signal) return promise;
  throwIfAborted(signal, operation);
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new AbortedError(operation, { cause: signal.reason }));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
