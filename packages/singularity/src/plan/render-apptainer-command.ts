import {
  type ContainerSpec,
  type ImageConfig,
  InvalidSpecError,
  resolveArgv,
  resolveEnv,
  resolveWorkdir,
  type SpecIssue,
} from "@contexec/core";
import { envPrefixOf, type RuntimeFlavor } from "../probe/runtime-version.js";
import { CONTAINER_ENV_SCRIPT_TARGET } from "./container-env-script.js";
import type { NumericUser } from "./image-user.js";

/** What the probe found that changes the command line. Plain data: rendering reads nothing else. */
export interface RenderProbe {
  flavor: RuntimeFlavor;
  /** `--userns` is needed to start containers here. */
  userns: boolean;
  /**
   * Started by root without a user namespace: `--no-privs --add-caps` gives the container root
   * Docker's default capability set instead of all of root's.
   */
  dockerCaps: boolean;
  /** `--no-eval` exists (Apptainer >= 1.1, SingularityCE >= 3.10). */
  noEval: boolean;
  /** `--no-umask` exists (umask 022 in the container, as Docker has, instead of the caller's). */
  noUmask: boolean;
  /**
   * Limits are applied through cgroups the library makes (given in {@link RenderOptions.cgroup})
   * instead of Apptainer's --memory/--cpus.
   */
  ownCgroups: boolean;
}

export interface RenderOptions {
  /**
   * Spec fields left out: what this runtime cannot do here (the gaps `checkCapabilities` found,
   * with `spec.unsupported: "ignore"`): the same decision the Docker renderer gets.
   */
  ignore?: ReadonlySet<string>;
  /** argv[0]; default "apptainer". */
  binary?: string;
  /** The working folder does not exist in the image: give it an empty private one (Docker creates it). */
  createWorkdir?: boolean;
  /**
   * The container's own cgroups (with `probe.ownCgroups`), each bound read-only over its
   * hierarchy's mount point so the container sees its limits at /sys/fs/cgroup, as under Docker.
   * The caller moves the container's processes into them once they run.
   */
  cgroup?: { binds: { source: string; target: string }[] };
  /**
   * The user to run as, resolved against the image (with `probe.dockerCaps`: root starts the
   * container and switches with `--security uid:U,gid:G`; Apptainer then sets HOME from the
   * image's passwd entry, as Docker does).
   */
  user?: NumericUser;
  /**
   * An empty host folder private to this container, mounted as HOME when HOME is set (by the
   * image or the spec). `--home PATH` alone would mount the host's PATH, leaking it in.
   */
  homeSource?: string;
  /**
   * A host file bound at {@link CONTAINER_ENV_SCRIPT_TARGET}: the environment script that takes
   * Apptainer's own variables out of the container's environment (renderContainerEnvScript).
   */
  envScript?: string;
  /**
   * HOSTNAME for the container when neither the image nor the spec sets it, as Docker sets it
   * (there the container's own name; here the host's, which the container shares).
   */
  hostname?: string;
}

export interface ApptainerCommand {
  /** The runtime's argv, binary first. */
  argv: string[];
  /**
   * Variables for the runtime's own environment (APPTAINERENV_NAME=value): they become the
   * container's environment, literally. Add them to a clean environment; never to a shell string.
   */
  env: Record<string, string>;
  /** The one argv run in the container (ENTRYPOINT + CMD resolved). */
  command: string[];
  /** The folder the command starts in. */
  workdir: string;
  /** The container's environment as given to it (image ENV + spec env, GPU variables). */
  containerEnv: Record<string, string>;
}

/**
 * The Apptainer command line for a spec: a pure function of its arguments (no process
 * environment, no file system), so the same output feeds a run, `--dry-run` and a batch script.
 *
 * Docker's meaning is kept: `--containall --cleanenv` (private HOME, /tmp, PID and IPC
 * namespaces; no host variable leaks in), `--writable-tmpfs` (a writable root discarded at exit),
 * `--no-umask` (umask 022), Apptainer's init shim kept as PID 1 (it forwards signals and
 * reaps zombies, as Docker's `--init` does, so a plain `sleep` still dies of SIGTERM), `--pwd` always (Apptainer would
 * start in the host's current folder), `--no-eval` with the environment passed as
 * APPTAINERENV_* (values stay literal; a runtime without --no-eval refuses values a shell
 * would change). The fields in `options.ignore` (what the runtime cannot do here) are left out; the
 * caller has already refused the spec unless `spec.unsupported` is "ignore".
 */
export function renderApptainerCommand(
  spec: ContainerSpec,
  image: Pick<ImageConfig, "env" | "entrypoint" | "cmd" | "workingDir">,
  probe: RenderProbe,
  sifPath: string,
  options: RenderOptions = {},
): ApptainerCommand {
  const parts = renderParts(spec, image, probe, options);
  return {
    ...parts.result,
    argv: [
      options.binary ?? "apptainer",
      "--silent",
      "exec",
      ...parts.flags,
      "--pwd",
      parts.result.workdir,
      ...parts.mountFlags,
      sifPath,
      ...parts.result.command,
    ],
  };
}

