import { InvalidConfigError } from "./errors.js";
import type { ContainerExecutor, RegistryAccessOptions } from "./executor.js";
import type { RuntimeProfile } from "./plan/run-plan.js";

/** `createExecutor({ runtime: "docker", ... })`: the options of @contexec/docker. */
export interface DockerExecutorConfig {
  runtime: "docker";
  /** Unix socket of the daemon. Default: DOCKER_HOST when it is unix://, else /var/run/docker.sock. */
  socketPath?: string;
  /** Passed to dockerode as is, for TCP/TLS daemons (host, port, protocol, ca, cert, key). */
  dockerOptions?: { [option: string]: unknown };
  /** Deadline for short API calls (inspect, create, kill, remove); default 60 s. */
  requestTimeoutMs?: number;
  /** How often a pending wait() checks that the daemon is still there; default 2000 ms. */
  livenessIntervalMs?: number;
  /** Where a stream given to loadImage is copied first; default the OS temp folder. */
  tmpDir?: string;
}

/** `createExecutor({ runtime: "apptainer" | "singularity", ... })`: the options of @contexec/singularity. */
export interface ApptainerExecutorConfig {
  runtime: "apptainer" | "singularity";
  /** The runtime binary (path or name on PATH). */
  binary?: string;
  /** The SIF cache folder. */
  cacheDir?: string;
  /** How archives become SIFs: "native", "apptainer-build", or a converter object of @contexec/singularity. */
  converter?:
    | "native"
    | "apptainer-build"
    | { readonly name: string; convert(...args: never[]): Promise<void> };
  /** Where scratch files go (probe image, spooled streams, conversions). */
  tmpDir?: string;
  /** Stale-lock age for the SIF cache (ms). */
  lockStaleMs?: number;
  /** Limit for each probe run (ms). */
  probeTimeoutMs?: number;
  /** Run containers in a user namespace even as root. */
  userns?: boolean;
  /** Where CONTEXEC_* and PATH are read from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where probe findings are kept across processes, or false for none. */
  probeCache?: string | false;
  /** Where the executor's owner record and the records of what it holds are kept (for sweeps after a crash). */
  stateDir?: string;
  /** How pullImage reaches registries (CA, plain-HTTP hosts, credentials, retries, layers at once). */
  registry?: RegistryAccessOptions;
}

/**
 * Where and how @contexec/slurm submits its jobs (`slurm` of {@link SlurmExecutorConfig}). Only
 * `workDir` is required.
 */
export interface SlurmOptions {
  /**
   * A folder every node sees at the same path (a shared file system): each job gets a folder
   * under it for its script, output files, stdin and exit status.
   */
  workDir: string;
  /**
   * A folder every node sees, where images are converted once (Apptainer: the SIF cache) or kept
   * as archives for the node to load (Docker). Default: `<workDir>/images`.
   */
  sharedCacheDir?: string;
  /** A folder holding the SLURM commands (sbatch, sacct, squeue, scontrol, scancel, sinfo, srun); default: found on PATH. */
  binDir?: string;
  /** `--partition`; the cluster's default partition when absent. */
  partition?: string;
  /** `--account`. */
  account?: string;
  /** `--qos`. */
  qos?: string;
  /**
   * `--time` for every job: minutes (a number), or SLURM's forms ("30", "1:30:00", "2-00:00:00",
   * "UNLIMITED"). The partition's default when absent.
   */
  timeLimit?: string | number;
  /**
   * More sbatch long options, by name without the dashes: `{ constraint: "haswell",
   * "mail-type": "END", exclusive: true }` gives `--constraint=haswell --mail-type=END --exclusive`.
   * `true` is a flag without a value.
   */
  extra?: Record<string, string | number | true>;
  /**
   * Memory asked of the scheduler beyond the container's `resources.memoryBytes` for the inner
   * runtime's own processes, which run in the job (Apptainer's starter and init: about 20 MiB).
   * Default 64 MiB. (With Docker inside the container runs under the node's daemon, outside the job.)
   */
  runtimeMemoryMiB?: number;
  /**
   * How jobs are followed: `sacct` (the accounting database: finished jobs stay visible),
   * `squeue` (the controller's queue, with `scontrol` for jobs that just left it), or `auto`
   * (the default: sacct when accounting answers, probed once, else squeue).
   */
  tracking?: "auto" | "sacct" | "squeue";
  /** The scheduler is asked at most this often, while something changes; default 2000 ms. */
  pollIntervalMs?: number;
  /** The longest pause between queries while nothing changes (the interval doubles up to it); default 30 000 ms. */
  maxPollIntervalMs?: number;
  /** A scheduler command that takes longer is "unknown, try again"; default 30 000 ms. */
  commandTimeoutMs?: number;
  /**
   * Seconds before the time limit at which the job's container gets its stop signal (so it can
   * end cleanly before SLURM kills it): `--signal=B:<signal>@N`. Default 60, at most half the limit.
   */
  signalBeforeLimitSec?: number;
  /**
   * `start()` resolves once the job runs (true, the default: then `state()` is "running"), or as
   * soon as the job is queued (false: a queued job's state is "created" until it runs).
   */
  startWaitsForRunning?: boolean;
  /**
   * How to print the inner runtime's RuntimeProfile (JSON) on a compute node, when no
   * `nodeProfile` is given: argv run under `srun`, followed by the inner runtime's name and its
   * config as JSON. Default: this Node running @contexec/slurm's node probe script.
   */
  nodeProbeCommand?: string[];
}

