import { execFileSync } from "node:child_process";
import { SETUP_REGISTRY_SCRIPT, startTestRegistries, type TestRegistries } from "@contexec/registry/testing";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The registries of this run (see startTestRegistries), or null when none could be started. */
    registries: TestRegistries | null;
    /** Why there are no registries, when `registries` is null. */
    registriesUnavailable: string;
  }
}

/**
 * Starts the test registries once per run (Debian's docker-registry, installed by
 * scripts/setup-registry.sh when missing) and stops them when the run ends. Where they cannot
 * start, the tests that need them skip, saying why.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  try {
    execFileSync(SETUP_REGISTRY_SCRIPT, { stdio: ["ignore", "ignore", "inherit"] });
    const started = await startTestRegistries();
    project.provide("registries", started.registries);
    project.provide("registriesUnavailable", "");
    return () => started.stop();
  } catch (err) {
    const reason = `no test registry: ${(err as Error).message}`;
    console.warn(`[registry setup] ${reason}`);
    project.provide("registries", null);
    project.provide("registriesUnavailable", reason);
    return async () => {};
  }
}
