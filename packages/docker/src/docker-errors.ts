import {
  AbortedError,
  ContainerError,
  RuntimeError,
  RuntimeUnavailableError,
  TimeoutError,
} from "@contexec/core";

/** What dockerode (docker-modem) rejects with: an HTTP status and the daemon's JSON message. */
interface ModemError extends Error {
  statusCode?: number;
  json?: { message?: string } | string | null;
  code?: string;
  reason?: string;
}

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOENT",
  "EACCES",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

/** The daemon's own message for a failed API call. */
export function daemonMessage(err: unknown): string {
  const e = err as ModemError;
  if (e?.json && typeof e.json === "object" && typeof e.json.message === "string") return e.json.message;
  if (typeof e?.json === "string" && e.json) return e.json.trim();
  return e?.message ?? String(err);
}

export function statusOf(err: unknown): number | undefined {
  return (err as ModemError)?.statusCode;
}

/**
 * Maps a dockerode failure to contexec's errors: an unreachable daemon is RuntimeUnavailable
 * (with what to do), an abort or timeout is itself, anything else a RuntimeError with the
 * daemon's message.
 */
export function mapDockerError(err: unknown, operation: string, where: string): ContainerError {
  if (err instanceof ContainerError) return err;
  const e = err as ModemError;
  if (e?.name === "AbortError" || e?.code === "ABORT_ERR") {
    const reason = (e as { cause?: unknown }).cause;
    if (reason instanceof DOMException && reason.name === "TimeoutError") {
      return new TimeoutError(`${operation}: the Docker daemon at ${where} did not answer in time`, {
        cause: err,
      });
    }
    return new AbortedError(operation, { cause: err });
  }
  if (e?.code && UNREACHABLE.has(e.code) && e.statusCode === undefined) {
    return new RuntimeUnavailableError(
      "docker",
      `cannot reach the Docker daemon at ${where} (${e.code}). Start it (scripts/setup-docker.sh, \`dockerd &\` or \`systemctl start docker\`), or point DOCKER_HOST / the socketPath option at a running one`,
      { cause: err },
    );
  }
  return new RuntimeError("docker", `${operation} failed: ${daemonMessage(err)}`, { cause: err });
}

/**
 * Runs one short daemon call with a deadline. The signal is handed to dockerode for the calls
 * that honour it; the race makes sure the caller gets a TimeoutError even for those that do not,
 * so a daemon that accepts connections but never answers cannot hang the caller.
 */
export async function callDaemon<T>(
  operation: string,
  where: string,
  timeoutMs: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(
        new TimeoutError(`${operation}: the Docker daemon at ${where} did not answer within ${timeoutMs} ms`),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([fn(controller.signal), deadline]);
  } catch (err) {
    throw mapDockerError(err, operation, where);
  } finally {
    clearTimeout(timer);
  }
}