/**
 * `createExecutor({ runtime: "slurm", inner: "apptainer", slurm: { workDir } })`: the options of
 * @contexec/slurm, which runs the inner backend's container as a SLURM batch job.
 */
export type SlurmExecutorConfig = {
  runtime: "slurm";
  slurm: SlurmOptions;
  /**
   * The inner runtime's profile on the compute nodes (`info()` there, as JSON). Probed once with
   * `srun` when absent, then cached beside the shared images.
   */
  nodeProfile?: RuntimeProfile;
} & (
  | {
      /** The backend that runs the container on the compute node. */
      inner: "apptainer";
      /** Its options, as createExecutor takes them, without `runtime` (the SIF cache is `slurm.sharedCacheDir`'s). */
      innerConfig?: Omit<ApptainerExecutorConfig, "runtime" | "cacheDir">;
    }
  | {
      inner: "docker";
      innerConfig?: Omit<DockerExecutorConfig, "runtime">;
    }
);

/**
 * Third-party runtimes add their config here, by declaration merging, after `registerBackend`:
 * `declare module "@contexec/core" { interface ExecutorConfigRegistry { podman: { runtime: "podman"; socket?: string } } }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by declaration merging
export interface ExecutorConfigRegistry {}

/**
 * Options for {@link createExecutor}: `runtime` picks the backend, the rest are its options. A
 * union, so that a misspelt runtime or option is a compile error.
 */
export type ExecutorConfig =
  | DockerExecutorConfig
  | ApptainerExecutorConfig
  | SlurmExecutorConfig
  | ExecutorConfigRegistry[keyof ExecutorConfigRegistry];

/** The config as a backend receives it: the caller's object, runtime included. */
export interface BackendConfig {
  runtime: string;
  [option: string]: unknown;
}

/** What a backend package exports for {@link createExecutor}. */
export interface BackendModule {
  createBackend(config: BackendConfig): ContainerExecutor | Promise<ContainerExecutor>;
  /** Checks a config without creating anything; throws InvalidConfigError listing every problem. */
  validateConfig?(config: BackendConfig): void;
}

type BackendLoader = () => Promise<BackendModule>;

// Backends are imported only when picked, so a user of one never needs the other's dependencies.
// The specifier is held in a variable so that bundlers and tsc do not try to resolve it eagerly.
const importPackage = (name: string): Promise<BackendModule> => import(name) as Promise<BackendModule>;

const BUILT_IN: Record<string, string> = {
  docker: "@contexec/docker",
  apptainer: "@contexec/singularity",
  singularity: "@contexec/singularity",
  slurm: "@contexec/slurm",
};

const registered = new Map<string, BackendLoader>();

/**
 * Makes `createExecutor({ runtime: name })` use a backend of your own. For TypeScript to accept
 * its config, add the config's type to {@link ExecutorConfigRegistry}.
 */
export function registerBackend(name: string, loader: BackendLoader | BackendModule): void {
  registered.set(name, typeof loader === "function" ? loader : async () => loader);
}

/** The runtime names createExecutor knows (built in and registered). */
export function knownRuntimes(): string[] {
  return [...new Set([...Object.keys(BUILT_IN), ...registered.keys()])].sort();
}

/**
 * Creates the executor that `config.runtime` names, loading its package on demand:
 * `createExecutor({ runtime: "docker" })`, `createExecutor({ runtime: "apptainer" })`.
 */
export async function createExecutor(config: ExecutorConfig): Promise<ContainerExecutor> {
  const given = config as unknown as BackendConfig;
  const backend = await loadBackend(given);
  backend.validateConfig?.(given);
  return backend.createBackend(given);
}

/**
 * Checks an executor config as its backend would, without creating anything (no runtime is
 * touched): an unknown runtime, a misspelt option or a value of the wrong type is an
 * InvalidConfigError listing every problem. What a CLI calls on a job file before it runs.
 */
export async function validateExecutorConfig(config: ExecutorConfig | BackendConfig): Promise<void> {
  const given = config as unknown as BackendConfig;
  (await loadBackend(given)).validateConfig?.(given);
}

async function loadBackend(given: BackendConfig): Promise<BackendModule> {
  if (typeof given !== "object" || given === null || typeof given.runtime !== "string") {
    throw new InvalidConfigError(
      `executor config must be an object with a "runtime" (one of ${knownRuntimes().join(", ")})`,
    );
  }
  const loader = registered.get(given.runtime);
  let backend: BackendModule;
  if (loader) {
    backend = await loader();
  } else {
    const pkg = BUILT_IN[given.runtime];
    if (!pkg) {
      throw new InvalidConfigError(
        `unknown runtime "${given.runtime}"; known: ${knownRuntimes().join(", ")} (or registerBackend your own)`,
      );
    }
    try {
      backend = await importPackage(pkg);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" && String(err).includes(pkg)) {
        throw new InvalidConfigError(
          `runtime "${given.runtime}" needs the package ${pkg}: npm install ${pkg}`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }
  if (typeof backend.createBackend !== "function") {
    throw new InvalidConfigError(`the backend for "${given.runtime}" does not export createBackend(config)`);
  }
  return backend;
}
