import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { RegistryCredentials } from "@contexec/core";
import { DOCKER_HUB } from "../reference/image-reference.js";

/** The parts of Docker's client config (`~/.docker/config.json`) that hold credentials. */
export interface DockerConfigFile {
  auths?: Record<
    string,
    { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }
  >;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Where credentials for one registry come from, as Docker's config says. */
export type CredentialSource =
  | { kind: "inline"; credentials: RegistryCredentials; key: string }
  | { kind: "helper"; helper: string; serverUrl: string };

/** The key Docker's CLI files Docker Hub's credentials under. */
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/** The config file: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return join(env.DOCKER_CONFIG || join(home, ".docker"), "config.json");
}

/** A key of `auths` or `credHelpers` as a registry host: scheme and path dropped. */
function hostOfKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, "").split("/")[0] ?? "";
  return host === "index.docker.io" || host === "registry-1.docker.io" ? DOCKER_HUB : host;
}

/**
 * Where Docker's config says credentials for `registry` are, in Docker's order: a credential
 * helper for that registry (`credHelpers`), then the default store (`credsStore`), then an inline
 * `auths` entry. Keys may be written as hosts or URLs ("https://ghcr.io", Docker Hub's
 * "https://index.docker.io/v1/"). Pure: the caller reads the file and runs the helper.
 */
export function credentialSourceFor(
  config: DockerConfigFile,
  registry: string,
): CredentialSource | undefined {
  const serverUrl = registry === DOCKER_HUB ? DOCKER_HUB_KEY : registry;
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (hostOfKey(key) === registry && helper) return { kind: "helper", helper, serverUrl };
  }
  const entries = Object.entries(config.auths ?? {}).filter(([key]) => hostOfKey(key) === registry);
  if (config.credsStore) return { kind: "helper", helper: config.credsStore, serverUrl };
  for (const [key, entry] of entries) {
    if (entry.identitytoken)
      return { kind: "inline", key, credentials: { identityToken: entry.identitytoken } };
    if (entry.registrytoken)
      return { kind: "inline", key, credentials: { registryToken: entry.registrytoken } };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon > 0) {
        return {
          kind: "inline",
          key,
          credentials: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) },
        };
      }
    }
    if (entry.username && entry.password !== undefined) {
      return { kind: "inline", key, credentials: { username: entry.username, password: entry.password } };
    }
  }
  return undefined;
}

/** What a credential helper's `get` printed, as credentials; undefined for "not found". */
export function parseHelperOutput(stdout: string): RegistryCredentials | undefined {
  const out = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
  if (typeof out.Secret !== "string" || out.Secret === "") return undefined;
  // Docker's convention: the user name "<token>" marks an identity token.
  if (out.Username === "<token>") return { identityToken: out.Secret };
  return { username: typeof out.Username === "string" ? out.Username : "", password: out.Secret };
}

export interface ResolvedCredentials {
  credentials: RegistryCredentials | undefined;
  /** Where they came from ("~/.docker/config.json auths[ghcr.io]", "docker-credential-pass"), for messages. */
  from: string | undefined;
  /** Why none were found although the config names a source (a helper missing or failing). */
  problem?: string;
}

/**
 * The credentials Docker's config holds for `registry`, running a credential helper
 * (`docker-credential-<name> get`) where the config names one. A missing config file means
 * anonymous access; a missing or failing helper too, with the problem noted for messages.
 */
export async function dockerConfigCredentials(
  registry: string,
  options: { configPath?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ResolvedCredentials> {
  const path = options.configPath ?? dockerConfigPath(options.env);
  let config: DockerConfigFile;
  try {
    config = JSON.parse(await readFile(path, "utf8")) as DockerConfigFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { credentials: undefined, from: undefined };
    return {
      credentials: undefined,
      from: undefined,
      problem: `cannot read ${path}: ${(err as Error).message}`,
    };
  }
  const source = credentialSourceFor(config, registry);
  if (!source) return { credentials: undefined, from: undefined };
  if (source.kind === "inline")
    return { credentials: source.credentials, from: `${path} auths["${source.key}"]` };
  const program = `docker-credential-${source.helper}`;
  try {
    const stdout = await runHelper(program, source.serverUrl, options.env);
    return { credentials: parseHelperOutput(stdout), from: program };
  } catch (err) {
    const message = (err as Error).message;
    // The helper's own words for an absent entry (every helper prints this one).
    if (/credentials not found/i.test(message)) return { credentials: undefined, from: program };
    return { credentials: undefined, from: undefined, problem: `${program} get failed: ${message}` };
  }
}

function runHelper(program: string, serverUrl: string, env: NodeJS.ProcessEnv | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      ["get"],
      { env: env ?? process.env, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          reject(
            new Error(
              code === "ENOENT"
                ? `${program} is not installed`
                : `${String(stderr || stdout).trim() || err.message}`,
            ),
          );
        } else resolve(stdout);
      },
    );
    child.stdin?.on("error", () => {});
    child.stdin?.end(serverUrl);
  });
}
