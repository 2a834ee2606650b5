import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type Capabilities,
  type CapabilityStatus,
  type PrivilegeMode,
  RuntimeUnavailableError,
  SUPPORTED,
  unsupported,
} from "@contexec/core";
import { execa } from "execa";
import {
  applyCgroups,
  type CgroupLayout,
  detectCgroupLayout,
  planCgroups,
  removeCgroups,
} from "./cgroup-limits.js";
import { findOnPath } from "./find-binary.js";
import { joinCgroupsArgv, nsenterArgv } from "./nsenter.js";
import { makeProbeSandbox } from "./probe-sandbox.js";
import { type ContainerProcesses, findContainerProcesses, signalProcess } from "./process-tree.js";
import { DOCKER_DEFAULT_CAPS, type RenderProbe } from "./render-apptainer-command.js";
import { runtimeProcessEnv } from "./runtime-env.js";
import { parseRuntimeVersion, type RuntimeFlavor } from "./runtime-version.js";
import { fatalMessage } from "./stderr-tail.js";

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

/** What {@link probeRuntime} found: the runtime, the flags it needs, what it can do here. */
export interface RuntimeProbe {
  binary: string;
  flavor: RuntimeFlavor;
  version: string;
  render: RenderProbe;
  /**
   * How containers start here: `root` (root without a user namespace, Docker's capabilities),
   * `setuid` (an unprivileged caller of a setuid-root installation), `userns` (a user namespace).
   */
  privilege: Extract<PrivilegeMode, "root" | "setuid" | "userns">;
  capabilities: Capabilities;
  /** nsenter's path when exec works. */
  nsenter: string | undefined;
  /** This process's cgroups, under which containers get their own (with `render.ownCgroups`). */
  cgroupLayout: CgroupLayout | undefined;
  details: Record<string, string>;
  durationMs: number;
}

interface RunResult {
  ok: boolean;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Why it failed, in Apptainer's words when it gave some. */
  problem: string;
}

const PROBE_MEMORY = 64 * 1024 * 1024;
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
const MISSING = "/.contexec-probe-missing";

/**
 * Finds out what the runtime is and what it can do on this machine, each by one short real run
 * of a tiny folder image: whether `--userns` is needed, `--net --network none` and bridge,
 * whether `--memory`/`--cpus` end up in the container's cgroup, whether exec (nsenter) works.
 * Runs are concurrent and each is bounded by `timeoutMs`; together about 0.3 s here.
 */
