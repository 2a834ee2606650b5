import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type Capabilities,
  type ContainerExecutor,
  type ContainerSpec,
  checkCapabilities,
  type ExecutorConfig,
  hostFacts,
  type ImageId,
  ImageNotFoundError,
  InvalidConfigError,
  InvalidSpecError,
  type LoadOptions,
  launchService,
  type Mount,
  openSideChannels,
  type PlanOptions,
  type PullOptions,
  type Resources,
  type RunPlan,
  RuntimeError,
  type RuntimeInfo,
  type RuntimeProfile,
  RuntimeUnavailableError,
  type ServiceOptions,
  type ServiceSummary,
  type SideChannels,
  serviceName,
  stopSignalOf,
  throwIfAborted,
  UnsupportedError,
  unsupported,
  validateSpec,
} from "@contexec/core";
import { DockerExecutor, type DockerExecutorOptions, ownerLabelsFromFile } from "@contexec/docker";
import { ApptainerExecutor, type ApptainerExecutorOptions } from "@contexec/singularity";
import {
  type InnerRuntime,
  type ResolvedSlurmOptions,
  resolveSlurmConfig,
  type SlurmExecutorConfig,
} from "./config/slurm-config.js";
import { SharedImages } from "./images/shared-images.js";
import { type JobFiles, jobFiles } from "./job/job-files.js";
import { type ContainerMemoryCgroup, renderJobScript } from "./job/job-script.js";
import { renderSbatchOptions } from "./job/sbatch-options.js";
import { submitAndWaitCommand } from "./job/submit-command.js";
import { defaultNodeProbeCommand, nodeProfile } from "./probe/node-profile.js";
import { EXEC_UNSUPPORTED, SlurmContainer } from "./run/slurm-container.js";
import { SlurmService } from "./run/slurm-service.js";
import {
  type ClusterInfo,
  clusterCapabilities,
  clusterInfoOf,
  parsePartitions,
  parseScontrolConfig,
} from "./scheduler/cluster-info.js";
import { SchedulerCli } from "./scheduler/scheduler-cli.js";
import { CancelBatcher } from "./track/cancel-batcher.js";
import { JobTracker } from "./track/job-tracker.js";

/** A plan for SLURM: the job's files and script around the inner runtime's plan for the node. */
export interface SlurmRunPlan extends RunPlan {
  slurm: {
    jobName: string;
    /** sbatch long options (also the script's `#SBATCH` lines). */
    options: string[];
    /** The batch script. */
    script: string;
    files: JobFiles;
    /** The inner runtime's plan, made for the compute node's profile. */
    inner: RunPlan;
  };
}

/** The fields of a spec SLURM itself holds the container to: they are asked of the scheduler, not the inner runtime. */
const SCHEDULER_RESOURCES = ["memoryBytes", "cpus"] as const;

/**
 * Runs any backend's containers as SLURM batch jobs: each container is a job whose script is
 * the inner runtime's plan for the compute node (see the README). One tracker serves every job
 * of the executor with one scheduler query per interval.
 */
export class SlurmExecutor implements ContainerExecutor {
  readonly runtime = "slurm";
  readonly inner: InnerRuntime;
  /** This executor's folder under workDir: one sub-folder per container. */
  readonly runDir: string;
  readonly options: ResolvedSlurmOptions;
  readonly cli: SchedulerCli;
  readonly tracker: JobTracker;
  readonly cancels: CancelBatcher;
  readonly images: SharedImages;
  readonly #innerConfig: Record<string, unknown>;
  readonly #innerPlanner: ApptainerExecutor | DockerExecutor;
  readonly #configuredProfile: RuntimeProfile | undefined;
  readonly #containers = new Set<SlurmContainer>();
  readonly #services = new Set<SlurmService>();
  readonly #serviceNames = new Set<string>();
  #cluster: Promise<ClusterInfo> | undefined;
  #nodeProfile: Promise<RuntimeProfile> | undefined;
  #mode: Promise<"sacct" | "squeue"> | undefined;
  #accounting: Promise<boolean> | undefined;
  #closed = false;
  #submitting = 0;
  readonly #submitQueue: (() => void)[] = [];

