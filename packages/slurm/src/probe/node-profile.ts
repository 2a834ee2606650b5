import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidConfigError, RuntimeError, type RuntimeProfile } from "@contexec/core";
import type { SchedulerCli } from "../scheduler/scheduler-cli.js";

/** How long a probed profile is trusted (nodes get new software now and then). */
const PROFILE_MAX_AGE_MS = 24 * 3600 * 1000;

/** The node probe script beside this module, run by this Node (the compiled package). */
export function defaultNodeProbeCommand(): string[] {
  const script = fileURLToPath(new URL("../node/print-node-profile.js", import.meta.url));
  if (existsSync(script)) return [process.execPath, script];
  // Run from the sources by a Node that loads TypeScript (a test's child under a loader): the
  // same Node with the same loader runs the script's source.
  const source = fileURLToPath(new URL("../node/print-node-profile.ts", import.meta.url));
  if (import.meta.url.endsWith(".ts") && existsSync(source) && process.execArgv.length > 0) {
    return [process.execPath, ...process.execArgv, source];
  }
  throw new InvalidConfigError(
    `the node probe script ${script} is missing (running from the sources?): build the package, or give slurm.nodeProbeCommand, or give nodeProfile`,
  );
}

export interface NodeProbeInput {
  cli: SchedulerCli;
  inner: string;
  innerConfig: Record<string, unknown>;
  command: string[];
  /** Where the job would run: the same placement as the containers'. */
  placement: string[];
  /** A folder every node sees, for the cached profile. */
  cacheDir: string;
  timeoutMs: number;
}

/**
 * The inner runtime's profile on a compute node: read from the cache (a file beside the shared
 * images, younger than a day) or measured with `srun` running the node probe there, then cached.
 */
export async function nodeProfile(input: NodeProbeInput): Promise<RuntimeProfile> {
  const key = createHash("sha256")
    .update(JSON.stringify([input.inner, input.innerConfig, input.command, input.placement]))
    .digest("hex")
    .slice(0, 32);
  const file = join(input.cacheDir, "node-profiles", `${input.inner}-${key}.json`);
  const cached = await readCached(file);
  if (cached) return cached;
  const args = [
    "--nodes=1",
    "--ntasks=1",
    "--job-name=contexec-node-probe",
    "--quiet",
    ...input.placement,
    "--",
    ...input.command,
    input.inner,
    JSON.stringify(input.innerConfig),
  ];
  const r = await input.cli.call("srun", args, { timeoutMs: input.timeoutMs });
  const profile = r.ok ? profileFromOutput(r.stdout) : undefined;
  if (!profile) {
    throw new RuntimeError(
      "slurm",
      `probing ${input.inner} on a compute node (srun ${args.join(" ")}) ${
        r.timedOut
          ? `did not finish within ${input.timeoutMs} ms`
          : `failed: ${(r.stderr || r.stdout).trim()}`
      }; give the node's profile as nodeProfile instead`,
      { ...(r.exitCode !== undefined && { runtimeExitCode: r.exitCode }), stderr: r.stderr },
    );
  }
  await mkdir(join(input.cacheDir, "node-profiles"), { recursive: true });
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify(profile, null, 2)}\n`);
  await rename(tmp, file).catch(async (err) => {
    await rm(tmp, { force: true });
    throw err;
  });
  return profile;
}

/** The profile in the probe's output: its last line that is a JSON object with a runtime and capabilities. */
export function profileFromOutput(stdout: string): RuntimeProfile | undefined {
  const lines = stdout.trim().split("\n").reverse();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      const v = JSON.parse(line) as RuntimeProfile;
      if (
        typeof v.runtime === "string" &&
        typeof v.capabilities === "object" &&
        typeof v.planner === "object"
      )
        return v;
    } catch {
      // not the profile line
    }
  }
  return undefined;
}

async function readCached(file: string): Promise<RuntimeProfile | undefined> {
  try {
    const profile = JSON.parse(await readFile(file, "utf8")) as RuntimeProfile;
    if (Date.now() - Date.parse(profile.probedAt) > PROFILE_MAX_AGE_MS) return undefined;
    return profile;
  } catch {
    return undefined;
  }
}
