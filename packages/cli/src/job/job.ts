import type { ContainerSpec } from "@contexec/core";

/** Where a job's image comes from. */
export type JobImage =
  /** A docker-archive or OCI layout tarball (absolute path). */
  | { kind: "archive"; path: string }
  /** An image id or tag: loaded in the runtime already, or (Apptainer) in the local Docker daemon. */
  | { kind: "ref"; ref: string };

/** The `runtime:` chapter: which backend, and its options (as `createExecutor` takes them). */
export interface JobRuntime {
  name?: string;
  options: Record<string, unknown>;
}

/** The `slurm:` chapter (and DockSing's `remotedir`): options for the SLURM runtime, as written. */
export interface JobSlurm {
  /** srun/sbatch long option names without `--`, to values; `true` is a flag without a value. */
  options: Record<string, string | true>;
  /** DockSing's `remotedir`: the job's folder on the cluster. */
  remoteDir?: string;
}

/** A job file, read and checked: what to run and how, with nothing run or read yet. */
export interface Job {
  /** The job file (absolute). */
  file: string;
  /** A single compose service, a compose file with `services:`, or a DockSing file. */
  layout: "service" | "compose" | "docksing";
  /** The service run, for a compose file. */
  service?: string;
  image: JobImage;
  /** The container spec; `image` holds the archive path or the reference until it is resolved. */
  spec: ContainerSpec;
  /** Bind sources to create when missing (compose's short syntax and DockSing volumes do). */
  createHostPaths: string[];
  /** `stop_signal`: what Ctrl-C sends first (default: the image's STOPSIGNAL, else SIGTERM). */
  stopSignal?: NodeJS.Signals;
  /** `stop_grace_period`: how long before SIGKILL (default 10 s). */
  stopGraceMs?: number;
  runtime?: JobRuntime;
  slurm?: JobSlurm;
  /** Keys accepted but without effect, each with its place and why. */
  warnings: string[];
}