  constructor(config: SlurmExecutorConfig) {
    const resolved = resolveSlurmConfig(config as unknown as Record<string, unknown>);
    this.inner = resolved.inner;
    this.options = resolved.slurm;
    this.#innerConfig = resolved.innerConfig;
    this.#configuredProfile = resolved.nodeProfile;
    this.runDir = join(this.options.workDir, `contexec-${randomBytes(6).toString("hex")}`);
    this.cli = new SchedulerCli({ binDir: this.options.binDir, timeoutMs: this.options.commandTimeoutMs });
    this.tracker = new JobTracker({
      cli: this.cli,
      mode: () => this.trackingMode(),
      intervalMs: this.options.pollIntervalMs,
      maxIntervalMs: this.options.maxPollIntervalMs,
    });
    this.cancels = new CancelBatcher(this.cli);
    if (this.inner === "apptainer") {
      // The SIF cache is the shared folder's: images are converted once, here, for every node.
      // Its lock is a mkdir (atomic on NFS too); a longer stale time tolerates NFS attribute caching.
      this.#innerPlanner = new ApptainerExecutor({
        lockStaleMs: 120_000,
        ...(this.#innerConfig as ApptainerExecutorOptions),
        cacheDir: join(this.options.sharedCacheDir, "sif"),
      });
      this.images = new SharedImages(this.options.sharedCacheDir, "apptainer", this.#innerPlanner);
    } else {
      this.#innerPlanner = new DockerExecutor(this.#innerConfig as DockerExecutorOptions);
      this.images = new SharedImages(this.options.sharedCacheDir, "docker");
    }
  }

