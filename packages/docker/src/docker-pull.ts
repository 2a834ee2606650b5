import {
  type ContainerError,
  type PullProgress,
  RegistryAuthError,
  type RegistryCredentials,
  RegistryError,
} from "@contexec/core";
import { formatPlatform, type ImageReference, parsePlatform } from "@contexec/registry";

/** The daemon's AuthConfig (sent base64-encoded as X-Registry-Auth). */
export interface DockerAuthConfig {
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress: string;
}

/** What `POST /images/create` takes for one pull. */
export interface DockerPullRequest {
  /** Query: the repository with its registry ("127.0.0.1:5000/org/tool", "docker.io/library/busybox"). */
  fromImage: string;
  /** Query: the tag, or the digest ("sha256:..."), as the API takes either there. */
  tag: string;
  platform?: string;
  auth: DockerAuthConfig | undefined;
  /** How the daemon names the image afterwards (to inspect it): name:tag or name@digest. */
  name: string;
}

/** The pull request for a parsed reference: pure, so the exact request is unit-tested. */
export function renderPullRequest(
  ref: ImageReference,
  options: { platform?: string | undefined; credentials?: RegistryCredentials | undefined },
): DockerPullRequest {
  const repository = `${ref.registry}/${ref.repository}`;
  const c = options.credentials;
  // Docker Hub's credentials are filed under its v1 URL, as the docker CLI sends them.
  const serveraddress = ref.registry === "docker.io" ? "https://index.docker.io/v1/" : ref.registry;
  const auth: DockerAuthConfig | undefined = !c
    ? undefined
    : "username" in c
      ? { username: c.username, password: c.password, serveraddress }
      : "identityToken" in c
        ? { identitytoken: c.identityToken, serveraddress }
        : { registrytoken: c.registryToken, serveraddress };
  return {
    fromImage: repository,
    // A digest wins over a tag, as in the registry client.
    tag: ref.digest ?? ref.tag ?? "latest",
    ...(options.platform !== undefined && { platform: formatPlatform(parsePlatform(options.platform)) }),
    auth,
    name: ref.digest ? `${repository}@${ref.digest}` : `${repository}:${ref.tag ?? "latest"}`,
  };
}

/** One line of the daemon's pull progress stream. */
export interface DockerPullMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * A progress line of the daemon's pull as a per-layer event, or undefined for lines about the
 * whole image ("Pulling from", "Digest:", "Status:"). Docker names layers by the first 12 hex
 * digits of their digest.
 */
export function pullProgressOf(m: DockerPullMessage): PullProgress | undefined {
  if (!m.id || !/^[0-9a-f]{12}$/.test(m.id) || !m.status) return undefined;
  const current = m.progressDetail?.current ?? 0;
  const total = m.progressDetail?.total;
  const event = (phase: PullProgress["phase"], bytes: number): PullProgress => ({
    layer: m.id as string,
    phase,
    bytes,
    ...(total !== undefined && total > 0 && { totalBytes: total }),
  });
  switch (m.status) {
    case "Pulling fs layer":
    case "Waiting":
      return event("waiting", 0);
    case "Downloading":
      return event("downloading", current);
    case "Verifying Checksum":
    case "Download complete":
      return { layer: m.id, phase: "downloading", bytes: current };
    case "Extracting":
      return event("extracting", current);
    case "Pull complete":
      return { layer: m.id, phase: "done", bytes: 0 };
    case "Already exists":
      return { layer: m.id, phase: "exists", bytes: 0 };
    default:
      return undefined;
  }
}

/**
 * The daemon's words for a failed pull as contexec's typed error: refused or missing credentials
 * (RegistryAuthError), a missing image, a platform the image lacks, an untrusted certificate, a
 * registry out of reach (RegistryError); undefined when the words say none of these.
 */
export function pullErrorOf(message: string, registry: string): ContainerError | undefined {
  const m = message.trim();
  if (
    /unauthorized|authentication required|incorrect username or password|no basic auth credentials|denied/i.test(
      m,
    )
  ) {
    return new RegistryAuthError(registry, `the daemon's pull was refused: ${m}`);
  }
  if (/no matching manifest for/i.test(m))
    return new RegistryError(registry, "platform", `the daemon's pull: ${m}`);
  if (/manifest unknown|not found|does not exist|repository name not known|name unknown/i.test(m)) {
    return new RegistryError(registry, "not-found", `the daemon's pull: ${m}`);
  }
  if (/x509|certificate/i.test(m)) {
    return new RegistryError(
      registry,
      "tls",
      `the daemon's pull: ${m}; the daemon trusts a registry's CA from /etc/docker/certs.d/${registry}/ca.crt`,
    );
  }
  if (/connection refused|no such host|i\/o timeout|connection reset|dial tcp/i.test(m)) {
    return new RegistryError(registry, "unreachable", `the daemon's pull: ${m}`);
  }
  if (/digest.*(mismatch|did not match)|verification failed/i.test(m)) {
    return new RegistryError(registry, "digest-mismatch", `the daemon's pull: ${m}`);
  }
  return undefined;
}
