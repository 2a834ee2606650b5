import { posix } from "node:path";
import {
  type ContainerSpec,
  checkCapabilities,
  type ImageConfig,
  type ImageId,
  InvalidConfigError,
  type PlannedCommand,
  type PlanStep,
  type RunPlan,
  type RuntimeProfile,
  UnsupportedError,
} from "@contexec/core";
import { type CgroupLayout, type CgroupPlan, planCgroups } from "../process/cgroup-limits.js";
import { renderContainerEnvScript } from "./container-env-script.js";
import { type NumericUser, resolveUser } from "./image-user.js";
import {
  type ApptainerCommand,
  type InstanceCommands,
  type RenderProbe,
  renderApptainerCommand,
  renderApptainerInstance,
} from "./render-apptainer-command.js";

/** What the Apptainer probe found that planning reads: the `planner` part of its RuntimeProfile. */
export interface ApptainerPlannerFacts {
  /** The runtime binary on the profiled machine. */
  binary: string;
  render: RenderProbe;
  /** nsenter's path when exec works. */
  nsenter?: string;
  /** The probing process's cgroups, under which containers get their own (with `render.ownCgroups`). */
  cgroupLayout?: CgroupLayout;
}

/** What is known of the image a plan runs. */
export interface ApptainerImageFacts {
  id: ImageId;
  config: ImageConfig;
  tags: string[];
  /** The SIF the command runs (in the cache, whether or not it exists yet). */
  sifPath: string;
  /** The SIF is in the cache and whole. */
  present: boolean;
  /** The archive it is converted from, when known. */
  archive?: string;
  /** The resolved working folder exists in the image (false: the run gets an empty one, as Docker makes it). */
  workdirExists: boolean;
  /** The image's /etc/passwd and /etc/group, when a user name must be resolved. */
  passwd?: string;
  group?: string;
}

export interface ApptainerPlanInput {
  /** A validated spec. */
  spec: ContainerSpec;
  runtime: "apptainer" | "singularity";
  profile: RuntimeProfile;
  image: ApptainerImageFacts;
  /** The container's id: 64 hex digits. Names its cgroups. */
  id: string;
  /** A folder for this container alone (made by the plan, removed after): private HOME, cgroup mount points. */
  scratchDir: string;
  /** The runtime process's own environment before APPTAINERENV_* (allow-listed host variables). */
  runtimeEnv: Record<string, string>;
  /** Plan a service: an instance of this name. */
  instance?: string;
}

/** A plan, and what the executor keeps for itself to run it (its cgroups to watch, the instance commands). */
export interface ApptainerPlan {
  plan: RunPlan;
  /** The container's scratch folder (made by the plan's steps before, removed after). */
  scratch: string;
  command: ApptainerCommand;
  cgroups: CgroupPlan | undefined;
  instance: InstanceCommands | undefined;
  user: NumericUser | undefined;
}

/**
 * The plan of an Apptainer run. Pure: everything comes from the input (the profile's planner
 * facts, the image facts gathered by the executor), so the same input gives the same plan here,
 * in a dry run, or in a job script for another machine.
 */
