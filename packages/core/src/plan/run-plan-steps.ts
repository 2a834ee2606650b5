import { mkdir, rm, rmdir, symlink, writeFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import type { PlanStep } from "./run-plan.js";

/**
 * Carries out plan steps on this machine, in order: what a formatted plan's script does with
 * mkdir, printf, rm, rmdir and ln -s. Throws the first failure of a step that is not optional
 * (the caller then runs the plan's `after` steps); `rmdir` and `remove` never fail on what is
 * already gone.
 */
export async function runPlanSteps(steps: readonly PlanStep[]): Promise<void> {
  for (const step of steps) {
    switch (step.op) {
      case "mkdir":
        await mkdir(step.path, { recursive: true, mode: step.mode });
        break;
      case "write":
        try {
          await writeFile(step.path, step.content);
        } catch (err) {
          if (!step.optional) throw err;
        }
        break;
      case "remove":
        await rm(step.path, { recursive: true, force: true });
        break;
      case "rmdir":
        await removeEmptyFolder(step.path);
        break;
      case "symlink":
        await rm(step.path, { force: true });
        await symlink(step.target, step.path);
        break;
    }
  }
}

/** Runs every step, whatever fails: for clean-up, where one failure must not keep the rest from running. */
export async function runCleanupSteps(steps: readonly PlanStep[]): Promise<void> {
  for (const step of steps) await runPlanSteps([step]).catch(() => {});
}

// A cgroup whose last process just exited can stay busy for a moment while the kernel lets go.
async function removeEmptyFolder(path: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await rmdir(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EBUSY") return;
      await delay(50);
    }
  }
}
