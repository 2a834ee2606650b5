import { posix } from "node:path";
import type { ContainerSpec, HostCommandRule, HostCommandsSpec, SupervisionSpec } from "../spec.js";

/** singreqrun's folder: its clients write there unless told otherwise. */
export const DEFAULT_REQUEST_MOUNT = "/var/run/req_run";
/** singreqrun's folder of host command links, put first on PATH. */
export const DEFAULT_BIN_PATH = "/hostbin";
export const DEFAULT_SUPERVISION_MOUNT = "/service";
export const DEFAULT_STATUS_FILE = "status.html";
export const DEFAULT_RESULT_FILE = "result.txt";
export const DEFAULT_NOTIFICATIONS_FILE = "notifications.txt";
export const DEFAULT_HOST_COMMAND_TIMEOUT_MS = 600_000;
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_HOST_COMMAND_CONCURRENCY = 4;

const HOST_COMMAND_KEYS = [
  "allow",
  "mountPath",
  "binPath",
  "cwd",
  "env",
  "timeoutMs",
  "maxOutputBytes",
  "concurrency",
  "allowCd",
];
const SUPERVISION_KEYS = ["mountPath", "hostDir", "statusFile", "resultFile", "notificationsFile"];
/**
 * Container paths of side channels are written into the client script and into every runtime's
 * mount flags: plain characters only, so neither quoting nor Apptainer's `src:dst,…` syntax is involved.
 */
const PLAIN_CONTAINER_PATH = /^(\/[A-Za-z0-9_.+-]+)+$/;
/** A command or file name: also the name of a link in the container's PATH. */
const PLAIN_NAME = /^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Add = (path: string, message: string) => void;

/** Every problem of `spec.hostCommands` and `spec.supervision` visible without touching the host. */
export function collectSideChannelIssues(spec: Record<string, unknown>, add: Add): void {
  const targets = new Map<string, string>();
  for (const [i, m] of (Array.isArray(spec.mounts) ? spec.mounts : []).entries()) {
    if (isRecord(m) && typeof m.target === "string")
      targets.set(posix.normalize(m.target).replace(/(.)\/+$/, "$1"), `mounts[${i}]`);
  }
  const target = (value: unknown, path: string, fallback: string) => {
    if (value === undefined) value = fallback;
    if (typeof value !== "string" || !PLAIN_CONTAINER_PATH.test(value) || value.split("/").includes("..")) {
      add(path, "must be an absolute container path of letters, digits and _ . + - (no .., not /)");
      return;
    }
    const previous = targets.get(value);
    if (previous !== undefined) add(path, `same container path as ${previous}`);
    targets.set(value, path);
  };

  if (spec.hostCommands !== undefined) {
    const h = spec.hostCommands;
    if (!isRecord(h)) add("hostCommands", "must be an object with at least `allow`");
    else {
      unknownKeys(h, HOST_COMMAND_KEYS, "hostCommands", add);
      checkAllowList(h.allow, add);
      target(h.mountPath, "hostCommands.mountPath", DEFAULT_REQUEST_MOUNT);
      target(h.binPath, "hostCommands.binPath", DEFAULT_BIN_PATH);
      if (h.cwd !== undefined && !isHostPath(h.cwd)) add("hostCommands.cwd", "must be an absolute host path");
      if (h.env !== undefined) {
        if (!isRecord(h.env)) add("hostCommands.env", "must be an object of name -> string value");
        else
          for (const [k, v] of Object.entries(h.env)) {
            if (!ENV_NAME.test(k))
              add(`hostCommands.env.${k}`, "name must be letters, digits and _, not starting with a digit");
            if (typeof v !== "string" || v.includes("\0"))
              add(`hostCommands.env.${k}`, "value must be a string without NUL bytes");
          }
      }
      for (const key of ["timeoutMs", "maxOutputBytes", "concurrency"] as const) {
        if (h[key] !== undefined && !isPositiveInteger(h[key]))
          add(`hostCommands.${key}`, "must be a positive integer");
      }
      if (h.allowCd !== undefined && typeof h.allowCd !== "boolean")
        add("hostCommands.allowCd", "must be a boolean");
    }
  }

  if (spec.supervision !== undefined) {
    const s = spec.supervision;
    if (!isRecord(s)) add("supervision", "must be an object (`{}` for the defaults)");
    else {
      unknownKeys(s, SUPERVISION_KEYS, "supervision", add);
      target(s.mountPath, "supervision.mountPath", DEFAULT_SUPERVISION_MOUNT);
      if (s.hostDir !== undefined) {
        if (!isHostPath(s.hostDir)) add("supervision.hostDir", "must be an absolute host path");
        // Bound on every backend; Apptainer's `-B src:dst` cannot carry these characters.
        else if (/[:,\n]/.test(s.hostDir))
          add(
            "supervision.hostDir",
            "must not contain ':', ',' or a newline (Apptainer cannot bind such a path)",
          );
      }
      const names = new Map<string, string>();
      for (const key of ["statusFile", "resultFile", "notificationsFile"] as const) {
        const value = s[key] ?? defaultFileName(key);
        if (typeof value !== "string" || !PLAIN_NAME.test(value)) {
          add(`supervision.${key}`, "must be a file name of letters, digits and _ . + - (no folder)");
          continue;
        }
        const previous = names.get(value);
        if (previous !== undefined) add(`supervision.${key}`, `same file as supervision.${previous}`);
        names.set(value, key);
      }
    }
  }
}

