import { RegistryError } from "@contexec/core";

/** An image reference, split and normalised the way Docker reads it. */
export interface ImageReference {
  /** Registry as named: "docker.io", "ghcr.io", "127.0.0.1:5000", "[::1]:5000". */
  registry: string;
  /** Repository path inside the registry: "library/busybox", "org/tool". */
  repository: string;
  /** The tag; "latest" when the reference names neither a tag nor a digest. */
  tag: string | undefined;
  /** "sha256:<hex>" when the reference pins a digest (it wins over the tag when both are given). */
  digest: string | undefined;
}

/** Docker Hub's name in references, and the host its API answers on. */
export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const DOMAIN =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]{1,5})?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Parses `[docker://][registry/]repository[:tag][@digest]` by Docker's rules: the first path
 * component is the registry when it holds a "." or ":", is "localhost", or has upper-case
 * letters; otherwise the registry is docker.io, where a one-component name lives under
 * `library/`. "index.docker.io" is docker.io. Without tag or digest the tag is "latest".
 * A malformed reference gives {@link RegistryError} with reason "reference".
 */
export function parseImageReference(input: string): ImageReference {
  const bad = (why: string) =>
    new RegistryError(
      "reference",
      "reference",
      `"${input}" is not an image reference: ${why}. Write [registry/]repository[:tag][@sha256:digest], e.g. ghcr.io/org/tool:1.2`,
    );
  let rest = input.startsWith("docker://") ? input.slice("docker://".length) : input;
  if (rest === "") throw bad("it is empty");
  if (/\s/.test(rest)) throw bad("it contains white space");
  let digest: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`"${digest}" is not a sha256 or sha512 digest in lower-case hex`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`"${tag}" is not a valid tag (letters, digits, _ . -; at most 128)`);
  }
  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (
      first.includes(".") ||
      first.includes(":") ||
      first === "localhost" ||
      first !== first.toLowerCase()
    ) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!DOMAIN.test(registry)) throw bad(`"${registry}" is not a registry host[:port]`);
    }
  }
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  if (repository === "") throw bad("the repository name is empty");
  for (const part of repository.split("/")) {
    if (!PATH_COMPONENT.test(part)) {
      throw bad(
        `"${part}" is not a valid repository name component (lower-case letters, digits, separated by . _ __ or -)`,
      );
    }
  }
  if (registry.length + 1 + repository.length > 255) throw bad("the name is longer than 255 characters");
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository, tag, digest };
}

/** The reference in full: "docker.io/library/busybox:1.36", "host:5000/a/b@sha256:...". */
export function formatImageReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/**
 * The reference as Docker shows it: docker.io and library/ left out ("busybox:1.36",
 * "org/tool:2", "ghcr.io/org/tool@sha256:...").
 */
export function familiarImageReference(ref: ImageReference): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (ref.registry === DOCKER_HUB) {
    name = ref.repository.startsWith("library/") ? ref.repository.slice("library/".length) : ref.repository;
  }
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/** The host:port the registry's API answers on (Docker Hub's differs from its name). */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** Whether a registry host is this machine (Docker reaches such registries over plain HTTP too). */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith("[")
    ? registry.slice(1, registry.indexOf("]"))
    : (registry.split(":")[0] ?? "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
