import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { DOCKER_DEFAULT_CAPS } from "../plan/render-apptainer-command.js";
import { runtimeProcessEnv } from "../plan/runtime-env.js";
import {
  applyCgroups,
  type CgroupLayout,
  detectCgroupLayout,
  planCgroups,
  removeCgroups,
} from "../process/cgroup-limits.js";
import { joinCgroupsArgv, nsenterArgv } from "../process/nsenter.js";
import { type ContainerProcesses, findContainerProcesses, signalProcess } from "../process/process-tree.js";
import { runTool } from "../process/run-tool.js";
import { findOnPath } from "./find-binary.js";
import {
  chooseStartMode,
  type ExecObservation,
  interpretProbe,
  MISSING_PROGRAM,
  type OwnCgroupsObservation,
  PROBE_MEMORY,
  type ProbeObservations,
  type RunRecord,
  type RuntimeProbe,
} from "./interpret-probe.js";
import { makeProbeSandbox } from "./probe-sandbox.js";

export interface ProbeOptions {
  binary: string;
  /** A private folder for the probe's folder image (the caller removes it). */
  workDir: string;
  env?: NodeJS.ProcessEnv;
  /** Limit for each probe run; default 5000 ms. A run that takes longer counts as failed. */
  timeoutMs?: number;
  /** Use --userns even where containers could start without it (as root). */
  userns?: boolean;
}

// Reads the container's own memory and CPU limits from its cgroups (v1 and v2) from inside.
const LIMITS_SCRIPT =
  'while IFS=: read -r n c p; do for f in memory.limit_in_bytes memory.max cpu.cfs_quota_us cpu.cfs_period_us cpu.max; do for d in "/sys/fs/cgroup/$c$p" "/sys/fs/cgroup$p"; do [ -r "$d/$f" ] && echo "$f $(cat "$d/$f")"; done; done; done < /proc/self/cgroup; true';
// The same, read where a container with its own cgroups bound over the hierarchies sees them.
const OWN_LIMITS_SCRIPT = [
  "for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max",
  "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu.max;",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template
  'do [ -r "$f" ] && echo "${f##*/} $(cat "$f")"; done; true',
].join(" ");

/**
 * Finds out what the runtime is and what it can do on this machine: {@link observeRuntime}'s
 * short real runs, read by {@link interpretProbe} (pure).
 */
export async function probeRuntime(options: ProbeOptions): Promise<RuntimeProbe> {
  return interpretProbe(await observeRuntime(options));
}

/**
 * Runs the probes, each one short real run of a tiny folder image: whether `--userns` is needed,
 * `--net --network none` and bridge, whether `--memory`/`--cpus` end up in the container's
 * cgroup, whether the library's own cgroups work, whether exec (nsenter) works. Runs are
 * concurrent and each is bounded by `timeoutMs`; together about 0.3 s here. Records what
 * happened and decides nothing but the start mode the later runs need.
 */
