import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  archiveFile,
  type BackendConfig,
  type ContainerExecutor,
  type ContainerSpec,
  checkImageLayers,
  defaultStateDir,
  hostFacts,
  type ImageArchive,
  type ImageId,
  ImageNotFoundError,
  InvalidConfigError,
  InvalidSpecError,
  type LoadOptions,
  LoadProgressScale,
  launchService,
  OwnerFolder,
  openSideChannels,
  type PlanOptions,
  type PullOptions,
  pullForLoad,
  type RegistryAccessOptions,
  type RunPlan,
  RuntimeError,
  type RuntimeInfo,
  type RuntimeProfile,
  RuntimeUnavailableError,
  readImageArchive,
  resolveWorkdir,
  runCleanupSteps,
  runPlanSteps,
  type ServiceOptions,
  type ServiceSummary,
  SIDE_CHANNELS_NOTE,
  type SweepReport,
  serviceName,
  stopSignalOf,
  throwIfAborted,
  UnsupportedError,
  validateSpec,
  withoutSideChannels,
} from "@contexec/core";
import type { RegistryClient } from "@contexec/registry";
import { onExit } from "signal-exit";
import { NativeSifConverter } from "./image/native-converter.js";
import { defaultCacheDir, normalizeTag, SifCache, type SifCacheEntry } from "./image/sif-cache.js";
import { ApptainerBuildConverter, FallbackConverter, type SifConverter } from "./image/sif-converter.js";
import { pathInSif, readFileInSif } from "./image/sif-paths.js";
import {
  type ContainerRecord,
  type ExecutorDetails,
  OWNER_KIND,
  ResourceLedger,
  type ServiceRecord,
} from "./owner/leftover-records.js";
import { sweepLeftovers } from "./owner/sweep-leftovers.js";
import {
  type ApptainerImageFacts,
  type ApptainerPlan,
  type ApptainerPlannerFacts,
  apptainerPlannerFacts,
  planApptainerRun,
} from "./plan/plan-apptainer-run.js";
import { type ApptainerCommand, apptainerSpecChecks } from "./plan/render-apptainer-command.js";
import { runtimeProcessEnv } from "./plan/runtime-env.js";
import { findBinary, findOnPath } from "./probe/find-binary.js";
import type { RuntimeProbe } from "./probe/interpret-probe.js";
import { probeRuntime } from "./probe/probe.js";
import { defaultProbeCacheDir, ProbeCache, probeKey } from "./probe/probe-cache.js";
import { parseRuntimeVersion, type RuntimeVersion } from "./probe/runtime-version.js";
import { runTool } from "./process/run-tool.js";
import { ApptainerContainer } from "./run/apptainer-container.js";
import { ApptainerService } from "./run/apptainer-service.js";
import { FifoPool } from "./run/fifo-stdio.js";

export const CONVERTER_NAMES = ["native", "apptainer-build"] as const;
export type ConverterName = (typeof CONVERTER_NAMES)[number];

export interface ApptainerExecutorOptions {
  /** "apptainer" (default) or "singularity": the name this backend reports; "singularity" looks for `singularity` first. */
  runtime?: "apptainer" | "singularity";
  /** The runtime binary (path or name on PATH). Default: $CONTEXEC_APPTAINER, else apptainer, else singularity on PATH. */
  binary?: string;
  /** The SIF cache folder. Default: $CONTEXEC_SIF_CACHE, else $XDG_CACHE_HOME/contexec/sif, else ~/.cache/contexec/sif. */
  cacheDir?: string;
  /**
   * How archives become SIFs: "native" (@contexec/sif: no Apptainer needed, sqfstar), or
   * "apptainer-build", or your own converter. Default: native, falling back to apptainer-build
   * where a tool the native one needs is missing.
   */
  converter?: ConverterName | SifConverter;
  /** Where scratch files go (probe image, spooled streams, conversions). Default: the OS temp folder. */
  tmpDir?: string;
  /** Stale-lock age for the SIF cache (ms); default 15 000. */
  lockStaleMs?: number;
  /** Limit for each probe run (ms); default 5000. */
  probeTimeoutMs?: number;
  /**
   * Run containers in a user namespace (--userns) even as root, where they could start without
   * one: less privilege (no real root, no user switching, no own cgroups), squashfuse for SIFs.
   */
  userns?: boolean;
  /**
   * Where the executor keeps its owner record and the records of what it holds, so that a later
   * executor can clean up after this process if it dies. Default: $CONTEXEC_STATE_DIR, else
   * $XDG_RUNTIME_DIR/contexec, else $XDG_STATE_HOME/contexec, else ~/.local/state/contexec.
   */
  stateDir?: string;
  /** Where CONTEXEC_* and PATH are read from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Where probe findings are kept across processes (per user), so a fresh process starts no
   * probe containers: a folder, or false for none. Default $XDG_CACHE_HOME/contexec/probe, else
   * ~/.cache/contexec/probe.
   */
  probeCache?: string | false;
  /** How pullImage reaches registries (CA, plain-HTTP hosts, credentials, retries, layers at once); see @contexec/registry. */
  registry?: RegistryAccessOptions;
}

