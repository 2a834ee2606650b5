import { InvalidSpecError, type Resources } from "@contexec/core";
import type { ExtraOptionValue } from "../config/slurm-config.js";
import { parseTimeLimit, signalLeadSeconds, timeLimitOption } from "./time-limit.js";

/** What one job's sbatch options are made from: data only. */
export interface SbatchOptionsInput {
  jobName: string;
  /** The file SLURM writes the batch script's own output to (not the container's). */
  logFile: string;
  /** The job's working folder. */
  chdir: string;
  partition?: string | undefined;
  account?: string | undefined;
  qos?: string | undefined;
  timeLimit?: string | number | undefined;
  /** Seconds before the time limit to signal the batch shell (see signalLeadSeconds). */
  signalBeforeLimitSec: number;
  /** The signal the batch shell gets then, and forwards to the container (its stop signal). */
  stopSignal: NodeJS.Signals;
  resources?: Resources | undefined;
  extra?: Record<string, ExtraOptionValue> | undefined;
}

const MIB = 1024 * 1024;

/**
 * The sbatch long options of one job, in order: name, placement (partition, account, qos), time
 * limit and the stop signal before it, resources, files, then the configured extras. Pure.
 *
 * Resources: `cpus` -> `--cpus-per-task` (whole CPUs, rounded up), `memoryBytes` -> `--mem` (MiB,
 * rounded up), `gpus.count` (or the number of `deviceIds`) -> `--gres=gpu:N`.
 */
export function renderSbatchOptions(input: SbatchOptionsInput): string[] {
  const options = [`--job-name=${input.jobName}`];
  if (input.partition !== undefined) options.push(`--partition=${input.partition}`);
  if (input.account !== undefined) options.push(`--account=${input.account}`);
  if (input.qos !== undefined) options.push(`--qos=${input.qos}`);
  // The partition's default limit is unknown here: the lead is then the configured one.
  const limit = input.timeLimit !== undefined ? parseTimeLimit(input.timeLimit) : Number.POSITIVE_INFINITY;
  if (input.timeLimit !== undefined) options.push(`--time=${timeLimitOption(input.timeLimit)}`);
  // B: only the batch shell gets it; the job script forwards it to the container and waits.
  const signal = input.stopSignal.replace(/^SIG/, "");
  options.push(`--signal=B:${signal}@${signalLeadSeconds(limit, input.signalBeforeLimitSec)}`);
  options.push(...resourceOptions(input.resources));
  options.push(
    "--nodes=1",
    "--ntasks=1",
    `--chdir=${input.chdir}`,
    `--output=${input.logFile}`,
    `--error=${input.logFile}`,
    // A requeued job adds to its log rather than wiping the first attempt's.
    "--open-mode=append",
  );
  for (const [name, value] of Object.entries(input.extra ?? {})) {
    options.push(value === true ? `--${name}` : `--${name}=${value}`);
  }
  return options;
}

/** The options that reserve a spec's resources. Pure; throws InvalidSpecError for what SLURM cannot ask. */
export function resourceOptions(resources: Resources | undefined): string[] {
  const options: string[] = [];
  if (!resources) return options;
  if (resources.cpus !== undefined) options.push(`--cpus-per-task=${Math.max(1, Math.ceil(resources.cpus))}`);
  if (resources.memoryBytes !== undefined) {
    options.push(`--mem=${Math.max(1, Math.ceil(resources.memoryBytes / MIB))}M`);
  }
  const gpus = resources.gpus;
  if (gpus) {
    const count = gpus.deviceIds?.length ? gpus.deviceIds.length : gpus.count;
    if (count === "all" || count === undefined) {
      throw new InvalidSpecError([
        {
          path: "resources.gpus.count",
          message:
            'SLURM allocates a number of GPUs, not "all" of a node not chosen yet: give a number (--gres=gpu:N)',
        },
      ]);
    }
    options.push(`--gres=gpu:${count}`);
  }
  return options;
}

/**
 * An option as one `#SBATCH` directive: sbatch reads a directive's words with quotes, escapes
 * and `#` comments of its own. Slurm 22.05 takes `"` to group (spaces, `#` and `'` inside are
 * literal) and a backslash inside quotes to escape `"` and itself, but refuses a backslash before
 * a space outside them; so a value with any such character is written as `--name="value"` with
 * `"` and `\` escaped, and reads back exactly. Values are single lines (the config refuses
 * line breaks).
 */
export function sbatchDirective(option: string): string {
  if (/[\n\r\0]/.test(option))
    throw new Error(`an sbatch option cannot hold a line break: ${JSON.stringify(option)}`);
  const eq = option.indexOf("=");
  if (eq < 0 || !/[\s"'\\#]/.test(option)) return `#SBATCH ${option}`;
  const value = option.slice(eq + 1).replace(/[\\"]/g, "\\$&");
  return `#SBATCH ${option.slice(0, eq)}="${value}"`;
}