export async function observeRuntime(options: ProbeOptions): Promise<ProbeObservations> {
  const started = performance.now();
  const env = options.env ?? process.env;
  const timeout = options.timeoutMs ?? 5000;
  const binary = options.binary;
  const processEnv = runtimeProcessEnv(env);
  const isRoot = process.getuid?.() === 0;

  const run = async (args: string[], program = binary): Promise<RunRecord> => {
    const r = await runTool([program, ...args], {
      env: processEnv,
      timeoutMs: timeout,
      maxBuffer: 1024 * 1024,
      keepFinalNewline: true,
    });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
  };

  const [version, help, buildcfg, sandbox] = await Promise.all([
    run(["--version"]),
    run(["exec", "--help"]),
    run(["buildcfg"]),
    makeProbeSandbox(options.workDir, env),
  ]);
  const o: ProbeObservations = {
    binary,
    timeoutMs: timeout,
    isRoot,
    preferUserns: options.userns === true,
    hasBusybox: sandbox.hasBusybox,
    version,
    help,
    buildcfg,
    durationMs: 0,
  };
  const finish = () => {
    o.durationMs = Math.round(performance.now() - started);
    return o;
  };
  if (version.exitCode !== 0 || version.timedOut) return finish();

  const probeCommand = sandbox.hasBusybox ? ["/bin/true"] : [MISSING_PROGRAM];
  const base = ["--silent", "exec", "--containall"];
  // Is --userns needed? As root, the container's root is given Docker's capability set
  // (--no-privs --add-caps): that also avoids "Requesting capability set 0x1ffffffffff while
  // permitted capability set is 0x1fffeffffff" (exit 1) where root lacks a capability (here
  // CAP_SYS_RESOURCE). Without a user namespace Apptainer mounts the SIF with the kernel's
  // squashfs, not squashfuse (whose readdir has no "." and ".." entries, squashfuse 0.1.105).
  const rootFlags = isRoot ? ["--no-privs", "--add-caps", DOCKER_DEFAULT_CAPS.join(",")] : [];
  // A caller other than root is in setuid mode when the runtime is setuid root, else Apptainer
  // (>= 1.1) makes a user namespace by itself: the plain run's /proc/self/uid_map tells which.
  const [plain, userns] = await Promise.all([
    run([
      ...base,
      ...rootFlags,
      sandbox.path,
      ...(sandbox.hasBusybox ? ["/bin/cat", "/proc/self/uid_map"] : probeCommand),
    ]),
    run([...base, "--userns", sandbox.path, ...probeCommand]),
  ]);
  o.start = { plain, userns };
  let useUserns: boolean;
  try {
    useUserns = chooseStartMode(o).userns;
  } catch {
    return finish();
  }
  const flags = [...base, ...(useUserns ? ["--userns"] : rootFlags)];

  const layout = await detectCgroupLayout();
  if (layout) o.cgroupLayout = layout;
  const bb = sandbox.hasBusybox;
  const [netNone, netBridge, limits, exec, own, asUser, gpu] = await Promise.all([
    bb
      ? run([...flags, "--net", "--network", "none", sandbox.path, "/bin/cat", "/proc/net/dev"])
      : run([...flags, "--net", "--network", "none", sandbox.path, MISSING_PROGRAM]),
    bb
      ? run([...flags, "--net", "--network", "bridge", sandbox.path, "/bin/cat", "/proc/net/dev"])
      : undefined,
    bb
      ? run([
          ...flags,
          "--memory",
          String(PROBE_MEMORY),
          "--cpus",
          "0.5",
          sandbox.path,
          "/bin/sh",
          "-c",
          LIMITS_SCRIPT,
        ])
      : undefined,
    observeExec(binary, [...flags, sandbox.path], bb, useUserns, isRoot, processEnv, env, timeout),
    bb && layout
      ? observeOwnCgroups(
          layout,
          (argv) => run(argv.slice(1), argv[0] as string),
          [binary, ...flags],
          sandbox.path,
          join(options.workDir, "cgroup-mount-points"),
        )
      : Promise.resolve<OwnCgroupsObservation>({
          outcome: "not-tried",
          reason: layout ? "no static busybox to run the probe" : "no cgroup file system found",
        }),
    // Root can start a container as another user (--security uid:U,gid:G, root only).
    !useUserns && isRoot && bb
      ? run([
          ...base,
          "--no-privs",
          "--security",
          "uid:65534,gid:65534",
          sandbox.path,
          "/bin/cat",
          "/proc/self/status",
        ])
      : undefined,
    findGpu(env),
  ]);
  o.netNone = netNone;
  if (netBridge) o.netBridge = netBridge;
  if (limits) o.limits = limits;
  if (asUser) o.asUser = asUser;
  if (gpu) o.gpu = gpu;
  o.exec = exec;
  o.ownCgroups = own;
  return finish();
}

