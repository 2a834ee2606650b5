import { homedir } from "node:os";
import { isAbsolute, resolve } from "node:path";
import {
  type BindMount,
  type ContainerSpec,
  type GpuRequest,
  type Mount,
  NETWORK_MODES,
  type NetworkMode,
  type PortMapping,
  RegistryError,
  stopSignalOf,
} from "@contexec/core";
import { parseImageReference } from "@contexec/registry/reference";
import { parseEnvFile } from "./env-file.js";
import type { JobImage } from "./job.js";
import { ShellWordsError, splitShellWords } from "./shell-words.js";
import { join, type TreeReader } from "./tree-reader.js";
import { parseByteSize, parseCpus, parseDuration } from "./units.js";
import { entryOf, type SourcePos, type TreeMap, type TreeNode } from "./yaml-tree.js";

/** What reading a service needs besides the node: the job file's folder and the host. */
export interface ServiceContext {
  reader: TreeReader;
  /** The job file's folder: relative paths resolve against it. */
  dir: string;
  /** The host environment (for `- NAME` entries without a value, and `~`). */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads an env file; undefined when it does not exist. */
  readFile: (path: string) => string | undefined;
  /** Env files read, by path (for error excerpts). */
  sources: Map<string, string>;
}

/** A service's part of a job. */
export interface ServiceResult {
  image: JobImage | undefined;
  spec: Omit<ContainerSpec, "image">;
  createHostPaths: string[];
  stopSignal?: NodeJS.Signals;
  stopGraceMs?: number;
}

/** The compose service keys `contexec run` honours. */
export const SERVICE_KEYS = [
  "image",
  "command",
  "entrypoint",
  "environment",
  "env_file",
  "volumes",
  "tmpfs",
  "working_dir",
  "user",
  "ports",
  "network_mode",
  "stdin_open",
  "deploy",
  "cpus",
  "mem_limit",
  "labels",
  "container_name",
  "stop_signal",
  "stop_grace_period",
] as const;

/** What people write for a service key (Docker's flags, the library's spec). */
const SERVICE_KEY_SYNONYMS: Record<string, string> = {
  workdir: "working_dir",
  cwd: "working_dir",
  env: "environment",
  cmd: "command",
  args: "command",
  mounts: "volumes",
  network: "network_mode",
  stdin: "stdin_open",
  name: "container_name",
  memory: "mem_limit",
  stopsignal: "stop_signal",
};

/** Compose keys accepted without effect: they concern a compose project, not one run. */
export const IGNORED_SERVICE_KEYS: Record<string, string> = {
  build: "contexec runs the image named by image:, it does not build",
  depends_on: "contexec run starts one service, not its dependencies",
  restart: "contexec run runs the job once",
  healthcheck: "no health checks in a run",
  profiles: "contexec run picks the service by name",
  logging: "output goes to contexec's stdout and stderr",
  expose: "ports are published with ports:",
  pull_policy: "contexec pulls nothing; images come from archives or a local daemon",
  init: "contexec always runs an init as PID 1 (Docker's --init; Apptainer's own shim)",
  tty: "contexec runs without a terminal",
  networks: "the container joins the network of network_mode (default bridge on Docker)",
  hostname: "the runtime's default host name is kept",
};

const SERVICE_KEY_DOC = "https://docs.docker.com/reference/compose-file/services/";
/** Compose keys contexec knows but cannot honour on every runtime: refused, not silently dropped. */
export const REFUSED_SERVICE_KEYS: Record<string, string> = Object.fromEntries(
  [
    "annotations",
    "attach",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "configs",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "ipc",
    "isolation",
    "label_file",
    "links",
    "mac_address",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "read_only",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "storage_opt",
    "sysctls",
    "ulimits",
    "userns_mode",
    "uts",
    "volumes_from",
  ].map((k) => [
    k,
    `the compose key "${k}" is not supported by contexec (it has no equivalent on every runtime); remove it (supported: ${[...SERVICE_KEYS].join(", ")}; see ${SERVICE_KEY_DOC})`,
  ]),
);

