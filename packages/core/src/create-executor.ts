import { InvalidConfigError } from "./errors.js";
import type { ContainerExecutor } from "./executor.js";

/** Options for {@link createExecutor}: `runtime` picks the backend; the rest is the backend's. */
export interface ExecutorConfig {
  runtime: string;
  [option: string]: unknown;
}

/** What a backend package exports for {@link createExecutor}. */
export interface BackendModule {
  createBackend(config: ExecutorConfig): ContainerExecutor | Promise<ContainerExecutor>;
  /** Checks a config without creating anything; throws InvalidConfigError listing every problem. */
  validateConfig?(config: ExecutorConfig): void;
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

/** Makes `createExecutor({ runtime: name })` use a backend of your own. */
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
  const backend = await loadBackend(config);
  backend.validateConfig?.(config);
  return backend.createBackend(config);
}

/**
 * Checks an executor config as its backend would, without creating anything (no runtime is
 * touched): an unknown runtime, a misspelt option or a value of the wrong type is an
 * InvalidConfigError listing every problem. What a CLI calls on a job file before it runs.
 */
export async function validateExecutorConfig(config: ExecutorConfig): Promise<void> {
  (await loadBackend(config)).validateConfig?.(config);
}

async function loadBackend(config: ExecutorConfig): Promise<BackendModule> {
  if (typeof config !== "object" || config === null || typeof config.runtime !== "string") {
    throw new InvalidConfigError(
      `executor config must be an object with a "runtime" (one of ${knownRuntimes().join(", ")})`,
    );
  }
  const loader = registered.get(config.runtime);
  let backend: BackendModule;
  if (loader) {
    backend = await loader();
  } else {
    const pkg = BUILT_IN[config.runtime];
    if (!pkg) {
      throw new InvalidConfigError(
        `unknown runtime "${config.runtime}"; known: ${knownRuntimes().join(", ")} (or registerBackend your own)`,
      );
    }
    try {
      backend = await importPackage(pkg);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" && String(err).includes(pkg)) {
        throw new InvalidConfigError(
          `runtime "${config.runtime}" needs the package ${pkg}: npm install ${pkg}`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }
  if (typeof backend.createBackend !== "function") {
    throw new InvalidConfigError(`the backend for "${config.runtime}" does not export createBackend(config)`);
  }
  return backend;
}
