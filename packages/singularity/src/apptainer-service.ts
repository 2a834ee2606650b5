import {
  type ContainerState,
  ContainerStateError,
  type Endpoint,
  type ExecOptions,
  type ExecProcess,
  type ExecResult,
  type ExitStatus,
  type NetworkMode,
  type Service,
  type ServiceLogs,
  type StopOptions,
} from "@contexec/core";
import type { ApptainerContainer } from "./apptainer-container.js";

/** Bytes of each stream a service keeps for logs(): the most recent ones. */
const LOG_LIMIT = 1024 * 1024;

/**
 * A container run in the background: its output goes to a bounded in-memory log (read with
 * logs()) instead of streams the caller must drain. It is a child of this process like every
 * Apptainer container here, not an Apptainer instance: an instance costs about 0.35 s to start
 * and 1.3-1.6 s to stop (Apptainer 1.4.5, this machine), and logs to files; the container form
 * starts in about 0.15 s and stops at once. It ends with this process (or close()).
 */
export class ApptainerService implements Service {
  readonly name: string;
  readonly container: ApptainerContainer;
  readonly #network: NetworkMode | undefined;
  readonly #stdout = new LogBuffer(LOG_LIMIT);
  readonly #stderr = new LogBuffer(LOG_LIMIT);
  #stopping: Promise<ExitStatus> | undefined;

  constructor(container: ApptainerContainer, name: string, network: NetworkMode | undefined) {
    this.container = container;
    this.name = name;
    this.#network = network;
    container.stdout.on("data", (b: Buffer) => this.#stdout.push(b));
    container.stderr.on("data", (b: Buffer) => this.#stderr.push(b));
  }

  get id(): string {
    return this.container.id;
  }

  state(): Promise<ContainerState> {
    return this.container.state();
  }

  exec(argv: string[], options?: ExecOptions): Promise<ExecResult> {
    return this.container.exec(argv, options);
  }

  execStream(
    argv: string[],
    options?: Omit<ExecOptions, "input"> & { stdin?: boolean },
  ): Promise<ExecProcess> {
    return this.container.execStream(argv, options);
  }

  async logs(options: { tail?: number } = {}): Promise<ServiceLogs> {
    return { stdout: this.#stdout.text(options.tail), stderr: this.#stderr.text(options.tail) };
  }

  /** Apptainer shares the host's network (no port publishing): a port is reached on the host. */
  async endpoint(containerPort: number): Promise<Endpoint> {
    const state = await this.state();
    if (state !== "running") throw new ContainerStateError("reach", state);
    if (this.#network === "none") {
      throw new ContainerStateError(
        "reach",
        "without a network",
        `port ${containerPort} is in a network namespace of its own (network "none")`,
      );
    }
    return { host: "127.0.0.1", port: containerPort };
  }

  wait(options?: { signal?: AbortSignal }): Promise<ExitStatus> {
    return this.container.wait(options);
  }

  stop(options: StopOptions = {}): Promise<ExitStatus> {
    this.#stopping ??= (async () => {
      await this.container.kill({
        ...(options.signal && { signal: options.signal }),
        graceMs: options.graceMs ?? 10_000,
      });
      const status = this.container.wait();
      status.catch(() => {});
      await this.container.remove();
      return status;
    })();
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop().catch(() => {});
  }
}

/** The last `limit` bytes of a stream, read back as text or as its last lines. */
export class LogBuffer {
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#chunks.length > 1 && this.#size - (this.#chunks[0] as Buffer).length >= this.#limit) {
      this.#size -= (this.#chunks.shift() as Buffer).length;
    }
  }

  text(tail?: number): string {
    const all = Buffer.concat(this.#chunks);
    const s = all.subarray(Math.max(0, all.length - this.#limit)).toString("utf8");
    if (tail === undefined) return s;
    const lines = s.split("\n");
    const complete = lines.at(-1) === "" ? lines.slice(0, -1) : lines;
    return complete.length <= tail ? s : `${complete.slice(-tail).join("\n")}\n`;
  }
}
