import { lstat, readFile, readlink } from "node:fs/promises";
import { posix } from "node:path";
import { namespaceOf } from "./process-tree.js";

/** Namespaces a process of the container is entered into, with nsenter's flag for each. */
const NAMESPACES = [
  ["user", "--user"],
  ["mnt", "--mount"],
  ["pid", "--pid"],
  ["ipc", "--ipc"],
  ["uts", "--uts"],
  ["net", "--net"],
  ["cgroup", "--cgroup"],
] as const;

export interface NsenterCommand {
  argv: string[];
}

/**
 * The argv that runs `command` inside the namespaces and root of process `target` (the
 * container's PID 1), starting in `workdir` (a path in the container). Only the namespaces that
 * differ from ours are entered: nsenter refuses to re-enter our own user namespace.
 */
export async function nsenterArgv(
  nsenter: string,
  target: number,
  command: string[],
  workdir: string,
): Promise<string[]> {
  const flags: string[] = [];
  let enterUser = false;
  for (const [kind, flag] of NAMESPACES) {
    const theirs = await namespaceOf(target, kind as "pid");
    if (theirs === undefined) throw new Error(`process ${target} has ended`);
    if (theirs !== (await namespaceOf("self", kind as "pid"))) {
      flags.push(flag);
      if (kind === "user") enterUser = true;
    }
  }
  const root = `/proc/${target}/root`;
  const dir = await resolveInRoot(root, workdir);
  return [
    nsenter,
    `--target=${target}`,
    ...flags,
    // Keep our uid/gid: Apptainer runs the container as the caller, mapped to itself.
    ...(enterUser ? ["--preserve-credentials"] : []),
    "--root",
    // nsenter opens --wd before it enters the root, so it is given through /proc/PID/root.
    `--wd=${root}${dir}`,
    "--",
    ...command,
  ];
}

/**
 * Resolves `path` inside the folder tree at `root` the way the container would: symlinks are
 * followed relative to `root`, never to the host's `/`. Returns the resolved absolute path in the
 * container. Throws ENOENT-like errors for paths that do not exist.
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const pending = posix.normalize(path).split("/").filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const host = `${root}/${[...done, part].join("/")}`;
    const st = await lstat(host);
    if (st.isSymbolicLink()) {
      if (++links > 40)
        throw Object.assign(new Error(`too many symbolic links in ${path}`), { code: "ELOOP" });
      const target = await readlink(host);
      if (target.startsWith("/")) done.length = 0;
      pending.unshift(...target.split("/").filter(Boolean));
      continue;
    }
    done.push(part);
  }
  return `/${done.join("/")}`;
}

/**
 * The cgroup.procs files of the cgroups `target` is in and we are not: writing a pid there puts
 * an exec'd process under the container's memory and CPU limits, as Docker does. Empty when the
 * container has no cgroup of its own (no limits asked).
 */
export async function cgroupProcsFiles(target: number): Promise<string[]> {
  const [theirs, ours, mountinfo] = await Promise.all([
    readFile(`/proc/${target}/cgroup`, "utf8"),
    readFile("/proc/self/cgroup", "utf8"),
    readFile("/proc/self/mountinfo", "utf8"),
  ]);
  const own = parseCgroupFile(ours);
  const mounts = parseCgroupMounts(mountinfo);
  const files: string[] = [];
  for (const [key, path] of parseCgroupFile(theirs)) {
    if (own.get(key) === path) continue;
    const mount = mounts.get(key);
    if (!mount) continue;
    if (mount.root !== "/" && !path.startsWith(mount.root)) continue;
    const rel = mount.root === "/" ? path : path.slice(mount.root.length);
    files.push(posix.join(mount.point, rel, "cgroup.procs"));
  }
  return files;
}

/** /proc/PID/cgroup as hierarchy key ("memory", "cpu,cpuacct", "" for cgroup v2) -> path. */
export function parseCgroupFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) out.set(normalizeControllers(m[1] as string), m[2] as string);
  }
  return out;
}

/** Cgroup mounts from /proc/self/mountinfo, by the same key as {@link parseCgroupFile}. */
export function parseCgroupMounts(mountinfo: string): Map<string, { point: string; root: string }> {
  const out = new Map<string, { point: string; root: string }>();
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const f = left.split(" ");
    const [fstype, , superOptions = ""] = right.split(" ");
    const root = unescapeMount(f[3] ?? "/");
    const point = unescapeMount(f[4] ?? "");
    if (fstype === "cgroup2") {
      if (!out.has("")) out.set("", { point, root });
    } else if (fstype === "cgroup") {
      const controllers = superOptions
        .split(",")
        .filter((o) => o.startsWith("name=") || !CGROUP_MOUNT_OPTIONS.has(o))
        .join(",");
      const key = normalizeControllers(controllers);
      if (!out.has(key)) out.set(key, { point, root });
    }
  }
  return out;
}

const CGROUP_MOUNT_OPTIONS = new Set([
  "rw",
  "ro",
  "xattr",
  "noprefix",
  "clone_children",
  "cpuset_v2_mode",
  "nsdelegate",
  "memory_recursiveprot",
]);

function normalizeControllers(list: string): string {
  return list.split(",").filter(Boolean).sort().join(",");
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/**
 * Wraps `argv` so that the process first joins the given cgroups and then becomes `argv`
 * (a fixed host shell script: the paths are arguments, never part of the script text).
 * Joining is best effort: a cgroup we may not write to is skipped.
 */
export function joinCgroupsArgv(files: string[], argv: string[]): string[] {
  if (files.length === 0) return argv;
  const script =
    'for f do [ "$f" = -- ] && break; { echo $$ > "$f"; } 2>/dev/null; shift; done; shift; exec "$@"';
  return ["/bin/sh", "-c", script, "contexec-cgroup-join", ...files, "--", ...argv];
}
