import type { ContainerSpec, Mount } from "@contexec/core";
import { readRuntimeChapter, readSlurmChapter } from "./chapters.js";
import { readImage, readPorts, readVolumes, type ServiceContext, splitAt } from "./compose-service.js";
import type { JobImage, JobRuntime, JobSlurm } from "./job.js";
import { join } from "./tree-reader.js";
import { entryOf, type SourcePos, type TreeMap, type TreeNode } from "./yaml-tree.js";

/** The chapters of a DockSing file (https://pypi.org/project/docksing/), as DockSing reads them. */
export const DOCKSING_KEYS = ["remotedir", "slurm", "container", "runtime"] as const;
export const DOCKSING_CONTAINER_KEYS = [
  "image",
  "commands",
  "entrypoint",
  "environment",
  "volumes",
  "ports",
  "working_dir",
  "container_name",
] as const;

/** True when a file's top level has DockSing's layout (a `container` chapter, no `services`). */
export function isDockSingLayout(root: TreeMap): boolean {
  return entryOf(root, "container") !== undefined && entryOf(root, "services") === undefined;
}

export interface DockSingResult {
  image: JobImage | undefined;
  spec: Omit<ContainerSpec, "image">;
  createHostPaths: string[];
  runtime?: JobRuntime;
  unsupported?: "error" | "ignore";
  slurm?: JobSlurm;
}

/**
 * Reads a DockSing file unchanged. Its `container` chapter means what DockSing makes of it:
 * `commands` items are joined with spaces into one command line, which a shell splits into words
 * (`["sh -c", "'echo $V > /out/r.txt'"]` is `sh`, `-c`, `echo $V > /out/r.txt`; no expansion);
 * `entrypoint` is the program run before them; `environment` is a list of single-key maps (or a
 * map); `volumes` are `SOURCE:TARGET` (a missing source folder is created, as DockSing does for
 * Singularity); `ports` are published where the runtime can (ignored elsewhere: DockSing's own
 * Singularity runs have none either). `remotedir` and `slurm` go to the SLURM runtime.
 */
export function readDockSing(root: TreeMap, ctx: ServiceContext): DockSingResult {
  const r = ctx.reader;
  r.keys(root, "", [...DOCKSING_KEYS], {
    what: "DockSing chapters",
    ignored: { tmux: "contexec does not start tmux sessions" },
  });
  const result: DockSingResult = { image: undefined, spec: {}, createHostPaths: [] };
  const spec = result.spec;
  // DockSing's ports mean nothing on Singularity; a file that names some still runs there.
  spec.unsupported = "ignore";

  const remotedir = entryOf(root, "remotedir")?.value;
  const slurm = entryOf(root, "slurm")?.value;
  if (slurm) result.slurm = readSlurmChapter(slurm, "slurm", r);
  if (remotedir) {
    const dir = r.text(remotedir, "remotedir", "a folder on the cluster");
    if (dir !== undefined) {
      result.slurm ??= { options: {} };
      result.slurm.remoteDir = dir;
    }
  }
  const runtime = entryOf(root, "runtime")?.value;
  if (runtime) {
    const rt = readRuntimeChapter(runtime, "runtime", r);
    if (rt) {
      result.runtime = rt.runtime;
      if (rt.unsupported) spec.unsupported = rt.unsupported;
    }
  }

  const containerNode = entryOf(root, "container")?.value as TreeNode;
  const container = r.map(containerNode, "container");
  if (!container) return result;
  r.keys(container, "container", [...DOCKSING_CONTAINER_KEYS], { what: "DockSing container keys" });
  const get = (k: string) => entryOf(container, k)?.value;
  const at = (k: string) => join("container", k);

  const image = get("image");
  if (!image)
    r.fail(
      container,
      "container",
      "image: is required (a tag in the local Docker daemon, or an archive path)",
    );
  else result.image = readImage(image, at("image"), ctx);

  const commands = get("commands");
  if (commands) {
    const list = r.seq(commands, at("commands"));
    if (list) {
      const parts: string[] = [];
      let ok = true;
      list.items.forEach((item, i) => {
        const s = r.string(item, join(at("commands"), i), "a string");
        if (s === undefined) ok = false;
        else parts.push(s);
      });
      // DockSing: " ".join(commands), then read by a shell.
      const argv = ok ? splitAt(parts.join(" "), commands, at("commands"), r) : undefined;
      if (argv) {
        spec.command = argv;
        r.origin("command", commands);
      }
    }
  }
  const entrypoint = get("entrypoint");
  if (entrypoint) {
    const s = r.text(entrypoint, at("entrypoint"), "a program (python3, /app/run)");
    const argv = s === undefined ? undefined : splitAt(s, entrypoint, at("entrypoint"), r);
    if (argv) {
      spec.entrypoint = argv;
      r.origin("entrypoint", entrypoint);
      // Docker's --entrypoint drops the image CMD; with no commands the entrypoint runs alone.
    }
  }
  const environment = get("environment");
  if (environment) {
    const env: Record<string, string> = {};
    readDockSingEnvironment(environment, at("environment"), ctx, env);
    if (Object.keys(env).length > 0) spec.env = env;
  }
  const volumes = get("volumes");
  if (volumes) {
    const mounts: Mount[] = [];
    readVolumes(volumes, at("volumes"), ctx, result.createHostPaths, mounts);
    if (mounts.length > 0) spec.mounts = mounts;
  }
  const ports = get("ports");
  if (ports) {
    const out = readPorts(ports, at("ports"), r);
    if (out.length > 0) spec.ports = out;
  }
  const workingDir = get("working_dir");
  if (workingDir) {
    const w = r.text(workingDir, at("working_dir"), "an absolute path in the container");
    if (w !== undefined) {
      spec.workdir = w;
      r.origin("workdir", workingDir);
    }
  }
  const name = get("container_name");
  if (name) {
    const n = r.text(name, at("container_name"));
    if (n !== undefined) {
      spec.name = n;
      r.origin("name", name);
    }
  }
  return result;
}

function readDockSingEnvironment(
  node: TreeNode,
  path: string,
  ctx: ServiceContext,
  env: Record<string, string>,
): void {
  const r = ctx.reader;
  // Names are checked by core's rules afterwards.
  const add = (key: string, value: TreeNode, p: string, keyPos: SourcePos = value.pos) => {
    const v = value.kind === "scalar" && value.value === null ? "" : r.string(value, p, "a value");
    if (v === undefined) return;
    env[key] = v;
    r.origin(`env.${key}`, keyPos);
  };
  if (node.kind === "map") {
    for (const e of node.entries) add(e.key, e.value, join(path, e.key), e.keyPos);
    return;
  }
  const list = r.seq(node, path);
  list?.items.forEach((item, i) => {
    const p = join(path, i);
    if (item.kind === "map") {
      for (const e of item.entries) add(e.key, e.value, join(p, e.key), e.keyPos);
      return;
    }
    const s = r.string(item, p, "a single-key map (- NAME: value) or NAME=value");
    if (s === undefined) return;
    const eq = s.indexOf("=");
    if (eq < 0) r.fail(item, p, `"${s}" has no value; write - ${s}: value`);
    else
      add(
        s.slice(0, eq),
        { kind: "scalar", pos: item.pos, value: s.slice(eq + 1), text: s.slice(eq + 1) },
        p,
      );
  });
}
