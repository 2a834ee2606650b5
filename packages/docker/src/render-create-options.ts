import {
  type ContainerSpec,
  type GpuRequest,
  type ImageConfig,
  type ImageId,
  resolveArgv,
  resolveWorkdir,
} from "@contexec/core";

/** Labels contexec puts on every container it creates, beside the spec's own. */
export const LABEL_MANAGED = "io.contexec.managed";
export const LABEL_EXECUTOR = "io.contexec.executor";
export const LABEL_SERVICE = "io.contexec.service";

/** The subset of the Engine API's `POST /containers/create` body contexec fills in. */
export interface DockerCreateBody {
  name?: string;
  Image: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
  User?: string;
  Labels: Record<string, string>;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Tty: false;
  ExposedPorts?: Record<string, object>;
  HostConfig: DockerHostConfig;
}

export interface DockerHostConfig {
  Init: boolean;
  AutoRemove: false;
  NetworkMode?: string;
  Mounts: DockerMount[];
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  DeviceRequests?: DockerDeviceRequest[];
  Devices?: { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }[];
  GroupAdd?: string[];
  PortBindings?: Record<string, { HostIp: string; HostPort: string }[]>;
}

export type DockerMount =
  | { Type: "bind"; Source: string; Target: string; ReadOnly: boolean }
  | { Type: "tmpfs"; Target: string; TmpfsOptions?: { SizeBytes: number } };

export interface DockerDeviceRequest {
  Driver: string;
  Count: number;
  DeviceIDs?: string[];
  Capabilities: string[][];
}

export interface RenderContext {
  /** The resolved image id (tags are resolved before rendering). */
  imageId: ImageId | string;
  image: Pick<ImageConfig, "entrypoint" | "cmd" | "workingDir">;
  /** Labels added to the spec's own (executor identity). */
  labels?: Record<string, string>;
  /** Spec fields the runtime cannot honour and the caller chose to ignore. */
  ignore?: ReadonlySet<string>;
  /** A service: nothing is attached, output goes to the daemon's log. */
  detached?: boolean;
}

/**
 * Turns a validated spec into the Engine API create body. Pure: the same spec and image give the
 * same body, so it is unit-tested without a daemon and can be shown in a dry run.
 *
 * The argv is resolved by the library (core's resolveArgv) and given whole as Entrypoint with an
 * empty Cmd, so Docker's own merge rules never come into play: every backend runs the same argv.
 */
export function renderCreateOptions(spec: ContainerSpec, ctx: RenderContext): DockerCreateBody {
  const ignore = ctx.ignore ?? new Set<string>();
  const argv = resolveArgv(ctx.image, spec);
  const stdin = spec.stdin === true && ctx.detached !== true;
  const hostConfig: DockerHostConfig = {
    // An init (tini) as PID 1 forwards signals and reaps zombies, as Apptainer's shim does; a
    // plain PID 1 would ignore SIGTERM unless it installed a handler.
    Init: true,
    AutoRemove: false,
    Mounts: (spec.mounts ?? []).map(
      (m): DockerMount =>
        m.type === "bind"
          ? { Type: "bind", Source: m.source, Target: m.target, ReadOnly: m.readOnly === true }
          : {
              Type: "tmpfs",
              Target: m.target,
              ...(m.sizeBytes !== undefined && { TmpfsOptions: { SizeBytes: m.sizeBytes } }),
            },
    ),
  };
  if (spec.network && !ignore.has("network")) hostConfig.NetworkMode = spec.network;
  const r = spec.resources;
  if (r?.memoryBytes !== undefined && !ignore.has("resources.memoryBytes")) {
    hostConfig.Memory = r.memoryBytes;
    // No swap on top: a limit that swaps instead of failing is not the limit the spec asked for.
    hostConfig.MemorySwap = r.memoryBytes;
  }
  if (r?.cpus !== undefined && !ignore.has("resources.cpus")) hostConfig.NanoCpus = Math.round(r.cpus * 1e9);
  if (r?.gpus && !ignore.has("resources.gpus")) Object.assign(hostConfig, renderGpus(r.gpus));

  const body: DockerCreateBody = {
    Image: ctx.imageId,
    Entrypoint: argv,
    Cmd: [],
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    WorkingDir: resolveWorkdir(ctx.image, spec),
    Labels: { ...spec.labels, ...ctx.labels },
    AttachStdin: stdin,
    AttachStdout: ctx.detached !== true,
    AttachStderr: ctx.detached !== true,
    OpenStdin: stdin,
    StdinOnce: stdin,
    Tty: false,
    HostConfig: hostConfig,
  };
  if (spec.name) body.name = spec.name;
  if (spec.user !== undefined && !ignore.has("user")) body.User = spec.user;
  if (spec.ports?.length && !ignore.has("ports")) {
    body.ExposedPorts = {};
    hostConfig.PortBindings = {};
    for (const p of spec.ports) {
      const key = `${p.containerPort}/${p.protocol ?? "tcp"}`;
      body.ExposedPorts[key] = {};
      const bindings = hostConfig.PortBindings[key] ?? [];
      bindings.push({ HostIp: p.hostIp ?? "127.0.0.1", HostPort: p.hostPort ? String(p.hostPort) : "" });
      hostConfig.PortBindings[key] = bindings;
    }
  }
  return body;
}

/**
 * NVIDIA GPUs go through the Engine's device requests (the NVIDIA container toolkit serves
 * them); AMD GPUs are device nodes plus the video group, as ROCm's documentation has it.
 */
export function renderGpus(
  gpus: GpuRequest,
): Pick<DockerHostConfig, "DeviceRequests" | "Devices" | "GroupAdd"> {
  if (gpus.vendor === "amd") {
    const dev = (p: string) => ({ PathOnHost: p, PathInContainer: p, CgroupPermissions: "rwm" });
    return { Devices: [dev("/dev/kfd"), dev("/dev/dri")], GroupAdd: ["video"] };
  }
  const request: DockerDeviceRequest = {
    Driver: "nvidia",
    Count: gpus.deviceIds ? 0 : gpus.count === "all" || gpus.count === undefined ? -1 : gpus.count,
    Capabilities: [gpus.capabilities ?? ["gpu"]],
  };
  if (gpus.deviceIds) request.DeviceIDs = gpus.deviceIds;
  return { DeviceRequests: [request] };
}
