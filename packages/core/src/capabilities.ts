import { UnsupportedError } from "./errors.js";
import type { ContainerSpec } from "./spec.js";

/**
 * What a backend can do on this machine, as data. A backend declares every name, with a reason
 * when it is off; the conformance suite skips a case by the capability it needs and prints why.
 */
export const CAPABILITY_NAMES = [
  /** `network: "none"`: only loopback inside. */
  "network-none",
  /** `network: "bridge"`: a private network namespace with outbound access. */
  "network-bridge",
  /** `network: "host"`: the host's network. */
  "network-host",
  /** `resources.memoryBytes` is enforced. */
  "memory-limit",
  /** `resources.cpus` is enforced. */
  "cpu-limit",
  /** `resources.gpus` can be honoured (a GPU and its driver are present). */
  "gpu",
  /** `ExitStatus.oomKilled` is reported. */
  "oom-detection",
  /** `spec.user` can run the process as another user. */
  "user",
  /** `spec.ports` publishes container ports on the host. */
  "ports",
  /** `exec()` into a running container. */
  "exec",
] as const;
export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

export type CapabilityStatus = { supported: true } | { supported: false; reason: string };
export type Capabilities = Record<CapabilityName, CapabilityStatus>;

export const SUPPORTED: CapabilityStatus = Object.freeze({ supported: true });
export function unsupported(reason: string): CapabilityStatus {
  return { supported: false, reason };
}

/** The capabilities a spec needs, each with the spec field that needs it. */
export function requiredCapabilities(spec: ContainerSpec): { capability: CapabilityName; field: string }[] {
  const needs: { capability: CapabilityName; field: string }[] = [];
  if (spec.network) needs.push({ capability: `network-${spec.network}`, field: "network" });
  if (spec.resources?.memoryBytes !== undefined)
    needs.push({ capability: "memory-limit", field: "resources.memoryBytes" });
  if (spec.resources?.cpus !== undefined) needs.push({ capability: "cpu-limit", field: "resources.cpus" });
  if (spec.resources?.gpus) needs.push({ capability: "gpu", field: "resources.gpus" });
  if (spec.user !== undefined) needs.push({ capability: "user", field: "user" });
  if (spec.ports?.length) needs.push({ capability: "ports", field: "ports" });
  return needs;
}

/**
 * The spec fields this runtime cannot honour. With `spec.unsupported` "error" (the default) the
 * first gap throws {@link UnsupportedError}; with "ignore" the gaps are returned so the backend
 * leaves those fields out.
 */
export function checkCapabilities(
  spec: ContainerSpec,
  capabilities: Capabilities,
  runtime: string,
): { capability: CapabilityName; field: string; reason: string }[] {
  const gaps: { capability: CapabilityName; field: string; reason: string }[] = [];
  for (const need of requiredCapabilities(spec)) {
    const status = capabilities[need.capability];
    if (!status.supported) gaps.push({ ...need, reason: status.reason });
  }
  const first = gaps[0];
  if (first && spec.unsupported !== "ignore") {
    throw new UnsupportedError(
      first.capability,
      `spec.${first.field} cannot be honoured by ${runtime} here: ${first.reason}. ` +
        `Remove it, or set spec.unsupported to "ignore" to run without it.`,
    );
  }
  return gaps;
}
