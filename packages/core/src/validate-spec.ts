import { stat } from "node:fs/promises";
import { posix } from "node:path";
import { InvalidSpecError, type SpecIssue } from "./errors.js";
import { collectSideChannelIssues, sideChannelHostPaths } from "./side-channels/side-channel-spec.js";
import { type ContainerSpec, GPU_VENDORS, NETWORK_MODES } from "./spec.js";

const SPEC_KEY_LIST = [
  "image",
  "command",
  "entrypoint",
  "env",
  "workdir",
  "mounts",
  "stdin",
  "network",
  "resources",
  "user",
  "labels",
  "name",
  "ports",
  "unsupported",
  "hostCommands",
  "supervision",
] as const satisfies readonly (keyof ContainerSpec)[];
// A field added to ContainerSpec but not here fails to compile: unknown-field checks stay exact.
const SPEC_KEYS_COMPLETE: Exclude<keyof ContainerSpec, (typeof SPEC_KEY_LIST)[number]> extends never
  ? true
  : never = true;
const SPEC_KEYS = new Set<string>(SPEC_KEYS_COMPLETE ? SPEC_KEY_LIST : []);

// Portable across runtimes: Apptainer passes variables through its own environment prefix,
// which only carries shell identifiers.
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;
/** Docker refuses memory limits under 6 MiB. */
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

export interface ValidateOptions {
  /** Check that bind sources exist on this host (default true). */
  checkHostPaths?: boolean;
  /** Backend-specific rules, run after the common ones. */
  extraChecks?: (spec: ContainerSpec, issues: SpecIssue[]) => void;
}

/**
 * Checks a spec before anything starts and throws one {@link InvalidSpecError} listing every
 * problem found. Returns the spec, typed, when it is valid.
 */
export async function validateSpec(spec: unknown, options: ValidateOptions = {}): Promise<ContainerSpec> {
  const issues = collectSpecIssues(spec);
  if (issues.length === 0 && options.checkHostPaths !== false) {
    const s = spec as ContainerSpec;
    await Promise.all(
      (s.mounts ?? []).map(async (m, i) => {
        if (m.type !== "bind") return;
        try {
          await stat(m.source);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          issues.push({
            path: `mounts[${i}].source`,
            message:
              code === "ENOENT"
                ? `host path ${m.source} does not exist; create it or fix the path`
                : `host path ${m.source} cannot be used (${code ?? String(err)})`,
          });
        }
      }),
    );
    // Checked at once, reported in the spec's order.
    const folders = await Promise.all(
      sideChannelHostPaths(s).map(async ({ path, value }): Promise<SpecIssue | undefined> => {
        const found = await stat(value).catch((err: NodeJS.ErrnoException) => err.code ?? String(err));
        if (typeof found === "string")
          return {
            path,
            message:
              found === "ENOENT"
                ? `host folder ${value} does not exist; create it or fix the path`
                : `host folder ${value} cannot be used (${found})`,
          };
        return found.isDirectory() ? undefined : { path, message: `${value} is not a folder` };
      }),
    );
    for (const issue of folders) if (issue) issues.push(issue);
  }
  if (issues.length === 0) options.extraChecks?.(spec as ContainerSpec, issues);
  if (issues.length > 0) throw new InvalidSpecError(issues);
  return spec as ContainerSpec;
}