export function planApptainerRun(input: ApptainerPlanInput): ApptainerPlan {
  const { spec, profile, image, runtime } = input;
  const facts = apptainerPlannerFacts(profile);
  const gaps = checkCapabilities(spec, profile.capabilities, runtime);
  const service = input.instance ? serviceRender(spec, facts.render) : undefined;
  const probe = service?.render ?? facts.render;
  // One decision of what to leave out, as for Docker: the capability gaps (and for a service,
  // the limits an instance cannot keep).
  const ignore = new Set([...gaps.map((g) => g.field), ...(service?.ignore ?? [])]);

  // The image's USER (as Docker) or spec.user, where the runtime can switch users. Without that
  // capability the image's USER is not honoured: the container runs as the caller.
  let user: NumericUser | undefined;
  const wanted = spec.user ?? (image.config.user || undefined);
  if (profile.capabilities.user.supported && wanted !== undefined) {
    user = resolveUser(wanted, image.passwd, image.group, spec.user !== undefined ? "user" : "image USER");
  }

  const scratch = input.scratchDir;
  const cgroups =
    !input.instance && probe.ownCgroups && facts.cgroupLayout
      ? planCgroups(
          facts.cgroupLayout,
          `contexec-${input.id.slice(0, 16)}`,
          { memoryBytes: spec.resources?.memoryBytes, cpus: spec.resources?.cpus },
          posix.join(scratch, "cgroup-mount-points"),
        )
      : undefined;
  const homeSource = posix.join(scratch, "home");
  const envScript = posix.join(scratch, "environment.sh");
  // Apptainer sets APPTAINER_CONTAINER (readonly, in every container) to the image path it was
  // given: a link in the container's own folder keeps the cache's path out of the container.
  const imageLink = posix.join(scratch, "image.sif");
  const renderOptions = {
    ignore,
    ...(user && { user }),
    binary: facts.binary,
    createWorkdir: !image.workdirExists,
    homeSource,
    envScript,
    hostname: profile.host.hostname,
    ...(cgroups && { cgroup: { binds: cgroups.binds } }),
  };
  const command = renderApptainerCommand(spec, image.config, probe, imageLink, renderOptions);
  const instance = input.instance
    ? renderApptainerInstance(spec, image.config, probe, imageLink, input.instance, renderOptions)
    : undefined;
  const usesHome = command.argv.includes("--home");

  const before: PlanStep[] = [
    { op: "mkdir", path: scratch, mode: 0o700, why: "the container's private scratch folder" },
    {
      op: "write",
      path: envScript,
      content: renderContainerEnvScript({
        env: command.containerEnv,
        gpuLibs: command.argv.includes("--nv") || command.argv.includes("--rocm"),
      }),
      why: "the container's environment script: image ENV and spec env, without Apptainer's own variables",
    },
    {
      op: "symlink",
      path: imageLink,
      target: image.sifPath,
      why: "the image under a name of the container's own",
    },
  ];
  if (usesHome) before.push({ op: "mkdir", path: homeSource, mode: 0o700, why: "an empty private HOME" });
  const after: PlanStep[] = [];
  if (cgroups) {
    const steps = cgroupSteps(cgroups);
    before.push(...steps.before);
    after.push(...steps.after);
  }
  after.push({ op: "remove", path: scratch, why: "the container's scratch folder" });

  const runtimeCommand: PlannedCommand = {
    argv: instance ? instance.start.argv : command.argv,
    env: { ...input.runtimeEnv, ...command.env },
    // Never the caller's folder: nothing of the host's cwd should reach the container. An
    // instance starts in its own scratch folder, which Apptainer records in the instance's config:
    // that is how its service tells its own instance from another of the same name.
    cwd: instance ? scratch : "/",
    stdin: spec.stdin === true,
    ...(cgroups && { joinCgroups: cgroups.procsFiles }),
  };
  const converting = !image.present && image.archive !== undefined;
  const plan: RunPlan = {
    planVersion: 1,
    runtime,
    profile: {
      runtime: profile.runtime,
      flavor: profile.flavor,
      version: profile.version,
      privilege: profile.privilege,
      host: profile.host,
    },
    spec,
    image: {
      id: image.id,
      tags: image.tags,
      action: image.present ? "present" : "convert",
      path: image.sifPath,
      ...(image.archive !== undefined && { archive: image.archive }),
      ...(converting && {
        prepare: buildSifCommands(facts.binary, image.archive as string, image.sifPath, input.runtimeEnv),
      }),
    },
    before,
    command: runtimeCommand,
    process: {
      argv: command.command,
      workdir: command.workdir,
      env: command.containerEnv,
      ...(user && { user: `${user.uid}:${user.gid}` }),
      ...(image.config.stopSignal && { stopSignal: image.config.stopSignal }),
    },
    after,
    ignored: gaps.map((g) => ({ field: g.field, capability: g.capability, reason: g.reason })),
    notes: [
      ...(converting
        ? [
            "the executor converts the archive with its own converter into its SIF cache (checked, locked, renamed into place); the script uses `apptainer build` to a temporary name, then renames it",
          ]
        : []),
      ...(cgroups
        ? [
            "the executor moves only the container's own processes into its cgroups; the script starts the whole runtime command inside them",
          ]
        : []),
      ...(instance ? ["a service: `instance start`, then its command through `exec instance://NAME`"] : []),
    ],
  };
  return { plan, scratch, command, cgroups, instance, user };
}