/**
 * Starts a container that sleeps, enters it with nsenter and runs `true`: what exec() does.
 * Without busybox nothing can be left running, so the answer comes from what nsenter needs.
 */
async function observeExec(
  binary: string,
  prefix: string[],
  hasBusybox: boolean,
  userns: boolean,
  isRoot: boolean,
  processEnv: Record<string, string>,
  env: NodeJS.ProcessEnv,
  timeout: number,
): Promise<ExecObservation> {
  const nsenter = await findOnPath("nsenter", env.PATH ?? "/usr/bin:/bin");
  if (!nsenter) return { outcome: "no-nsenter" };
  if (!userns && !isRoot) return { outcome: "setuid-unprivileged", nsenter };
  if (!hasBusybox) return { outcome: "not-tried", nsenter };

  const child = spawn(binary, [...prefix, "/bin/sleep", "30"], {
    env: processEnv,
    cwd: "/",
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  child.once("error", () => {});
  const deadline = Date.now() + timeout;
  try {
    let found: ContainerProcesses | undefined;
    while (!found && Date.now() < deadline && child.exitCode === null && child.pid !== undefined) {
      found = await findContainerProcesses(child.pid);
      if (!found) await new Promise((r) => setTimeout(r, 10));
    }
    if (!found) return { outcome: "no-container", nsenter, stderr };
    const argv = await nsenterArgv(nsenter, found.main.pid, ["/bin/true"], "/");
    const r = await runTool(argv, { env: { PATH: "/bin" }, timeoutMs: timeout });
    return {
      outcome: "entered",
      nsenter,
      run: { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut },
    };
  } catch (err) {
    return { outcome: "error", nsenter, message: (err as Error).message };
  } finally {
    // SIGKILL to the group ends the runtime and its namespace (a folder image needs no squashfuse).
    if (child.pid !== undefined && child.exitCode === null) {
      signalProcess(-child.pid, "SIGKILL");
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  }
}

/**
 * Makes cgroups for a probe container the way the executor makes them for a container with
 * limits (under this process's own cgroups), runs it inside them and records what it read.
 */
async function observeOwnCgroups(
  layout: CgroupLayout,
  runArgv: (argv: string[]) => Promise<RunRecord>,
  runtimeArgv: string[],
  image: string,
  skeletonDir: string,
): Promise<OwnCgroupsObservation> {
  const plan = planCgroups(
    layout,
    `contexec-probe-${process.pid}-${randomBytes(4).toString("hex")}`,
    { memoryBytes: PROBE_MEMORY, cpus: 0.5 },
    skeletonDir,
  );
  if (!plan) return { outcome: "no-controllers", version: layout.version };
  try {
    await applyCgroups(plan);
  } catch (err) {
    return {
      outcome: "cannot-make",
      under: layout.memory?.own ?? "this process's cgroup",
      message: (err as Error).message,
    };
  }
  try {
    const binds = plan.binds.flatMap((b) => ["--bind", `${b.source}:${b.target}:ro`]);
    const r = await runArgv(
      joinCgroupsArgv(plan.procsFiles, [...runtimeArgv, ...binds, image, "/bin/sh", "-c", OWN_LIMITS_SCRIPT]),
    );
    const oomCounted = plan.oomFile
      ? /^oom_kill \d+$/m.test(await readFile(plan.oomFile, "utf8").catch(() => ""))
      : false;
    return { outcome: "ran", run: r, oomCounted };
  } finally {
    await removeCgroups(plan);
  }
}

/** A description of the GPU found on the host, or undefined. */
async function findGpu(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const path = env.PATH ?? "";
  if (await findOnPath("nvidia-smi", path)) return "nvidia (nvidia-smi)";
  if (await exists("/dev/nvidia0")) return "nvidia (/dev/nvidia0)";
  if (await findOnPath("rocm-smi", path)) return "amd (rocm-smi)";
  if (await exists("/dev/kfd")) return "amd (/dev/kfd)";
  return undefined;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
