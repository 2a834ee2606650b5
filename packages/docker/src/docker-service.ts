import type {
  ContainerState,
  Endpoint,
  ExecOptions,
  ExecProcess,
  ExecResult,
  ExitStatus,
  Service,
  ServiceLogs,
  StopOptions,
} from "@contexec/core";
import { ContainerStateError } from "@contexec/core";
import { demuxBuffer } from "./demux-stream.js";
import type { DockerContainer } from "./docker-container.js";
import type { StartExecOptions } from "./docker-exec.js";

/** Lines of output kept from a stopped service, so logs() still answers after stop(). */
const KEPT_LOG_LINES = 1000;

/**
 * A detached Docker container. Its output goes to the daemon's log (read with logs()); exec,
 * wait and kill are the container's own.
 */
export class DockerService implements Service {
  readonly name: string;
  readonly #container: DockerContainer;
  readonly #networkMode: string;
  #stopping: Promise<ExitStatus> | undefined;
  #finalLogs: ServiceLogs | undefined;

  constructor(container: DockerContainer, name: string, networkMode: string) {
    this.#container = container;
    this.name = name;
    this.#networkMode = networkMode;
  }

  get id(): string {
    return this.#container.id;
  }

  /** The container behind the service. */
  get container(): DockerContainer {
    return this.#container;
  }

  state(): Promise<ContainerState> {
    return this.#container.state();
  }

  exec(argv: string[], options?: ExecOptions): Promise<ExecResult> {
    return this.#container.exec(argv, options);
  }

  execStream(argv: string[], options?: StartExecOptions): Promise<ExecProcess> {
    return this.#container.execStream(argv, options);
  }

  async logs(options: { tail?: number } = {}): Promise<ServiceLogs> {
    if (this.#finalLogs) return tailOf(this.#finalLogs, options.tail);
    const raw = (await this.#container.handle.logs({
      stdout: true,
      stderr: true,
      follow: false,
      ...(options.tail !== undefined && { tail: options.tail }),
    })) as Buffer;
    const { stdout, stderr } = demuxBuffer(raw);
    return { stdout: stdout.toString("utf8"), stderr: stderr.toString("utf8") };
  }

  async endpoint(containerPort: number): Promise<Endpoint> {
    if ((await this.state()) !== "running") throw new ContainerStateError("reach", "not running");
    const info = await this.#container.handle.inspect();
    const published = info.NetworkSettings.Ports?.[`${containerPort}/tcp`]?.[0];
    if (published?.HostPort) {
      const host =
        published.HostIp && published.HostIp !== "0.0.0.0" && published.HostIp !== "::"
          ? published.HostIp
          : "127.0.0.1";
      return { host, port: Number(published.HostPort) };
    }
    if (this.#networkMode === "host") return { host: "127.0.0.1", port: containerPort };
    // Not published: the container's own address on its network, reachable from this host.
    const address = Object.values(info.NetworkSettings.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress;
    if (!address) {
      throw new ContainerStateError(
        "reach",
        "without a network",
        `port ${containerPort} is not published and the container has no address`,
      );
    }
    return { host: address, port: containerPort };
  }

  wait(options?: { signal?: AbortSignal }): Promise<ExitStatus> {
    return this.#container.wait(options);
  }

  stop(options: StopOptions = {}): Promise<ExitStatus> {
    this.#stopping ??= this.#stop(options);
    return this.#stopping;
  }

  async #stop(options: StopOptions): Promise<ExitStatus> {
    await this.#container.kill({
      ...(options.signal && { signal: options.signal }),
      graceMs: options.graceMs ?? 10_000,
    });
    const status = this.#container.wait();
    status.catch(() => {});
    this.#finalLogs = await this.logs({ tail: KEPT_LOG_LINES }).catch(() => ({ stdout: "", stderr: "" }));
    await this.#container.remove();
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop().catch(() => {});
  }
}

function tailOf(logs: ServiceLogs, tail: number | undefined): ServiceLogs {
  if (tail === undefined) return logs;
  const cut = (s: string) => {
    const lines = s.split("\n");
    const last = lines.at(-1) === "" ? lines.slice(0, -1) : lines;
    return last.length <= tail ? s : `${last.slice(-tail).join("\n")}\n`;
  };
  return { stdout: cut(logs.stdout), stderr: cut(logs.stderr) };
}