/**
 * The Apptainer/SingularityCE backend: images become SIF files in a shared cache, containers run
 * as `apptainer exec` processes with flags that give Docker's meaning (see the README).
 */
export class ApptainerExecutor implements ContainerExecutor {
  readonly runtime: "apptainer" | "singularity";
  readonly cache: SifCache;
  readonly #options: ApptainerExecutorOptions;
  readonly #env: NodeJS.ProcessEnv;
  readonly #containers = new Set<ApptainerContainer>();
  readonly #services = new Set<ApptainerService>();
  readonly #instancesStarted = new Set<string>();
  #binary: Promise<string> | undefined;
  #version: Promise<RuntimeVersion> | undefined;
  #probe: Promise<RuntimeProbe> | undefined;
  #tmpRoot: Promise<string> | undefined;
  #converter: Promise<SifConverter> | undefined;
  #converterUsed: SifConverter | undefined;
  #registry: RegistryClient | undefined;
  readonly #workdirChecks = new Map<string, Promise<boolean>>();
  #closed = false;
  #unhookTmp: (() => void) | undefined;
  /** FIFOs for containers' standard streams, made ahead in the scratch folder. */
  readonly #fifos = new FifoPool(() => this.#tmp());
  /** This executor's owner folder (undefined where it could not be made: then nothing is recorded). */
  #ownerFolder: OwnerFolder | undefined;