export async function probeRuntime(options: ProbeOptions): Promise<RuntimeProbe> {
  const started = performance.now();
  const env = options.env ?? process.env;
  const timeout = options.timeoutMs ?? 5000;
  const binary = options.binary;
  const processEnv = runtimeProcessEnv(env);

  const run = async (args: string[], program = binary): Promise<RunResult> => {
    const r = await execa(program, args, {
      env: processEnv,
      extendEnv: false,
      cwd: "/",
      stdin: "ignore",
      timeout,
      killSignal: "SIGKILL",
      reject: false,
      stripFinalNewline: false,
      maxBuffer: 1024 * 1024,
    });
    const stderr = String(r.stderr ?? "");
    const fatal = fatalMessage(stderr) ?? lastErrorLine(stderr);
    const problem = r.timedOut
      ? `the probe run timed out after ${timeout} ms`
      : (fatal ?? `${binary} exited with code ${r.exitCode ?? r.signal}`);
    return {
      ok: r.exitCode === 0 && !r.timedOut,
      exitCode: r.exitCode,
      stdout: String(r.stdout ?? ""),
      stderr,
      timedOut: !!r.timedOut,
      problem,
    };
  };

  const [versionRun, helpRun, buildcfgRun, sandbox] = await Promise.all([
    run(["--version"]),
    run(["exec", "--help"]),
    run(["buildcfg"]),
    makeProbeSandbox(options.workDir, env),
  ]);
  if (!versionRun.ok) {
    throw new RuntimeUnavailableError(
      "apptainer",
      `${binary} --version failed (${versionRun.problem}); check the installation (scripts/setup-apptainer.sh)`,
    );
  }
  const version = parseRuntimeVersion(versionRun.stdout + versionRun.stderr, binary);
  const help = helpRun.stdout + helpRun.stderr;
  const noEval = help.includes("--no-eval");
  const noUmask = help.includes("--no-umask");

  // A run "works" when its command ran; without busybox, when Apptainer got as far as looking
  // for a program that is not there (the container was set up).
  const probeCommand = sandbox.hasBusybox ? ["/bin/true"] : [MISSING];
  const worked = (r: RunResult) =>
    sandbox.hasBusybox ? r.ok : !r.timedOut && (fatalMessage(r.stderr) ?? "").includes(MISSING);
  const base = ["--silent", "exec", "--containall"];

  // Is --userns needed? As root, the container's root is given Docker's capability set
  // (--no-privs --add-caps): that also avoids "Requesting capability set 0x1ffffffffff while
  // permitted capability set is 0x1fffeffffff" (exit 1) where root lacks a capability (here
  // CAP_SYS_RESOURCE). Without a user namespace Apptainer mounts the SIF with the kernel's
  // squashfs, not squashfuse (whose readdir has no "." and ".." entries, squashfuse 0.1.105).
  // A caller other than root is in setuid mode when the runtime is setuid root, else Apptainer
  // (>= 1.1) makes a user namespace by itself: the plain run's /proc/self/uid_map tells which.
  const isRoot = process.getuid?.() === 0;
  const rootFlags = isRoot ? ["--no-privs", "--add-caps", DOCKER_DEFAULT_CAPS.join(",")] : [];
  const [plain, userns] = await Promise.all([
    run([
      ...base,
      ...rootFlags,
      sandbox.path,
      ...(sandbox.hasBusybox ? ["/bin/cat", "/proc/self/uid_map"] : probeCommand),
    ]),
    run([...base, "--userns", sandbox.path, ...probeCommand]),
  ]);
  const setuidInstall = parseSetuidInstall(buildcfgRun.stdout);
  let useUserns: boolean;
  let privilege: RuntimeProbe["privilege"];
  if (worked(plain) && !(options.userns && worked(userns))) {
    const namespaced = isRoot
      ? false
      : sandbox.hasBusybox
        ? inUserNamespace(plain.stdout)
        : setuidInstall !== true;
    privilege = isRoot ? "root" : namespaced ? "userns" : "setuid";
    // Without setuid the plain run was a user namespace anyway: say so in the flags too.
    useUserns = namespaced && worked(userns);
  } else if (worked(userns)) {
    useUserns = true;
    privilege = "userns";
  } else {
    throw new RuntimeUnavailableError(
      "apptainer",
      `${binary} cannot start a container here. Without --userns: ${plain.problem}. With --userns: ${userns.problem}. ` +
        "Check apptainer.conf (allow user ns, allow container dir) and the installation (scripts/setup-apptainer.sh).",
    );
  }
  const flags = [...base, ...(useUserns ? ["--userns"] : rootFlags)];

  const layout = await detectCgroupLayout();
  const [netNone, netBridge, limits, exec, own, asUser] = await Promise.all([
    sandbox.hasBusybox
      ? run([...flags, "--net", "--network", "none", sandbox.path, "/bin/cat", "/proc/net/dev"])
      : run([...flags, "--net", "--network", "none", sandbox.path, MISSING]),
    sandbox.hasBusybox
      ? run([...flags, "--net", "--network", "bridge", sandbox.path, "/bin/cat", "/proc/net/dev"])
      : Promise.resolve(undefined),
    sandbox.hasBusybox
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
      : Promise.resolve(undefined),
    probeExec(binary, [...flags, sandbox.path], sandbox.hasBusybox, useUserns, processEnv, env, timeout),
    sandbox.hasBusybox && layout
      ? probeOwnCgroups(
          layout,
          (argv) => run(argv.slice(1), argv[0] as string),
          [binary, ...flags],
          sandbox.path,
          join(options.workDir, "cgroup-mount-points"),
        )
      : Promise.resolve({
          ok: false as const,
          reason: layout ? "no static busybox to run the probe" : "no cgroup file system found",
        }),
    // Root can start a container as another user (--security uid:U,gid:G, root only).
    !useUserns && isRoot && sandbox.hasBusybox
      ? run([
          ...base,
          "--no-privs",
          "--security",
          "uid:65534,gid:65534",
          sandbox.path,
          "/bin/cat",
          "/proc/self/status",
        ])
      : Promise.resolve(undefined),
  ]);

  const networkNone = sandbox.hasBusybox
    ? netNone.ok && interfacesOf(netNone.stdout).join(",") === "lo"
      ? SUPPORTED
      : unsupported(
          netNone.ok
            ? `--net --network none left interfaces other than lo (${interfacesOf(netNone.stdout).join(", ")})`
            : `${binary} --net --network none failed: ${netNone.problem}`,
        )
    : worked(netNone)
      ? SUPPORTED
      : unsupported(`${binary} --net --network none failed: ${netNone.problem}`);

  let networkBridge: CapabilityStatus;
  if (!netBridge)
    networkBridge = unsupported(
      "not probed: no static busybox on this host to run the probe (install busybox-static)",
    );
  else if (netBridge.ok && interfacesOf(netBridge.stdout).some((i) => i !== "lo")) networkBridge = SUPPORTED;
  else
    networkBridge = unsupported(
      netBridge.ok
        ? "--net --network bridge gave the container no interface but lo"
        : `Apptainer's bridge network (CNI) is not available here: ${netBridge.problem}`,
    );

  let memoryLimit: CapabilityStatus;
  let cpuLimit: CapabilityStatus;
  if (own.ok) {
    memoryLimit = SUPPORTED;
    cpuLimit = SUPPORTED;
  } else if (!limits) {
    const reason =
      "could not be measured: no static busybox on this host to run the probe (install busybox-static)";
    memoryLimit = unsupported(reason);
    cpuLimit = unsupported(reason);
  } else if (!limits.ok) {
    const reason = `${binary} refused --memory/--cpus here: ${limits.problem}`;
    memoryLimit = unsupported(reason);
    cpuLimit = unsupported(reason);
  } else {
    const seen = parseLimits(limits.stdout);
    memoryLimit =
      seen.memoryBytes === PROBE_MEMORY
        ? SUPPORTED
        : unsupported(
            `Apptainer accepts --memory but the container's cgroup has no such limit (${useUserns ? "--userns; " : ""}cgroups are not applied without root or systemd delegation here)`,
          );
    cpuLimit =
      seen.cpus !== undefined && Math.abs(seen.cpus - 0.5) < 0.01
        ? SUPPORTED
        : unsupported(
            `Apptainer accepts --cpus but the container's cgroup has no CPU quota (${useUserns ? "--userns; " : ""}cgroups are not applied without root or systemd delegation here)`,
          );
  }

  const gpu = await findGpu(env);
  const capabilities: Capabilities = {
    "network-none": networkNone,
    "network-bridge": networkBridge,
    "network-host": SUPPORTED,
    "memory-limit": memoryLimit,
    "cpu-limit": cpuLimit,
    gpu: gpu
      ? SUPPORTED
      : unsupported("no GPU found: no nvidia-smi/rocm-smi on PATH and no /dev/nvidia0 or /dev/kfd"),
    "oom-detection":
      own.ok && own.oomCounted
        ? SUPPORTED
        : unsupported(
            own.ok
              ? "this kernel's memory cgroup does not count OOM kills (no oom_kill in memory.oom_control / memory.events)"
              : `Apptainer reports a container the OOM killer ended as killed by SIGKILL (exit 137) and removes its cgroup (with the OOM count) as it exits; the library's own cgroups, which keep the count, cannot be made here (${own.reason})`,
          ),
    user:
      asUser?.ok && /^Uid:\s+65534\s/m.test(asUser.stdout)
        ? SUPPORTED
        : unsupported(
            asUser
              ? `${binary} --security uid:65534,gid:65534 did not run the container as that user: ${asUser.ok ? "it ran as another uid" : asUser.problem}`
              : useUserns
                ? isRoot
                  ? "Apptainer runs the container as the calling user (mapped to itself in its user namespace); only root without --userns can switch users (--security uid:U,gid:G), and root needs --userns here"
                  : "Apptainer runs the container as the calling user (mapped to itself in its user namespace); switching users (--security uid:U,gid:G) is for root without --userns"
                : isRoot
                  ? "not probed: no static busybox on this host to run the probe (install busybox-static)"
                  : "Apptainer runs the container as the calling user; switching users (--security uid:U,gid:G) is for root only",
          ),
    ports: unsupported(
      "Apptainer has no port publishing: a container shares the host's network, so a service listens on the host's ports directly",
    ),
    exec: exec.status,
  };

  const render: RenderProbe = {
    flavor: version.flavor,
    userns: useUserns,
    dockerCaps: !useUserns && isRoot,
    noEval,
    noUmask,
    networkNone: networkNone.supported,
    networkBridge: networkBridge.supported,
    memoryLimit: memoryLimit.supported,
    cpuLimit: cpuLimit.supported,
    ownCgroups: own.ok,
    gpu: gpu !== undefined,
  };
  const durationMs = Math.round(performance.now() - started);
  return {
    binary,
    flavor: version.flavor,
    version: version.version,
    render,
    privilege,
    capabilities,
    nsenter: exec.status.supported ? exec.nsenter : undefined,
    cgroupLayout: own.ok ? layout : undefined,
    details: {
      binary,
      mode: {
        userns: "user namespace (--userns)",
        root: "root, Docker's capabilities (--no-privs --add-caps)",
        setuid: "setuid root (starter-suid)",
      }[privilege],
      setuidInstall: setuidInstall === undefined ? "unknown" : String(setuidInstall),
      noEval: String(noEval),
      noUmask: String(noUmask),
      limits: own.ok
        ? `own cgroups (v${layout?.version}), bound over /sys/fs/cgroup in the container`
        : memoryLimit.supported
          ? "Apptainer's --memory/--cpus"
          : "none",
      probeImage: sandbox.hasBusybox ? "folder image with the host's static busybox" : "empty folder image",
      probeMs: String(durationMs),
      ...(gpu ? { gpu } : {}),
    },
    durationMs,
  };
}

