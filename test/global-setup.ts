import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { DockerExecutor } from "@contexec/docker";
import { ApptainerExecutor } from "@contexec/singularity";
import type { TestProject } from "vitest/node";
import { RUNTIME_NAMES, type RuntimeAvailability, type RuntimeName, selectedRuntimes } from "./runtimes.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Folder holding the fixture archives busybox.tar and layered.tar. */
    fixturesDir: string;
    /** Which runtimes this run tests, and why not. */
    runtimes: Record<RuntimeName, RuntimeAvailability>;
  }
}

/**
 * Builds (or finds) the fixture images once per run (no Docker needed; CONTEXEC_FIXTURES names a
 * folder built already), and finds which runtimes to test: those CONTEXEC_RUNTIMES names, which
 * must work, else every runtime that answers here (one that does not is skipped, with why).
 */
export default async function setup(project: TestProject): Promise<void> {
  const selected = selectedRuntimes();
  const runtimes = Object.fromEntries(
    await Promise.all(RUNTIME_NAMES.map(async (name) => [name, await availability(name, selected)] as const)),
  ) as Record<RuntimeName, RuntimeAvailability>;
  for (const [name, status] of Object.entries(runtimes)) {
    if (!status.available && selected?.includes(name as RuntimeName)) {
      throw new Error(`CONTEXEC_RUNTIMES names ${name}, but it cannot be used here: ${status.reason}`);
    }
    console.log(`[runtimes] ${name}: ${status.available ? "tested" : `not tested (${status.reason})`}`);
  }
  project.provide("runtimes", runtimes);

  let dir = process.env.CONTEXEC_FIXTURES;
  if (!dir) {
    const script = fileURLToPath(new URL("../scripts/build-fixtures.sh", import.meta.url));
    dir = execFileSync(script, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  }
  project.provide("fixturesDir", dir);
}

async function availability(
  name: RuntimeName,
  selected: RuntimeName[] | undefined,
): Promise<RuntimeAvailability> {
  if (selected && !selected.includes(name)) {
    return { available: false, reason: `CONTEXEC_RUNTIMES=${process.env.CONTEXEC_RUNTIMES} leaves it out` };
  }
  const executor = name === "docker" ? new DockerExecutor() : new ApptainerExecutor();
  try {
    await executor.info();
    return { available: true };
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  } finally {
    await executor.close().catch(() => {});
  }
}