  /** The cluster: version, accounting, partitions and what it confines (asked once). */
  cluster(): Promise<ClusterInfo> {
    this.#cluster ??= (async () => {
      const [version, config, partitions, accounting] = await Promise.all([
        this.cli.run("sinfo", ["--version"]),
        this.cli.run("scontrol", ["show", "config"]),
        this.cli.run("scontrol", ["show", "partition", "--oneliner"]),
        this.#accountingAnswers(),
      ]);
      return clusterInfoOf({
        version: version.trim(),
        config: parseScontrolConfig(config),
        partitions: parsePartitions(partitions),
        accounting,
      });
    })();
    this.#cluster.catch(() => {
      this.#cluster = undefined;
    });
    return this.#cluster;
  }

  /** How jobs are followed: the configured mode, or for "auto" sacct when accounting answers. */
  trackingMode(): Promise<"sacct" | "squeue"> {
    this.#mode ??= (async () => {
      if (this.options.tracking !== "auto") return this.options.tracking;
      return (await this.#accountingAnswers()) ? "sacct" : "squeue";
    })();
    return this.#mode;
  }

  /** The inner runtime's profile on the compute nodes: configured, or probed once with srun (and cached on the shared folder). */
  nodeProfile(): Promise<RuntimeProfile> {
    if (this.#configuredProfile) return Promise.resolve(this.#configuredProfile);
    this.#nodeProfile ??= nodeProfile({
      cli: this.cli,
      inner: this.inner,
      innerConfig: this.#innerConfig,
      command: this.options.nodeProbeCommand ?? defaultNodeProbeCommand(),
      placement: this.#placement(),
      cacheDir: this.options.sharedCacheDir,
      timeoutMs: Math.max(this.options.commandTimeoutMs, 300_000),
    });
    this.#nodeProfile.catch(() => {
      this.#nodeProfile = undefined;
    });
    return this.#nodeProfile;
  }

  async info(): Promise<RuntimeInfo> {
    const [cluster, node, mode] = await Promise.all([
      this.cluster(),
      this.nodeProfile(),
      this.trackingMode(),
    ]);
    const partitions = cluster.partitions
      .map(
        (p) =>
          `${p.name} (${p.state.toLowerCase()}${p.isDefault ? ", default" : ""}, ${p.nodes} node${p.nodes === 1 ? "" : "s"}, max ${p.maxTime})`,
      )
      .join("; ");
    return {
      runtime: "slurm",
      flavor: "slurm",
      version: cluster.version,
      privilege: node.privilege,
      capabilities: this.#capabilities(cluster, node),
      planner: { inner: this.inner, nodeProfile: node, cluster } as unknown as Record<string, unknown>,
      host: hostFacts(),
      probedAt: new Date().toISOString(),
      details: {
        cluster: cluster.name,
        accounting: cluster.accounting ? "on" : "off",
        tracking: mode,
        partitions,
        inner: `${node.runtime} ${node.version} (${node.privilege}) on ${node.host.hostname}`,
        workDir: this.options.workDir,
        sharedCacheDir: this.options.sharedCacheDir,
      },
    };
  }

  hasImage(image: string): Promise<boolean> {
    return this.images.has(image);
  }

  loadImage(archive: string | NodeJS.ReadableStream, options: LoadOptions = {}): Promise<ImageId> {
    this.#assertOpen();
    return this.images.load(archive, options);
  }

  /** Pulled on this machine into the shared SIF cache, for every node (Apptainer inside; see SharedImages.pull). */
  async pullImage(reference: string, options: PullOptions = {}): Promise<ImageId> {
    this.#assertOpen();
    return this.images.pull(reference, options);
  }

  async removeImage(image: string): Promise<void> {
    await this.images.remove(image);
  }

  /**
   * The plan of a run as a job (nothing is written or submitted): the inner runtime's plan for
   * the compute node, wrapped in the job's script. As a RunPlan, its steps write the job's folder
   * and its command submits the job and waits for it (`sbatch --wait`), then prints the
   * container's output and exits with its code; `plan.slurm` holds the script, the options and
   * the inner plan.
   */
  async plan(spec: ContainerSpec, options: PlanOptions = {}): Promise<SlurmRunPlan> {
    return this.#plan(spec, options, randomBytes(32).toString("hex"));
  }

  /**
   * Writes the job's folder and script (nothing is submitted until start()). Side channels are
   * served from here over the shared file system: host-command requests arrive in a `reqs` file
   * (the protocol's file mode) and run on this machine; supervision files are read here.
   */
  async create(spec: ContainerSpec): Promise<SlurmContainer> {
    this.#assertOpen();
    const id = randomBytes(32).toString("hex");
    const valid = await validateSpec(spec);
    let sideChannels: SideChannels | undefined;
    let plain = valid;
    if (valid.hostCommands || valid.supervision) {
      const config = await this.images.config(valid.image);
      // In the executor's folder on the shared file system: the job's node sees it at this path.
      await mkdir(this.runDir, { recursive: true, mode: 0o700 });
      sideChannels = await openSideChannels(valid, { scratchDir: this.runDir, requestChannel: "file" });
      plain = sideChannels.applyTo(valid, config);
    }
    try {
      const plan = await this.#plan(plain, {}, id);
      if (plan.spec.name !== undefined && [...this.#containers].some((c) => c.name === plan.spec.name)) {
        throw new InvalidSpecError([
          {
            path: "name",
            message: `a container named "${plan.spec.name}" already exists in this executor; remove it first`,
          },
        ]);
      }
      this.#assertOpen();
      return await this.#make(plan, id, this.options.startWaitsForRunning, sideChannels);
    } catch (err) {
      await sideChannels?.close();
      throw err;
    }
  }

  /**
   * Starts a service as a job; resolves once it runs (and, with `options.ready`, is ready).
   * Its endpoint is the node it runs on.
   */
  async startService(spec: ContainerSpec, options: ServiceOptions = {}): Promise<SlurmService> {
    this.#assertOpen();
    if (spec.hostCommands || spec.supervision)
      throw new UnsupportedError(
        "side-channels",
        "hostCommands and supervision are offered for containers on SLURM, not for services yet",
      );
    const name = serviceName(spec.name, options);
    // SLURM does not keep job names unique: this executor does, for its services (reserved at
    // once, so that two starts at the same moment cannot both pass).
    if (this.#serviceNames.has(name)) {
      throw new RuntimeError(
        "slurm",
        `a service named "${name}" runs already in this executor; stop it first`,
      );
    }
    this.#serviceNames.add(name);
    let service: SlurmService;
    try {
      const id = randomBytes(32).toString("hex");
      const plan = await this.#plan({ ...spec, name }, {}, id);
      const container = await this.#make(plan, id, true);
      const published = new Map(
        (plan.spec.ports ?? []).map(
          (p) => [p.containerPort, p.hostPort || p.containerPort] as [number, number],
        ),
      );
      service = new SlurmService(container, name, published, (s) => {
        this.#services.delete(s);
        this.#serviceNames.delete(s.name);
      });
    } catch (err) {
      this.#serviceNames.delete(name);
      throw err;
    }
    this.#services.add(service);
    await launchService(service, () => service.start(), options);
    return service;
  }

  async listServices(): Promise<ServiceSummary[]> {
    return Promise.all(
      [...this.#services].map(async (s) => ({ id: s.id, name: s.name, state: await s.state() })),
    );
  }

  /** The containers of this executor not yet removed. */
  containers(): SlurmContainer[] {
    return [...this.#containers];
  }

  /** Cancels every job this executor started and removes their folders. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const services = [...this.#services];
    this.#services.clear();
    await Promise.all(services.map((s) => s.stop({ graceMs: 2000 }).catch(() => {})));
    await Promise.all([...this.#containers].map((c) => c.remove().catch(() => {})));
    this.tracker.close();
    await this.#innerPlanner.close().catch(() => {});
    await rm(this.runDir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #plan(spec: ContainerSpec, options: PlanOptions, id: string): Promise<SlurmRunPlan> {
    throwIfAborted(options.signal, "planning the run");
    const checkHostPaths = options.checkHostPaths !== false;
    const valid = await validateSpec(spec, { checkHostPaths });
    // A profile of this backend (its info(), written on the cluster) holds the cluster's settings
    // and the nodes' profile: planning with it asks the scheduler nothing. Any other profile is
    // the inner runtime's on the nodes.
    const given = slurmProfileParts(options.profile);
    const [cluster, node] = await Promise.all([
      given?.cluster ?? this.cluster(),
      given?.nodeProfile ?? options.profile ?? this.nodeProfile(),
    ]);
    // Memory and CPUs are the scheduler's to give and to hold the job to; the rest is the inner runtime's.
    const gaps = checkCapabilities(
      {
        image: valid.image,
        ...(valid.resources && { resources: valid.resources }),
        ...(valid.unsupported && { unsupported: valid.unsupported }),
      },
      this.#capabilities(cluster, node),
      "slurm",
    );
    const ignored = new Set(gaps.map((g) => g.field));
    const files = jobFiles(join(this.runDir, id.slice(0, 16)));
    const memoryCgroup = this.#memoryCgroup(valid, cluster, node, files, ignored);
    const innerSpec = this.#innerSpec(valid, memoryCgroup);
    const archive = options.archive ?? (await this.#archiveFor(valid.image));
    const inner = await this.#innerPlanner.plan(innerSpec, {
      profile: node,
      // The user's bind sources were checked above; the job's own appear when it runs.
      checkHostPaths: false,
      ...(archive !== undefined && { archive }),
      ...(options.signal && { signal: options.signal }),
    });
    // With Docker inside, the container's owner is the batch shell on its node (see renderJobScript).
    if (this.inner === "docker") {
      inner.command = { ...inner.command, argv: ownerLabelsFromFile(inner.command.argv, files.ownerLabels) };
    }
    const jobName = valid.name ?? `contexec-${id.slice(0, 12)}`;
    const stopSignal = stopSignalOf(inner.process.stopSignal) ?? "SIGTERM";
    const sbatchOptions = renderSbatchOptions({
      jobName,
      logFile: files.log,
      chdir: files.dir,
      partition: this.options.partition,
      account: this.options.account,
      qos: this.options.qos,
      timeLimit: this.options.timeLimit,
      signalBeforeLimitSec: this.options.signalBeforeLimitSec,
      stopSignal,
      // What the spec lets go of (unsupported: "ignore") is not asked of the scheduler either.
      resources: this.#jobResources(withoutFields(valid.resources, ignored)),
      extra: this.options.extra,
    });
    const script = renderJobScript({
      plan: inner,
      options: sbatchOptions,
      files,
      stopSignal,
      // Concurrent jobs converting one archive on their nodes take turns (Apptainer's plan builds to a fixed temporary name).
      ...(inner.image.prepare && inner.image.path && { prepareLock: `${inner.image.path}.prepare-lock` }),
      ...(memoryCgroup && { memoryCgroup }),
      ...(this.inner === "docker" && { dockerOwner: inner.command }),
    });
    return {
      planVersion: 1,
      runtime: "slurm",
      profile: {
        runtime: "slurm",
        flavor: "slurm",
        version: cluster.version,
        privilege: node.privilege,
        host: hostFacts(),
      },
      spec: valid,
      image: {
        id: inner.image.id,
        tags: inner.image.tags,
        action: inner.image.action,
        ...(inner.image.archive && { archive: inner.image.archive }),
        ...(inner.image.path && { path: inner.image.path }),
      },
      before: [
        { op: "mkdir", path: files.dir, mode: 0o700, why: "the job's folder on the shared file system" },
        { op: "write", path: files.script, content: script, why: "the batch script" },
        ...(valid.stdin
          ? [
              {
                op: "write" as const,
                path: files.stdin,
                content: "",
                why: "the container's stdin, read by the job as it grows",
              },
            ]
          : []),
      ],
      command: submitAndWaitCommand({
        sbatch: this.cli.command("sbatch"),
        files,
        stdin: valid.stdin === true,
        env: { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" },
      }),
      process: inner.process,
      after: [],
      ignored: [
        ...gaps.map((g) => ({
          field: g.field,
          capability: g.capability,
          reason: `${g.reason} (still asked of the scheduler)`,
        })),
        ...inner.ignored,
      ],
      notes: [
        `a SLURM job (${sbatchOptions.join(" ")}): its script runs the inner ${inner.runtime} plan on the node, writes the exit status to ${files.exit}, and the container's output to ${files.stdout} and ${files.stderr}`,
        `this script submits it with sbatch --wait, prints the container's output, removes the job's folder and exits with the container's code; interrupted, it leaves the job (scancel it) and its folder ${files.dir}`,
        ...inner.notes.map((n) => `in the job: ${n}`),
      ],
      slurm: { jobName, options: sbatchOptions, script, files, inner },
    };
  }

  async #make(
    plan: SlurmRunPlan,
    id: string,
    startWaitsForRunning: boolean,
    sideChannels?: SideChannels,
  ): Promise<SlurmContainer> {
    const files = plan.slurm.files;
    await mkdir(files.dir, { recursive: true, mode: 0o700 });
    const container = new SlurmContainer({
      id,
      spec: plan.spec,
      files,
      script: plan.slurm.script,
      inner: this.inner,
      program: plan.process.argv[0] ?? "",
      stopSignal: stopSignalOf(plan.process.stopSignal) ?? "SIGTERM",
      cli: this.cli,
      tracker: this.tracker,
      cancels: this.cancels,
      startWaitsForRunning,
      submit: (fn) => this.#submitSlot(fn),
      ...(sideChannels && { sideChannels }),
      onRemoved: (c) => this.#containers.delete(c),
    });
    await container.prepare();
    this.#containers.add(container);
    return container;
  }

  /** At most 8 sbatch calls at once: a burst of submissions does not start a burst of processes. */
  async #submitSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#submitting >= 8) await new Promise<void>((resolve) => this.#submitQueue.push(resolve));
    this.#submitting++;
    try {
      return await fn();
    } finally {
      this.#submitting--;
      this.#submitQueue.shift()?.();
    }
  }

  /**
   * The inner runtime's spec. Apptainer runs inside the job's cgroup, which SLURM holds to the
   * memory and CPUs asked of it: those fields are the scheduler's (and the job's memory cgroup
   * is shown to the container, where it can be). Docker runs the container under its daemon,
   * outside the job: the daemon must hold it to them as well.
   */
  #innerSpec(spec: ContainerSpec, view: ContainerMemoryCgroup | undefined): ContainerSpec {
    if (this.inner === "docker") return spec;
    const resources = withoutFields(
      spec.resources,
      new Set(SCHEDULER_RESOURCES.map((k) => `resources.${k}`)),
    );
    const { resources: _, ...rest } = spec;
    const mounts: Mount[] = [
      ...(spec.mounts ?? []),
      ...(view
        ? [
            ...(view.version === 1
              ? [{ type: "bind" as const, source: view.skeleton, target: "/sys/fs/cgroup", readOnly: true }]
              : []),
            {
              type: "bind" as const,
              source: view.link,
              target: view.version === 1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup",
              readOnly: true,
            },
          ]
        : []),
    ];
    return { ...rest, ...(resources && { resources }), ...(mounts.length > 0 && { mounts }) };
  }

  /**
   * The container's own memory cgroup in the job (see ContainerMemoryCgroup): with Apptainer
   * inside, run as root (a user namespace can neither make cgroups nor bind the host's cgroup
   * files), and a memory limit the cluster enforces. The cgroup version comes from the node's
   * Apptainer profile (its cgroup layout).
   */
  #memoryCgroup(
    spec: ContainerSpec,
    cluster: ClusterInfo,
    node: RuntimeProfile,
    files: JobFiles,
    ignored: Set<string>,
  ): ContainerMemoryCgroup | undefined {
    const memoryBytes = spec.resources?.memoryBytes;
    if (this.inner !== "apptainer" || node.privilege !== "root" || !cluster.confinesMemory) return undefined;
    if (memoryBytes === undefined || ignored.has("resources.memoryBytes")) return undefined;
    const layout = (node.planner as { cgroupLayout?: { version?: unknown } }).cgroupLayout;
    return {
      version: layout?.version === 2 ? 2 : 1,
      memoryBytes,
      link: join(files.dir, "cgroup-memory"),
      skeleton: join(files.dir, "cgroup-view"),
    };
  }

  /**
   * What the job asks of the scheduler: the spec's resources, and with Apptainer inside (whose
   * runtime processes live in the job) its memory plus the runtime's share, so that the
   * container itself gets what it asked for.
   */
  #jobResources(resources: Resources | undefined): Resources | undefined {
    if (!resources || resources.memoryBytes === undefined || this.inner !== "apptainer") return resources;
    return { ...resources, memoryBytes: resources.memoryBytes + this.options.runtimeMemoryMiB * 1024 * 1024 };
  }

  /** The archive a plan needs when the image is not converted already (Docker inside: always). */
  async #archiveFor(image: string): Promise<string | undefined> {
    if (await this.images.converted(image)) return undefined;
    const kept = await this.images.archive(image);
    if (kept) return kept.path;
    throw new ImageNotFoundError(image);
  }

  #capabilities(cluster: ClusterInfo, node: RuntimeProfile): Capabilities {
    return {
      ...node.capabilities,
      ...clusterCapabilities(cluster),
      exec: unsupported(EXEC_UNSUPPORTED),
    };
  }

  /** Where jobs go: partition, account and QOS, as srun and sbatch options. */
  #placement(): string[] {
    const o = this.options;
    return [
      ...(o.partition ? [`--partition=${o.partition}`] : []),
      ...(o.account ? [`--account=${o.account}`] : []),
      ...(o.qos ? [`--qos=${o.qos}`] : []),
    ];
  }

  /** sacct answers: accounting is on and reachable (asked once). */
  #accountingAnswers(): Promise<boolean> {
    this.#accounting ??= this.#askAccounting();
    this.#accounting.catch(() => {
      this.#accounting = undefined;
    });
    return this.#accounting;
  }

  async #askAccounting(): Promise<boolean> {
    const r = await this.cli.call("sacct", [
      "--noheader",
      "--parsable2",
      "--allocations",
      "--starttime=now-1minutes",
      "--format=JobIDRaw",
    ]);
    if (r.missing) {
      throw new RuntimeUnavailableError(
        "slurm",
        "sacct was not found: install SLURM's client commands, or set slurm.binDir",
      );
    }
    return r.ok;
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new RuntimeUnavailableError("slurm", "this executor was closed; create a new one");
  }
}

