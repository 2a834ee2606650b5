import { isAbsolute } from "node:path";
import {
  type BackendConfig,
  InvalidConfigError,
  type RuntimeProfile,
  type SlurmExecutorConfig,
  type SlurmOptions,
} from "@contexec/core";
import { validateConfig as validateDockerConfig } from "@contexec/docker";
import { validateConfig as validateApptainerConfig } from "@contexec/singularity";
import { parseTimeLimit } from "../job/time-limit.js";

// The config's shape is core's (createExecutor types its argument without importing a backend).
export type { SlurmExecutorConfig, SlurmOptions };

/** The backend that runs the container inside the job, on the compute node. */
export type InnerRuntime = SlurmExecutorConfig["inner"];
export const INNER_RUNTIMES = ["apptainer", "docker"] as const satisfies readonly InnerRuntime[];

/** How jobs are followed: see {@link SlurmOptions.tracking}. */
export type TrackingMode = NonNullable<SlurmOptions["tracking"]>;
export const TRACKING_MODES = ["auto", "sacct", "squeue"] as const satisfies readonly TrackingMode[];

/** A long option's value in {@link SlurmOptions.extra}: `true` gives `--name` alone. */
export type ExtraOptionValue = NonNullable<SlurmOptions["extra"]>[string];

/** The options with every default filled in. */
export interface ResolvedSlurmOptions extends SlurmOptions {
  sharedCacheDir: string;
  extra: Record<string, ExtraOptionValue>;
  tracking: TrackingMode;
  runtimeMemoryMiB: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
  commandTimeoutMs: number;
  signalBeforeLimitSec: number;
  startWaitsForRunning: boolean;
}

// Records over the config types' keys: the compiler keeps these lists and the types the same.
const TOP_KEY_SET: Record<keyof SlurmExecutorConfig, true> = {
  runtime: true,
  inner: true,
  slurm: true,
  innerConfig: true,
  nodeProfile: true,
};
const SLURM_KEY_SET: Record<keyof SlurmOptions, true> = {
  binDir: true,
  partition: true,
  account: true,
  qos: true,
  timeLimit: true,
  workDir: true,
  sharedCacheDir: true,
  extra: true,
  tracking: true,
  runtimeMemoryMiB: true,
  pollIntervalMs: true,
  maxPollIntervalMs: true,
  commandTimeoutMs: true,
  signalBeforeLimitSec: true,
  startWaitsForRunning: true,
  nodeProbeCommand: true,
};
const TOP_KEYS = new Set(Object.keys(TOP_KEY_SET));
const SLURM_KEYS = new Set(Object.keys(SLURM_KEY_SET));
/** Options the executor sets itself, per job: `extra` may not override them. */
export const RESERVED_OPTIONS = new Set([
  "job-name",
  "J",
  "output",
  "o",
  "error",
  "e",
  "input",
  "i",
  "chdir",
  "D",
  "parsable",
  "signal",
  "wrap",
  "array",
  "a",
]);
/** What a long option's name may be: sbatch's own are lower-case words joined by dashes. */
const OPTION_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Checks an executor config and fills in the defaults; every problem is listed in one
 * InvalidConfigError, before anything runs.
 */
