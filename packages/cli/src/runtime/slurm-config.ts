import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import type { JobSlurm } from "../job/job.js";

/** The environment variable naming the folder SLURM jobs' files go to (a folder every node sees). */
export const SLURM_WORKDIR_ENV = "CONTEXEC_SLURM_WORKDIR";

/** contexec's state folder: $XDG_STATE_HOME/contexec, else ~/.local/state/contexec. */
export function contexecStateDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME?.startsWith("/")
    ? env.XDG_STATE_HOME
    : join(env.HOME || homedir(), ".local", "state");
  return join(base, "contexec");
}

// sbatch options of the `slurm:` chapter that are executor options of their own.
const NAMED: Record<string, "partition" | "account" | "qos" | "timeLimit"> = {
  partition: "partition",
  p: "partition",
  account: "account",
  A: "account",
  qos: "qos",
  q: "qos",
  time: "timeLimit",
  t: "timeLimit",
};

/**
 * The SLURM executor config of a job: the `runtime:` chapter's options (when it names slurm) over
 * what the `slurm:` chapter says (partition, account, qos, `time` as the time limit, any other
 * sbatch long option as `extra`; DockSing's `remotedir` as the job folders' place, relative to
 * the job file), over the defaults: Apptainer inside, and the jobs' folders in
 * $CONTEXEC_SLURM_WORKDIR, else `<state folder>/slurm` (home folders are shared on clusters).
 * `job-name` is the job's name, given back for the spec (the executor names each job by it).
 * The executor checks the result. Pure.
 */
export function slurmExecutorConfig(input: {
  options: Record<string, unknown>;
  chapter: JobSlurm | undefined;
  /** The job file's folder, for a relative `remotedir`. */
  jobDir: string | undefined;
  env: NodeJS.ProcessEnv;
}): { config: Record<string, unknown>; jobName?: string } {
  const { options, chapter, env } = input;
  const fromChapter: Record<string, unknown> = {};
  const extra: Record<string, string | true> = {};
  let jobName: string | undefined;
  for (const [key, value] of Object.entries(chapter?.options ?? {})) {
    const named = NAMED[key];
    if (key === "job-name" || key === "J") {
      if (typeof value === "string") jobName = value;
    } else if (named) fromChapter[named] = value;
    else extra[key] = value;
  }
  const remoteDir = chapter?.remoteDir;
  const workDir =
    remoteDir !== undefined
      ? isAbsolute(remoteDir)
        ? remoteDir
        : resolve(input.jobDir ?? env.PWD ?? "/", remoteDir)
      : env[SLURM_WORKDIR_ENV] || join(contexecStateDir(env), "slurm");
  const own = (typeof options.slurm === "object" && options.slurm !== null ? options.slurm : {}) as Record<
    string,
    unknown
  >;
  const ownExtra = (typeof own.extra === "object" && own.extra !== null ? own.extra : {}) as Record<
    string,
    unknown
  >;
  const mergedExtra = { ...extra, ...ownExtra };
  const config: Record<string, unknown> = {
    inner: "apptainer",
    ...options,
    runtime: "slurm",
    slurm: {
      workDir,
      ...fromChapter,
      ...own,
      ...(Object.keys(mergedExtra).length > 0 && { extra: mergedExtra }),
    },
  };
  return { config, ...(jobName !== undefined && { jobName }) };
}