/** The commands of a service run as an Apptainer instance. */
export interface InstanceCommands {
  /**
   * `apptainer instance start` with the same mounts, isolation and limits as a batch run; the
   * image's startscript runs in it. Its env is the runtime's own (APPTAINERENV_*), as for `main`.
   */
  start: ApptainerCommand;
  /** The service's own process: `apptainer exec instance://NAME` of the resolved ENTRYPOINT/CMD. */
  main: ApptainerCommand;
}

/**
 * A service as an instance: `instance start` (which takes no `--pwd`) makes the instance, then
 * the spec's command runs in it through `exec instance://NAME` with the working folder and the
 * environment of a batch run. Pure, like {@link renderApptainerCommand}.
 */
export function renderApptainerInstance(
  spec: ContainerSpec,
  image: Pick<ImageConfig, "env" | "entrypoint" | "cmd" | "workingDir">,
  probe: RenderProbe,
  sifPath: string,
  instanceName: string,
  options: RenderOptions = {},
): InstanceCommands {
  const parts = renderParts(spec, image, probe, options);
  const binary = options.binary ?? "apptainer";
  return {
    start: {
      ...parts.result,
      argv: [
        binary,
        "--silent",
        "instance",
        "start",
        ...parts.flags,
        ...parts.mountFlags,
        sifPath,
        instanceName,
      ],
    },
    main: {
      ...parts.result,
      argv: renderInstanceExec(probe, instanceName, parts.result.command, parts.result.workdir, options),
    },
  };
}

/**
 * `apptainer exec instance://NAME ARGV...` as a batch run's process would start: clean
 * environment (the caller passes it as APPTAINERENV_*), literal values, the given folder, the
 * same privileges.
 */
export function renderInstanceExec(
  probe: RenderProbe,
  instanceName: string,
  argv: string[],
  workdir: string,
  options: Pick<RenderOptions, "binary" | "user"> = {},
): string[] {
  const flags = ["--cleanenv"];
  if (probe.noUmask) flags.push("--no-umask");
  if (probe.noEval) flags.push("--no-eval");
  flags.push(...privilegeFlags(probe, probe.dockerCaps ? options.user : undefined));
  return [
    options.binary ?? "apptainer",
    "--silent",
    "exec",
    ...flags,
    "--pwd",
    workdir,
    `instance://${instanceName}`,
    ...argv,
  ];
}

/** Root without a user namespace keeps Docker's default capabilities; any other user has none. */
function privilegeFlags(probe: RenderProbe, user: NumericUser | undefined): string[] {
  if (probe.userns) return ["--userns"];
  if (!probe.dockerCaps) return [];
  const flags = ["--no-privs"];
  if (!user || user.uid === 0) flags.push("--add-caps", DOCKER_DEFAULT_CAPS.join(","));
  if (user && (user.uid !== 0 || user.gid !== 0)) flags.push("--security", `uid:${user.uid},gid:${user.gid}`);
  return flags;
}

/**
 * The parts every form of the command shares: isolation and privilege flags, mounts and limits
 * (`mountFlags`), and the container's argv, folder and environment.
 */
