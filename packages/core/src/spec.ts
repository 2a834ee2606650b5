/**
 * What to run: one {@link ContainerSpec} means the same thing on every backend. Where runtimes
 * differ, Docker's meaning is the one kept (see the README's semantics table).
 */

/** `sha256:<64 hex>`: the digest of the image config, the same on every backend. */
export type ImageId = `sha256:${string}`;

export const NETWORK_MODES = ["none", "bridge", "host"] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

/** A host folder or file made visible in the container. The source must exist. */
export interface BindMount {
  type: "bind";
  /** Absolute host path. */
  source: string;
  /** Absolute path in the container. */
  target: string;
  /** Defaults to false (read-write). */
  readOnly?: boolean;
}

/** An empty in-memory folder, private to the container. */
export interface TmpfsMount {
  type: "tmpfs";
  target: string;
  /** Size limit in bytes, where the runtime applies one. */
  sizeBytes?: number;
}

export type Mount = BindMount | TmpfsMount;

export const GPU_VENDORS = ["nvidia", "amd"] as const;
export type GpuVendor = (typeof GPU_VENDORS)[number];

/** GPUs for the container. Rendered for every backend; not run on machines without GPUs. */
export interface GpuRequest {
  vendor?: GpuVendor;
  /** A number of GPUs, or "all". Ignored when `deviceIds` is given. */
  count?: number | "all";
  /** Specific devices by index or UUID. */
  deviceIds?: string[];
  /** Driver capabilities (Docker/NVIDIA): defaults to ["gpu"]. */
  capabilities?: string[];
}

export interface Resources {
  /** Memory limit in bytes. */
  memoryBytes?: number;
  /** CPU limit, in CPUs (1.5 = one and a half). */
  cpus?: number;
  gpus?: GpuRequest;
}

/** A port published from a service container to the host (Docker; see capabilities). */
export interface PortMapping {
  containerPort: number;
  /** Host port; 0 or absent picks a free one. */
  hostPort?: number;
  protocol?: "tcp" | "udp";
  /** Host address to bind; defaults to 127.0.0.1. */
  hostIp?: string;
}

/**
 * One command the host-command bridge may run: a name looked up on the host's PATH (`"squeue"`),
 * an absolute host path (`"/usr/bin/squeue"`, also reachable by its base name), or either with
 * `args`: regular expressions (JavaScript syntax, matched against a whole argument) of which
 * every argument must match one; `args: []` allows no arguments.
 */
export type HostCommandRule = string | { command: string; args?: string[] };

/**
 * Host commands callable from inside the container over singreqrun's file protocol (see the
 * core README, "Side channels"). Nothing runs unless `allow` names it; no shell is involved.
 */
export interface HostCommandsSpec {
  allow: HostCommandRule[];
  /** Where the request folder (with its `reqs` pipe) appears in the container; default `/var/run/req_run`. */
  mountPath?: string;
  /** Where the client script and one link per allowed command appear, first on PATH; default `/hostbin`. */
  binPath?: string;
  /** Absolute host folder the commands run in; default the executor process's current folder. */
  cwd?: string;
  /** Set for the commands, over the executor process's environment. */
  env?: Record<string, string>;
  /** A command still running after this long is stopped (exit code 124); default 600 000. */
  timeoutMs?: number;
  /** A command writing more than this to stdout or to stderr is stopped (exit code 125); default 64 MiB. */
  maxOutputBytes?: number;
  /** Commands run at once; more wait in order. Default 4. */
  concurrency?: number;
  /** Honour a leading `cd DIR && ` (DIR absolute, on the host) instead of refusing it; default false. */
  allowCd?: boolean;
}

/**
 * Supervisor files: a host folder bound into the container, where the job writes its status page
 * and result and reads the supervisor's notifications (one line each, such as `ABORT`).
 */
export interface SupervisionSpec {
  /** Where the folder appears in the container; default `/service`. */
  mountPath?: string;
  /** An existing absolute host folder to bind (kept afterwards); default a private one, removed. */
  hostDir?: string;
  /** File names in the folder; defaults `status.html`, `result.txt`, `notifications.txt`. */
  statusFile?: string;
  resultFile?: string;
  notificationsFile?: string;
}

export interface ContainerSpec {
  /** An {@link ImageId} returned by `loadImage`, or a tag from the loaded archive's RepoTags. */
  image: string;
  /**
   * Replaces the image CMD. The image ENTRYPOINT (or `entrypoint`) still runs first, as with
   * `docker run IMAGE ARGS...`. Each element is one argument: nothing is split or shell-evaluated.
   */
  command?: string[];
  /** Replaces the image ENTRYPOINT; `[]` clears it. Setting it also clears the image CMD. */
  entrypoint?: string[];
  /** Added to the image ENV; wins over it. Values are literal. */
  env?: Record<string, string>;
  /** Absolute folder to start in; defaults to the image WORKDIR, else `/`. */
  workdir?: string;
  mounts?: Mount[];
  /** Open a pipe to the container's stdin; otherwise stdin reads EOF at once. */
  stdin?: boolean;
  /** Defaults to the runtime's default ("bridge" on Docker, the host's on Apptainer). */
  network?: NetworkMode;
  resources?: Resources;
  /** `uid[:gid]` or a user name known in the image. */
  user?: string;
  labels?: Record<string, string>;
  /** A name for the container, unique among running containers of the runtime. */
  name?: string;
  /** Ports to publish (service containers). */
  ports?: PortMapping[];
  /**
   * What to do when the spec asks for something the runtime cannot do here (a memory limit it
   * cannot enforce, say): "error" (the default) refuses the spec before anything starts;
   * "ignore" runs without it.
   */
  unsupported?: "error" | "ignore";
  /** Host commands the container may run through the host-command bridge. */
  hostCommands?: HostCommandsSpec;
  /** Status, result and notification files shared with a supervisor. */
  supervision?: SupervisionSpec;
}

/** The part of an image's config that decides how a container of it runs. */
export interface ImageConfig {
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  workingDir: string;
  user: string;
  labels: Record<string, string>;
  exposedPorts: string[];
  stopSignal: string | undefined;
}
