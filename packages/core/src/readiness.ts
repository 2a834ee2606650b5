import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import { AbortedError, ContainerError, ContainerStateError, TimeoutError } from "./errors.js";
import type { ReadinessCheck, ReadinessOptions, Service, ServiceOptions } from "./service.js";

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_INTERVAL_MS = 200;
const LOG_LINES_IN_ERROR = 20;
const TCP_SETTLE_MS = 150;

/** A readable name for a check, for messages. */
export function describeCheck(check: ReadinessCheck): string {
  if ("tcp" in check) return `TCP port ${check.tcp} to accept connections`;
  if ("http" in check) return `HTTP GET :${check.http}${check.path ?? "/"} to answer`;
  if ("log" in check) return `a log line matching ${String(check.log)}`;
  return `\`${check.exec.join(" ")}\` to exit 0`;
}

/**
 * Waits until `check` passes for the service, trying every `intervalMs` until `timeoutMs`.
 * Fails at once when the service's process ends. The timeout error names the check, the last
 * failure and the service's last log lines.
 */
export async function waitUntilReady(
  service: Service,
  check: ReadinessCheck,
  options: ReadinessOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let lastFailure = "no attempt finished";
  let ended: string | undefined;
  // Loaded by the first readiness wait: a plain run never needs it.
  const { default: pRetry, AbortError } = await import("p-retry");
  try {
    await pRetry(
      async () => {
        const state = await service.state();
        if (state !== "running") {
          const status = await service.wait().then(
            (s) => `exit code ${s.exitCode}${s.signal ? ` (${s.signal})` : ""}`,
            (err: Error) => err.message,
          );
          ended = `${state}, ${status}`;
          throw new AbortError(ended);
        }
        const attemptMs = Math.max(100, Math.min(5000, deadline - Date.now()));
        let timer: NodeJS.Timeout | undefined;
        try {
          // An attempt that hangs (an exec that never returns) counts as a failed attempt.
          await Promise.race([
            attempt(service, check, attemptMs),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`attempt took over ${attemptMs} ms`)),
                attemptMs + 500,
              );
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
      },
      {
        retries: Number.POSITIVE_INFINITY,
        factor: 1,
        minTimeout: intervalMs,
        maxTimeout: intervalMs,
        randomize: false,
        maxRetryTime: timeoutMs,
        ...(options.signal && { signal: options.signal }),
        onFailedAttempt: ({ error }) => {
          lastFailure = error.message;
        },
      },
    );
  } catch (err) {
    if (options.signal?.aborted)
      throw new AbortedError(`waiting for ${service.name} to be ready`, { cause: err });
    if (err instanceof ContainerError) throw err;
    const logs = await service.logs({ tail: LOG_LINES_IN_ERROR }).catch(() => ({ stdout: "", stderr: "" }));
    const tail = [logs.stdout.trimEnd(), logs.stderr.trimEnd()].filter(Boolean).join("\n") || "(no output)";
    if (ended) {
      throw new ContainerStateError(
        "wait for readiness of",
        "exited",
        `service ${service.name} ended (${ended}) before ${describeCheck(check)}. Last output:\n${tail}`,
      );
    }
    throw new TimeoutError(
      `service ${service.name} was not ready within ${timeoutMs} ms: waited for ${describeCheck(check)}; last attempt: ${lastFailure}. Last output:\n${tail}`,
      { cause: err },
    );
  }
}

async function attempt(service: Service, check: ReadinessCheck, attemptMs: number): Promise<void> {
  if ("tcp" in check) {
    const { host, port } = await service.endpoint(check.tcp);
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host, port, timeout: attemptMs });
      let settle: NodeJS.Timeout | undefined;
      const fail = (message: string) => {
        clearTimeout(settle);
        socket.destroy();
        reject(new Error(message));
      };
      socket.once("connect", () => {
        // A port proxy (Docker's) accepts even when nothing listens behind it, then closes at
        // once: a connection must stay open a moment to count.
        settle = setTimeout(() => {
          socket.destroy();
          resolve();
        }, TCP_SETTLE_MS);
      });
      socket.once("end", () =>
        fail(`${host}:${port} closed the connection at once (nothing listening yet?)`),
      );
      socket.once("timeout", () => fail(`connecting to ${host}:${port} timed out`));
      socket.once("error", (err) => fail(`connecting to ${host}:${port}: ${err.message}`));
    });
    return;
  }
  if ("http" in check) {
    const { host, port } = await service.endpoint(check.http);
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}${check.path ?? "/"}`;
    const response = await fetch(url, { signal: AbortSignal.timeout(attemptMs) }).catch((err: Error) => {
      throw new Error(`GET ${url}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
    });
    await response.body?.cancel();
    const ok = check.status === undefined ? response.status < 400 : response.status === check.status;
    if (!ok) throw new Error(`GET ${url} answered ${response.status}`);
    return;
  }
  if ("log" in check) {
    const { stdout, stderr } = await service.logs();
    const lines = `${stdout}\n${stderr}`.split("\n");
    const match =
      typeof check.log === "string"
        ? (l: string) => l.includes(check.log as string)
        : (l: string) => (check.log as RegExp).test(l);
    if (!lines.some(match)) throw new Error(`no log line matches ${String(check.log)} yet`);
    return;
  }
  const result = await service.exec(check.exec);
  if (result.exitCode !== 0) {
    throw new Error(
      `\`${check.exec.join(" ")}\` exited ${result.exitCode}: ${(result.stderr || result.stdout).trim().slice(-200)}`,
    );
  }
}

/** A service's name: `spec.name` as is with `exactName`, else it (or "contexec-svc") plus a random suffix. */
export function serviceName(specName: string | undefined, options: { exactName?: boolean } = {}): string {
  if (options.exactName && specName) return specName;
  return `${specName ?? "contexec-svc"}-${randomBytes(4).toString("hex")}`;
}

/**
 * Starts a service and, with `options.ready`, waits until it is ready. A service that fails to
 * start or never gets ready is stopped (SIGKILL) before the error is thrown: nothing is left.
 */
export async function launchService(
  service: Service,
  start: () => Promise<void>,
  options: ServiceOptions = {},
): Promise<void> {
  try {
    await start();
    if (options.ready) {
      await waitUntilReady(service, options.ready, {
        ...options.readyOptions,
        ...(options.signal && { signal: options.signal }),
      });
    }
  } catch (err) {
    await service.stop({ signal: "SIGKILL" }).catch(() => {});
    throw err;
  }
}

/** A TCP port that is free on this host now (for a service on the host's network). */
export async function findFreePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
