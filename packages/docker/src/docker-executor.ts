import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortedError,
  type Capabilities,
  type ContainerExecutor,
  type ContainerSpec,
  checkCapabilities,
  type ExecutorConfig,
  type ImageId,
  ImageNotFoundError,
  InvalidConfigError,
  type LoadOptions,
  launchService,
  type PullOptions,
  parseImageConfig,
  RegistryAuthError,
  RegistryError,
  RuntimeError,
  type RuntimeInfo,
  readImageArchive,
  registryReferenceOf,
  type ServiceOptions,
  type ServiceSummary,
  SUPPORTED,
  serviceName,
  stopSignalOf,
  throwIfAborted,
  unsupported,
  validateSpec,
} from "@contexec/core";
import { dockerConfigCredentials, parseImageReference } from "@contexec/registry";
import Dockerode from "dockerode";
import { DockerContainer } from "./docker-container.js";
import { callDaemon, daemonMessage, mapDockerError, statusOf } from "./docker-errors.js";
import { type DockerPullMessage, pullErrorOf, pullProgressOf, renderPullRequest } from "./docker-pull.js";
import { DockerService } from "./docker-service.js";
import {
  LABEL_EXECUTOR,
  LABEL_MANAGED,
  LABEL_SERVICE,
  renderCreateOptions,
} from "./render-create-options.js";

export interface DockerExecutorOptions {
  /** Unix socket of the daemon. Default: DOCKER_HOST when it is unix://, else /var/run/docker.sock. */
  socketPath?: string;
  /** Passed to dockerode as is, for TCP/TLS daemons (host, port, protocol, ca, cert, key). */
  dockerOptions?: Dockerode.DockerOptions;
  /** Deadline for short API calls (inspect, create, kill, remove); default 60 s. */
  requestTimeoutMs?: number;
}

export interface DockerExecutorConfig extends DockerExecutorOptions {
  runtime: "docker";
}

/** The Docker Engine backend: every operation through the Engine API (dockerode). */
export class DockerExecutor implements ContainerExecutor {
  readonly runtime = "docker";
  /** Distinguishes this executor's containers (a label) from other processes' ones. */
  readonly instanceId = randomUUID();
  readonly #docker: Dockerode;
  readonly #where: string;
  readonly #timeoutMs: number;
  readonly #containers = new Set<DockerContainer>();
  readonly #services = new Set<DockerService>();
  #info: Promise<RuntimeInfo> | undefined;

  constructor(options: DockerExecutorOptions = {}) {
    const fromEnv = process.env.DOCKER_HOST;
    if (options.socketPath) {
      this.#docker = new Dockerode({ socketPath: options.socketPath });
      this.#where = options.socketPath;
    } else if (options.dockerOptions) {
      this.#docker = new Dockerode(options.dockerOptions);
      this.#where = options.dockerOptions.host ?? options.dockerOptions.socketPath ?? "the configured daemon";
    } else {
      // dockerode reads DOCKER_HOST itself.
      this.#docker = new Dockerode();
      this.#where = fromEnv ?? "/var/run/docker.sock";
    }
    this.#timeoutMs = options.requestTimeoutMs ?? 60_000;
  }

  /** The dockerode client, for what the interface does not cover. */
  get docker(): Dockerode {
    return this.#docker;
  }