/** Reads a compose service map (`path` is its key path in the file) into a spec. */
export function readComposeService(map: TreeMap, path: string, ctx: ServiceContext): ServiceResult {
  const r = ctx.reader;
  r.keys(map, path, [...SERVICE_KEYS, "runtime", "slurm"], {
    ignored: IGNORED_SERVICE_KEYS,
    refused: REFUSED_SERVICE_KEYS,
    synonyms: SERVICE_KEY_SYNONYMS,
    what: "supported keys",
  });
  const get = (key: string) => entryOf(map, key)?.value;
  const at = (key: string) => join(path, key);
  const spec: Omit<ContainerSpec, "image"> = {};
  const createHostPaths: string[] = [];
  const result: ServiceResult = { image: undefined, spec, createHostPaths };

  const image = get("image");
  if (image === undefined) {
    r.fail(map, path, "image: is required: a docker-archive path (./image.tar), an image id or a tag");
  } else {
    result.image = readImage(image, at("image"), ctx);
  }

  const command = get("command");
  if (command !== undefined && !isNull(command)) {
    const argv = readArgv(command, at("command"), ctx);
    if (argv) setArgv(spec, "command", argv, command, r);
  }
  const entrypoint = get("entrypoint");
  if (entrypoint !== undefined && !isNull(entrypoint)) {
    const argv = readArgv(entrypoint, at("entrypoint"), ctx);
    if (argv) setArgv(spec, "entrypoint", argv, entrypoint, r);
  }

  const env: Record<string, string> = {};
  const envFile = get("env_file");
  if (envFile !== undefined) readEnvFiles(envFile, at("env_file"), ctx, env);
  const environment = get("environment");
  if (environment !== undefined) readEnvironment(environment, at("environment"), ctx, env);
  if (Object.keys(env).length > 0) spec.env = env;

  const mounts: Mount[] = [];
  const volumes = get("volumes");
  if (volumes !== undefined) readVolumes(volumes, at("volumes"), ctx, createHostPaths, mounts);
  const tmpfs = get("tmpfs");
  if (tmpfs !== undefined) {
    const items = tmpfs.kind === "seq" ? tmpfs.items : [tmpfs];
    items.forEach((item, i) => {
      const p = tmpfs.kind === "seq" ? join(at("tmpfs"), i) : at("tmpfs");
      const mount = readTmpfs(item, p, r);
      if (mount) {
        r.origin(`mounts[${mounts.length}]`, item);
        mounts.push(mount);
      }
    });
  }
  if (mounts.length > 0) spec.mounts = mounts;

  const workingDir = get("working_dir");
  if (workingDir !== undefined) {
    const w = r.text(workingDir, at("working_dir"), "an absolute path in the container");
    if (w !== undefined) {
      spec.workdir = w;
      r.origin("workdir", workingDir);
    }
  }
  const user = get("user");
  if (user !== undefined) {
    const u = r.text(user, at("user"), '"uid", "uid:gid" or a user name');
    if (u !== undefined) {
      spec.user = u;
      r.origin("user", user);
    }
  }
  const ports = get("ports");
  if (ports !== undefined) {
    const out = readPorts(ports, at("ports"), r);
    if (out.length > 0) spec.ports = out;
  }
  const networkMode = get("network_mode");
  if (networkMode !== undefined) {
    const n = r.text(networkMode, at("network_mode"));
    if (n !== undefined) {
      const mode = n === "default" ? "bridge" : n;
      if ((NETWORK_MODES as readonly string[]).includes(mode)) {
        spec.network = mode as NetworkMode;
        r.origin("network", networkMode);
      } else {
        r.fail(
          networkMode,
          at("network_mode"),
          `must be one of ${NETWORK_MODES.join(", ")} (another container's or service's network is not supported)`,
        );
      }
    }
  }
  const stdinOpen = get("stdin_open");
  if (stdinOpen !== undefined) {
    const b = r.boolean(stdinOpen, at("stdin_open"));
    if (b) spec.stdin = true;
  }

  const resources: NonNullable<ContainerSpec["resources"]> = {};
  const deploy = get("deploy");
  if (deploy !== undefined) readDeploy(deploy, at("deploy"), r, resources);
  const cpus = get("cpus");
  if (cpus !== undefined) readCpus(cpus, at("cpus"), r, resources);
  const memLimit = get("mem_limit");
  if (memLimit !== undefined) readMemory(memLimit, at("mem_limit"), r, resources);
  if (Object.keys(resources).length > 0) spec.resources = resources;

  const labels = get("labels");
  if (labels !== undefined) {
    const l = readStringMap(labels, at("labels"), r, "labels");
    if (l && Object.keys(l).length > 0) spec.labels = l;
  }
  const name = get("container_name");
  if (name !== undefined) {
    const n = r.text(name, at("container_name"));
    if (n !== undefined) {
      spec.name = n;
      r.origin("name", name);
    }
  }
  const stopSignal = get("stop_signal");
  if (stopSignal !== undefined) {
    const s = r.text(stopSignal, at("stop_signal"), "a signal name (SIGTERM, SIGINT, ...)");
    if (s !== undefined) {
      const sig = stopSignalOf(s);
      if (sig) result.stopSignal = sig;
      else
        r.fail(stopSignal, at("stop_signal"), `"${s}" is not a signal name (SIGTERM, SIGINT, SIGQUIT, ...)`);
    }
  }
  const grace = get("stop_grace_period");
  if (grace !== undefined) {
    const v = r.scalar(grace, at("stop_grace_period"), "a duration (10s, 1m30s, 500ms)");
    if (v !== undefined) {
      const ms = parseDuration(v);
      if (ms === undefined)
        r.fail(grace, at("stop_grace_period"), `"${v}" is not a duration (10s, 1m30s, 500ms)`);
      else result.stopGraceMs = ms;
    }
  }
  return result;
}

