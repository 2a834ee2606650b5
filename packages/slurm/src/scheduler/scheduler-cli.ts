import { join } from "node:path";
import { RuntimeError, RuntimeUnavailableError } from "@contexec/core";
import { execa } from "execa";

export const SCHEDULER_COMMANDS = [
  "sbatch",
  "sacct",
  "squeue",
  "scontrol",
  "scancel",
  "sinfo",
  "srun",
] as const;
export type SchedulerCommand = (typeof SCHEDULER_COMMANDS)[number];

export interface SchedulerCallResult {
  ok: boolean;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** The call did not answer within its time. */
  timedOut: boolean;
  /** The command could not be started (not installed). */
  missing: boolean;
}

export interface SchedulerCliOptions {
  /** A folder holding the SLURM commands; default: found on PATH. */
  binDir?: string | undefined;
  /** Limit for one call, ms. */
  timeoutMs: number;
}

/**
 * Runs SLURM's commands: argv only, no shell, each call with a deadline. A failed or timed-out
 * call is reported, not thrown: the caller decides what "no answer" means (for tracking:
 * unknown, ask again later).
 */
export class SchedulerCli {
  readonly #options: SchedulerCliOptions;

  constructor(options: SchedulerCliOptions) {
    this.#options = options;
  }

  /** The command's path (or bare name, looked up on PATH). */
  command(name: SchedulerCommand): string {
    return this.#options.binDir ? join(this.#options.binDir, name) : name;
  }

  async call(
    name: SchedulerCommand,
    args: string[],
    options: { timeoutMs?: number; signal?: AbortSignal; cwd?: string } = {},
  ): Promise<SchedulerCallResult> {
    const r = await execa(this.command(name), args, {
      reject: false,
      stdin: "ignore",
      timeout: options.timeoutMs ?? this.#options.timeoutMs,
      ...(options.signal && { cancelSignal: options.signal }),
      ...(options.cwd && { cwd: options.cwd }),
    });
    const missing = (r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
    return {
      ok: r.exitCode === 0 && !r.timedOut,
      exitCode: r.exitCode,
      stdout: String(r.stdout ?? ""),
      stderr: String(r.stderr ?? ""),
      timedOut: r.timedOut === true,
      missing,
    };
  }

  /** Like {@link call}, but a failure is thrown as RuntimeUnavailableError (missing) or RuntimeError. */
  async run(
    name: SchedulerCommand,
    args: string[],
    options: { timeoutMs?: number; signal?: AbortSignal; cwd?: string } = {},
  ): Promise<string> {
    const r = await this.call(name, args, options);
    if (r.missing) {
      throw new RuntimeUnavailableError(
        "slurm",
        `${this.command(name)} was not found: install SLURM's client commands (Debian: slurm-client), or set slurm.binDir`,
      );
    }
    if (!r.ok) {
      const why = r.timedOut
        ? `did not answer within ${options.timeoutMs ?? this.#options.timeoutMs} ms`
        : `exited ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`;
      throw new RuntimeError("slurm", `${name} ${args.join(" ")} ${why}`, {
        ...(r.exitCode !== undefined && { runtimeExitCode: r.exitCode }),
        stderr: r.stderr,
      });
    }
    return r.stdout;
  }
}
