import { randomUUID } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { Transform } from "node:stream";
import {
  AbortedError,
  archiveFile,
  type BackendConfig,
  type Capabilities,
  type ContainerExecutor,
  type ContainerSpec,
  checkImageLayers,
  currentOwner,
  type DockerExecutorConfig,
  hostFacts,
  type ImageId,
  ImageNotFoundError,
  InvalidConfigError,
  InvalidSpecError,
  type LoadOptions,
  LoadProgressScale,
  launchService,
  logRuntimeCall,
  openSideChannels,
  ownerLabels,
  type PlanOptions,
  type PullOptions,
  parseImageConfig,
  pullForLoad,
  RegistryAuthError,
  RegistryError,
  type RunPlan,
  RuntimeError,
  type RuntimeInfo,
  RuntimeUnavailableError,
  readImageArchive,
  type ServiceOptions,
  type ServiceSummary,
  SIDE_CHANNELS_NOTE,
  SUPPORTED,
  type SweepReport,
  serviceName,
  stopSignalOf,
  throwIfAborted,
  unsupported,
  validateSpec,
  withoutSideChannels,
} from "@contexec/core";
import Dockerode from "dockerode";
import { DaemonLiveness } from "./daemon-liveness.js";
import { DockerContainer } from "./docker-container.js";
import { callDaemon, daemonMessage, mapDockerError, statusOf } from "./docker-errors.js";
import type { DockerPullMessage } from "./docker-pull.js";
import { DockerService } from "./docker-service.js";
import { daemonAddress, removeOnExit } from "./exit-cleanup.js";
import { type DockerPlanInput, planDockerRun } from "./plan-docker-run.js";
import {
  type DockerCreateBody,
  LABEL_EXECUTOR,
  LABEL_MANAGED,
  LABEL_SERVICE,
} from "./render-create-options.js";
import { sweepLeftovers } from "./sweep-leftovers.js";

/** The options of core's DockerExecutorConfig (`createExecutor({ runtime: "docker", ... })`), dockerode's types where they apply. */
export interface DockerExecutorOptions extends Omit<DockerExecutorConfig, "runtime" | "dockerOptions"> {
  /** Passed to dockerode as is, for TCP/TLS daemons (host, port, protocol, ca, cert, key). */
  dockerOptions?: Dockerode.DockerOptions;
}

export type { DockerExecutorConfig };

const OPTION_NAMES = [
  "socketPath",
  "dockerOptions",
  "requestTimeoutMs",
  "livenessIntervalMs",
  "tmpDir",
] as const;