function isNull(node: TreeNode): boolean {
  return node.kind === "scalar" && node.value === null;
}

function setArgv(
  spec: Omit<ContainerSpec, "image">,
  key: "command" | "entrypoint",
  argv: string[],
  node: TreeNode,
  r: TreeReader,
): void {
  spec[key] = argv;
  r.origin(key, node);
  if (node.kind === "seq") {
    for (const [i, item] of node.items.entries()) r.origin(`${key}[${i}]`, item);
  }
}

/**
 * The image: a path (starts with `/`, `./`, `../` or `~/`, ends in `.tar`, or says
 * `docker-archive:`) is an archive beside the job file; `docker://REF` an image in a registry
 * (the reference checked here, at its line); anything else an id or a tag.
 */
export function readImage(node: TreeNode, path: string, ctx: ServiceContext): JobImage | undefined {
  const value = ctx.reader.text(node, path, "an archive path, an image id or a tag");
  if (value === undefined) return undefined;
  ctx.reader.origin("image", node);
  if (value.startsWith("docker://")) {
    const ref = value.slice("docker://".length);
    try {
      parseImageReference(ref);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      return ctx.reader.fail(node, path, err.message.replace(/^reference: /, ""));
    }
    return { kind: "registry", ref };
  }
  const explicit = /^docker-archive:(?:\/\/)?(.+)$/.exec(value);
  if (explicit) return { kind: "archive", path: hostPath(explicit[1] as string, ctx) };
  if (/^(\/|\.\.?\/|~\/)/.test(value) || /\.tar$/i.test(value)) {
    return { kind: "archive", path: hostPath(value, ctx) };
  }
  return { kind: "ref", ref: value };
}

/** A host path as written in the job file: `~/x` under HOME, relative ones under the file's folder. */
export function hostPath(value: string, ctx: Pick<ServiceContext, "dir" | "env">): string {
  if (value === "~" || value.startsWith("~/")) return resolve(ctx.env.HOME ?? homedir(), value.slice(2));
  return isAbsolute(value) ? resolve(value) : resolve(ctx.dir, value);
}

/** `command`/`entrypoint`: a list of words, or a string split into words as compose does. */
export function readArgv(node: TreeNode, path: string, ctx: ServiceContext): string[] | undefined {
  const r = ctx.reader;
  if (node.kind === "seq") {
    const words: string[] = [];
    let ok = true;
    node.items.forEach((item, i) => {
      const w = r.string(item, join(path, i), "a string (one argument)");
      if (w === undefined) ok = false;
      else words.push(w);
    });
    return ok ? words : undefined;
  }
  const text = r.string(node, path, "a list of arguments or a command line");
  if (text === undefined) return undefined;
  return splitAt(text, node, path, r);
}

