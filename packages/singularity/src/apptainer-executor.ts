import { randomBytes } from "node:crypto";
import { createWriteStream, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortedError,
  type ContainerExecutor,
  type ContainerSpec,
  checkCapabilities,
  type ExecutorConfig,
  type ImageId,
  ImageNotFoundError,
  InvalidConfigError,
  InvalidSpecError,
  type LoadOptions,
  launchService,
  type PullOptions,
  type RuntimeInfo,
  RuntimeUnavailableError,
  readImageArchive,
  registryReferenceOf,
  resolveWorkdir,
  type ServiceOptions,
  type ServiceSummary,
  serviceName,
  stopSignalOf,
  throwIfAborted,
  UnsupportedError,
  validateSpec,
} from "@contexec/core";
import { RegistryClient, type RegistryClientOptions } from "@contexec/registry";
import { execa } from "execa";
import { onExit } from "signal-exit";
import { ApptainerContainer } from "./apptainer-container.js";
import { ApptainerService } from "./apptainer-service.js";
import { planCgroups } from "./cgroup-limits.js";
import { findBinary, findOnPath } from "./find-binary.js";
import { type NumericUser, resolveUser } from "./image-user.js";
import { NativeSifConverter } from "./native-converter.js";
import { probeRuntime, type RuntimeProbe } from "./probe.js";
import { pullIntoSifCache } from "./registry-pull.js";
import {
  type ApptainerCommand,
  apptainerSpecChecks,
  type RenderProbe,
  renderApptainerCommand,
  renderApptainerInstance,
} from "./render-apptainer-command.js";
import { runtimeProcessEnv } from "./runtime-env.js";
import { parseRuntimeVersion, type RuntimeVersion } from "./runtime-version.js";
import { defaultCacheDir, SifCache, type SifCacheEntry } from "./sif-cache.js";
import { ApptainerBuildConverter, FallbackConverter, type SifConverter } from "./sif-converter.js";
import { pathInSif, readFileInSif } from "./sif-paths.js";

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
  /** Where CONTEXEC_* and PATH are read from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How pullImage reaches registries (CA, plain-HTTP hosts, credentials, retries, layers at once); see @contexec/registry. */
  registry?: RegistryClientOptions;
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
  #registry: RegistryClient | undefined;
  readonly #workdirChecks = new Map<string, Promise<boolean>>();
  #closed = false;
  #unhookTmp: (() => void) | undefined;

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

  /** The probe's findings, measured once per executor (concurrent calls share one probe). */
  probe(): Promise<RuntimeProbe> {
    this.#probe ??= (async () => {
      const binary = await this.binary();
      const work = await mkdtemp(join(await this.#tmp(), "probe-"));
      return probeRuntime({
        binary,
        workDir: work,
        env: this.#env,
        ...(this.#options.probeTimeoutMs !== undefined && { timeoutMs: this.#options.probeTimeoutMs }),
        ...(this.#options.userns !== undefined && { userns: this.#options.userns }),
      });
    })();
    // A failed probe (runtime missing) is retried by the next call.
    this.#probe.catch(() => {
      this.#probe = undefined;
    });
    return this.#probe;
  }

  async info(): Promise<RuntimeInfo> {
    const probe = await this.probe();
    const converter = await this.#getConverter().catch(() => undefined);
    return {
      runtime: this.runtime,
      flavor: probe.flavor,
      version: probe.version,
      capabilities: probe.capabilities,
      details: {
        ...probe.details,
        cacheDir: this.cache.dir,
        ...(converter && { converter: converter.name }),
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
    this.#registry ??= new RegistryClient({
      ...(this.#env && { env: this.#env }),
      ...this.#options.registry,
    });
    return pullIntoSifCache(this.cache, this.#registry, reference, { ...options, tmpDir: await this.#tmp() });
  }

  async loadImage(archive: string | NodeJS.ReadableStream, options: LoadOptions = {}): Promise<ImageId> {
    const reference = registryReferenceOf(archive);
    if (reference !== undefined)
      return this.pullImage(reference, options.signal ? { signal: options.signal } : {});
    this.#assertOpen();
    throwIfAborted(options.signal, "loading the image");
    const tmp = await this.#tmp();
    let path: string;
    let spool: string | undefined;
    if (typeof archive === "string") {
      path = archive;
    } else {
      // Apptainer reads archives from files: a stream is written to a private file first.
      spool = join(tmp, `spool-${randomBytes(8).toString("hex")}.tar`);
      path = spool;
      let bytesRead = 0;
      const count = new Transform({
        transform(chunk: Buffer, _e, cb) {
          bytesRead += chunk.length;
          options.onProgress?.({ bytesRead });
          cb(null, chunk);
        },
      });
      try {
        await pipeline(archive, count, createWriteStream(spool, { mode: 0o600 }), {
          ...(options.signal && { signal: options.signal }),
        });
      } catch (err) {
        await rm(spool, { force: true });
        if (options.signal?.aborted) throw new AbortedError("loading the image", { cause: err });
        throw err;
      }
    }
    try {
      const read = await readImageArchive(path, {
        ...(options.signal && { signal: options.signal }),
        ...(options.onProgress && spool === undefined && { onProgress: options.onProgress }),
      });
      const converter = await this.#getConverter();
      await this.cache.ensure(read, path, converter, {
        tmpDir: tmp,
        ...(options.signal && { signal: options.signal }),
      });
      return read.id;
    } finally {
      if (spool) await rm(spool, { force: true });
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
    return (await this.#plan(spec, "dry-run")).command;
  }

  /**
   * Starts a service as an Apptainer instance (see ApptainerService): named `spec.name` (or
   * "contexec-svc") plus a random suffix unless `exactName`; with `options.ready` it resolves
   * once the check passes, and a service that never gets ready is stopped again.
   */
  async startService(spec: ContainerSpec, options: ServiceOptions = {}): Promise<ApptainerService> {
    this.#assertOpen();
    const name = serviceName(spec.name, options);
    const plan = await this.#plan({ ...spec, name }, randomBytes(32).toString("hex"), { instance: name });
    if (!plan.instance) throw new Error("unreachable: a service plan has instance commands");
    const service = new ApptainerService({
      name,
      start: plan.instance.start,
      main: plan.instance.main,
      processEnv: plan.processEnv,
      baseEnv: runtimeProcessEnv(this.#env),
      render: plan.probe.render,
      binary: plan.probe.binary,
      runtime: this.runtime,
      network: spec.network,
      stopSignal: stopSignalOf(plan.entry.config.stopSignal),
      fifoDir: await this.#tmp(),
      onStopped: (s) => {
        this.#services.delete(s);
        if (plan.homeSource) void rm(plan.homeSource, { recursive: true, force: true });
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
    const { command, id, probe, entry, processEnv, cgroups, homeSource } = await this.#plan(
      spec,
      randomBytes(32).toString("hex"),
    );
    this.#assertOpen();
    const container = new ApptainerContainer({
      id,
      spec,
      command,
      processEnv,
      runtime: this.runtime,
      stopSignal: stopSignalOf(entry.config.stopSignal),
      exec: probe.capabilities.exec,
      nsenter: probe.nsenter,
      fifoDir: await this.#tmp(),
      cgroups,
      onRemoved: (c) => {
        this.#containers.delete(c);
        if (homeSource) void rm(homeSource, { recursive: true, force: true });
      },
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
  }

  async #plan(spec: ContainerSpec, id: string, service?: { instance: string }) {
    const valid = await validateSpec(spec, { extraChecks: apptainerSpecChecks });
    const probe = await this.probe();
    checkCapabilities(valid, probe.capabilities, this.runtime);
    const entry = await this.image(valid.image);
    if (valid.name !== undefined && [...this.#containers].some((c) => c.name === valid.name)) {
      throw new InvalidSpecError([
        {
          path: "name",
          message: `a container named "${valid.name}" already exists in this executor; remove it first`,
        },
      ]);
    }
    const workdir = resolveWorkdir(entry.config, valid);
    const createWorkdir = !(await this.#workdirExists(entry, workdir));
    // Limits through cgroups of our own: the container sees them at /sys/fs/cgroup, its OOM kills
    // are counted after it ends (Apptainer removes the cgroups it makes), and the runtime's own
    // processes (starter, squashfuse) stay outside, neither charged nor OOM-killed.
    const cgroups =
      !service && probe.render.ownCgroups && probe.cgroupLayout
        ? planCgroups(
            probe.cgroupLayout,
            `contexec-${id.slice(0, 16)}`,
            { memoryBytes: valid.resources?.memoryBytes, cpus: valid.resources?.cpus },
            join(await this.#tmp(), "cgroup-mount-points"),
          )
        : undefined;
    const user = await this.#user(valid, entry, probe);
    // HOME's private folder (see renderApptainerCommand); a dry run names one without making it.
    const tmp = await this.#tmp();
    const homeSource = id === "dry-run" ? join(tmp, "home") : await mkdtemp(join(tmp, "home-"));
    const renderOptions = {
      ...(user && { user }),
      binary: probe.binary,
      createWorkdir,
      homeSource,
      ...(cgroups && { cgroup: { binds: cgroups.binds } }),
    };
    const command = renderApptainerCommand(valid, entry.config, probe.render, entry.sifPath, renderOptions);
    const instance = service
      ? renderApptainerInstance(
          valid,
          entry.config,
          serviceRender(valid, probe.render),
          entry.sifPath,
          service.instance,
          renderOptions,
        )
      : undefined;
    return {
      instance,
      id,
      probe,
      entry,
      command,
      cgroups,
      renderOptions,
      homeSource: id === "dry-run" ? undefined : homeSource,
      processEnv: runtimeProcessEnv(this.#env, command.env),
    };
  }

  /**
   * The user to run as, numeric: spec.user, else the image's USER (as Docker), where the runtime
   * can switch users. Without that capability the image's USER is not honoured (the container
   * runs as the caller); spec.user was already refused or ignored by checkCapabilities.
   */
  async #user(
    spec: ContainerSpec,
    entry: SifCacheEntry,
    probe: RuntimeProbe,
  ): Promise<NumericUser | undefined> {
    if (!probe.capabilities.user.supported) return undefined;
    const wanted = spec.user ?? (entry.config.user || undefined);
    if (wanted === undefined) return undefined;
    const field = spec.user !== undefined ? "user" : "image USER";
    if (/^\d+(:\d+)?$/.test(wanted) && wanted.includes(":"))
      return resolveUser(wanted, undefined, undefined, field);
    const unsquashfs = await findOnPath("unsquashfs", this.#env.PATH ?? "/usr/bin:/bin");
    const read = (path: string) =>
      unsquashfs ? readFileInSif(unsquashfs, entry.sifPath, path) : Promise.resolve(undefined);
    const [passwd, group] = await Promise.all([read("/etc/passwd"), read("/etc/group")]);
    return resolveUser(wanted, passwd, group, field);
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
    this.#converter.catch(() => {
      this.#converter = undefined;
    });
    return this.#converter;
  }

  #runtimeVersion(binary: string): Promise<RuntimeVersion> {
    this.#version ??= (async () => {
      const r = await execa(binary, ["--version"], {
        env: runtimeProcessEnv(this.#env),
        extendEnv: false,
        reject: false,
        timeout: 10_000,
        stdin: "ignore",
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

  #tmp(): Promise<string> {
    this.#tmpRoot ??= (async () => {
      const base = this.#options.tmpDir ?? tmpdir();
      await mkdir(base, { recursive: true });
      const dir = await mkdtemp(join(base, "contexec-apptainer-"));
      // An executor never closed (its process exited first) leaves no scratch folder behind.
      this.#unhookTmp = onExit(() => {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // nothing more can be done on the way out
        }
      });
      return dir;
    })();
    return this.#tmpRoot;
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
  "registry",
]);

/** The hook `createExecutor({ runtime: "apptainer" | "singularity", ... })` calls. */
export async function createBackend(config: ExecutorConfig): Promise<ApptainerExecutor> {
  const issues: string[] = [];
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) issues.push(`unknown option "${key}" (known: ${[...CONFIG_KEYS].join(", ")})`);
  }
  if (config.runtime !== "apptainer" && config.runtime !== "singularity") {
    issues.push(`runtime must be "apptainer" or "singularity", not "${String(config.runtime)}"`);
  }
  for (const key of ["binary", "cacheDir", "tmpDir"] as const) {
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
  return new ApptainerExecutor(config as ApptainerExecutorOptions);
}

/**
 * How a service's instance applies limits: the library's own cgroups follow one process tree,
 * an instance is several (its init, the command, every exec), so it uses Apptainer's own
 * --memory/--cpus, which root applies to the whole instance. Elsewhere a limit cannot be kept.
 */
function serviceRender(spec: ContainerSpec, render: RenderProbe): RenderProbe {
  const native = render.dockerCaps;
  const r = spec.resources;
  const lacking = [
    ...(r?.memoryBytes !== undefined && !native ? ["resources.memoryBytes"] : []),
    ...(r?.cpus !== undefined && !native ? ["resources.cpus"] : []),
  ];
  if (lacking.length > 0 && spec.unsupported !== "ignore") {
    throw new UnsupportedError(
      lacking[0] === "resources.memoryBytes" ? "memory-limit" : "cpu-limit",
      `spec.${lacking[0]} cannot be kept for a service (an Apptainer instance) here: only root without --userns can limit an instance. Remove it, or set spec.unsupported to "ignore"`,
    );
  }
  return { ...render, ownCgroups: false, memoryLimit: native, cpuLimit: native };
}