/**
 * Starts a container that sleeps, enters it with nsenter and runs `true`: what exec() does.
 * Without busybox nothing can be left running, so the answer comes from what nsenter needs.
 */
async function probeExec(
  binary: string,
  prefix: string[],
  hasBusybox: boolean,
  userns: boolean,
  processEnv: Record<string, string>,
  env: NodeJS.ProcessEnv,
  timeout: number,
): Promise<{ status: CapabilityStatus; nsenter?: string }> {
  const nsenter = await findOnPath("nsenter", env.PATH ?? "/usr/bin:/bin");
  if (!nsenter)
    return {
      status: unsupported("nsenter (util-linux) is not installed; exec enters the container with it"),
    };
  if (!userns && process.getuid?.() !== 0) {
    return {
      status: unsupported(
        "setuid Apptainer makes root-owned namespaces that an unprivileged caller cannot enter; use an installation with user namespaces",
      ),
    };
  }
  if (!hasBusybox) return { status: SUPPORTED, nsenter };

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
    if (!found) {
      return {
        status: unsupported(`the exec probe container did not start: ${fatalMessage(stderr) ?? "timed out"}`),
      };
    }
    const argv = await nsenterArgv(nsenter, found.main.pid, ["/bin/true"], "/");
    const r = await execa(argv[0] as string, argv.slice(1), {
      env: { PATH: "/bin" },
      extendEnv: false,
      stdin: "ignore",
      timeout,
      reject: false,
      killSignal: "SIGKILL",
    });
    return r.exitCode === 0
      ? { status: SUPPORTED, nsenter }
      : {
          status: unsupported(
            `nsenter into the container failed: ${String(r.stderr).trim() || `exit ${r.exitCode}`}`,
          ),
        };
  } catch (err) {
    return { status: unsupported(`nsenter into the container failed: ${(err as Error).message}`) };
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
 * limits (under this process's own cgroups), runs it inside them and reads the limits it sees.
 */
async function probeOwnCgroups(
  layout: CgroupLayout,
  runArgv: (argv: string[]) => Promise<RunResult>,
  runtimeArgv: string[],
  image: string,
  skeletonDir: string,
): Promise<{ ok: true; oomCounted: boolean } | { ok: false; reason: string }> {
  const plan = planCgroups(
    layout,
    `contexec-probe-${process.pid}-${randomBytes(4).toString("hex")}`,
    { memoryBytes: PROBE_MEMORY, cpus: 0.5 },
    skeletonDir,
  );
  if (!plan) return { ok: false, reason: `cgroup v${layout.version} has no memory and cpu controllers here` };
  try {
    await applyCgroups(plan);
  } catch (err) {
    return {
      ok: false,
      reason: `cannot make a cgroup under ${layout.memory?.own ?? "this process's cgroup"}: ${(err as Error).message}`,
    };
  }
  try {
    const binds = plan.binds.flatMap((b) => ["--bind", `${b.source}:${b.target}:ro`]);
    const r = await runArgv(
      joinCgroupsArgv(plan.procsFiles, [...runtimeArgv, ...binds, image, "/bin/sh", "-c", OWN_LIMITS_SCRIPT]),
    );
    if (!r.ok) return { ok: false, reason: `a container in its own cgroup failed: ${r.problem}` };
    const seen = parseLimits(r.stdout);
    if (seen.memoryBytes !== PROBE_MEMORY || seen.cpus === undefined || Math.abs(seen.cpus - 0.5) > 0.01) {
      return {
        ok: false,
        reason: `a container in its own cgroup did not see its limits (${r.stdout.trim() || "nothing read"})`,
      };
    }
    const oomCounted = plan.oomFile
      ? /^oom_kill \d+$/m.test(await readFile(plan.oomFile, "utf8").catch(() => ""))
      : false;
    return { ok: true, oomCounted };
  } finally {
    await removeCgroups(plan);
  }
}

/**
 * False when a process's /proc/self/uid_map is the initial user namespace's (`0 0 4294967295`):
 * root or a setuid runtime. True for any other map (a user namespace).
 */
export function inUserNamespace(uidMap: string): boolean {
  const lines = uidMap
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).join(" "))
    .filter((l) => l !== "");
  return !(lines.length === 1 && lines[0] === "0 0 4294967295");
}