/** Splits a command line, reporting a fault at its column when the text is on one line. */
export function splitAt(text: string, node: TreeNode, path: string, r: TreeReader): string[] | undefined {
  try {
    return splitShellWords(text);
  } catch (err) {
    if (!(err instanceof ShellWordsError)) throw err;
    return r.fail(node, path, `${err.message} (at character ${err.offset + 1} of ${JSON.stringify(text)})`);
  }
}

function readEnvironment(
  node: TreeNode,
  path: string,
  ctx: ServiceContext,
  env: Record<string, string>,
): void {
  const r = ctx.reader;
  // Names are checked by core's rules afterwards, placed at `at`.
  const set = (name: string, value: string | undefined, at: TreeNode | SourcePos) => {
    const v = value ?? ctx.env[name];
    // compose: a name without a value takes the host's, and is left out when the host has none.
    if (v === undefined) return;
    env[name] = v;
    r.origin(`env.${name}`, at);
  };
  if (node.kind === "map") {
    for (const e of node.entries) {
      const p = join(path, e.key);
      if (isNull(e.value)) set(e.key, undefined, e.keyPos);
      else {
        const v = r.string(e.value, p, "a value (a string, number or boolean)");
        if (v !== undefined) set(e.key, v, e.keyPos);
      }
    }
    return;
  }
  if (node.kind === "seq") {
    node.items.forEach((item, i) => {
      const p = join(path, i);
      // DockSing's form: a list of single-key maps.
      if (item.kind === "map") {
        for (const e of item.entries) {
          const v = isNull(e.value) ? undefined : r.string(e.value, join(p, e.key), "a value");
          if (isNull(e.value) || v !== undefined) set(e.key, v, e.keyPos);
        }
        return;
      }
      const s = r.string(item, p, '"NAME=value" or "NAME"');
      if (s === undefined) return;
      const eq = s.indexOf("=");
      set(eq < 0 ? s : s.slice(0, eq), eq < 0 ? undefined : s.slice(eq + 1), item);
    });
    return;
  }
  r.fail(node, path, "must be a map (NAME: value) or a list (- NAME=value)");
}

function readEnvFiles(node: TreeNode, path: string, ctx: ServiceContext, env: Record<string, string>): void {
  const r = ctx.reader;
  const items =
    node.kind === "seq" ? node.items.map((n, i) => [n, join(path, i)] as const) : [[node, path] as const];
  for (const [item, p] of items) {
    let file: string | undefined;
    let required = true;
    if (item.kind === "map") {
      r.keys(item, p, ["path", "required", "format"]);
      const pathNode = entryOf(item, "path")?.value;
      if (!pathNode) {
        r.fail(item, p, "path: is required");
        continue;
      }
      file = r.text(pathNode, join(p, "path"));
      const req = entryOf(item, "required")?.value;
      if (req !== undefined) required = r.boolean(req, join(p, "required")) ?? true;
      const format = entryOf(item, "format")?.value;
      if (format !== undefined && r.string(format, join(p, "format")) !== "raw")
        r.fail(format, join(p, "format"), 'only "raw" is a format besides the default');
    } else {
      file = r.text(item, p, "an env file path");
    }
    if (file === undefined) continue;
    const full = hostPath(file, ctx);
    const text = ctx.readFile(full);
    if (text === undefined) {
      if (required)
        r.fail(item, p, `env file ${full} does not exist (say required: false if it may be missing)`);
      continue;
    }
    ctx.sources.set(full, text);
    const parsed = parseEnvFile(text);
    for (const issue of parsed.issues) {
      r.fail({ source: full, line: issue.line, col: issue.col }, p, issue.message);
    }
    for (const entry of parsed.entries) {
      const pos = { source: full, line: entry.line, col: 1 };
      const v = entry.value ?? ctx.env[entry.name];
      if (v === undefined) continue;
      env[entry.name] = v;
      r.origin(`env.${entry.name}`, pos);
    }
  }
}

const SHORT_MODES = new Set(["ro", "rw", "z", "Z", "cached", "delegated", "consistent"]);

