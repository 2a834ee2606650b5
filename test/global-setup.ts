import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
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
  if (name === "slurm") return slurmAvailability();
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

/**
 * The test cluster answers with a node that takes jobs, and Apptainer (which runs inside its
 * jobs) works here: this machine is the cluster's node.
 */
async function slurmAvailability(): Promise<RuntimeAvailability> {
  let states: string;
  try {
    const r = await promisify(execFile)("sinfo", ["--noheader", "--format=%T"], { timeout: 20_000 });
    states = r.stdout.trim();
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why = e.code === "ENOENT" ? "sinfo is not installed" : e.stderr?.trim() || e.message;
    return {
      available: false,
      reason: `no SLURM cluster answers (scripts/setup-slurm.sh starts one): ${why}`,
    };
  }
  if (!/idle|mixed|allocated|completing/.test(states))
    return { available: false, reason: `no SLURM node takes jobs (sinfo: ${states || "no nodes"})` };
  const inner = await availability("apptainer", undefined);
  if (!inner.available)
    return { available: false, reason: `Apptainer, which runs in its jobs: ${inner.reason}` };
  return { available: true };
}