  constructor(options: ApptainerExecutorOptions = {}) {
    this.#options = options;
    this.#env = options.env ?? process.env;
    this.runtime = options.runtime ?? "apptainer";
    this.cache = new SifCache({
      dir: options.cacheDir ?? defaultCacheDir(this.#env),
      ...(options.lockStaleMs !== undefined && { lockStaleMs: options.lockStaleMs }),
    });
  }

  /** The runtime binary, found once. Throws RuntimeUnavailableError. */
  binary(): Promise<string> {
    this.#binary ??= findBinary({ binary: this.#options.binary, runtime: this.runtime, env: this.#env });
    return this.#binary;
  }

  /**
   * The probe's findings: measured once per executor (concurrent calls share one probe), and
   * kept on disk for other processes under a key of what they depend on (the binary, its
   * config, the kernel, the user, this process's cgroups), so a fresh process pays a few stat
   * calls instead of the probe's container starts. `refresh` measures again.
   */
  probe(options: { refresh?: boolean } = {}): Promise<RuntimeProbe> {
    if (options.refresh) this.#probe = undefined;
    this.#probe ??= (async () => {
      const binary = await this.binary();
      // First use, even with the findings cached: sweep what dead executors left, make our folder.
      await this.#tmp();
      const cache = this.#probeCache();
      const key = cache
        ? await probeKey(binary, { env: this.#env, userns: this.#options.userns === true }).catch(
            () => undefined,
          )
        : undefined;
      if (cache && key && !options.refresh) {
        const hit = await cache.get(key);
        if (hit) return hit;
      }
      const work = await mkdtemp(join(await this.#tmp(), "probe-"));
      const probe = await probeRuntime({
        binary,
        workDir: work,
        env: this.#env,
        ...(this.#options.probeTimeoutMs !== undefined && { timeoutMs: this.#options.probeTimeoutMs }),
        ...(this.#options.userns !== undefined && { userns: this.#options.userns }),
      });
      await rm(work, { recursive: true, force: true });
      if (cache && key) await cache.set(key, probe);
      return probe;
    })();
    // A failed probe (runtime missing) is retried by the next call.
    this.#probe.catch(() => {
      this.#probe = undefined;
    });
    return this.#probe;
  }

  #probeCache(): ProbeCache | undefined {
    const where = this.#options.probeCache;
    if (where === false) return undefined;
    return new ProbeCache(where ?? defaultProbeCacheDir(this.#env));
  }

  /**
   * Forgets the probe's findings, here and on disk: the next run probes again. Called when the
   * runtime itself failed a run, which may mean the machine changed under a cached probe.
   */
  async forgetProbe(): Promise<void> {
    this.#probe = undefined;
    const cache = this.#probeCache();
    if (!cache) return;
    const key = await probeKey(await this.binary(), {
      env: this.#env,
      userns: this.#options.userns === true,
    }).catch(() => undefined);
    if (key) await cache.delete(key);
  }

  async info(): Promise<RuntimeInfo> {
    const probe = await this.probe();
    const planner: ApptainerPlannerFacts = {
      binary: probe.binary,
      render: probe.render,
      ...(probe.nsenter && { nsenter: probe.nsenter }),
      ...(probe.cgroupLayout && { cgroupLayout: probe.cgroupLayout }),
    };
    return {
      runtime: this.runtime,
      flavor: probe.flavor,
      version: probe.version,
      privilege: probe.privilege,
      capabilities: probe.capabilities,
      planner: planner as unknown as Record<string, unknown>,
      host: hostFacts(),
      probedAt: probe.probedAt,
      details: {
        ...probe.details,
        cacheDir: this.cache.dir,
        converter: this.#converterName(),
      },
    };
  }

  async hasImage(image: string): Promise<boolean> {
    return (await this.cache.lookup(image).catch(() => undefined)) !== undefined;
  }

  /** The cache entry for an id or tag; throws ImageNotFoundError. */
  async image(image: string): Promise<SifCacheEntry> {
    const entry = await this.cache.lookup(image);
    if (!entry) throw new ImageNotFoundError(image);
    return entry;
  }

  /** Pulls from a registry straight into the SIF cache (see registry-pull.ts); same ImageId as Docker's. */
  async pullImage(reference: string, options: PullOptions = {}): Promise<ImageId> {
    this.#assertOpen();
    // Loaded on the first pull: a process that only runs containers does not pay for the client.
    const [{ RegistryClient }, { pullIntoSifCache }] = await Promise.all([
      import("@contexec/registry"),
      import("./image/registry-pull.js"),
    ]);
    this.#assertOpen();
    this.#registry ??= new RegistryClient({
      ...(this.#env && { env: this.#env }),
      ...this.#options.registry,
    });
    return pullIntoSifCache(this.cache, this.#registry, reference, { ...options, tmpDir: await this.#tmp() });
  }

  async loadImage(archive: string | NodeJS.ReadableStream, options: LoadOptions = {}): Promise<ImageId> {
    const pulled = await pullForLoad(archive, options, (ref, o) => this.pullImage(ref, o));
    if (pulled !== undefined) return pulled;
    this.#assertOpen();
    throwIfAborted(options.signal, "loading the image");
    const tmp = await this.#tmp();
    // A stream, FIFO or device is copied to a private file first: Apptainer reads archives from files.
    const { onProgress, ...rest } = options;
    const file = await archiveFile(archive, { tmpDir: tmp, ...rest });
    try {
      const read = await readImageArchive(file.path, rest);
      const layerBytes = read.layers.reduce((n, l) => n + l.size, 0);
      // One scale: the entry checks read the layers, then the conversion reads them again.
      const progress = new LoadProgressScale(onProgress, [
        { stage: "checking", bytes: layerBytes },
        { stage: "converting", bytes: layerBytes },
      ]);
      if (await this.hasImage(read.id)) {
        progress.done();
        return read.id;
      }
      // The same entry checks as every backend's, before converting.
      progress.stage("checking", 0);
      await checkImageLayers(file.path, read, {
        ...rest,
        onLayerBytes: (n) => progress.stage("checking", n),
      });
      const converter = await this.#getConverter();
      await this.cache.ensure(read, file.path, converter, {
        tmpDir: tmp,
        ...(options.signal && { signal: options.signal }),
        onBytes: (n) => progress.stage("converting", n),
      });
      progress.done();
      return read.id;
    } finally {
      await file.remove();
    }
  }

  async removeImage(image: string): Promise<void> {
    await this.cache.remove(image);
  }

  /**
   * The Apptainer command a spec would run, without running anything (a dry run). Validates the
   * spec and checks capabilities exactly as create() does.
   */
  async renderCommand(spec: ContainerSpec): Promise<ApptainerCommand> {
    return (await this.#plan(spec, {}, randomBytes(32).toString("hex"))).command;
  }

  /**
   * The plan of a run (see ContainerExecutor.plan): validated, capabilities checked, the image
   * found in the cache (or, with `options.archive`, read from the archive: no runtime needed
   * with `options.profile`). Nothing is made on disk.
   */
  async plan(spec: ContainerSpec, options: PlanOptions = {}): Promise<RunPlan> {
    return (await this.#plan(spec, options, randomBytes(32).toString("hex"))).plan;
  }

  /**
   * Starts a service as an Apptainer instance (see ApptainerService): named `spec.name` (or
   * "contexec-svc") plus a random suffix unless `exactName`; with `options.ready` it resolves
   * once the check passes, and a service that never gets ready is stopped again.
   */
  async startService(spec: ContainerSpec, options: ServiceOptions = {}): Promise<ApptainerService> {
    this.#assertOpen();
    if (spec.hostCommands || spec.supervision)
      throw new UnsupportedError(
        "side-channels",
        "hostCommands and supervision are not offered for Apptainer services yet",
      );
    const name = serviceName(spec.name, options);
    const id = randomBytes(32).toString("hex");
    const planned = await this.#plan({ ...spec, name }, {}, id, name);
    const { plan, instance } = planned;
    if (!instance) throw new Error("unreachable: a service plan has instance commands");
    const facts = apptainerPlannerFacts(await this.info());
    // Recorded before anything exists: a crash from here on leaves nothing a sweep cannot find.
    const ledger = this.#ledger<ServiceRecord>(`service-${id.slice(0, 16)}`);
    await ledger.write({ kind: "service", name, startCwd: plan.command.cwd, scratch: planned.scratch });
    await runPlanSteps(plan.before).catch(async (err) => {
      await runCleanupSteps(plan.after);
      await ledger.forget();
      throw new RuntimeError(
        this.runtime,
        `cannot prepare the service's scratch folder: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    });
    const service = new ApptainerService({
      name,
      start: instance.start,
      main: instance.main,
      processEnv: plan.command.env,
      baseEnv: runtimeProcessEnv(this.#env),
      render: facts.render,
      binary: facts.binary,
      runtime: this.runtime,
      network: spec.network,
      stopSignal: stopSignalOf(plan.process.stopSignal),
      fifoDir: this.#fifos,
      startCwd: plan.command.cwd,
      ledger,
      onStopped: (s) => {
        this.#services.delete(s);
        void runCleanupSteps(plan.after).then(() => ledger.forget());
      },
    });
    this.#services.add(service);
    this.#instancesStarted.add(name);
    await launchService(service, () => service.start(), options);
    return service;
  }

  /** The name of every instance this executor has started, stopped or not (to check for leftovers). */
  get instancesStarted(): ReadonlySet<string> {
    return this.#instancesStarted;
  }

  /** The services this executor started and has not stopped. */
  async listServices(): Promise<ServiceSummary[]> {
    return Promise.all(
      [...this.#services].map(async (s) => ({ id: s.id, name: s.name, state: await s.state() })),
    );
  }

  async create(spec: ContainerSpec): Promise<ApptainerContainer> {
    this.#assertOpen();
    this.#fifos.warm();
    const id = randomBytes(32).toString("hex");
    const valid = await validateSpec(spec, { extraChecks: apptainerSpecChecks });
    // The side channels' folders and mounts first: the plan is of the plain spec they give.
    const sideChannels = await openSideChannels(valid, { scratchDir: await this.#tmp() });
    let planned: ApptainerPlan;
    try {
      const entry = await this.image(valid.image);
      planned = await this.#plan(sideChannels.applyTo(valid, entry.config), {}, id);
      const name = planned.plan.spec.name;
      if (name !== undefined && [...this.#containers].some((c) => c.name === name)) {
        throw new InvalidSpecError([
          {
            path: "name",
            message: `a container named "${name}" already exists in this executor; remove it first`,
          },
        ]);
      }
      this.#assertOpen();
    } catch (err) {
      await sideChannels.close();
      throw err;
    }
    const { plan, command, cgroups, scratch } = planned;
    this.#assertOpen();
    const profile = await this.info();
    const container = new ApptainerContainer({
      id,
      spec: plan.spec,
      run: plan,
      command,
      runtime: this.runtime,
      stopSignal: stopSignalOf(plan.process.stopSignal),
      exec: profile.capabilities.exec,
      nsenter: apptainerPlannerFacts(profile).nsenter,
      fifoDir: this.#fifos,
      cgroups,
      scratch,
      ledger: this.#ledger<ContainerRecord>(`container-${id.slice(0, 16)}`),
      sideChannels,
      onRemoved: (c) => {
        this.#containers.delete(c);
      },
      onRuntimeFailure: () => void this.forgetProbe().catch(() => {}),
    });
    this.#containers.add(container);
    return container;
  }

  /** The containers of this executor not yet removed, optionally those carrying all `labels`. */
  containers(labels: Record<string, string> = {}): ApptainerContainer[] {
    return [...this.#containers].filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#registry?.close();
    const services = [...this.#services];
    this.#services.clear();
    await Promise.all(services.map((s) => s.stop({ graceMs: 2000 }).catch(() => {})));
    await Promise.all([...this.#containers].map((c) => c.remove().catch(() => {})));
    if (this.#tmpRoot) {
      const dir = await this.#tmpRoot.catch(() => undefined);
      if (dir) await rm(dir, { recursive: true, force: true });
      this.#unhookTmp?.();
    }
    await this.#ownerFolder?.remove();
  }

  /**
   * Removes what Apptainer executors of dead processes on this host left behind (instances,
   * container processes, cgroups, scratch folders; see {@link sweepLeftovers}). Every executor
   * does this once before it makes anything; this runs it again, now.
   */
  async sweepLeftovers(): Promise<SweepReport> {
    return sweepLeftovers({
      stateDir: this.#stateDir(),
      binary: await this.binary().catch(() => undefined),
      env: this.#env,
      caches: [this.cache],
    });
  }

  #stateDir(): string {
    return this.#options.stateDir ?? defaultStateDir(this.#env);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #plan(
    spec: ContainerSpec,
    options: PlanOptions,
    id: string,
    instance?: string,
  ): Promise<ApptainerPlan> {
    throwIfAborted(options.signal, "planning the run");
    const given = await validateSpec(spec, {
      extraChecks: apptainerSpecChecks,
      checkHostPaths: options.checkHostPaths !== false,
    });
    // Side channels are served by the executor while the container runs: create() opens them and
    // plans the plain spec they give; a plan of the spec itself leaves them out and says so.
    const valid = withoutSideChannels(given);
    const profile = options.profile ?? (await this.info());
    const image = await this.#imageFacts(valid, profile, options);
    // Planned for this machine: the scratch folder lives in the executor's own (gone with it,
    // even when the process dies); for another machine, in its temp folder.
    const scratchDir = options.profile
      ? join(this.#options.tmpDir ?? "/tmp", `contexec-${id.slice(0, 16)}`)
      : join(await this.#tmp(), `c-${id.slice(0, 16)}`);
    const planned = planApptainerRun({
      spec: valid,
      runtime: this.runtime,
      profile,
      image,
      id,
      scratchDir,
      runtimeEnv: runtimeProcessEnv(this.#env),
      ...(instance !== undefined && { instance }),
    });
    if (given !== valid) planned.plan.notes.push(SIDE_CHANNELS_NOTE);
    return planned;
  }

  /**
   * What planning needs to know of the image: from the cache when it is there, else from
   * `options.archive` (read here, no runtime needed): its config, whether the working folder
   * exists in it, and its passwd and group files when a user name must be resolved.
   */
  async #imageFacts(
    spec: ContainerSpec,
    profile: RuntimeProfile,
    options: PlanOptions,
  ): Promise<ApptainerImageFacts> {
    let archive: ImageArchive | undefined;
    if (options.archive !== undefined) {
      archive = await readImageArchive(options.archive, options.signal ? { signal: options.signal } : {});
      if (
        spec.image !== archive.id &&
        !archive.repoTags.some((t) => normalizeTag(t) === normalizeTag(spec.image))
      ) {
        throw new InvalidSpecError([
          {
            path: "image",
            message: `${spec.image} is neither the id nor a tag of the archive ${options.archive} (${archive.id}${archive.repoTags.length ? `, ${archive.repoTags.join(", ")}` : ""})`,
          },
        ]);
      }
    }
    const entry = await this.cache.lookup(archive?.id ?? spec.image).catch(() => undefined);
    const config = entry?.config ?? archive?.config;
    if (!config) throw new ImageNotFoundError(spec.image);
    const workdir = resolveWorkdir(config, spec);
    const wanted = spec.user ?? (config.user || undefined);
    const needDatabases =
      profile.capabilities.user.supported && wanted !== undefined && !/^\d+:\d+$/.test(wanted);
    const files = needDatabases ? ["/etc/passwd", "/etc/group"] : [];
    let workdirExists: boolean;
    let found: Map<string, string>;
    if (entry) {
      [workdirExists, found] = await Promise.all([
        this.#workdirExists(entry, workdir),
        this.#readInSif(entry, files),
      ]);
    } else {
      // Loaded only here (a plan from an archive): a run of a cached image never reads tar layers.
      const { readImageFiles } = await import("@contexec/sif");
      const facts = await readImageFiles(options.archive as string, {
        exists: [workdir],
        read: files,
        ...(options.signal && { signal: options.signal }),
      });
      workdirExists = workdir === "/" || facts.exists.get(workdir) === true;
      found = facts.files;
    }
    const passwd = found.get("/etc/passwd");
    const group = found.get("/etc/group");
    return {
      id: (entry?.id ?? archive?.id) as ImageId,
      config,
      tags: entry?.repoTags ?? archive?.repoTags ?? [],
      sifPath: entry?.sifPath ?? this.cache.paths((archive as ImageArchive).id).sif,
      present: entry !== undefined,
      ...(options.archive !== undefined && { archive: options.archive }),
      workdirExists,
      ...(passwd !== undefined && { passwd }),
      ...(group !== undefined && { group }),
    };
  }

  async #readInSif(entry: SifCacheEntry, paths: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    if (paths.length === 0) return found;
    const unsquashfs = await findOnPath("unsquashfs", this.#env.PATH ?? "/usr/bin:/bin");
    if (!unsquashfs) return found;
    for (const p of paths) {
      const text = await readFileInSif(unsquashfs, entry.sifPath, p);
      if (text !== undefined) found.set(p, text);
    }
    return found;
  }

  /** False only when the folder is known to be missing from the image. */
  #workdirExists(entry: SifCacheEntry, workdir: string): Promise<boolean> {
    if (workdir === "/") return Promise.resolve(true);
    const key = `${entry.sifPath}\0${workdir}`;
    let check = this.#workdirChecks.get(key);
    if (!check) {
      check = (async () => {
        const unsquashfs = await findOnPath("unsquashfs", this.#env.PATH ?? "/usr/bin:/bin");
        if (!unsquashfs) return true;
        return (await pathInSif(unsquashfs, entry.sifPath, workdir)) !== "missing";
      })();
      this.#workdirChecks.set(key, check);
    }
    return check;
  }

  /**
   * The converter's name, without loading it (info() is part of every CLI run; the converter
   * module is loaded by the first conversion): the one used last, else the configured one.
   */
  #converterName(): string {
    if (this.#converterUsed) return this.#converterUsed.name;
    const choice = this.#options.converter;
    return typeof choice === "object" ? choice.name : (choice ?? "native");
  }

  #getConverter(): Promise<SifConverter> {
    this.#converter ??= (async () => {
      const choice = this.#options.converter;
      if (typeof choice === "object") return choice;
      if (choice === "native") return NativeSifConverter.load();
      const build: () => Promise<SifConverter> = async () => {
        const binary = await this.binary();
        const version = await this.#runtimeVersion(binary);
        return new ApptainerBuildConverter({ binary, flavor: version.flavor, env: this.#env });
      };
      if (choice === "apptainer-build") return build();
      // Default: the native converter, and `apptainer build` where it cannot run (no sqfstar).
      const native = await NativeSifConverter.load().catch(() => undefined);
      return native ? new FallbackConverter(native, build) : build();
    })();
    this.#converter.then(
      (c) => {
        this.#converterUsed = c;
      },
      () => {},
    );
    this.#converter.catch(() => {
      this.#converter = undefined;
    });
    return this.#converter;
  }

  #runtimeVersion(binary: string): Promise<RuntimeVersion> {
    this.#version ??= (async () => {
      const r = await runTool([binary, "--version"], {
        env: runtimeProcessEnv(this.#env),
        timeoutMs: 10_000,
      });
      if (r.exitCode !== 0) {
        throw new RuntimeUnavailableError(
          this.runtime,
          `${binary} --version failed: ${String(r.stderr).trim()}`,
        );
      }
      return parseRuntimeVersion(String(r.stdout), binary);
    })();
    return this.#version;
  }

  /**
   * The executor's scratch folder, made on first use: after a sweep of what dead executors left
   * behind, and with this executor's owner folder, which records it.
   */
  #tmp(): Promise<string> {
    this.#tmpRoot ??= (async () => {
      await this.sweepLeftovers().catch(() => undefined);
      const base = this.#options.tmpDir ?? tmpdir();
      await mkdir(base, { recursive: true });
      const dir = await mkdtemp(join(base, "contexec-apptainer-"));
      const details: ExecutorDetails = { runtime: this.runtime, tmpRoot: dir };
      // Without an owner folder (a read-only home, say) everything still works; only a crash's
      // leftovers wait for a person.
      this.#ownerFolder = await OwnerFolder.create(this.#stateDir(), OWNER_KIND, { ...details }).catch(
        () => undefined,
      );
      // An executor never closed (its process exited first) leaves no scratch folder behind; its
      // owner folder stays while it held anything, for the next executor's sweep (cgroups of
      // containers killed on the way out are still busy now).
      this.#unhookTmp = onExit(() => {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // nothing more can be done on the way out
        }
        if (this.#containers.size === 0 && this.#services.size === 0) this.#ownerFolder?.removeSync();
      });
      return dir;
    })();
    return this.#tmpRoot;
  }

  /** The record keeper of one resource of this executor (its owner folder must exist: after #tmp()). */
  #ledger<R extends ContainerRecord | ServiceRecord>(name: string): ResourceLedger<R> {
    return new ResourceLedger<R>(this.#ownerFolder, name);
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new RuntimeUnavailableError(this.runtime, "this executor was closed; create a new one");
    }
  }
}

/** Creates an Apptainer executor; nothing runs until it is used. */
export function createApptainerExecutor(options: ApptainerExecutorOptions = {}): ApptainerExecutor {
  return new ApptainerExecutor(options);
}

const CONFIG_KEYS = new Set([
  "runtime",
  "binary",
  "cacheDir",
  "converter",
  "tmpDir",
  "lockStaleMs",
  "probeTimeoutMs",
  "userns",
  "probeCache",
  "stateDir",
  "registry",
]);

/** The hook `createExecutor({ runtime: "apptainer" | "singularity", ... })` calls. */
export async function createBackend(config: BackendConfig): Promise<ApptainerExecutor> {
  validateConfig(config);
  return new ApptainerExecutor(config as ApptainerExecutorOptions);
}

/** Checks an apptainer/singularity executor config; throws InvalidConfigError listing every problem. */
export function validateConfig(config: BackendConfig): void {
  const issues: string[] = [];
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) issues.push(`unknown option "${key}" (known: ${[...CONFIG_KEYS].join(", ")})`);
  }
  if (config.runtime !== "apptainer" && config.runtime !== "singularity") {
    issues.push(`runtime must be "apptainer" or "singularity", not "${String(config.runtime)}"`);
  }
  for (const key of ["binary", "cacheDir", "tmpDir", "stateDir"] as const) {
    const v = config[key];
    if (v !== undefined && (typeof v !== "string" || v === ""))
      issues.push(`${key} must be a non-empty string`);
  }
  for (const key of ["lockStaleMs", "probeTimeoutMs"] as const) {
    const v = config[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v <= 0))
      issues.push(`${key} must be a positive number`);
  }
  if (config.userns !== undefined && typeof config.userns !== "boolean")
    issues.push("userns must be a boolean");
  const probeCache = config.probeCache;
  if (
    probeCache !== undefined &&
    probeCache !== false &&
    (typeof probeCache !== "string" || probeCache === "")
  )
    issues.push("probeCache must be a folder or false");
  const converter = config.converter;
  if (
    converter !== undefined &&
    !(CONVERTER_NAMES as readonly unknown[]).includes(converter) &&
    !(
      typeof converter === "object" &&
      converter !== null &&
      typeof (converter as SifConverter).convert === "function"
    )
  ) {
    issues.push(`converter must be one of ${CONVERTER_NAMES.join(", ")} (or a SifConverter object)`);
  }
  if (issues.length > 0)
    throw new InvalidConfigError(`invalid ${String(config.runtime)} executor config: ${issues.join("; ")}`);
}
