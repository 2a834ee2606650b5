import type { Capabilities } from "../capabilities.js";
import type { ContainerSpec, ImageId } from "../spec.js";

/**
 * How this machine's runtime gives containers their privileges, as the caller meets it:
 * - `root`: a root daemon (Docker) or a root caller without a user namespace (Apptainer as root);
 * - `setuid`: an unprivileged caller of a setuid-root runtime (Apptainer's starter-suid);
 * - `userns`: an unprivileged user namespace (Apptainer --userns, its default without setuid);
 * - `rootless`: a daemon run by an ordinary user in its own user namespace (rootless Docker).
 */
export const PRIVILEGE_MODES = ["root", "setuid", "userns", "rootless"] as const;
export type PrivilegeMode = (typeof PRIVILEGE_MODES)[number];

/** The machine a profile was measured on. */
export interface HostFacts {
  hostname: string;
  uid: number;
  gid: number;
  /** `uname -r`. */
  kernel: string;
  /** Node's `process.arch`: "x64", "arm64". */
  arch: string;
}

/**
 * What a runtime is and can do on one machine, as plain JSON: everything planning needs. It
 * comes from `info()` here, or from a file `contexec probe --json` wrote on another machine (a
 * compute node), so a run can be planned where the runtime is absent.
 */
export interface RuntimeProfile {
  /** The backend's name: "docker", "apptainer", "singularity". */
  runtime: string;
  /** What is actually installed: "docker", "apptainer", "singularityce", "singularity". */
  flavor: string;
  version: string;
  privilege: PrivilegeMode;
  capabilities: Capabilities;
  /**
   * The backend's own findings its planner reads (Apptainer: which flags exist and are needed,
   * the runtime binary, cgroup layout). Plain JSON, opaque to everyone else.
   */
  planner: Record<string, unknown>;
  host: HostFacts;
  /** ISO time of the measurement. */
  probedAt: string;
}

/** Where the image of a plan comes from and what must happen before it can run. */
export interface PlannedImage {
  id: ImageId;
  /** Tags the image is known by (from the archive or the runtime). */
  tags: string[];
  /**
   * `present`: loaded already, nothing to do. `load`: `archive` goes into the runtime's image
   * store (Docker). `convert`: `archive` becomes the SIF at `path` (Apptainer).
   */
  action: "present" | "load" | "convert";
  /** The docker-archive or OCI layout tarball, for `load` and `convert`. */
  archive?: string;
  /** The file the runtime runs (Apptainer's SIF); absent where the runtime keeps images itself. */
  path?: string;
  /**
   * How a script gets the image ready with the runtime's own tools: `present` exits 0 when it is
   * there already, else `commands` run in order (`docker load`; `apptainer build` to a temporary
   * name, then a rename). The executor itself prepares images its own way (its SIF cache and
   * native converter, with the archive checks); the result is the same image.
   */
  prepare?: { present: PlannedCommand; commands: PlannedCommand[] };
}

/** One thing done on the host before or after the container's command. */
export type PlanStep =
  /** Make a folder (and its parents) with this mode: a private HOME, a scratch folder, a cgroup. */
  | { op: "mkdir"; path: string; mode: number; why: string }
  /** Write a file (a cgroup limit). An `optional` write may fail without harm (a kernel feature that may be missing). */
  | { op: "write"; path: string; content: string; optional?: boolean; why: string }
  /** Remove a file or folder and everything under it. */
  | { op: "remove"; path: string; why: string }
  /** Remove an empty folder (a cgroup whose processes have ended); gone already is fine. */
  | { op: "rmdir"; path: string; why: string }
  /** Make `path` a symbolic link to `target` (replacing what is there): a neutral name for a file. */
  | { op: "symlink"; path: string; target: string; why: string };

/** The runtime command that runs the container. */
export interface PlannedCommand {
  /** The runtime's argv, binary first: `apptainer --silent exec ...`, `docker run ...`. */
  argv: string[];
  /**
   * The runtime process's environment, exactly: nothing else is inherited. (Apptainer's
   * container variables travel here as APPTAINERENV_*, so their values stay literal.)
   */
  env: Record<string, string>;
  /** The folder the runtime process starts in. */
  cwd: string;
  /** True when the container reads the caller's stdin (`spec.stdin`); otherwise it reads EOF at once. */
  stdin: boolean;
  /**
   * cgroup.procs files of the container's own cgroups (its limits). The executor moves the
   * container's processes into them once they run (the runtime's helpers stay outside); a
   * script starts the whole command inside them.
   */
  joinCgroups?: string[];
}

/** What runs inside the container, as the library resolved it (ENTRYPOINT + CMD, ENV, WORKDIR). */
export interface PlannedProcess {
  argv: string[];
  workdir: string;
  /** The container's environment: image ENV + spec.env (+ GPU variables), nothing from the host. */
  env: Record<string, string>;
  /** `uid[:gid]` or a name, when not the image's default. */
  user?: string;
  /** The image's STOPSIGNAL: what `kill()` sends first (SIGTERM when absent). */
  stopSignal?: string;
}

/**
 * A run, planned without running it: what to prepare, the host steps before, the runtime command,
 * the steps after. Plain JSON. The executor that made it runs exactly this for `create()`;
 * `formatPlan` prints it as a bash script; a batch scheduler wraps it in a job script.
 */
export interface RunPlan {
  planVersion: 1;
  runtime: string;
  /** The machine and mode planned for. */
  profile: Pick<RuntimeProfile, "runtime" | "flavor" | "version" | "privilege" | "host">;
  /** The validated spec. */
  spec: ContainerSpec;
  image: PlannedImage;
  before: PlanStep[];
  command: PlannedCommand;
  process: PlannedProcess;
  after: PlanStep[];
  /** Spec fields left out because this runtime cannot honour them here (`spec.unsupported: "ignore"`). */
  ignored: { field: string; capability: string; reason: string }[];
  /** The Docker Engine API `POST /containers/create` body, for Docker plans: what the executor sends. */
  dockerCreateBody?: Record<string, unknown>;
  /** Things a reader of the plan should know (how the executor's run differs from a pasted script). */
  notes: string[];
}

export interface PlanOptions {
  /**
   * The machine to plan for: a profile from `info()` elsewhere or `contexec probe --json`.
   * Default: this machine's, probed (or cached) by the executor.
   */
  profile?: RuntimeProfile;
  /**
   * The archive `spec.image` comes from, when it may not be loaded yet: its config is read here
   * (no runtime needed) and the plan's image step loads or converts it.
   */
  archive?: string;
  /** Check that bind sources exist on this host (default true; false when planning for another machine). */
  checkHostPaths?: boolean;
  signal?: AbortSignal;
}
