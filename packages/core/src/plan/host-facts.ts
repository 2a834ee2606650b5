import { hostname, release } from "node:os";
import type { HostFacts } from "./run-plan.js";

/** This machine and this process's user, as a profile records them. */
export function hostFacts(): HostFacts {
  return {
    hostname: hostname(),
    uid: process.getuid?.() ?? -1,
    gid: process.getgid?.() ?? -1,
    kernel: release(),
    arch: process.arch,
  };
}