/** A `volumes:` list, its mounts appended to `mounts` (each remembered as the item it came from). */
export function readVolumes(
  node: TreeNode,
  path: string,
  ctx: ServiceContext,
  createHostPaths: string[],
  mounts: Mount[],
): void {
  ctx.reader.seq(node, path)?.items.forEach((item, i) => {
    const mount = readVolume(item, join(path, i), ctx, createHostPaths);
    if (mount) {
      ctx.reader.origin(`mounts[${mounts.length}]`, item);
      mounts.push(mount);
    }
  });
}

/** A `ports:` list (an item may stand for a range of ports), each remembered as its item. */
export function readPorts(node: TreeNode, path: string, r: TreeReader): PortMapping[] {
  const out: PortMapping[] = [];
  r.seq(node, path)?.items.forEach((item, i) => {
    for (const p of readPort(item, join(path, i), r) ?? []) {
      r.origin(`ports[${out.length}]`, item);
      out.push(p);
    }
  });
  return out;
}

/** A `volumes:` item: `SRC:DST[:ro]` or the long syntax, as a bind or tmpfs mount. */
export function readVolume(
  node: TreeNode,
  path: string,
  ctx: Pick<ServiceContext, "reader" | "dir" | "env">,
  createHostPaths: string[],
): Mount | undefined {
  const r = ctx.reader;
  if (node.kind === "map") return readLongVolume(node, path, ctx, createHostPaths);
  const s = r.text(node, path, '"SOURCE:TARGET[:ro]" or a map (type, source, target, read_only)');
  if (s === undefined) return undefined;
  const parts = s.split(":");
  if (parts.length === 1) {
    return r.fail(
      node,
      path,
      `"${s}" is an anonymous volume, which contexec does not make; bind a host folder (./data:${s}) or use tmpfs: ${s}`,
    );
  }
  if (parts.length > 3) {
    return r.fail(
      node,
      path,
      `"${s}" has too many ":"; write SOURCE:TARGET or SOURCE:TARGET:ro (paths with ":" cannot be bound)`,
    );
  }
  const [source, target, mode] = parts as [string, string, string | undefined];
  let readOnly = false;
  for (const m of (mode ?? "").split(",").filter(Boolean)) {
    if (!SHORT_MODES.has(m)) {
      return r.fail(node, path, `unknown volume option "${m}"; use ro or rw`);
    }
    if (m === "ro") readOnly = true;
  }
  if (!/^(\/|\.|~)/.test(source)) {
    return r.fail(
      node,
      path,
      `"${source}" is a named volume, which contexec does not manage; bind a host folder instead (./${source}:${target})`,
    );
  }
  const full = hostPath(source, ctx);
  // Short syntax creates a missing host folder (compose's create_host_path, implied).
  createHostPaths.push(full);
  return { type: "bind", source: full, target, ...(readOnly && { readOnly }) };
}