function checkAllowList(allow: unknown, add: Add): void {
  if (!Array.isArray(allow)) {
    add(
      "hostCommands.allow",
      'must be an array of commands ("squeue", "/usr/bin/sbatch", { command, args })',
    );
    return;
  }
  const names = new Map<string, number>();
  allow.forEach((rule: unknown, i: number) => {
    const path = `hostCommands.allow[${i}]`;
    const command = typeof rule === "string" ? rule : isRecord(rule) ? rule.command : undefined;
    const commandPath = typeof rule === "string" ? path : `${path}.command`;
    if (typeof rule !== "string") {
      if (!isRecord(rule)) {
        add(path, "must be a command name, an absolute path, or { command, args }");
        return;
      }
      unknownKeys(rule, ["command", "args"], path, add);
      if (rule.args !== undefined) {
        if (!Array.isArray(rule.args)) add(`${path}.args`, "must be an array of regular expressions");
        else
          rule.args.forEach((pattern: unknown, j: number) => {
            if (typeof pattern !== "string") {
              add(`${path}.args[${j}]`, "must be a regular expression, as a string");
              return;
            }
            try {
              new RegExp(pattern, "u");
            } catch (err) {
              add(`${path}.args[${j}]`, `is not a valid regular expression: ${(err as Error).message}`);
            }
          });
      }
    }
    if (typeof command !== "string" || command === "") {
      add(commandPath, "must be a command name or an absolute host path");
      return;
    }
    const name = commandName(command);
    if (command.startsWith("/")) {
      if (command.includes("\0") || posix.normalize(command) !== command || command.endsWith("/"))
        add(commandPath, "must be a normalized absolute path (no //, . or .. parts, no trailing /)");
      else if (!PLAIN_NAME.test(name))
        add(
          commandPath,
          "must end in a plain name (letters, digits, _ . + -): it is the command's name in the container",
        );
    } else if (!PLAIN_NAME.test(command)) {
      add(commandPath, "must be a plain name (letters, digits, _ . + -) or an absolute host path");
      return;
    }
    const previous = names.get(name);
    if (previous !== undefined)
      add(commandPath, `same command name "${name}" as hostCommands.allow[${previous}]`);
    names.set(name, i);
  });
}

/** The name a rule's command has in the container (its base name). */
export function commandName(command: string): string {
  return posix.basename(command);
}

/** The rule's parts, whichever form it was written in. */
export function ruleParts(rule: HostCommandRule): { command: string; args: string[] | undefined } {
  return typeof rule === "string"
    ? { command: rule, args: undefined }
    : { command: rule.command, args: rule.args };
}

/** `spec.hostCommands` with its defaults filled in. */
export function hostCommandsDefaults(h: HostCommandsSpec) {
  return {
    mountPath: h.mountPath ?? DEFAULT_REQUEST_MOUNT,
    binPath: h.binPath ?? DEFAULT_BIN_PATH,
    timeoutMs: h.timeoutMs ?? DEFAULT_HOST_COMMAND_TIMEOUT_MS,
    maxOutputBytes: h.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    concurrency: h.concurrency ?? DEFAULT_HOST_COMMAND_CONCURRENCY,
    allowCd: h.allowCd ?? false,
  };
}

/** `spec.supervision` with its defaults filled in. */
export function supervisionDefaults(s: SupervisionSpec) {
  return {
    mountPath: s.mountPath ?? DEFAULT_SUPERVISION_MOUNT,
    statusFile: s.statusFile ?? DEFAULT_STATUS_FILE,
    resultFile: s.resultFile ?? DEFAULT_RESULT_FILE,
    notificationsFile: s.notificationsFile ?? DEFAULT_NOTIFICATIONS_FILE,
  };
}

/** The host folders a spec's side channels need to exist (checked with the bind sources). */
export function sideChannelHostPaths(spec: ContainerSpec): { path: string; value: string }[] {
  const paths: { path: string; value: string }[] = [];
  if (spec.hostCommands?.cwd !== undefined)
    paths.push({ path: "hostCommands.cwd", value: spec.hostCommands.cwd });
  if (spec.supervision?.hostDir !== undefined)
    paths.push({ path: "supervision.hostDir", value: spec.supervision.hostDir });
  return paths;
}

function defaultFileName(key: "statusFile" | "resultFile" | "notificationsFile"): string {
  return key === "statusFile"
    ? DEFAULT_STATUS_FILE
    : key === "resultFile"
      ? DEFAULT_RESULT_FILE
      : DEFAULT_NOTIFICATIONS_FILE;
}

function unknownKeys(value: Record<string, unknown>, known: string[], path: string, add: Add): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) add(`${path}.${key}`, `unknown field; known fields are ${known.join(", ")}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function isPositiveInteger(v: unknown): boolean {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}
function isHostPath(v: unknown): v is string {
  return typeof v === "string" && v.startsWith("/") && !v.includes("\0");
}

/**
 * The spec without its side channels (the same object when it has none). A plan made from it
 * lacks their mounts: they exist only while an executor serves them (see {@link SIDE_CHANNELS_NOTE}).
 */
export function withoutSideChannels(spec: ContainerSpec): ContainerSpec {
  if (spec.hostCommands === undefined && spec.supervision === undefined) return spec;
  const { hostCommands: _h, supervision: _s, ...plain } = spec;
  return plain;
}

/** What a printed plan of a spec with side channels says about them. */
export const SIDE_CHANNELS_NOTE =
  "the spec's side channels (hostCommands, supervision) are served by the executor while the container runs: this plan leaves them out, and a pasted script has none";