/** The planner facts of an Apptainer profile, checked: a profile file from elsewhere may be anything. */
export function apptainerPlannerFacts(profile: RuntimeProfile): ApptainerPlannerFacts {
  const p = profile.planner as Partial<ApptainerPlannerFacts> | undefined;
  const r = p?.render as Partial<RenderProbe> | undefined;
  const booleans = ["userns", "dockerCaps", "noEval", "noUmask", "ownCgroups"] as const;
  if (
    typeof p?.binary !== "string" ||
    !r ||
    typeof r.flavor !== "string" ||
    booleans.some((k) => typeof r[k] !== "boolean")
  ) {
    throw new InvalidConfigError(
      `the ${profile.runtime} profile has no usable planner facts (binary, render flags); make it with \`contexec probe --json\` on the machine that will run the container`,
    );
  }
  return p as ApptainerPlannerFacts;
}

/** A cgroup plan as plan steps: folders and limits before, the folders removed after. */
export function cgroupSteps(plan: CgroupPlan): { before: PlanStep[]; after: PlanStep[] } {
  const why = "the container's own cgroup (its limits)";
  const before: PlanStep[] = [];
  for (const e of plan.skeleton?.entries ?? []) {
    before.push({
      op: "mkdir",
      path: posix.join(plan.skeleton?.dir as string, e),
      mode: 0o755,
      why: "an empty mount point for the container's view of its cgroups",
    });
  }
  // v2: the parent's subtree_control comes first, then the child and its limits.
  const [parentWrites, ownWrites] = partition(plan.writes, (w) => w.file.endsWith("cgroup.subtree_control"));
  for (const w of parentWrites)
    before.push({ op: "write", path: w.file, content: w.value, why: "enable the controllers below" });
  for (const dir of plan.dirs) before.push({ op: "mkdir", path: dir, mode: 0o755, why });
  for (const w of ownWrites) before.push({ op: "write", path: w.file, content: w.value, why });
  for (const w of plan.optionalWrites) {
    before.push({
      op: "write",
      path: w.file,
      content: w.value,
      optional: true,
      why: "charge what moves in (v1)",
    });
  }
  const after: PlanStep[] = [...plan.dirs].reverse().map((dir) => ({ op: "rmdir" as const, path: dir, why }));
  return { before, after };
}

/** `apptainer build` of the archive to a temporary name beside the SIF, then a rename into place. */
function buildSifCommands(
  binary: string,
  archive: string,
  sifPath: string,
  env: Record<string, string>,
): { present: PlannedCommand; commands: PlannedCommand[] } {
  const partial = `${sifPath}.partial`;
  const at = (argv: string[]): PlannedCommand => ({ argv, env, cwd: "/", stdin: false });
  return {
    present: at(["test", "-s", sifPath]),
    commands: [
      at(["mkdir", "-p", posix.dirname(sifPath)]),
      at([binary, "--silent", "build", "--force", partial, `docker-archive:${archive}`]),
      at(["mv", "-f", partial, sifPath]),
    ],
  };
}

function partition<T>(items: readonly T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (test(item) ? yes : no).push(item);
  return [yes, no];
}

/**
 * How a service's instance applies limits: the library's own cgroups follow one process tree,
 * an instance is several (its init, the command, every exec), so it uses Apptainer's own
 * --memory/--cpus, which root applies to the whole instance. Elsewhere a limit cannot be kept:
 * refused, or left out with `spec.unsupported: "ignore"`.
 */
function serviceRender(spec: ContainerSpec, render: RenderProbe): { render: RenderProbe; ignore: string[] } {
  const r = spec.resources;
  const lacking = render.dockerCaps
    ? []
    : [
        ...(r?.memoryBytes !== undefined ? ["resources.memoryBytes"] : []),
        ...(r?.cpus !== undefined ? ["resources.cpus"] : []),
      ];
  if (lacking.length > 0 && spec.unsupported !== "ignore") {
    throw new UnsupportedError(
      lacking[0] === "resources.memoryBytes" ? "memory-limit" : "cpu-limit",
      `spec.${lacking[0]} cannot be kept for a service (an Apptainer instance) here: only root without --userns can limit an instance. Remove it, or set spec.unsupported to "ignore"`,
    );
  }
  return { render: { ...render, ownCgroups: false }, ignore: lacking };
}
