import { readFile } from "node:fs/promises";
import {
  type ContainerState,
  ContainerStateError,
  type Endpoint,
  type ExecProcess,
  type ExecResult,
  type Service,
  type ServiceLogs,
  type StopOptions,
  UnsupportedError,
} from "@contexec/core";
import type { SlurmExitStatus } from "../scheduler/job-state.js";
import { EXEC_UNSUPPORTED, type SlurmContainer } from "./slurm-container.js";

/**
 * A long-running container as a SLURM job: its output stays in the job's files (logs() reads
 * them), and its ports are reached on the node the job runs on (endpoint()).
 */
export class SlurmService implements Service {
  readonly id: string;
  readonly name: string;
  readonly container: SlurmContainer;
  readonly #published: Map<number, number>;
  readonly #onStopped: (service: SlurmService) => void;
  #stopped: Promise<SlurmExitStatus> | undefined;

  constructor(
    container: SlurmContainer,
    name: string,
    published: Map<number, number>,
    onStopped: (service: SlurmService) => void,
  ) {
    this.container = container;
    this.id = container.id;
    this.name = name;
    this.#published = published;
    this.#onStopped = onStopped;
  }

  start(): Promise<void> {
    return this.container.start().then(() => this.container.untilRunning());
  }

  state(): Promise<ContainerState> {
    return this.container.state();
  }

  async exec(_argv: string[]): Promise<ExecResult> {
    if ((await this.state()) !== "running") throw new ContainerStateError("exec into", await this.state());
    throw new UnsupportedError("exec", EXEC_UNSUPPORTED);
  }

  async execStream(_argv: string[]): Promise<ExecProcess> {
    if ((await this.state()) !== "running") throw new ContainerStateError("exec into", await this.state());
    throw new UnsupportedError("exec", EXEC_UNSUPPORTED);
  }

  async logs(options: { tail?: number } = {}): Promise<ServiceLogs> {
    const read = (path: string) => readFile(path, "utf8").catch(() => "");
    const [stdout, stderr] = await Promise.all([
      read(this.container.files.stdout),
      read(this.container.files.stderr),
    ]);
    return { stdout: lastLines(stdout, options.tail), stderr: lastLines(stderr, options.tail) };
  }

  /** The node the job runs on, and the port: the container's own, or the one published for it. */
  async endpoint(containerPort: number): Promise<Endpoint> {
    const state = await this.state();
    const node = firstNode(this.container.nodes);
    if (state !== "running" || !node) {
      throw new ContainerStateError("reach", state, `service ${this.name} does not run on a node yet`);
    }
    return { host: node, port: this.#published.get(containerPort) ?? containerPort };
  }

  wait(options: { signal?: AbortSignal } = {}): Promise<SlurmExitStatus> {
    return this.container.wait(options);
  }

  stop(options: StopOptions = {}): Promise<SlurmExitStatus> {
    this.#stopped ??= (async () => {
      try {
        if (this.container.jobId === undefined) {
          throw new ContainerStateError("stop", "created", `service ${this.name} was never started`);
        }
        await this.container.kill({
          ...(options.signal && { signal: options.signal }),
          graceMs: options.graceMs ?? 10_000,
        });
        return await this.container.wait();
      } finally {
        this.#onStopped(this);
      }
    })();
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop().catch(() => {});
  }
}

/** The first host of a SLURM node list ("node[01-03],gpu7" -> "node01"). */
export function firstNode(nodes: string): string {
  const m = /^([^,[]+)(?:\[(\d+)[^\]]*\])?/.exec(nodes.trim());
  if (!m) return "";
  return `${m[1]}${m[2] ?? ""}`;
}

function lastLines(text: string, tail: number | undefined): string {
  if (tail === undefined) return text;
  const lines = text.split("\n");
  const trailing = lines.at(-1) === "" ? lines.pop() : undefined;
  return lines.slice(-tail).join("\n") + (trailing !== undefined ? "\n" : "");
}