/**
 * Whether `apptainer buildcfg` says the installation was built with setuid support
 * (APPTAINER_SUID_INSTALL=1, SINGULARITY_SUID_INSTALL for SingularityCE); undefined when it
 * does not say (an old runtime without buildcfg).
 */
export function parseSetuidInstall(buildcfg: string): boolean | undefined {
  const m = /^(?:APPTAINER|SINGULARITY)_SUID_INSTALL=(\d+)\s*$/m.exec(buildcfg);
  return m ? m[1] !== "0" : undefined;
}

/** Interface names in /proc/net/dev output. */
export function interfacesOf(procNetDev: string): string[] {
  return procNetDev
    .split("\n")
    .map((l) => /^\s*([^\s:|]+):/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
}

/** The memory limit and CPUs read by the limits probe script (the smallest limit seen). */
export function parseLimits(output: string): { memoryBytes?: number; cpus?: number } {
  let memoryBytes: number | undefined;
  let quota: number | undefined;
  let period: number | undefined;
  let cpus: number | undefined;
  for (const line of output.split("\n")) {
    const [file, ...rest] = line.trim().split(/\s+/);
    const value = rest.join(" ");
    if ((file === "memory.limit_in_bytes" || file === "memory.max") && /^\d+$/.test(value)) {
      const n = Number(value);
      if (memoryBytes === undefined || n < memoryBytes) memoryBytes = n;
    } else if (file === "cpu.cfs_quota_us" && /^\d+$/.test(value)) quota = Number(value);
    else if (file === "cpu.cfs_period_us" && /^\d+$/.test(value)) period = Number(value);
    else if (file === "cpu.max") {
      const m = /^(\d+)\s+(\d+)$/.exec(value);
      if (m) cpus = Number(m[1]) / Number(m[2]);
    }
  }
  if (cpus === undefined && quota !== undefined && period) cpus = quota / period;
  return { ...(memoryBytes !== undefined && { memoryBytes }), ...(cpus !== undefined && { cpus }) };
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

// The setuid path fails before any FATAL with an "ERROR  : ..." line (exit 1).
function lastErrorLine(stderr: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^(?:ERROR|Error)\s*:?\s*(.*)$/.exec((lines[i] as string).trim());
    if (m) return (lines[i] as string).trim();
  }
  return undefined;
}
