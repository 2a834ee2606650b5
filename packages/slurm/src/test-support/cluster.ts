import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RuntimeProfile } from "@contexec/core";
import { ApptainerExecutor } from "@contexec/singularity";
import { execa } from "execa";
import type { SlurmExecutorConfig, SlurmOptions } from "../config/slurm-config.js";
import { SCHEDULER_COMMANDS, type SchedulerCommand } from "../scheduler/scheduler-cli.js";
import { SlurmExecutor } from "../slurm-executor.js";

let profile: Promise<RuntimeProfile> | undefined;
/** The node's Apptainer profile: this machine is the cluster's node, so its own info() is it. */
export function localApptainerProfile(): Promise<RuntimeProfile> {
  profile ??= (async () => {
    const local = new ApptainerExecutor();
    try {
      const { details: _details, ...p } = await local.info();
      return p;
    } finally {
      await local.close();
    }
  })();
  return profile;
}

/** A folder standing for the cluster's shared file system (one node: any local folder is shared). */
export async function sharedFolder(name: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `contexec-slurm-${name}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** An executor on the test cluster with Apptainer inside, polling fast (tests are short). */
export async function testExecutor(
  workDir: string,
  slurm: Partial<SlurmOptions> = {},
  config: Partial<SlurmExecutorConfig> = {},
): Promise<SlurmExecutor> {
  return new SlurmExecutor({
    runtime: "slurm",
    inner: "apptainer",
    nodeProfile: await localApptainerProfile(),
    ...config,
    slurm: { workDir, pollIntervalMs: 300, maxPollIntervalMs: 2000, ...slurm },
  });
}

/**
 * A folder of wrappers for SLURM's commands (give it as slurm.binDir): each logs its name and
 * the time to `log`, then runs the real command. Counts what the executor asks of the scheduler.
 */
export async function countingBinDir(
  dir: string,
): Promise<{ binDir: string; calls: () => Promise<SchedulerCall[]> }> {
  const binDir = join(dir, "bin");
  const log = join(dir, "calls.log");
  await mkdir(binDir, { recursive: true });
  await writeFile(log, "");
  for (const name of SCHEDULER_COMMANDS) {
    const real = (await execa("sh", ["-c", `command -v ${name}`], { reject: false })).stdout.trim();
    if (!real) continue;
    const script = `#!/bin/sh\nprintf '%s %s\\n' "$(date +%s%3N)" ${name} >> '${log}'\nexec '${real}' "$@"\n`;
    await writeFile(join(binDir, name), script, { mode: 0o755 });
  }
  return {
    binDir,
    calls: async () =>
      (await readFile(log, "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const [at, name] = line.split(" ");
          return { at: Number(at), name: name as SchedulerCommand };
        }),
  };
}

export interface SchedulerCall {
  at: number;
  name: SchedulerCommand;
}