function readLongVolume(
  node: TreeMap,
  path: string,
  ctx: Pick<ServiceContext, "reader" | "dir" | "env">,
  createHostPaths: string[],
): Mount | undefined {
  const r = ctx.reader;
  r.keys(node, path, ["type", "source", "target", "read_only", "bind", "tmpfs", "consistency"]);
  const get = (k: string) => entryOf(node, k)?.value;
  const typeNode = get("type");
  const type = typeNode ? r.text(typeNode, join(path, "type")) : "bind";
  const targetNode = get("target");
  const target = targetNode
    ? r.text(targetNode, join(path, "target"), "an absolute path in the container")
    : undefined;
  if (!targetNode) r.fail(node, path, "target: is required");
  if (type === "tmpfs") {
    const options = get("tmpfs");
    let sizeBytes: number | undefined;
    if (options) {
      const m = r.map(options, join(path, "tmpfs"));
      if (m) {
        r.keys(m, join(path, "tmpfs"), ["size", "mode"]);
        const size = entryOf(m, "size")?.value;
        if (size) sizeBytes = readSize(size, join(path, "tmpfs.size"), r);
        if (entryOf(m, "mode"))
          r.warn(m, join(path, "tmpfs.mode"), "ignored: tmpfs mounts are 1777 on every runtime");
      }
    }
    if (target === undefined) return undefined;
    return { type: "tmpfs", target, ...(sizeBytes !== undefined && { sizeBytes }) };
  }
  if (type !== "bind") {
    if (type !== undefined)
      r.fail(typeNode ?? node, join(path, "type"), `"${type}" mounts are not supported; use bind or tmpfs`);
    return undefined;
  }
  const sourceNode = get("source");
  if (!sourceNode) return r.fail(node, path, "source: is required for a bind mount");
  const source = r.text(sourceNode, join(path, "source"), "a host path");
  let readOnly = false;
  const ro = get("read_only");
  if (ro) readOnly = r.boolean(ro, join(path, "read_only")) ?? false;
  const bind = get("bind");
  let create = false;
  if (bind) {
    const m = r.map(bind, join(path, "bind"));
    if (m) {
      r.keys(m, join(path, "bind"), ["create_host_path", "propagation", "selinux"]);
      const c = entryOf(m, "create_host_path")?.value;
      if (c) create = r.boolean(c, join(path, "bind.create_host_path")) ?? false;
      for (const k of ["propagation", "selinux"])
        if (entryOf(m, k)) r.warn(m, join(path, `bind.${k}`), "ignored: not portable across runtimes");
    }
  }
  if (source === undefined || target === undefined) return undefined;
  const full = hostPath(source, ctx);
  if (create) createHostPaths.push(full);
  const mount: BindMount = { type: "bind", source: full, target, ...(readOnly && { readOnly }) };
  return mount;
}

function readTmpfs(node: TreeNode, path: string, r: TreeReader): Mount | undefined {
  const s = r.text(node, path, '"/path" or "/path:size=64m"');
  if (s === undefined) return undefined;
  const colon = s.indexOf(":");
  const target = colon < 0 ? s : s.slice(0, colon);
  let sizeBytes: number | undefined;
  if (colon >= 0) {
    for (const opt of s
      .slice(colon + 1)
      .split(",")
      .filter(Boolean)) {
      const [k, v] = opt.split("=", 2) as [string, string | undefined];
      if (k === "size" && v !== undefined) {
        sizeBytes = parseByteSize(v);
        if (sizeBytes === undefined || sizeBytes === 0)
          return r.fail(node, path, `"${v}" is not a size (64m, 1g)`);
      } else if (k === "mode" || k === "uid" || k === "gid") {
        r.warn(node, path, `ignored: ${k}= (tmpfs mounts are 1777, root-owned, on every runtime)`);
      } else {
        return r.fail(node, path, `unknown tmpfs option "${opt}"; only size= is supported`);
      }
    }
  }
  return { type: "tmpfs", target, ...(sizeBytes !== undefined && { sizeBytes }) };
}

function readSize(node: TreeNode, path: string, r: TreeReader): number | undefined {
  const v = r.scalar(node, path, "a size (bytes, or 512m, 1g)");
  if (v === undefined) return undefined;
  const bytes = parseByteSize(v);
  if (bytes === undefined || bytes === 0)
    return r.fail(node, path, `"${v}" is not a size (bytes, or 512m, 1g)`);
  return bytes;
}

function readCpus(
  node: TreeNode,
  path: string,
  r: TreeReader,
  resources: NonNullable<ContainerSpec["resources"]>,
): void {
  const v = r.scalar(node, path, "a number of CPUs (0.5, 2)");
  if (v === undefined) return;
  const cpus = parseCpus(v);
  if (cpus === undefined) r.fail(node, path, `"${v}" is not a positive number of CPUs`);
  else {
    resources.cpus = cpus;
    r.origin("resources.cpus", node);
  }
}

function readMemory(
  node: TreeNode,
  path: string,
  r: TreeReader,
  resources: NonNullable<ContainerSpec["resources"]>,
): void {
  const bytes = readSize(node, path, r);
  if (bytes !== undefined) {
    resources.memoryBytes = bytes;
    r.origin("resources.memoryBytes", node);
  }
}

const DEPLOY_IGNORED: Record<string, string> = {
  replicas: "contexec run runs one container",
  mode: "swarm placement",
  placement: "swarm placement",
  restart_policy: "contexec run runs the job once",
  update_config: "swarm updates",
  rollback_config: "swarm updates",
  endpoint_mode: "swarm networking",
  labels: "swarm service labels (container labels are labels:)",
};