/** The cluster and node profile a SLURM executor's info() carries in its planner facts, if `profile` is one. */
function slurmProfileParts(
  profile: RuntimeProfile | undefined,
): { cluster: ClusterInfo; nodeProfile: RuntimeProfile } | undefined {
  if (profile?.runtime !== "slurm") return undefined;
  const planner = profile.planner as { cluster?: ClusterInfo; nodeProfile?: RuntimeProfile };
  if (!planner.cluster || !planner.nodeProfile) {
    throw new InvalidConfigError(
      "this SLURM profile lacks the cluster's settings or the nodes' profile (planner.cluster, planner.nodeProfile): write it again with info() on the cluster",
    );
  }
  return { cluster: planner.cluster, nodeProfile: planner.nodeProfile };
}

/** Resources without the fields named ("resources.memoryBytes"); undefined when none is left. */
function withoutFields(resources: Resources | undefined, fields: Set<string>): Resources | undefined {
  if (!resources) return undefined;
  const kept = Object.fromEntries(Object.entries(resources).filter(([k]) => !fields.has(`resources.${k}`)));
  return Object.keys(kept).length > 0 ? (kept as Resources) : undefined;
}

/** Creates a SLURM executor; nothing is asked of the cluster until it is used. */
export function createSlurmExecutor(config: Omit<SlurmExecutorConfig, "runtime">): SlurmExecutor {
  return new SlurmExecutor({ runtime: "slurm", ...config });
}

/** The hook `createExecutor({ runtime: "slurm", ... })` calls. */
export function createBackend(config: ExecutorConfig): SlurmExecutor {
  return new SlurmExecutor(config as unknown as SlurmExecutorConfig);
}

/** Checks a config without creating anything: InvalidConfigError listing every problem. */
export function validateConfig(config: ExecutorConfig): void {
  resolveSlurmConfig(config as unknown as Record<string, unknown>);
}
