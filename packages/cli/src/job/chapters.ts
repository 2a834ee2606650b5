import type { JobRuntime, JobSlurm } from "./job.js";
import { join, type TreeReader } from "./tree-reader.js";
import { entryOf, type TreeEntry, type TreeNode } from "./yaml-tree.js";

/** Values of a plain JSON-like YAML node (for backend options, checked by the backend itself). */
export function plainValue(node: TreeNode): unknown {
  if (node.kind === "scalar") return node.value;
  if (node.kind === "seq") return node.items.map(plainValue);
  return Object.fromEntries(node.entries.map((e) => [e.key, plainValue(e.value)]));
}

/**
 * The `runtime:` chapter: `runtime: apptainer`, or a map with `name` (docker, apptainer,
 * singularity, slurm, ...), `options` (the backend's own, as `createExecutor` takes them; checked
 * by the backend) and `unsupported` (error | ignore: what to do with a field this runtime cannot
 * honour, as `spec.unsupported`).
 */
export function readRuntimeChapter(
  node: TreeNode,
  path: string,
  r: TreeReader,
): { runtime: JobRuntime; unsupported?: "error" | "ignore" } | undefined {
  if (node.kind === "scalar") {
    const name = r.text(node, path, "a runtime name (docker, apptainer, singularity, slurm) or a map");
    return name === undefined ? undefined : { runtime: { name, options: {} } };
  }
  const m = r.map(node, path);
  if (!m) return undefined;
  r.keys(m, path, ["name", "options", "unsupported"]);
  const runtime: JobRuntime = { options: {} };
  const name = entryOf(m, "name")?.value;
  if (name) {
    const n = r.text(name, join(path, "name"), "a runtime name (docker, apptainer, singularity, slurm)");
    if (n !== undefined) runtime.name = n;
  }
  const options = entryOf(m, "options")?.value;
  if (options) {
    const o = r.map(options, join(path, "options"));
    if (o) {
      if (o.entries.some((e) => e.key === "runtime"))
        r.fail(o, join(path, "options.runtime"), "the runtime is named by name:, not inside options");
      runtime.options = plainValue(o) as Record<string, unknown>;
    }
  }
  let unsupported: "error" | "ignore" | undefined;
  const u = entryOf(m, "unsupported")?.value;
  if (u) {
    const v = r.text(u, join(path, "unsupported"), '"error" or "ignore"');
    if (v === "error" || v === "ignore") unsupported = v;
    else if (v !== undefined) r.fail(u, join(path, "unsupported"), `must be "error" or "ignore", not "${v}"`);
  }
  return { runtime, ...(unsupported && { unsupported }) };
}

const LONG_OPTION = /^[a-z][a-z0-9-]*$/;

/**
 * The `slurm:` chapter: srun/sbatch long option names (without `--`) and their values, as a map or
 * (as DockSing's README writes it) a list of single-key maps. `true` makes a flag without a
 * value; `false` leaves the option out. Checked for shape only: the SLURM runtime reads them.
 */
export function readSlurmChapter(node: TreeNode, path: string, r: TreeReader): JobSlurm | undefined {
  const slurm: JobSlurm = { options: {} };
  let entries: { e: TreeEntry; p: string }[] = [];
  if (node.kind === "map") entries = node.entries.map((e) => ({ e, p: join(path, e.key) }));
  else if (node.kind === "seq") {
    entries = node.items.flatMap((item, i) => {
      const m = r.map(item, join(path, i));
      return m ? m.entries.map((e) => ({ e, p: join(join(path, i), e.key) })) : [];
    });
  } else r.fail(node, path, "must be a map of srun options (nodes: 1, cpus-per-task: 2)");
  for (const { e, p } of entries) {
    const key = e.key.replace(/^--/, "");
    if (!LONG_OPTION.test(key)) {
      r.fail(e.keyPos, p, `"${e.key}" is not a long option name (nodes, cpus-per-task, job-name, ...)`);
      continue;
    }
    if (e.value.kind === "scalar" && typeof e.value.value === "boolean") {
      if (e.value.value) slurm.options[key] = true;
      continue;
    }
    const v = r.string(e.value, p, "a value (a string or a number), or true for a flag");
    if (v !== undefined) slurm.options[key] = v;
  }
  return slurm;
}
