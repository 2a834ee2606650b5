import { InvalidSpecError } from "./errors.js";
import type { ContainerSpec, ImageConfig } from "./spec.js";

/** Docker's PATH for images that set none; every backend uses it so a spec runs the same. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The run-relevant part of an image config JSON (`{ config: { Env, Entrypoint, ... } }`). */
export function parseImageConfig(raw: unknown): ImageConfig {
  const c = (isObject(raw) && isObject(raw.config) ? raw.config : {}) as Record<string, unknown>;
  return {
    env: stringArray(c.Env) ?? [],
    entrypoint: stringArray(c.Entrypoint),
    cmd: stringArray(c.Cmd),
    workingDir: typeof c.WorkingDir === "string" ? c.WorkingDir : "",
    user: typeof c.User === "string" ? c.User : "",
    labels: isObject(c.Labels)
      ? Object.fromEntries(
          Object.entries(c.Labels).filter((e): e is [string, string] => typeof e[1] === "string"),
        )
      : {},
    exposedPorts: isObject(c.ExposedPorts) ? Object.keys(c.ExposedPorts) : [],
    stopSignal: typeof c.StopSignal === "string" ? c.StopSignal : undefined,
  };
}

/**
 * The one argv a container runs, by Docker's rules: ENTRYPOINT then CMD; `spec.command` replaces
 * CMD and keeps the entrypoint; `spec.entrypoint` replaces ENTRYPOINT and drops the image CMD.
 * No shell is involved. Throws {@link InvalidSpecError} when there is nothing to run.
 */
export function resolveArgv(image: Pick<ImageConfig, "entrypoint" | "cmd">, spec: ContainerSpec): string[] {
  const entrypoint = spec.entrypoint ?? image.entrypoint ?? [];
  const cmd = spec.command ?? (spec.entrypoint !== undefined ? [] : (image.cmd ?? []));
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) {
    throw new InvalidSpecError([
      { path: "command", message: "the image has no ENTRYPOINT or CMD, so the spec must give a command" },
    ]);
  }
  return argv;
}

/**
 * The container's environment: image ENV, then `spec.env` over it, with Docker's default PATH
 * when neither sets one. Values are literal. Order: image variables first, as Docker does.
 */
export function resolveEnv(
  image: Pick<ImageConfig, "env">,
  specEnv: Record<string, string> = {},
): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of image.env) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  for (const [k, v] of Object.entries(specEnv)) env.set(k, v);
  if (!env.has("PATH")) env.set("PATH", DEFAULT_PATH);
  return env;
}

/** The folder the process starts in: the spec's, else the image WORKDIR, else `/`. */
export function resolveWorkdir(image: Pick<ImageConfig, "workingDir">, spec: ContainerSpec): string {
  return spec.workdir ?? (image.workingDir || "/");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringArray(v: unknown): string[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : null;
}
