import {
  type Capabilities,
  type CapabilityStatus,
  type PrivilegeMode,
  RuntimeUnavailableError,
  SUPPORTED,
  unsupported,
} from "@contexec/core";
import type { RenderProbe } from "../plan/render-apptainer-command.js";
import type { CgroupLayout } from "../process/cgroup-limits.js";
import { fatalMessage } from "../process/stderr-tail.js";
import { parseRuntimeVersion, type RuntimeFlavor } from "./runtime-version.js";

/** One probe run as it happened: what a recording of another machine's probe holds. */
export interface RunRecord {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** What the exec probe saw: nsenter missing, not allowed, the container not starting, or nsenter's result. */
export type ExecObservation =
  | { outcome: "no-nsenter" }
  | { outcome: "setuid-unprivileged"; nsenter: string }
  | { outcome: "not-tried"; nsenter: string }
  | { outcome: "no-container"; nsenter: string; stderr: string }
  | { outcome: "entered"; nsenter: string; run: RunRecord }
  | { outcome: "error"; nsenter: string; message: string };

/** What the own-cgroups probe saw. */
export type OwnCgroupsObservation =
  | { outcome: "not-tried"; reason: string }
  | { outcome: "no-controllers"; version: 1 | 2 }
  | { outcome: "cannot-make"; under: string; message: string }
  | { outcome: "ran"; run: RunRecord; oomCounted: boolean };

/**
 * Everything the probe runs found on a machine, as data. {@link interpretProbe} turns it into
 * decisions without touching the machine, so a recording from another machine (or a test) can be
 * interpreted anywhere.
 */
export interface ProbeObservations {
  binary: string;
  timeoutMs: number;
  isRoot: boolean;
  /** The executor asked for `--userns` even where containers start without it. */
  preferUserns: boolean;
  /** The probe image holds a static busybox (else runs prove only that Apptainer got to exec). */
  hasBusybox: boolean;
  version: RunRecord;
  help?: RunRecord;
  /** `apptainer buildcfg`: whether the installation was built with setuid support. */
  buildcfg?: RunRecord;
  /** A plain start (root: Docker's capabilities) and one with --userns. */
  start?: { plain: RunRecord; userns: RunRecord };
  netNone?: RunRecord;
  netBridge?: RunRecord;
  limits?: RunRecord;
  asUser?: RunRecord;
  exec?: ExecObservation;
  ownCgroups?: OwnCgroupsObservation;
  cgroupLayout?: CgroupLayout;
  gpu?: string;
  durationMs: number;
}

/** What {@link interpretProbe} decided: the runtime, the flags it needs, what it can do here. */
export interface RuntimeProbe {
  binary: string;
  flavor: RuntimeFlavor;
  version: string;
  /** How containers start here: as root, through the setuid starter, or in a user namespace. */
  privilege: PrivilegeMode;
  render: RenderProbe;
  capabilities: Capabilities;
  /** nsenter's path when exec works. */
  nsenter: string | undefined;
  /** This process's cgroups, under which containers get their own (with `render.ownCgroups`). */
  cgroupLayout: CgroupLayout | undefined;
  details: Record<string, string>;
  durationMs: number;
  /** ISO time of the probe. */
  probedAt: string;
}

export const PROBE_MEMORY = 64 * 1024 * 1024;
/** The program probe runs start when the probe image has no busybox: reaching it proves the container was set up. */
export const MISSING_PROGRAM = "/.contexec-probe-missing";

/** Why a run failed, in Apptainer's words when it gave some. */
export function problemOf(r: RunRecord, binary: string, timeoutMs: number): string {
  if (r.timedOut) return `the probe run timed out after ${timeoutMs} ms`;
  return fatalMessage(r.stderr) ?? lastErrorLine(r.stderr) ?? `${binary} exited with code ${r.exitCode}`;
}

const ok = (r: RunRecord | undefined): boolean => r !== undefined && r.exitCode === 0 && !r.timedOut;

/** Whether a start probe worked: its command ran (or, without busybox, Apptainer got as far as looking for it). */
function worked(o: Pick<ProbeObservations, "hasBusybox">, r: RunRecord): boolean {
  return o.hasBusybox ? ok(r) : !r.timedOut && (fatalMessage(r.stderr) ?? "").includes(MISSING_PROGRAM);
}

/**
 * The start mode the observations call for: no user namespace where a plain start works (and
 * none was asked for), else `--userns`. A caller other than root whose plain start ran in a user
 * namespace anyway (Apptainer >= 1.1 without setuid makes one itself: /proc/self/uid_map says so)
 * is in user-namespace mode, flags included; one whose start ran in the initial namespace is
 * setuid. Throws RuntimeUnavailableError when neither starts.
 */
export function chooseStartMode(o: ProbeObservations): {
  userns: boolean;
  privilege: Extract<PrivilegeMode, "root" | "setuid" | "userns">;
} {
  const start = o.start;
  if (!start) throw new Error("chooseStartMode needs the start runs");
  if (worked(o, start.plain) && !(o.preferUserns && worked(o, start.userns))) {
    if (o.isRoot) return { userns: false, privilege: "root" };
    const setuidInstall = o.buildcfg ? parseSetuidInstall(o.buildcfg.stdout) : undefined;
    const namespaced = o.hasBusybox ? inUserNamespace(start.plain.stdout) : setuidInstall !== true;
    return namespaced
      ? { userns: worked(o, start.userns), privilege: "userns" }
      : { userns: false, privilege: "setuid" };
  }
  if (worked(o, start.userns)) return { userns: true, privilege: "userns" };
  const p = (r: RunRecord) => problemOf(r, o.binary, o.timeoutMs);
  throw new RuntimeUnavailableError(
    "apptainer",
    `${o.binary} cannot start a container here. Without --userns: ${p(start.plain)}. With --userns: ${p(start.userns)}. ` +
      "Check apptainer.conf (allow user ns, allow container dir) and the installation (scripts/setup-apptainer.sh).",
  );
}

/** The decisions of a probe, from its observations alone (pure). */
export function interpretProbe(o: ProbeObservations, probedAt = new Date().toISOString()): RuntimeProbe {
  const { binary } = o;
  const problem = (r: RunRecord) => problemOf(r, binary, o.timeoutMs);
  if (!ok(o.version)) {
    throw new RuntimeUnavailableError(
      "apptainer",
      `${binary} --version failed (${problem(o.version)}); check the installation (scripts/setup-apptainer.sh)`,
    );
  }
  const version = parseRuntimeVersion(o.version.stdout + o.version.stderr, binary);
  const help = o.help ? o.help.stdout + o.help.stderr : "";
  const noEval = help.includes("--no-eval");
  const noUmask = help.includes("--no-umask");
  const mode = chooseStartMode(o);
  const useUserns = mode.userns;
  const setuidInstall = o.buildcfg ? parseSetuidInstall(o.buildcfg.stdout) : undefined;
  const hasBusybox = o.hasBusybox;
  const notProbed = "not probed: no static busybox on this host to run the probe (install busybox-static)";

  const netNone = o.netNone;
  const networkNone: CapabilityStatus = !netNone
    ? unsupported("not probed")
    : hasBusybox
      ? ok(netNone) && interfacesOf(netNone.stdout).join(",") === "lo"
        ? SUPPORTED
        : unsupported(
            ok(netNone)
              ? `--net --network none left interfaces other than lo (${interfacesOf(netNone.stdout).join(", ")})`
              : `${binary} --net --network none failed: ${problem(netNone)}`,
          )
      : worked(o, netNone)
        ? SUPPORTED
        : unsupported(`${binary} --net --network none failed: ${problem(netNone)}`);

  const netBridge = o.netBridge;
  const networkBridge: CapabilityStatus = !netBridge
    ? unsupported(notProbed)
    : ok(netBridge) && interfacesOf(netBridge.stdout).some((i) => i !== "lo")
      ? SUPPORTED
      : unsupported(
          ok(netBridge)
            ? "--net --network bridge gave the container no interface but lo"
            : `Apptainer's bridge network (CNI) is not available here: ${problem(netBridge)}`,
        );

  const own = ownCgroupsResult(o);
  let memoryLimit: CapabilityStatus;
  let cpuLimit: CapabilityStatus;
  if (own.ok) {
    memoryLimit = SUPPORTED;
    cpuLimit = SUPPORTED;
  } else if (!o.limits) {
    const reason = `could not be measured: ${notProbed.slice("not probed: ".length)}`;
    memoryLimit = unsupported(reason);
    cpuLimit = unsupported(reason);
  } else if (!ok(o.limits)) {
    const reason = `${binary} refused --memory/--cpus here: ${problem(o.limits)}`;
    memoryLimit = unsupported(reason);
    cpuLimit = unsupported(reason);
  } else {
    const seen = parseLimits(o.limits.stdout);
    const why = `(${useUserns ? "--userns; " : ""}cgroups are not applied without root or systemd delegation here)`;
    memoryLimit =
      seen.memoryBytes === PROBE_MEMORY
        ? SUPPORTED
        : unsupported(`Apptainer accepts --memory but the container's cgroup has no such limit ${why}`);
    cpuLimit =
      seen.cpus !== undefined && Math.abs(seen.cpus - 0.5) < 0.01
        ? SUPPORTED
        : unsupported(`Apptainer accepts --cpus but the container's cgroup has no CPU quota ${why}`);
  }

  const exec = execResult(o);
  const asUser = o.asUser;
  const capabilities: Capabilities = {
    "network-none": networkNone,
    "network-bridge": networkBridge,
    "network-host": SUPPORTED,
    "memory-limit": memoryLimit,
    "cpu-limit": cpuLimit,
    gpu: o.gpu
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
      ok(asUser) && /^Uid:\s+65534\s/m.test(asUser?.stdout ?? "")
        ? SUPPORTED
        : unsupported(
            asUser
              ? `${binary} --security uid:65534,gid:65534 did not run the container as that user: ${ok(asUser) ? "it ran as another uid" : problem(asUser)}`
              : useUserns
                ? o.isRoot
                  ? "Apptainer runs the container as the calling user (mapped to itself in its user namespace); only root without --userns can switch users (--security uid:U,gid:G), and root needs --userns here"
                  : "Apptainer runs the container as the calling user (mapped to itself in its user namespace); switching users (--security uid:U,gid:G) is for root without --userns"
                : o.isRoot
                  ? notProbed
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
    dockerCaps: !useUserns && o.isRoot,
    noEval,
    noUmask,
    ownCgroups: own.ok,
  };
  const privilege: PrivilegeMode = mode.privilege;
  return {
    binary,
    flavor: version.flavor,
    version: version.version,
    privilege,
    render,
    capabilities,
    nsenter: exec.status.supported ? exec.nsenter : undefined,
    cgroupLayout: own.ok ? o.cgroupLayout : undefined,
    details: {
      binary,
      mode: {
        userns: "user namespace (--userns)",
        root: "root, Docker's capabilities (--no-privs --add-caps)",
        setuid: "setuid root (starter-suid)",
      }[mode.privilege],
      setuidInstall: setuidInstall === undefined ? "unknown" : String(setuidInstall),
      noEval: String(noEval),
      noUmask: String(noUmask),
      limits: own.ok
        ? `own cgroups (v${o.cgroupLayout?.version}), bound over /sys/fs/cgroup in the container`
        : memoryLimit.supported
          ? "Apptainer's --memory/--cpus"
          : "none",
      probeImage: hasBusybox ? "folder image with the host's static busybox" : "empty folder image",
      probeMs: String(o.durationMs),
      ...(o.gpu ? { gpu: o.gpu } : {}),
    },
    durationMs: o.durationMs,
    probedAt,
  };
}

function ownCgroupsResult(
  o: ProbeObservations,
): { ok: true; oomCounted: boolean } | { ok: false; reason: string } {
  const own = o.ownCgroups;
  if (!own) return { ok: false, reason: "not probed" };
  switch (own.outcome) {
    case "not-tried":
      return { ok: false, reason: own.reason };
    case "no-controllers":
      return { ok: false, reason: `cgroup v${own.version} has no memory and cpu controllers here` };
    case "cannot-make":
      return { ok: false, reason: `cannot make a cgroup under ${own.under}: ${own.message}` };
    case "ran": {
      if (!ok(own.run))
        return {
          ok: false,
          reason: `a container in its own cgroup failed: ${problemOf(own.run, o.binary, o.timeoutMs)}`,
        };
      const seen = parseLimits(own.run.stdout);
      if (seen.memoryBytes !== PROBE_MEMORY || seen.cpus === undefined || Math.abs(seen.cpus - 0.5) > 0.01) {
        return {
          ok: false,
          reason: `a container in its own cgroup did not see its limits (${own.run.stdout.trim() || "nothing read"})`,
        };
      }
      return { ok: true, oomCounted: own.oomCounted };
    }
  }
}

function execResult(o: ProbeObservations): { status: CapabilityStatus; nsenter?: string } {
  const e = o.exec;
  if (!e) return { status: unsupported("not probed") };
  switch (e.outcome) {
    case "no-nsenter":
      return {
        status: unsupported("nsenter (util-linux) is not installed; exec enters the container with it"),
      };
    case "setuid-unprivileged":
      return {
        status: unsupported(
          "setuid Apptainer makes root-owned namespaces that an unprivileged caller cannot enter; use an installation with user namespaces",
        ),
      };
    case "not-tried":
      return { status: SUPPORTED, nsenter: e.nsenter };
    case "no-container":
      return {
        status: unsupported(
          `the exec probe container did not start: ${fatalMessage(e.stderr) ?? "timed out"}`,
        ),
      };
    case "error":
      return { status: unsupported(`nsenter into the container failed: ${e.message}`) };
    case "entered":
      return ok(e.run)
        ? { status: SUPPORTED, nsenter: e.nsenter }
        : {
            status: unsupported(
              `nsenter into the container failed: ${e.run.stderr.trim() || `exit ${e.run.exitCode}`}`,
            ),
          };
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