/** The Docker Engine backend: every operation through the Engine API (dockerode). */
export class DockerExecutor implements ContainerExecutor {
  readonly runtime = "docker";
  /** Distinguishes this executor's containers (a label) from other processes' ones. */
  readonly instanceId = randomUUID();
  readonly #docker: Dockerode;
  readonly #where: string;
  readonly #timeoutMs: number;
  readonly #tmpDir: string | undefined;
  readonly #liveness: DaemonLiveness;
  readonly #containers = new Set<DockerContainer>();
  readonly #services = new Set<DockerService>();
  #info: Promise<RuntimeInfo> | undefined;
  #swept: Promise<unknown> | undefined;
  #unhookExit: (() => void) | undefined;

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
    this.#tmpDir = options.tmpDir;
    traceDaemonCalls(this.#docker);
    this.#liveness = new DaemonLiveness(
      (signal) =>
        ping(this.#docker, signal).catch((err: unknown) => {
          throw mapDockerError(err, "pinging the daemon", this.#where);
        }),
      options.livenessIntervalMs ?? 2000,
      this.#where,
    );
  }

  /** The dockerode client, for what the interface does not cover. */
  get docker(): Dockerode {
    return this.#docker;
  }

  /**
   * What the daemon is and can do. Probed once and kept, but every call first checks that the
   * daemon still answers (one ping), so a daemon gone since gives RuntimeUnavailableError, and one
   * back (perhaps upgraded) is probed afresh.
   */
  async info(): Promise<RuntimeInfo> {
    if (this.#info) await this.#short("pinging the daemon", (signal) => ping(this.#docker, signal));
    return this.#probed();
  }

  /** The probe as kept, without a liveness check (calls that talk to the daemon anyway). */
  #probed(): Promise<RuntimeInfo> {
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
    const rootless = ((info.SecurityOptions as string[] | undefined) ?? []).some((o) =>
      o.includes("name=rootless"),
    );
    return {
      runtime: "docker",
      flavor: "docker",
      version: version.Version,
      // A rootless daemon lists "name=rootless" among its security options (Docker >= 20.10).
      privilege: rootless ? "rootless" : "root",
      capabilities,
      planner: { apiVersion: version.ApiVersion },
      host: hostFacts(),
      probedAt: new Date().toISOString(),
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
    const pulled = await pullForLoad(archive, options, (ref, o) => this.pullImage(ref, o));
    if (pulled !== undefined) return pulled;
    throwIfAborted(options.signal, "loading the image");
    // A stream (or FIFO) is copied to a file first: the archive is checked in full before the
    // daemon sees a byte, so a bad archive never leaves a half-loaded image behind.
    const file = await archiveFile(archive, {
      ...(this.#tmpDir !== undefined && { tmpDir: this.#tmpDir }),
      ...(options.signal && { signal: options.signal }),
    });
    try {
      const meta = await readImageArchive(file.path, {
        ...(options.signal && { signal: options.signal }),
        ...(options.limits && { limits: options.limits }),
      });
      const layerBytes = meta.layers.reduce((n, l) => n + l.size, 0);
      // One scale: the entry checks read the layers, then the daemon reads the whole archive.
      const progress = new LoadProgressScale(options.onProgress, [
        { stage: "checking", bytes: layerBytes },
        { stage: "loading", bytes: meta.archiveBytes },
      ]);
      if (await this.hasImage(meta.id)) {
        progress.done();
        return meta.id;
      }
      // The entry checks every backend runs, so Docker refuses exactly what Apptainer refuses.
      progress.stage("checking", 0);
      await checkImageLayers(file.path, meta, {
        ...(options.signal && { signal: options.signal }),
        ...(options.limits && { limits: options.limits }),
        onLayerBytes: (n) => progress.stage("checking", n),
      });
      let bytesRead = 0;
      const counted = createReadStream(file.path).pipe(
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            bytesRead += chunk.length;
            progress.stage("loading", bytesRead);
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
      progress.done();
      return meta.id;
    } finally {
      await file.remove();
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
    // The registry client (reference parser, Docker config credentials) is loaded by the first pull only.
    const [
      { dockerConfigCredentials, parseImageReference },
      { pullErrorOf, pullProgressOf, renderPullRequest },
    ] = await Promise.all([import("@contexec/registry"), import("./docker-pull.js")]);
    const ref = parseImageReference(reference);
    const credentials = options.auth ?? (await dockerConfigCredentials(ref.registry)).credentials;
    const request = renderPullRequest(ref, { platform: options.platform, credentials });
    const failed = (message: string, cause?: unknown) =>
      pullErrorOf(message, ref.registry) ??
      new RuntimeError("docker", `${operation} failed: ${message}`, cause === undefined ? {} : { cause });
    // A pull lasts: the daemon is watched meanwhile, so one that dies or stops answering ends it
    // with RuntimeUnavailableError instead of a hang (as a pending wait() does).
    const inner = new AbortController();
    const onAbort = () => inner.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const watch = this.#liveness.watch();
    try {
      const pulling = (async () => {
        // `_query` keeps the signal and credentials out of the query string (docker-modem sends
        // every other option key as a query parameter).
        const stream = await this.#docker.createImage({
          _query: {
            fromImage: request.fromImage,
            tag: request.tag,
            ...(request.platform && { platform: request.platform }),
          },
          ...(request.auth && { authconfig: request.auth }),
          abortSignal: inner.signal,
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
      })();
      pulling.catch(() => {}); // a daemon found gone first decides; this one is abandoned
      await Promise.race([
        pulling,
        watch.gone.catch((err: unknown) => {
          inner.abort(err);
          throw err;
        }),
      ]);
    } catch (err) {
      if (options.signal?.aborted) throw new AbortedError(operation, { cause: err });
      if (
        err instanceof RegistryError ||
        err instanceof RegistryAuthError ||
        err instanceof RuntimeError ||
        err instanceof RuntimeUnavailableError
      )
        return this.#forgetIfGone(err);
      const mapped = mapDockerError(err, operation, this.#where);
      if (mapped instanceof RuntimeError) throw failed(daemonMessage(err), err);
      return this.#forgetIfGone(mapped);
    } finally {
      watch.stop();
      options.signal?.removeEventListener("abort", onAbort);
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

  /**
   * The plan of a run: the Engine API body `create()` sends and the equivalent `docker run`
   * argv. With `options.profile` no daemon is asked for capabilities; with `options.archive` the
   * image's config is read from the archive (so no daemon is needed at all).
   */
  plan(spec: ContainerSpec, options: PlanOptions = {}): Promise<RunPlan> {
    return this.#plan(spec, options, { detached: false });
  }

  async #plan(
    spec: ContainerSpec,
    options: PlanOptions,
    mode: { detached: boolean },
    inspectedImage?: Dockerode.ImageInspectInfo,
  ): Promise<RunPlan> {
    throwIfAborted(options.signal, "planning the run");
    const given = await validateSpec(spec, { checkHostPaths: options.checkHostPaths !== false });
    // Side channels are served by the executor while the container runs: a plan made here has
    // their mounts only when create() opened them (and gave the plain spec); see notes.
    const valid = withoutSideChannels(given);
    const profile = options.profile ?? (await this.#probed());
    let image: DockerPlanInput["image"];
    if (options.archive !== undefined) {
      const archive = await readImageArchive(
        options.archive,
        options.signal ? { signal: options.signal } : {},
      );
      if (valid.image !== archive.id && !archive.repoTags.includes(valid.image)) {
        throw new InvalidSpecError([
          {
            path: "image",
            message: `${valid.image} is neither the id nor a tag of the archive ${options.archive} (${archive.id}${archive.repoTags.length ? `, ${archive.repoTags.join(", ")}` : ""})`,
          },
        ]);
      }
      const present = options.profile ? false : await this.hasImage(archive.id).catch(() => false);
      image = {
        id: archive.id,
        config: archive.config,
        tags: archive.repoTags,
        present,
        archive: options.archive,
      };
    } else {
      const inspected = inspectedImage ?? (await this.#inspectImage(valid.image));
      image = {
        id: inspected.Id as ImageId,
        config: parseImageConfig({ config: inspected.Config }),
        tags: inspected.RepoTags ?? [],
        present: true,
      };
    }
    const plan = planDockerRun({
      spec: valid,
      profile,
      image,
      labels: {
        [LABEL_MANAGED]: "true",
        [LABEL_EXECUTOR]: this.instanceId,
        // Who owns it: a later executor removes it once this process is dead (sweepLeftovers).
        ...ownerLabels(currentOwner()),
        ...(mode.detached && { [LABEL_SERVICE]: "true" }),
      },
      detached: mode.detached,
      cliEnv: this.#cliEnv(),
    });
    if (given !== valid) plan.notes.push(SIDE_CHANNELS_NOTE);
    return plan;
  }

  /** The environment a pasted `docker` command needs to reach this executor's daemon. */
  #cliEnv(): Record<string, string> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" };
    if (process.env.HOME) env.HOME = process.env.HOME;
    const host = this.#where.startsWith("/") ? `unix://${this.#where}` : this.#where;
    if (/^(unix|tcp|ssh|npipe):\/\//.test(host)) env.DOCKER_HOST = host;
    return env;
  }

  async #create(spec: ContainerSpec, mode: { detached: boolean }): Promise<DockerContainer> {
    // Once per executor, before its first container: what dead processes of this host left.
    this.#swept ??= this.sweepLeftovers().catch(() => undefined);
    await this.#guardExit();
    const valid = await validateSpec(spec);
    // The sweep, the image and the daemon's facts are asked for together (a fresh executor's
    // first create waits for all three), and the image's inspection serves the plan too.
    const [inspected] = await Promise.all([this.#inspectImage(valid.image), this.#probed(), this.#swept]);
    const imageConfig = parseImageConfig({ config: inspected.Config });
    // The side channels' folders and mounts first: the plan is of the plain spec they give.
    const sideChannels = await openSideChannels(valid);
    let body: DockerCreateBody;
    let plan: RunPlan;
    let container: Dockerode.Container;
    try {
      plan = await this.#plan(sideChannels.applyTo(valid, imageConfig), {}, mode, inspected);
      if (plan.image.action !== "present") throw new ImageNotFoundError(plan.spec.image);
      body = plan.dockerCreateBody as unknown as DockerCreateBody;
      const created = body;
      container = await this.#short("creating the container", (signal) =>
        this.#docker.createContainer({ ...created, abortSignal: signal } as Dockerode.ContainerCreateOptions),
      );
    } catch (err) {
      await sideChannels.close();
      throw err;
    }
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
        liveness: this.#liveness,
        program: body.Entrypoint[0] ?? "",
        stopSignal: stopSignalOf(plan.process.stopSignal),
        sideChannels,
        onRemoved: (c) => this.#containers.delete(c),
      });
      this.#containers.add(handle);
      return handle;
    } catch (err) {
      await container.remove({ force: true }).catch(() => {});
      await sideChannels.close();
      throw err;
    }
  }

  /**
   * Removes the containers contexec made for processes of this host that have died (see
   * {@link sweepLeftovers}); what `contexec gc` calls. Runs once by itself before the first
   * container an executor creates.
   */
  sweepLeftovers(): Promise<SweepReport> {
    return sweepLeftovers(this.#docker);
  }

  /** If this process ends (exit, SIGINT, SIGTERM, SIGHUP) with containers of this executor, they are removed. */
  async #guardExit(): Promise<void> {
    if (this.#unhookExit) return;
    const address = await daemonAddress(this.#docker.modem as unknown as Record<string, unknown>);
    if (!address || this.#unhookExit) return;
    this.#unhookExit = removeOnExit(address, () => [...this.#containers].map((c) => c.id));
  }

  /** Stops every service and removes every container this executor created. */
  async close(): Promise<void> {
    this.#unhookExit?.();
    this.#unhookExit = undefined;
    const services = [...this.#services];
    this.#services.clear();
    const stopped = await Promise.allSettled(services.map((s) => s.stop({ graceMs: 2000 })));
    const results = [...stopped, ...(await Promise.allSettled([...this.#containers].map((c) => c.remove())))];
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
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
    return callDaemon(operation, this.#where, this.#timeoutMs, fn).catch((err: unknown) =>
      this.#forgetIfGone(err),
    );
  }

  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      return this.#forgetIfGone(mapDockerError(err, operation, this.#where));
    }
  }

  /** A daemon found gone is probed afresh when it is back (it may have been upgraded). */
  #forgetIfGone(err: unknown): never {
    if (err instanceof RuntimeUnavailableError) this.#info = undefined;
    throw err;
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

/**
 * Logs every Engine API request of this client to the debug log (`NODE_DEBUG=contexec`) with its
 * duration and outcome: all of dockerode's calls go through the modem's dial.
 */
function traceDaemonCalls(docker: Dockerode): void {
  const modem = docker.modem as {
    dial(options: DialOptions, callback: (err: unknown, data: unknown) => void): void;
  };
  const dial = modem.dial.bind(modem);
  modem.dial = (options, callback) => {
    const started = performance.now();
    dial(options, (err, data) => {
      const e = err as { statusCode?: number; code?: string; message?: string } | null;
      const outcome = e ? `failed: ${e.statusCode ?? e.code ?? ""} ${e.message ?? ""}`.trim() : "ok";
      logRuntimeCall(
        "docker",
        `${options.method} ${options.path.replace(/\?$/, "")}`,
        performance.now() - started,
        outcome,
      );
      callback(err, data);
    });
  };
}

/** GET /_ping (dockerode takes an abortSignal here; its published types do not say so). */
function ping(docker: Dockerode, signal: AbortSignal): Promise<unknown> {
  return (docker.ping as (options: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, {
    abortSignal: signal,
  });
}

interface DialOptions {
  method: string;
  path: string;
}

/** Checks a docker executor config; throws InvalidConfigError listing every problem. */
export function validateConfig(config: BackendConfig): void {
  const issues: string[] = [];
  if (config.runtime !== "docker") issues.push(`runtime must be "docker", not "${String(config.runtime)}"`);
  for (const key of Object.keys(config)) {
    if (key !== "runtime" && !(OPTION_NAMES as readonly string[]).includes(key))
      issues.push(`unknown option "${key}" (known: ${OPTION_NAMES.join(", ")})`);
  }
  for (const key of ["socketPath", "tmpDir"] as const) {
    const v = config[key];
    if (v !== undefined && (typeof v !== "string" || v === ""))
      issues.push(`${key} must be a non-empty string`);
  }
  if (
    config.dockerOptions !== undefined &&
    (typeof config.dockerOptions !== "object" || config.dockerOptions === null)
  )
    issues.push("dockerOptions must be an object (dockerode's options)");
  for (const key of ["requestTimeoutMs", "livenessIntervalMs"] as const) {
    const v = config[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v <= 0))
      issues.push(`${key} must be a positive number of milliseconds`);
  }
  if (issues.length > 0) throw new InvalidConfigError(`invalid docker executor config: ${issues.join("; ")}`);
}

/** The hook `createExecutor({ runtime: "docker" })` calls. */
export function createBackend(config: BackendConfig): DockerExecutor {
  validateConfig(config);
  const { runtime: _, ...options } = config;
  return new DockerExecutor(options as DockerExecutorOptions);
}
