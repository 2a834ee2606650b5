import {
  type ContainerSpec,
  checkCapabilities,
  type ImageConfig,
  type ImageId,
  type PlannedCommand,
  plannedProfile,
  type RunPlan,
  type RuntimeProfile,
  resolveArgv,
  resolveEnv,
  resolveWorkdir,
} from "@contexec/core";
import { LABEL_EXECUTOR, renderCreateOptions } from "./render-create-options.js";
import { renderDockerRunArgv } from "./render-docker-run-argv.js";

/** Everything a Docker plan is made from: data only. */
export interface DockerPlanInput {
  /** A validated spec. */
  spec: ContainerSpec;
  profile: RuntimeProfile;
  image: {
    id: ImageId;
    config: ImageConfig;
    tags: string[];
    /** Loaded in the daemon already. */
    present: boolean;
    /** The archive it comes from, when known. */
    archive?: string;
  };
  /** Labels the executor adds (its ownership). */
  labels: Record<string, string>;
  /** A service: detached, output to the daemon's log. */
  detached?: boolean;
  /** The environment the `docker` CLI of a pasted script runs with (DOCKER_HOST, PATH, HOME). */
  cliEnv: Record<string, string>;
  /** The `docker` CLI; default "docker". */
  cliBinary?: string;
}

/**
 * The plan of a Docker run: the Engine API create body the executor sends, and the equivalent
 * `docker run` argv for a script. Pure: capabilities come from the profile, the image from the
 * input. Refuses (UnsupportedError) what the profile cannot honour unless `spec.unsupported` is
 * "ignore", in which case the fields are left out and listed in `ignored`.
 */
export function planDockerRun(input: DockerPlanInput): RunPlan {
  const { spec, profile, image } = input;
  const gaps = checkCapabilities(spec, profile.capabilities, "docker");
  const body = renderCreateOptions(spec, {
    imageId: image.id,
    image: image.config,
    labels: input.labels,
    ignore: new Set(gaps.map((g) => g.field)),
    detached: input.detached === true,
  });
  const docker = input.cliBinary ?? "docker";
  const cli = (argv: string[]): PlannedCommand => ({ argv, env: input.cliEnv, cwd: "/", stdin: false });
  const process = {
    argv: resolveArgv(image.config, spec),
    workdir: resolveWorkdir(image.config, spec),
    env: Object.fromEntries(resolveEnv(image.config, spec.env)),
    ...(spec.user !== undefined && !gaps.some((g) => g.field === "user") && { user: spec.user }),
    ...(image.config.stopSignal && { stopSignal: image.config.stopSignal }),
  };
  return {
    planVersion: 1,
    runtime: "docker",
    profile: plannedProfile(profile),
    spec,
    image: {
      id: image.id,
      tags: image.tags,
      action: image.present ? "present" : "load",
      ...(image.archive !== undefined && {
        archive: image.archive,
        prepare: {
          present: cli([docker, "image", "inspect", "--format", "{{.Id}}", image.id]),
          commands: [cli([docker, "load", "--quiet", "--input", image.archive])],
        },
      }),
    },
    before: [],
    command: {
      ...cli(renderDockerRunArgv(body, { binary: docker, omitLabels: [LABEL_EXECUTOR] })),
      stdin: body.OpenStdin,
    },
    process,
    after: [],
    ignored: gaps.map((g) => ({ field: g.field, capability: g.capability, reason: g.reason })),
    dockerCreateBody: body as unknown as Record<string, unknown>,
    notes: [
      "the executor sends dockerCreateBody to the Engine API and removes the container itself; the script uses `docker run --rm` with the same settings",
    ],
  };
}