export function resolveSlurmConfig(config: Record<string, unknown>): {
  inner: InnerRuntime;
  slurm: ResolvedSlurmOptions;
  innerConfig: Record<string, unknown>;
  nodeProfile: RuntimeProfile | undefined;
} {
  const issues: string[] = [];
  for (const key of Object.keys(config)) {
    if (!TOP_KEYS.has(key)) issues.push(`unknown option "${key}" (known: ${[...TOP_KEYS].join(", ")})`);
  }
  if (config.runtime !== "slurm") issues.push(`runtime must be "slurm", not "${String(config.runtime)}"`);
  const inner = config.inner;
  if (!(INNER_RUNTIMES as readonly unknown[]).includes(inner)) {
    issues.push(`inner must be one of ${INNER_RUNTIMES.join(", ")} (the runtime on the compute nodes)`);
  }
  const innerConfig = config.innerConfig ?? {};
  if (!isRecord(innerConfig)) issues.push("innerConfig must be an object");
  else if ("runtime" in innerConfig) issues.push("innerConfig must not name a runtime: `inner` does");
  else if (inner === "apptainer" && "cacheDir" in innerConfig) {
    issues.push("innerConfig.cacheDir: the SIF cache is the shared one, <slurm.sharedCacheDir>/sif");
  } else if (inner === "apptainer" || inner === "docker") {
    // The inner backend checks its own options, as createExecutor would.
    const check = inner === "apptainer" ? validateApptainerConfig : validateDockerConfig;
    try {
      check({ ...innerConfig, runtime: inner } as BackendConfig);
    } catch (err) {
      if (!(err instanceof InvalidConfigError)) throw err;
      issues.push(`innerConfig, as the ${inner} backend reads it: ${err.message}`);
    }
  }
  const nodeProfile = config.nodeProfile;
  if (nodeProfile !== undefined && !isProfile(nodeProfile)) {
    issues.push(
      "nodeProfile must be a RuntimeProfile (the JSON of the inner runtime's info() on a compute node)",
    );
  }
  const s = config.slurm;
  if (!isRecord(s)) {
    issues.push("slurm must be an object with at least workDir (a folder every node sees)");
    throw invalid(issues);
  }
  for (const key of Object.keys(s)) {
    if (!SLURM_KEYS.has(key))
      issues.push(`unknown option "slurm.${key}" (known: ${[...SLURM_KEYS].join(", ")})`);
  }
  for (const key of ["partition", "account", "qos"] as const) {
    const v = s[key];
    if (v !== undefined && !isOptionValue(v))
      issues.push(`slurm.${key} must be a non-empty single-line string`);
  }
  for (const key of ["workDir", "sharedCacheDir"] as const) {
    const v = s[key];
    if (v === undefined && key === "sharedCacheDir") continue;
    if (typeof v !== "string" || !isAbsolute(v) || /[\n\r\0]/.test(v)) {
      issues.push(`slurm.${key} must be an absolute path (a folder every compute node sees at that path)`);
    } else if (key === "workDir" && /[%\\]/.test(v)) {
      // sbatch reads --output as a pattern: %j is the job id, a backslash turns patterns off.
      issues.push("slurm.workDir must not hold % or \\ (sbatch reads them in --output file patterns)");
    }
  }
  if (s.binDir !== undefined && (typeof s.binDir !== "string" || !isAbsolute(s.binDir)))
    issues.push("slurm.binDir must be an absolute path (the folder holding sbatch, sacct, ...)");
  if (s.timeLimit !== undefined) {
    try {
      parseTimeLimit(s.timeLimit as string | number);
    } catch (err) {
      issues.push(`slurm.timeLimit: ${(err as Error).message}`);
    }
  }
  const extra = s.extra ?? {};
  if (!isRecord(extra)) {
    issues.push(
      'slurm.extra must be an object of long option name -> value (e.g. { constraint: "haswell" })',
    );
  } else {
    for (const [name, value] of Object.entries(extra)) {
      if (!OPTION_NAME.test(name)) {
        issues.push(
          `slurm.extra.${name}: an option name is lower-case letters, digits and dashes, without the leading --`,
        );
      } else if (RESERVED_OPTIONS.has(name)) {
        issues.push(`slurm.extra.${name}: the executor sets --${name} itself for each job`);
      } else if (
        !(value === true || (typeof value === "number" && Number.isFinite(value)) || isOptionValue(value))
      ) {
        issues.push(`slurm.extra.${name} must be a single-line string, a number, or true (a flag)`);
      }
    }
  }
  if (s.tracking !== undefined && !(TRACKING_MODES as readonly unknown[]).includes(s.tracking)) {
    issues.push(`slurm.tracking must be one of ${TRACKING_MODES.join(", ")}`);
  }
  for (const key of [
    "pollIntervalMs",
    "maxPollIntervalMs",
    "commandTimeoutMs",
    "signalBeforeLimitSec",
  ] as const) {
    const v = s[key];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v <= 0))
      issues.push(`slurm.${key} must be a positive number`);
  }
  if (s.startWaitsForRunning !== undefined && typeof s.startWaitsForRunning !== "boolean")
    issues.push("slurm.startWaitsForRunning must be a boolean");
  const probe = s.nodeProbeCommand;
  if (
    probe !== undefined &&
    !(Array.isArray(probe) && probe.length > 0 && probe.every((w) => typeof w === "string" && w !== ""))
  ) {
    issues.push("slurm.nodeProbeCommand must be a non-empty argv (an array of non-empty strings)");
  }
  if (issues.length > 0) throw invalid(issues);

  const pollIntervalMs = (s.pollIntervalMs as number | undefined) ?? 2000;
  const options = s as unknown as SlurmOptions;
  return {
    inner: inner as InnerRuntime,
    innerConfig: innerConfig as Record<string, unknown>,
    nodeProfile: nodeProfile as RuntimeProfile | undefined,
    slurm: {
      ...options,
      sharedCacheDir: options.sharedCacheDir ?? `${options.workDir.replace(/\/+$/, "")}/images`,
      extra: extra as Record<string, ExtraOptionValue>,
      tracking: options.tracking ?? "auto",
      runtimeMemoryMiB: options.runtimeMemoryMiB ?? 64,
      pollIntervalMs,
      maxPollIntervalMs: Math.max(options.maxPollIntervalMs ?? 30_000, pollIntervalMs),
      commandTimeoutMs: options.commandTimeoutMs ?? 30_000,
      signalBeforeLimitSec: options.signalBeforeLimitSec ?? 60,
      startWaitsForRunning: options.startWaitsForRunning ?? true,
    },
  };
}

function invalid(issues: string[]): InvalidConfigError {
  return new InvalidConfigError(`invalid slurm executor config:\n${issues.map((i) => `  ${i}`).join("\n")}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// An option value goes into argv and into a `#SBATCH` line: one line, no NUL.
function isOptionValue(v: unknown): v is string {
  return typeof v === "string" && v !== "" && !/[\n\r\0]/.test(v);
}

function isProfile(v: unknown): v is RuntimeProfile {
  return (
    isRecord(v) &&
    typeof v.runtime === "string" &&
    typeof v.version === "string" &&
    isRecord(v.capabilities) &&
    isRecord(v.planner) &&
    isRecord(v.host)
  );
}
