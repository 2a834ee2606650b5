import { join } from "node:path";

/** The files of one job, all in its own folder on the shared file system. */
export interface JobFiles {
  dir: string;
  /** The batch script sbatch runs. */
  script: string;
  /** The container's stdout and stderr, written by the job, read by the executor as they grow. */
  stdout: string;
  stderr: string;
  /** The container's stdin as the executor writes it; `stdinEnd` appears when it is complete. */
  stdin: string;
  stdinEnd: string;
  /** The container's exit status, written by the job (to a temporary name, then renamed). */
  exit: string;
  /** SLURM's own output of the batch script: image preparation, scheduler messages. */
  log: string;
  /** With Docker inside: the container's owner labels, naming the batch script on its node (docker run --label-file). */
  ownerLabels: string;
}

export function jobFiles(dir: string): JobFiles {
  return {
    dir,
    script: join(dir, "job.sh"),
    stdout: join(dir, "stdout"),
    stderr: join(dir, "stderr"),
    stdin: join(dir, "stdin"),
    stdinEnd: join(dir, "stdin.end"),
    exit: join(dir, "exit-status"),
    log: join(dir, "slurm.log"),
    ownerLabels: join(dir, "owner-labels"),
  };
}