/** The pure part of {@link validateSpec}: every problem visible without touching the host. */
export function collectSpecIssues(spec: unknown): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  if (!isRecord(spec)) {
    add("spec", "must be an object");
    return issues;
  }
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) add(key, `unknown field; known fields are ${[...SPEC_KEYS].join(", ")}`);
  }

  if (typeof spec.image !== "string" || spec.image.trim() === "") {
    add("image", "must be a non-empty string: an image id (sha256:...) or a loaded tag");
  } else if (/\s|\0/.test(spec.image)) {
    add("image", "must not contain whitespace");
  }

  checkArgv(spec.command, "command", add, true);
  checkArgv(spec.entrypoint, "entrypoint", add, true);

  if (spec.env !== undefined) {
    if (!isRecord(spec.env)) add("env", "must be an object of name -> string value");
    else
      for (const [k, v] of Object.entries(spec.env)) {
        if (!ENV_NAME.test(k))
          add(`env.${k}`, "name must be letters, digits and _, not starting with a digit");
        if (typeof v !== "string") add(`env.${k}`, `value must be a string, got ${typeof v}`);
        else if (v.includes("\0")) add(`env.${k}`, "value must not contain a NUL byte");
      }
  }

  if (spec.workdir !== undefined) checkContainerPath(spec.workdir, "workdir", add);

  if (spec.mounts !== undefined) {
    if (!Array.isArray(spec.mounts)) add("mounts", "must be an array");
    else {
      const targets = new Map<string, number>();
      spec.mounts.forEach((m: unknown, i: number) => {
        const p = `mounts[${i}]`;
        if (!isRecord(m)) {
          add(p, "must be an object");
          return;
        }
        if (m.type === "bind") {
          if (typeof m.source !== "string" || !m.source.startsWith("/"))
            add(`${p}.source`, "must be an absolute host path");
          else if (m.source.includes("\0")) add(`${p}.source`, "must not contain a NUL byte");
          if (m.readOnly !== undefined && typeof m.readOnly !== "boolean")
            add(`${p}.readOnly`, "must be a boolean");
        } else if (m.type === "tmpfs") {
          if (m.sizeBytes !== undefined && !isPositiveInteger(m.sizeBytes))
            add(`${p}.sizeBytes`, "must be a positive integer");
        } else {
          add(`${p}.type`, 'must be "bind" or "tmpfs"');
        }
        if (checkContainerPath(m.target, `${p}.target`, add)) {
          const target = posix.normalize(m.target as string);
          if (target === "/") add(`${p}.target`, "cannot mount over the container's root");
          const previous = targets.get(target);
          if (previous !== undefined) add(`${p}.target`, `same target as mounts[${previous}]`);
          targets.set(target, i);
        }
      });
    }
  }

  if (spec.stdin !== undefined && typeof spec.stdin !== "boolean") add("stdin", "must be a boolean");
  if (spec.network !== undefined && !(NETWORK_MODES as readonly unknown[]).includes(spec.network))
    add("network", `must be one of ${NETWORK_MODES.join(", ")}`);

  if (spec.resources !== undefined) {
    const r = spec.resources;
    if (!isRecord(r)) add("resources", "must be an object");
    else {
      if (
        r.memoryBytes !== undefined &&
        (!isPositiveInteger(r.memoryBytes) || r.memoryBytes < MIN_MEMORY_BYTES)
      )
        add("resources.memoryBytes", `must be an integer of at least ${MIN_MEMORY_BYTES} (6 MiB)`);
      if (r.cpus !== undefined && (typeof r.cpus !== "number" || !Number.isFinite(r.cpus) || r.cpus <= 0))
        add("resources.cpus", "must be a positive number");
      if (r.gpus !== undefined) {
        const g = r.gpus;
        if (!isRecord(g)) add("resources.gpus", "must be an object");
        else {
          if (g.vendor !== undefined && !(GPU_VENDORS as readonly unknown[]).includes(g.vendor))
            add("resources.gpus.vendor", `must be one of ${GPU_VENDORS.join(", ")}`);
          if (g.count !== undefined && g.count !== "all" && !isPositiveInteger(g.count))
            add("resources.gpus.count", 'must be a positive integer or "all"');
          if (g.deviceIds !== undefined && !isStringArray(g.deviceIds, true))
            add("resources.gpus.deviceIds", "must be a non-empty array of non-empty strings");
          if (g.capabilities !== undefined && !isStringArray(g.capabilities, true))
            add("resources.gpus.capabilities", "must be a non-empty array of non-empty strings");
        }
      }
      for (const k of Object.keys(r))
        if (!["memoryBytes", "cpus", "gpus"].includes(k)) add(`resources.${k}`, "unknown field");
    }
  }

  if (spec.user !== undefined && (typeof spec.user !== "string" || !USER.test(spec.user)))
    add("user", 'must be "uid", "uid:gid", "name" or "name:group"');

  if (spec.labels !== undefined) {
    if (!isRecord(spec.labels)) add("labels", "must be an object of string values");
    else
      for (const [k, v] of Object.entries(spec.labels))
        if (k === "" || typeof v !== "string")
          add(`labels.${k}`, "must be a non-empty key with a string value");
        // `docker run --label K=V` splits at the first "=": such a key could not be printed as a command.
        else if (k.includes("=") || /[\0\n]/.test(k))
          add(`labels.${k}`, 'a label key cannot hold "=", a newline or NUL');
  }

  if (spec.name !== undefined && (typeof spec.name !== "string" || !CONTAINER_NAME.test(spec.name)))
    add("name", "must start with a letter or digit and hold only letters, digits, _ . - (at most 128)");

  if (spec.ports !== undefined) {
    if (!Array.isArray(spec.ports)) add("ports", "must be an array");
    else
      spec.ports.forEach((p: unknown, i: number) => {
        if (!isRecord(p)) {
          add(`ports[${i}]`, "must be an object");
          return;
        }
        if (!isPort(p.containerPort, false)) add(`ports[${i}].containerPort`, "must be an integer 1-65535");
        if (p.hostPort !== undefined && !isPort(p.hostPort, true))
          add(`ports[${i}].hostPort`, "must be an integer 0-65535");
        if (p.protocol !== undefined && p.protocol !== "tcp" && p.protocol !== "udp")
          add(`ports[${i}].protocol`, 'must be "tcp" or "udp"');
      });
  }

  if (spec.unsupported !== undefined && spec.unsupported !== "error" && spec.unsupported !== "ignore")
    add("unsupported", 'must be "error" or "ignore"');
  collectSideChannelIssues(spec, add);
  return issues;
}