function readDeploy(
  node: TreeNode,
  path: string,
  r: TreeReader,
  resources: NonNullable<ContainerSpec["resources"]>,
): void {
  const deploy = r.map(node, path);
  if (!deploy) return;
  r.keys(deploy, path, ["resources"], { ignored: DEPLOY_IGNORED });
  const res = entryOf(deploy, "resources")?.value;
  if (!res) return;
  const resMap = r.map(res, join(path, "resources"));
  if (!resMap) return;
  r.keys(resMap, join(path, "resources"), ["limits", "reservations"]);
  const limits = entryOf(resMap, "limits")?.value;
  if (limits) {
    const p = join(path, "resources.limits");
    const m = r.map(limits, p);
    if (m) {
      r.keys(m, p, ["cpus", "memory"], { ignored: { pids: "no pids limit on every runtime" } });
      const cpus = entryOf(m, "cpus")?.value;
      if (cpus) readCpus(cpus, join(p, "cpus"), r, resources);
      const memory = entryOf(m, "memory")?.value;
      if (memory) readMemory(memory, join(p, "memory"), r, resources);
    }
  }
  const reservations = entryOf(resMap, "reservations")?.value;
  if (reservations) {
    const p = join(path, "resources.reservations");
    const m = r.map(reservations, p);
    if (m) {
      r.keys(m, p, ["devices"], {
        ignored: {
          cpus: "reservations are scheduling hints; limits are enforced",
          memory: "reservations are scheduling hints; limits are enforced",
        },
      });
      const devices = entryOf(m, "devices")?.value;
      if (devices) {
        const gpus = readGpuDevices(devices, join(p, "devices"), r);
        if (gpus) {
          resources.gpus = gpus;
          r.origin("resources.gpus", devices);
        }
      }
    }
  }
}

/** `deploy.resources.reservations.devices`: one GPU request (`capabilities: [gpu]`). */
function readGpuDevices(node: TreeNode, path: string, r: TreeReader): GpuRequest | undefined {
  const list = r.seq(node, path);
  if (!list) return undefined;
  if (list.items.length !== 1) return r.fail(node, path, "give exactly one device request (a GPU request)");
  const item = list.items[0] as TreeNode;
  const p = join(path, 0);
  const m = r.map(item, p);
  if (!m) return undefined;
  r.keys(m, p, ["driver", "count", "device_ids", "capabilities", "options"]);
  const gpus: GpuRequest = {};
  const caps = entryOf(m, "capabilities")?.value;
  const capList = caps
    ? r.seq(caps, join(p, "capabilities"))?.items.map((c, i) => r.text(c, join(p, `capabilities[${i}]`)))
    : [];
  if (!capList?.includes("gpu"))
    return r.fail(m, p, 'only GPU requests are supported: capabilities must include "gpu"');
  const rest = capList.filter((c): c is string => c !== undefined && c !== "gpu");
  gpus.capabilities = ["gpu", ...rest];
  const driver = entryOf(m, "driver")?.value;
  if (driver) {
    const d = r.text(driver, join(p, "driver"));
    if (d === "nvidia" || d === "amd") gpus.vendor = d;
    else if (d !== undefined) r.fail(driver, join(p, "driver"), 'must be "nvidia" or "amd"');
  }
  const count = entryOf(m, "count")?.value;
  if (count) {
    const c = r.scalar(count, join(p, "count"), 'a number of GPUs or "all"');
    if (c === "all") gpus.count = "all";
    else if (typeof c === "number" && Number.isInteger(c) && c > 0) gpus.count = c;
    else if (c !== undefined) r.fail(count, join(p, "count"), 'must be a positive integer or "all"');
  }
  const ids = entryOf(m, "device_ids")?.value;
  if (ids) {
    const list2 = r.seq(ids, join(p, "device_ids"));
    const out = list2?.items
      .map((d, i) => r.text(d, join(p, `device_ids[${i}]`)))
      .filter((d): d is string => d !== undefined);
    if (out?.length) gpus.deviceIds = out;
  }
  return gpus;
}

