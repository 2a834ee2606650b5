import { readFile } from "node:fs/promises";
import {
  CAPABILITY_NAMES,
  type ExecutorConfig,
  InvalidConfigError,
  knownRuntimes,
  PRIVILEGE_MODES,
  type RuntimeProfile,
} from "@contexec/core";
import { UsageError } from "../exit-codes.js";
import type { JobRuntime, JobSlurm } from "../job/job.js";
import { slurmExecutorConfig } from "./slurm-config.js";

/** The environment variable naming the default runtime. */
export const RUNTIME_ENV = "CONTEXEC_RUNTIME";

/** Backends that are one implementation under two names. */
const FAMILIES: Record<string, string> = { apptainer: "apptainer", singularity: "apptainer" };

function family(name: string): string {
  return FAMILIES[name] ?? name;
}

/**
 * The runtime a command uses and the executor config for it: `--runtime`, else the job file's
 * `runtime:` chapter, else $CONTEXEC_RUNTIME, else docker. The job file's backend options apply
 * only when the runtime chosen is the one they were written for. SLURM's config is completed
 * from the job's `slurm:` chapter and defaults (see slurmExecutorConfig); `jobName` is the
 * chapter's `job-name`.
 */
export function chooseRuntime(
  flag: string | undefined,
  job: JobRuntime | undefined,
  env: NodeJS.ProcessEnv,
  slurm: { chapter: JobSlurm | undefined; jobDir: string } | undefined = undefined,
): { name: string; config: ExecutorConfig; ignoredOptions: boolean; jobName?: string } {
  const name = flag ?? job?.name ?? (env[RUNTIME_ENV] || undefined) ?? "docker";
  if (!knownRuntimes().includes(name)) {
    throw new UsageError(`unknown runtime "${name}"; known: ${knownRuntimes().join(", ")}`);
  }
  const options = job?.options ?? {};
  const applies = job?.name === undefined || family(job.name) === family(name);
  const ignoredOptions = !applies && Object.keys(options).length > 0;
  if (name === "slurm") {
    const { config, jobName } = slurmExecutorConfig({
      options: applies ? options : {},
      chapter: slurm?.chapter,
      jobDir: slurm?.jobDir,
      env,
    });
    // Checked by the backend at run time, as any other runtime's.
    return {
      name,
      config: config as ExecutorConfig,
      ignoredOptions,
      ...(jobName !== undefined && { jobName }),
    };
  }
  return {
    name,
    // Names and options from a job file or the command line: the backend checks them at run time.
    config: { ...(applies ? options : {}), runtime: name } as ExecutorConfig,
    ignoredOptions,
  };
}

/**
 * A profile file (`contexec probe --json` on another machine), checked for the fields planning
 * reads and for naming the runtime asked for.
 */
export async function readProfile(path: string, runtime: string): Promise<RuntimeProfile> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new InvalidConfigError(`cannot read the profile ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const p = raw as Partial<RuntimeProfile> | null;
  const problems: string[] = [];
  if (typeof p !== "object" || p === null) problems.push("it is not a JSON object");
  else {
    for (const key of ["runtime", "flavor", "version", "probedAt"] as const)
      if (typeof p[key] !== "string") problems.push(`"${key}" is missing`);
    if (!(PRIVILEGE_MODES as readonly unknown[]).includes(p.privilege))
      problems.push(`"privilege" must be one of ${PRIVILEGE_MODES.join(", ")}`);
    if (typeof p.capabilities !== "object" || p.capabilities === null)
      problems.push('"capabilities" is missing');
    else
      for (const c of CAPABILITY_NAMES)
        if (typeof (p.capabilities as Record<string, unknown>)[c] !== "object")
          problems.push(`capability "${c}" is missing`);
    if (typeof p.planner !== "object" || p.planner === null) problems.push('"planner" is missing');
    if (typeof p.host !== "object" || p.host === null) problems.push('"host" is missing');
    if (typeof p.runtime === "string" && family(p.runtime) !== family(runtime))
      problems.push(`it describes ${p.runtime}, not ${runtime}`);
  }
  if (problems.length > 0) {
    throw new InvalidConfigError(
      `${path} is not a ${runtime} profile: ${problems.join("; ")} (make one with: contexec probe --runtime ${runtime} --json > ${path})`,
    );
  }
  return p as RuntimeProfile;
}
