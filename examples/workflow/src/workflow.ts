import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type ContainerExecutor,
  type ContainerSpec,
  formatPlan,
  type ImageId,
  runContainer,
} from "@contexec/core";

/** One step: a command run in the image, reading /in and writing /out. */
export interface Step {
  name: string;
  command: string[];
  env?: Record<string, string>;
}

export interface StepResult {
  name: string;
  exitCode: number;
  seconds: number;
  /** The step's output folder: the next step's /in. */
  output: string;
}

/** A step that ended with a non-zero exit code; the steps after it did not run. */
export class StepFailedError extends Error {
  constructor(
    readonly step: string,
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(`step "${step}" exited with ${exitCode}${stderr ? `: ${stderr.trim().split("\n").at(-1)}` : ""}`);
  }
}

/** The container spec of a step: its input read-only at /in, its own fresh output folder at /out, no network. */
export function stepSpec(image: string, step: Step, input: string, output: string): ContainerSpec {
  return {
    image,
    command: step.command,
    ...(step.env && { env: step.env }),
    mounts: [
      { type: "bind", source: input, target: "/in", readOnly: true },
      { type: "bind", source: output, target: "/out" },
    ],
    workdir: "/out",
    network: "none",
    labels: { "workflow.step": step.name },
  };
}

/**
 * A miniature workflow engine: runs `steps` in order on any executor, the first reading `input`,
 * each next one reading the previous one's output folder (`workDir/<step>`). Each step's stdout
 * and stderr are kept beside its output (`<step>.stdout`, `<step>.stderr`). Stops at the first
 * failing step. The backend is the executor's business: nothing here names Docker or Apptainer.
 */
export async function runWorkflow(
  executor: ContainerExecutor,
  image: ImageId | string,
  steps: readonly Step[],
  dirs: { input: string; work: string },
  onStep: (result: StepResult, stdout: string) => void = () => {},
): Promise<StepResult[]> {
  const results: StepResult[] = [];
  let input = dirs.input;
  for (const step of steps) {
    const output = join(dirs.work, step.name);
    await rm(output, { recursive: true, force: true });
    await mkdir(output, { recursive: true });
    const started = Date.now();
    const r = await runContainer(executor, stepSpec(image, step, input, output));
    const stdout = r.stdout.toString();
    await writeFile(join(dirs.work, `${step.name}.stdout`), r.stdout);
    await writeFile(join(dirs.work, `${step.name}.stderr`), r.stderr);
    const result = { name: step.name, exitCode: r.exitCode, seconds: (Date.now() - started) / 1000, output };
    results.push(result);
    onStep(result, stdout);
    if (r.exitCode !== 0) throw new StepFailedError(step.name, r.exitCode, r.stderr.toString());
    input = output;
  }
  return results;
}

/** Each step's plan as a bash script: what the workflow would run, without running it. */
export async function planWorkflow(
  executor: ContainerExecutor,
  image: string,
  steps: readonly Step[],
  dirs: { input: string; work: string; archive?: string },
): Promise<string[]> {
  const scripts: string[] = [];
  let input = dirs.input;
  for (const step of steps) {
    const output = join(dirs.work, step.name);
    const plan = await executor.plan(stepSpec(image, step, input, output), {
      ...(dirs.archive !== undefined && { archive: dirs.archive }),
      checkHostPaths: false,
    });
    scripts.push(formatPlan(plan));
    input = output;
  }
  return scripts;
}