function renderParts(
  spec: ContainerSpec,
  image: Pick<ImageConfig, "env" | "entrypoint" | "cmd" | "workingDir">,
  probe: RenderProbe,
  options: RenderOptions,
): { flags: string[]; mountFlags: string[]; result: Omit<ApptainerCommand, "argv"> } {
  const command = resolveArgv(image, spec);
  const workdir = resolveWorkdir(image, spec);
  const env = resolveEnv(image, spec.env);
  if (options.hostname !== undefined && !env.has("HOSTNAME")) env.set("HOSTNAME", options.hostname);
  const ignore = options.ignore ?? new Set<string>();
  const gpus = ignore.has("resources.gpus") ? undefined : spec.resources?.gpus;
  if (gpus) for (const [k, v] of Object.entries(gpuEnv(gpus))) env.set(k, v);

  const flags: string[] = ["--containall", "--cleanenv", "--writable-tmpfs"];
  if (probe.noUmask) flags.push("--no-umask");
  if (probe.noEval) flags.push("--no-eval");
  const user = probe.dockerCaps ? options.user : undefined;
  flags.push(...privilegeFlags(probe, user));

  const mountFlags: string[] = [];
  // Apptainer refuses APPTAINERENV_HOME ("Overriding HOME environment variable ... is not
  // permitted"); --home sets it. Its source is a private empty folder: `--home PATH` alone
  // mounts the host's PATH, so an image with ENV HOME=/root would see the host's /root.
  const home = env.get("HOME");
  const useHomeFlag = home !== undefined && isPlainAbsolutePath(home) && user === undefined;
  if (useHomeFlag) {
    mountFlags.push("--home", options.homeSource ? `${options.homeSource}:${home}` : (home as string));
  }

  for (const m of spec.mounts ?? []) {
    if (m.type === "bind") mountFlags.push("--bind", `${m.source}:${m.target}${m.readOnly ? ":ro" : ""}`);
    // Apptainer 1.4 has no tmpfs mounts (`--mount type=tmpfs`: "unsupported mount type "tmpfs",
    // only 'bind' is supported"); a scratch folder is a private tmpfs created at the target.
    else mountFlags.push("--scratch", m.target);
  }
  if (options.envScript) mountFlags.push("--bind", `${options.envScript}:${CONTAINER_ENV_SCRIPT_TARGET}:ro`);
  if (options.createWorkdir && !(spec.mounts ?? []).some((m) => m.target === workdir)) {
    mountFlags.push("--scratch", workdir);
  }

  const network = ignore.has("network") ? undefined : spec.network;
  if (network === "none") mountFlags.push("--net", "--network", "none");
  else if (network === "bridge") mountFlags.push("--net", "--network", "bridge");
  // "host" (and no network at all) is Apptainer's default: the host's network.

  const r = spec.resources;
  if (probe.ownCgroups) {
    for (const b of options.cgroup?.binds ?? []) mountFlags.push("--bind", `${b.source}:${b.target}:ro`);
  } else {
    if (r?.memoryBytes !== undefined && !ignore.has("resources.memoryBytes"))
      mountFlags.push("--memory", String(r.memoryBytes));
    if (r?.cpus !== undefined && !ignore.has("resources.cpus")) mountFlags.push("--cpus", String(r.cpus));
  }
  if (gpus) mountFlags.push(gpus.vendor === "amd" ? "--rocm" : "--nv");

  const containerEnv = Object.fromEntries(env);
  // HOME goes by --home (or the image's passwd entry for `user`); APPTAINERENV_HOME is refused.
  const passed = [...env].filter(([k]) => k !== "HOME");
  const result: Omit<ApptainerCommand, "argv"> = { env: {}, command, workdir, containerEnv };
  if (!probe.noEval) {
    // Without --no-eval the runtime shell-evaluates every value, whichever way it comes in: even
    // an --env-file of single-quoted words is evaluated again (Apptainer 1.4.5 runs `id` in
    // A='`id`' unless --no-eval is given). Values a shell would change are refused, not mangled.
    const issues = passed
      .filter(([, v]) => SHELL_SPECIAL.test(v))
      .map(([k]) => ({
        path: `env.${k}`,
        message:
          "this runtime has no --no-eval and would shell-evaluate the value ($, `, \\, quotes or a newline); use Apptainer >= 1.1 or SingularityCE >= 3.10, or a plainer value",
      }));
    if (issues.length > 0) throw new InvalidSpecError(issues);
  }
  const prefix = envPrefixOf(probe.flavor);
  for (const [k, v] of passed) result.env[`${prefix}${k}`] = v;
  // --silent (in every assembled argv): Apptainer's INFO/WARNING lines ("gocryptfs not found,
  // ...") would mix into the container's stderr; FATAL and ERROR lines still come through.
  return { flags, mountFlags, result };
}

/** The capabilities Docker gives a container's root by default (moby's oci/caps/defaults.go). */
export const DOCKER_DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
] as const;

/** The environment variables that pick GPUs for the container. */
export function gpuEnv(
  gpus: NonNullable<NonNullable<ContainerSpec["resources"]>["gpus"]>,
): Record<string, string> {
  const env: Record<string, string> = {};
  const visible =
    gpus.deviceIds !== undefined
      ? gpus.deviceIds.join(",")
      : typeof gpus.count === "number"
        ? Array.from({ length: gpus.count }, (_, i) => String(i)).join(",")
        : undefined;
  if (gpus.vendor === "amd") {
    if (visible !== undefined) env.ROCR_VISIBLE_DEVICES = visible;
  } else {
    if (visible !== undefined) {
      env.CUDA_VISIBLE_DEVICES = visible;
      env.NVIDIA_VISIBLE_DEVICES = visible;
    }
    // Read by `--nvccli` (nvidia-container-cli); harmless otherwise.
    if (gpus.capabilities) env.NVIDIA_DRIVER_CAPABILITIES = gpus.capabilities.join(",");
  }
  return env;
}

const SHELL_SPECIAL = /[$`\\"'\n]/;

/**
 * Apptainer-specific spec rules, for `validateSpec(spec, { extraChecks })`: `-B src:dst[:ro]` and
 * `--scratch a,b` split on ':' and ',', so such paths cannot be expressed.
 */
export function apptainerSpecChecks(spec: ContainerSpec, issues: SpecIssue[]): void {
  (spec.mounts ?? []).forEach((m, i) => {
    const paths: [string, string][] = [[`mounts[${i}].target`, m.target]];
    if (m.type === "bind") paths.push([`mounts[${i}].source`, m.source]);
    for (const [path, value] of paths) {
      if (/[:,]/.test(value)) {
        issues.push({
          path,
          message: `Apptainer cannot mount a path holding ':' or ',' (${value}); link it to a plain name first`,
        });
      }
    }
  });
}

function isPlainAbsolutePath(p: string): boolean {
  return p.startsWith("/") && !/[:,\n]/.test(p);
}
