import { type ContainerError, RuntimeUnavailableError } from "@contexec/core";
import type Dockerode from "dockerode";

/**
 * Watches that the Docker daemon still answers while calls that can last (a container's wait)
 * are pending: one ping per interval for the whole executor, however many calls watch. A daemon
 * that refuses connections fails the watchers at once; one that accepts but does not answer,
 * after two pings in a row time out.
 */
export class DaemonLiveness {
  readonly #ping: (signal: AbortSignal) => Promise<unknown>;
  readonly #intervalMs: number;
  readonly #where: string;
  readonly #watchers = new Set<(err: ContainerError) => void>();
  #timer: NodeJS.Timeout | undefined;
  #misses = 0;
  #pinging = false;

  constructor(ping: (signal: AbortSignal) => Promise<unknown>, intervalMs: number, where: string) {
    this.#ping = ping;
    this.#intervalMs = intervalMs;
    this.#where = where;
  }

  /** A promise that rejects when the daemon is found gone; stop() when the watched call is over. */
  watch(): { gone: Promise<never>; stop(): void } {
    let fail: (err: ContainerError) => void = () => {};
    const gone = new Promise<never>((_, reject) => {
      fail = reject;
    });
    gone.catch(() => {});
    this.#watchers.add(fail);
    this.#timer ??= setInterval(() => void this.#check(), this.#intervalMs);
    // Watching must not keep a process alive that has nothing else to do.
    this.#timer.unref();
    return {
      gone,
      stop: () => {
        this.#watchers.delete(fail);
        if (this.#watchers.size === 0 && this.#timer) {
          clearInterval(this.#timer);
          this.#timer = undefined;
          this.#misses = 0;
        }
      },
    };
  }

  async #check(): Promise<void> {
    if (this.#pinging) return;
    this.#pinging = true;
    try {
      await this.#ping(AbortSignal.timeout(Math.max(this.#intervalMs, 1000)));
      this.#misses = 0;
    } catch (err) {
      const unreachable = err instanceof RuntimeUnavailableError;
      if (!unreachable && ++this.#misses < 2) return;
      const gone = unreachable
        ? err
        : new RuntimeUnavailableError(
            "docker",
            `the Docker daemon at ${this.#where} stopped answering (two pings in a row went unanswered)`,
            { cause: err },
          );
      for (const fail of [...this.#watchers]) fail(gone);
    } finally {
      this.#pinging = false;
    }
  }
}

/** The daemon closed the connection of a pending call before answering: it died or restarted. */
export class ConnectionLostError extends Error {
  readonly code = "ECONNRESET";
  constructor(operation: string) {
    super(`the Docker daemon closed the connection while ${operation}`);
  }
}

/**
 * `POST /containers/{id}/wait?condition=not-running`, read by hand: dockerode's own wait never
 * settles when the daemon dies mid-request (docker-modem 5 listens for the response's end, not for
 * its connection closing), so a killed dockerd would hang the caller. Rejects with
 * {@link ConnectionLostError} when the connection ends before the answer.
 */
export function requestWait(
  container: Dockerode.Container,
  signal: AbortSignal,
): Promise<{ StatusCode: number }> {
  return new Promise((resolve, reject) => {
    container.modem.dial(
      {
        path: `/containers/${container.id}/wait?`,
        method: "POST",
        options: { condition: "not-running" },
        abortSignal: signal,
        isStream: true,
        statusCodes: { 200: true, 400: "bad parameter", 404: "no such container", 500: "server error" },
      },
      (err: Error | null, res: import("node:http").IncomingMessage) => {
        if (err) return reject(err);
        const chunks: Buffer[] = [];
        const onAbort = () => res.destroy();
        signal.addEventListener("abort", onAbort, { once: true });
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", () => {}); // the close below says what happened
        res.on("close", () => {
          signal.removeEventListener("abort", onAbort);
          if (signal.aborted) return reject(signal.reason);
          if (!res.complete) return reject(new ConnectionLostError("waiting for the container"));
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
              StatusCode?: unknown;
              Error?: { Message?: string } | null;
            };
            if (typeof body.StatusCode !== "number")
              throw new Error(`no StatusCode in ${JSON.stringify(body)}`);
            resolve({ StatusCode: body.StatusCode });
          } catch (parseError) {
            reject(parseError);
          }
        });
      },
    );
  });
}