/** Checks an argv given to `exec()`; throws {@link InvalidSpecError}. */
export function validateArgv(argv: unknown, path = "argv"): string[] {
  const issues: SpecIssue[] = [];
  checkArgv(argv, path, (p, m) => issues.push({ path: p, message: m }), false);
  if (issues.length) throw new InvalidSpecError(issues);
  return argv as string[];
}

function checkArgv(
  argv: unknown,
  path: string,
  add: (path: string, message: string) => void,
  allowEmpty: boolean,
): void {
  if (argv === undefined && allowEmpty) return;
  if (!Array.isArray(argv)) {
    add(path, "must be an array of strings, one per argument (nothing is split on spaces)");
    return;
  }
  if (!allowEmpty && argv.length === 0) add(path, "must hold at least the program to run");
  argv.forEach((a, i) => {
    if (typeof a !== "string") add(`${path}[${i}]`, `must be a string, got ${typeof a}`);
    else if (a.includes("\0")) add(`${path}[${i}]`, "must not contain a NUL byte");
  });
  if (typeof argv[0] === "string" && argv[0] === "") add(`${path}[0]`, "program must not be empty");
}

function checkContainerPath(p: unknown, path: string, add: (path: string, message: string) => void): boolean {
  if (typeof p !== "string" || !p.startsWith("/")) {
    add(path, "must be an absolute path in the container");
    return false;
  }
  if (p.includes("\0")) {
    add(path, "must not contain a NUL byte");
    return false;
  }
  return true;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function isPositiveInteger(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}
function isPort(v: unknown, zeroAllowed: boolean): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= (zeroAllowed ? 0 : 1) && v <= 65535;
}
function isStringArray(v: unknown, nonEmpty: boolean): boolean {
  return Array.isArray(v) && (!nonEmpty || v.length > 0) && v.every((x) => typeof x === "string" && x !== "");
}