  info(): Promise<RuntimeInfo> {
    this.#info ??= this.#probe().catch((err) => {
      this.#info = undefined;
      throw err;
    });
    return this.#info;
  }

  async #probe(): Promise<RuntimeInfo> {
    const [version, info] = await this.#short("asking the daemon for its version", () =>
      Promise.all([this.#docker.version(), this.#docker.info() as Promise<Record<string, unknown>>]),
    );
    const runtimes = Object.keys((info.Runtimes as Record<string, unknown> | undefined) ?? {});
    const hasAmd = existsSync("/dev/kfd");
    const capabilities: Capabilities = {
      "network-none": SUPPORTED,
      "network-bridge": SUPPORTED,
      "network-host": SUPPORTED,
      "memory-limit": info.MemoryLimit
        ? SUPPORTED
        : unsupported("the daemon reports no memory cgroup controller"),
      "cpu-limit": info.CpuCfsQuota ? SUPPORTED : unsupported("the daemon reports no CPU CFS quota support"),
      gpu:
        runtimes.includes("nvidia") || hasAmd
          ? SUPPORTED
          : unsupported(
              "no GPU runtime here: no NVIDIA container runtime is registered with dockerd and no /dev/kfd (AMD) exists",
            ),
      "oom-detection": SUPPORTED,
      user: SUPPORTED,
      ports: SUPPORTED,
      exec: SUPPORTED,
    };
    return {
      runtime: "docker",
      flavor: "docker",
      version: version.Version,
      capabilities,
      details: {
        apiVersion: version.ApiVersion,
        storageDriver: String(info.Driver ?? ""),
        cgroupVersion: String(info.CgroupVersion ?? ""),
        endpoint: this.#where,
      },
    };
  }

  async hasImage(image: string): Promise<boolean> {
    try {
      await this.#inspectImage(image);
      return true;
    } catch (err) {
      if (err instanceof ImageNotFoundError) return false;
      throw err;
    }
  }

  async loadImage(archive: string | NodeJS.ReadableStream, options: LoadOptions = {}): Promise<ImageId> {
    const reference = registryReferenceOf(archive);
    if (reference !== undefined)
      return this.pullImage(reference, options.signal ? { signal: options.signal } : {});
    throwIfAborted(options.signal, "loading the image");
    // A stream is spooled to a file first: the archive is checked in full before the daemon sees
    // a byte, so a bad archive never leaves a half-loaded image behind.
    let spoolDir: string | undefined;
    let path: string;
    if (typeof archive === "string") {
      path = archive;
    } else {
      spoolDir = await mkdtemp(join(tmpdir(), "contexec-load-"));
      path = join(spoolDir, "image.tar");
      try {
        await pipeline(archive, createWriteStream(path), options.signal ? { signal: options.signal } : {});
      } catch (err) {
        await rm(spoolDir, { recursive: true, force: true });
        if (options.signal?.aborted) throw new AbortedError("loading the image", { cause: err });
        throw err;
      }
    }
    try {
      const meta = await readImageArchive(path, options.signal ? { signal: options.signal } : {});
      if (await this.hasImage(meta.id)) return meta.id;
      const totalBytes = meta.archiveBytes;
      let bytesRead = 0;
      const counted = createReadStream(path).pipe(
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            bytesRead += chunk.length;
            options.onProgress?.({ bytesRead, totalBytes });
            cb(null, chunk);
          },
        }),
      );
      await this.#call("loading the image", async () => {
        const response = await this.#docker.loadImage(counted, {
          quiet: true,
          ...(options.signal && { abortSignal: options.signal }),
        });
        await followLoad(this.#docker, response);
      });
      if (!(await this.hasImage(meta.id))) {
        throw new RuntimeError(
          "docker",
          `the daemon accepted the archive but has no image ${meta.id} afterwards (a Docker older than 25 cannot load an OCI layout archive without manifest.json)`,
        );
      }
      return meta.id;
    } finally {
      if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
    }
  }

  /**
   * The daemon's pull (`POST /images/create`, as `docker pull`), with the credentials given or
   * those of the user's Docker config (the daemon does not read it; the CLI sends them, so does
   * this); resolves with the image's id, the digest of its config.
   */
  async pullImage(reference: string, options: PullOptions = {}): Promise<ImageId> {
    const operation = `pulling ${reference}`;
    throwIfAborted(options.signal, operation);
    const ref = parseImageReference(reference);
    const credentials = options.auth ?? (await dockerConfigCredentials(ref.registry)).credentials;
    const request = renderPullRequest(ref, { platform: options.platform, credentials });
    const failed = (message: string, cause?: unknown) =>
      pullErrorOf(message, ref.registry) ??
      new RuntimeError("docker", `${operation} failed: ${message}`, cause === undefined ? {} : { cause });
    try {
      // `_query` keeps the signal and credentials out of the query string (docker-modem sends
      // every other option key as a query parameter).
      const stream = await this.#docker.createImage({
        _query: {
          fromImage: request.fromImage,
          tag: request.tag,
          ...(request.platform && { platform: request.platform }),
        },
        ...(request.auth && { authconfig: request.auth }),
        ...(options.signal && { abortSignal: options.signal }),
      });
      // The daemon reports a failed pull inside the stream, with status 200.
      await new Promise<void>((resolve, reject) => {
        let failure: string | undefined;
        this.#docker.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(err) : failure ? reject(failed(failure)) : resolve()),
          (m: DockerPullMessage) => {
            if (m.error || m.errorDetail) failure ??= m.errorDetail?.message ?? m.error;
            const progress = pullProgressOf(m);
            if (progress) options.onProgress?.(progress);
          },
        );
      });
    } catch (err) {
      if (options.signal?.aborted) throw new AbortedError(operation, { cause: err });
      if (err instanceof RegistryError || err instanceof RegistryAuthError || err instanceof RuntimeError)
        throw err;
      const mapped = mapDockerError(err, operation, this.#where);
      if (mapped instanceof RuntimeError) throw failed(daemonMessage(err), err);
      throw mapped;
    }
    const image = await this.#inspectImage(request.name);
    return image.Id as ImageId;
  }

  async removeImage(image: string): Promise<void> {
    try {
      await this.#short(`removing image ${image}`, () =>
        this.#docker.getImage(image).remove({ force: true }),
      );
    } catch (err) {
      if (statusOf((err as Error).cause) === 404) return;
      throw err;
    }
  }

  create(spec: ContainerSpec): Promise<DockerContainer> {
    return this.#create(spec, { detached: false });
  }

  /**
   * Starts a service: a detached container whose output goes to the daemon's log. Its name is
   * `spec.name` (or "contexec-svc") plus a random suffix, unless `exactName` is set.
   */
  async startService(spec: ContainerSpec, options: ServiceOptions = {}): Promise<DockerService> {
    const name = serviceName(spec.name, options);
    const container = await this.#create({ ...spec, name }, { detached: true });
    const service = new DockerService(container, name, spec.network ?? "bridge");
    this.#services.add(service);
    await launchService(service, () => container.start(), options);
    return service;
  }

  /** The services this executor started and has not stopped. */
  async listServices(): Promise<ServiceSummary[]> {
    const live = [...this.#services].filter((s) => this.#containers.has(s.container));
    return Promise.all(live.map(async (s) => ({ id: s.id, name: s.name, state: await s.state() })));
  }

  async #create(spec: ContainerSpec, mode: { detached: boolean }): Promise<DockerContainer> {
    const valid = await validateSpec(spec);
    const image = await this.#inspectImage(valid.image);
    const gaps = checkCapabilities(valid, (await this.info()).capabilities, "docker");
    const imageConfig = parseImageConfig({ config: image.Config });
    const body = renderCreateOptions(valid, {
      imageId: image.Id,
      image: imageConfig,
      labels: {
        [LABEL_MANAGED]: "true",
        [LABEL_EXECUTOR]: this.instanceId,
        ...(mode.detached && { [LABEL_SERVICE]: "true" }),
      },
      ignore: new Set(gaps.map((g) => g.field)),
      detached: mode.detached,
    });
    const container = await this.#short("creating the container", (signal) =>
      this.#docker.createContainer({ ...body, abortSignal: signal } as Dockerode.ContainerCreateOptions),
    );
    try {
      const stdin = valid.stdin === true && !mode.detached;
      const attach = mode.detached
        ? null
        : await this.#short(
            "attaching to the container",
            () =>
              container.attach({
                stream: true,
                stdin,
                stdout: true,
                stderr: true,
                hijack: stdin,
              }) as Promise<NodeJS.ReadWriteStream>,
          );
      const handle = new DockerContainer(container, attach, stdin, {
        where: this.#where,
        short: (operation, fn) => this.#short(operation, fn),
        program: body.Entrypoint[0] ?? "",
        stopSignal: stopSignalOf(imageConfig.stopSignal),
        onRemoved: (c) => this.#containers.delete(c),
      });
      this.#containers.add(handle);
      return handle;
    } catch (err) {
      await container.remove({ force: true }).catch(() => {});
      throw err;
    }
  }

  /** Stops every service and removes every container this executor created. */
  async close(): Promise<void> {
    const services = [...this.#services];
    this.#services.clear();
    const stopped = await Promise.allSettled(services.map((s) => s.stop({ graceMs: 2000 })));
    const results = [...stopped, ...(await Promise.allSettled([...this.#containers].map((c) => c.remove())))];
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  async #inspectImage(image: string): Promise<Dockerode.ImageInspectInfo> {
    try {
      return await this.#short(`inspecting image ${image}`, () => this.#docker.getImage(image).inspect());
    } catch (err) {
      if (statusOf((err as Error).cause) === 404) throw new ImageNotFoundError(image, { cause: err });
      throw err;
    }
  }

  #short<T>(operation: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return callDaemon(operation, this.#where, this.#timeoutMs, fn);
  }

  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapDockerError(err, operation, this.#where);
    }
  }
}

/** Reads `docker load`'s JSON message stream; the daemon reports failures inside it, with status 200. */
async function followLoad(docker: Dockerode, response: NodeJS.ReadableStream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      response,
      (err: Error | null, messages: { error?: string; errorDetail?: { message?: string } }[]) => {
        if (err) return reject(err);
        const failure = messages.find((m) => m.error || m.errorDetail);
        if (failure) {
          return reject(
            new RuntimeError(
              "docker",
              `docker load failed: ${failure.errorDetail?.message ?? failure.error}`,
            ),
          );
        }
        resolve();
      },
    );
  });
}

/** The hook `createExecutor({ runtime: "docker" })` calls. */
export function createBackend(config: ExecutorConfig): DockerExecutor {
  const { runtime, ...options } = config;
  if (runtime !== "docker")
    throw new InvalidConfigError(`the docker backend cannot serve runtime "${runtime}"`);
  for (const key of Object.keys(options)) {
    if (!["socketPath", "dockerOptions", "requestTimeoutMs"].includes(key)) {
      throw new InvalidConfigError(
        `unknown docker executor option "${key}"; known: socketPath, dockerOptions, requestTimeoutMs`,
      );
    }
  }
  return new DockerExecutor(options as DockerExecutorOptions);
}