/** `labels:` and similar: a map of strings, or a list of `key=value`. */
function readStringMap(
  node: TreeNode,
  path: string,
  r: TreeReader,
  specKey: string,
): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  if (node.kind === "map") {
    for (const e of node.entries) {
      const v = isNull(e.value) ? "" : r.string(e.value, join(path, e.key));
      if (v !== undefined) {
        out[e.key] = v;
        r.origin(`${specKey}.${e.key}`, e.value);
      }
    }
    return out;
  }
  if (node.kind === "seq") {
    node.items.forEach((item, i) => {
      const s = r.text(item, join(path, i), '"key=value"');
      if (s === undefined) return;
      const eq = s.indexOf("=");
      const k = eq < 0 ? s : s.slice(0, eq);
      out[k] = eq < 0 ? "" : s.slice(eq + 1);
      r.origin(`${specKey}.${k}`, item);
    });
    return out;
  }
  return r.fail(node, path, "must be a map (key: value) or a list (- key=value)");
}

/** A `ports:` item: `[IP:][HOST:]CONTAINER[/PROTO]` (ranges allowed) or the long syntax. */
export function readPort(node: TreeNode, path: string, r: TreeReader): PortMapping[] | undefined {
  if (node.kind === "map") {
    r.keys(node, path, ["target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"]);
    const target = entryOf(node, "target")?.value;
    if (!target) return r.fail(node, path, "target: is required");
    const t = r.scalar(target, join(path, "target"), "a port number");
    const published = entryOf(node, "published")?.value;
    const pub = published
      ? r.scalar(published, join(path, "published"), "a port number or range")
      : undefined;
    const ip = entryOf(node, "host_ip")?.value;
    const hostIp = ip ? r.text(ip, join(path, "host_ip")) : undefined;
    const proto = entryOf(node, "protocol")?.value;
    const protocol = proto ? r.text(proto, join(path, "protocol")) : undefined;
    if (t === undefined) return undefined;
    const spec = `${hostIp ? `${hostIp.includes(":") ? `[${hostIp}]` : hostIp}:` : ""}${pub !== undefined ? `${pub}:` : hostIp ? ":" : ""}${t}${protocol ? `/${protocol}` : ""}`;
    return parsePortText(spec, node, path, r);
  }
  const v = r.scalar(node, path, '"HOST:CONTAINER", a port number, or a map (target, published)');
  if (v === undefined) return undefined;
  return parsePortText(String(v), node, path, r);
}

function parsePortText(text: string, node: TreeNode, path: string, r: TreeReader): PortMapping[] | undefined {
  let rest = text;
  let protocol: "tcp" | "udp" | undefined;
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== "tcp" && p !== "udp") return r.fail(node, path, `protocol "${p}" must be tcp or udp`);
    protocol = p;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1];
    rest = v6[2] as string;
  }
  const parts = rest.split(":");
  let host: string | undefined;
  let container: string;
  if (parts.length === 1) container = parts[0] as string;
  else if (parts.length === 2) [host, container] = parts as [string, string];
  else if (parts.length === 3 && !hostIp) [hostIp, host, container] = parts as [string, string, string];
  else return r.fail(node, path, `"${text}" is not a port mapping ([IP:][HOST:]CONTAINER[/tcp|udp])`);
  const range = (s: string): [number, number] | undefined => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(s);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    return a >= 1 && b <= 65535 && a <= b ? [a, b] : undefined;
  };
  const c = range(container);
  if (!c) return r.fail(node, path, `"${container}" is not a container port (1-65535, or a range 8000-8010)`);
  const h = host === undefined || host === "" ? undefined : range(host);
  if (host !== undefined && host !== "" && !h)
    return r.fail(node, path, `"${host}" is not a host port (1-65535, or a range)`);
  const count = c[1] - c[0] + 1;
  if (h && h[1] - h[0] + 1 !== count) {
    return r.fail(node, path, `host range ${host} and container range ${container} differ in length`);
  }
  const out: PortMapping[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      containerPort: c[0] + i,
      ...(h && { hostPort: h[0] + i }),
      ...(protocol && { protocol }),
      ...(hostIp && { hostIp }),
    });
  }
  return out;
}
