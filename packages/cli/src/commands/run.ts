import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants, existsSync, openSync } from "node:fs";
import { access, mkdir, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  type Container,
  type ContainerExecutor,
  type ContainerSpec,
  checkCapabilities,
  createExecutor,
  formatPlan,
  htmlToText,
  InvalidConfigError,
  type PlanStep,
  type StatusUpdate,
  type Supervision,
  validateSpec,
} from "@contexec/core";
import { type Command, type CommandContext, parseCommandArgs } from "../command.js";
import { RUN_STATE_ENV, UsageError } from "../exit-codes.js";
import type { Job } from "../job/job.js";
import { readJobFile } from "../job/read-job-file.js";
import { chooseRuntime, readProfile } from "../runtime/choose-runtime.js";
import { resolveImage } from "../runtime/resolve-image.js";
import { contexecStateDir } from "../runtime/slurm-config.js";
import { ProgressReporter } from "../terminal/progress-line.js";
import { PullProgressBoard } from "../terminal/pull-progress.js";

const HELP = `Usage: contexec run JOB.yaml [SERVICE] [options]

Runs a job file's container to its end, streaming its output, and exits with its exit code.
A job file is a compose service (image, command, environment, volumes, ...) with optional
runtime: and slurm: chapters, a compose file with services: (SERVICE picks one), or a DockSing
file (remotedir, slurm, container) as it is.

Options:
  --runtime NAME     docker, apptainer, singularity or slurm (default: the job's runtime:,
                     else $CONTEXEC_RUNTIME, else docker). On slurm the container is a batch
                     job (Apptainer inside unless runtime: options say inner: docker); the
                     slurm: chapter gives its sbatch options, and its files go to remotedir,
                     else $CONTEXEC_SLURM_WORKDIR, else ~/.local/state/contexec/slurm (a folder
                     every node must see)
  --dry-run          print the plan as a bash script instead of running it (nothing is loaded,
                     created or started); on slurm it writes the batch script (shown whole)
                     and submits it with sbatch --wait
  --profile FILE     with --dry-run: plan for the machine this profile describes (written there by
                     contexec probe --json); the runtime need not be installed here
  --set KEY=VALUE    change a key of the job file (repeatable): --set command="echo hi",
                     --set environment.NAME=value, --set deploy.resources.limits.memory=1g
  --status           supervise the job by the /service convention: a folder bound at /service,
                     each new /service/status.html printed on stderr as it comes (HTML reduced
                     to text), /service/result.txt written to stdout at the end (or to --result);
                     Ctrl-C first appends ABORT to /service/notifications.txt and gives the job
                     its grace period to stop by itself, then stops it as below
  --result FILE      with or without --status: the job's /service/result.txt goes to FILE
  --detach, -d       run in the background; prints where its output and exit code go
  --quiet, -q        no progress or warnings on stderr
  --help, -h         this help

Ctrl-C (SIGINT) or SIGTERM stops the container: the job's stop_signal (else the image's
STOPSIGNAL, else SIGTERM), stop_grace_period (default 10s), then SIGKILL; a second Ctrl-C kills
at once. Nothing is left behind.

Exit codes: the job's own (128+n when signal n ended it); 64 bad command line; 65 job refused
before anything started (job file, image, a capability the runtime lacks); 125 the runtime
failed; 126 the command cannot be executed; 127 the command is not in the image.`;

export const runCommand: Command = {
  name: "run",
  help: HELP,
  run,
};

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(ctx.args, {
    runtime: { type: "string" },
    "dry-run": { type: "boolean" },
    profile: { type: "string" },
    set: { type: "string", multiple: true },
    status: { type: "boolean" },
    result: { type: "string" },
    detach: { type: "boolean", short: "d" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.stdout.write(`${HELP}\n`);
    return 0;
  }
  const [file, service, ...extra] = positionals;
  if (file === undefined) throw new UsageError("name a job file: contexec run JOB.yaml");
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  if (values.profile !== undefined && !values["dry-run"])
    throw new UsageError("--profile plans for another machine: use it with --dry-run");
  if (values.detach && values["dry-run"]) throw new UsageError("--detach and --dry-run do not go together");

  const job = readJobFile(file, {
    cwd: ctx.cwd,
    env: ctx.env,
    ...(service !== undefined && { service }),
    ...(values.set && { set: values.set }),
  });
  const resultFile = values.result !== undefined ? resolve(ctx.cwd, values.result) : undefined;
  // Checked before anything runs: a job's result must not be lost to a folder that is not there.
  if (resultFile !== undefined && !values["dry-run"]) {
    await access(dirname(resultFile), constants.W_OK).catch(() => {
      throw new UsageError(`--result ${values.result}: cannot write into ${dirname(resultFile)}`);
    });
  }
  const supervised = values.status === true || values.result !== undefined;
  // The convention's folder, private to this run, unless the job file gives a supervision itself.
  if (supervised) job.spec.supervision ??= {};
  const say = (line: string) => {
    if (!values.quiet) ctx.stderr.write(`contexec: ${line}\n`);
  };
  for (const w of job.warnings) say(`warning: ${w}`);
  const runtime = chooseRuntime(values.runtime, job.runtime, ctx.env, {
    chapter: job.slurm,
    jobDir: dirname(job.file),
  });
  // On SLURM the `slurm:` chapter's job-name names the job (the container's name, when it has none).
  if (runtime.jobName !== undefined && job.spec.name === undefined) job.spec.name = runtime.jobName;
  if (runtime.ignoredOptions)
    say(`warning: the job's runtime options are for ${job.runtime?.name}, not ${runtime.name}: left out`);

  if (values.detach) return detach(ctx, job, runtime.name);

  const executor = await createExecutor(runtime.config).catch((err: unknown) => {
    // The job's runtime options are the backend's to check: say where they came from.
    if (err instanceof InvalidConfigError && job.runtime && !runtime.ignoredOptions)
      throw new InvalidConfigError(`${job.file}: runtime: ${err.message}`, { cause: err });
    throw err;
  });
  try {
    if (values["dry-run"]) return await dryRun(ctx, job, executor, values.profile, say);
    return await runJob(ctx, job, executor, say, {
      printStatus: values.status === true,
      ...(resultFile !== undefined && { resultFile }),
    });
  } finally {
    await executor.close();
  }
}

async function dryRun(
  ctx: CommandContext,
  job: Job,
  executor: ContainerExecutor,
  profilePath: string | undefined,
  say: (line: string) => void,
): Promise<number> {
  // Planned with a profile even here, so the script stands alone: its scratch folders are its own,
  // not the executor's (which is gone when this command ends).
  const elsewhere = profilePath !== undefined;
  const profile = elsewhere ? await readProfile(profilePath, executor.runtime) : await executor.info();
  const resolved = await resolveImage(executor, job.image, { dryRun: true, log: say, env: ctx.env });
  try {
    const spec: ContainerSpec = { ...job.spec, image: resolved.image };
    // Bind sources the run would create are not there yet; the others must be (on this machine).
    if (!elsewhere) {
      const creatable = new Set(job.createHostPaths);
      await validateSpec({
        ...spec,
        mounts: spec.mounts?.filter((m) => m.type !== "bind" || !creatable.has(m.source)),
      });
    }
    const plan = await executor.plan(spec, {
      profile,
      ...(resolved.archive !== undefined && { archive: resolved.archive }),
      checkHostPaths: false,
    });
    resolved.patchPlan?.(plan);
    plan.before.unshift(...createSteps(job.createHostPaths, !elsewhere));
    for (const g of plan.ignored) say(`warning: ${g.field} is left out: ${g.reason}`);
    ctx.stdout.write(formatPlan(plan));
    return 0;
  } finally {
    await resolved.dispose();
  }
}

/** Plan steps making the bind sources a job creates (only the missing ones, when planning here). */
function createSteps(paths: readonly string[], onlyMissing: boolean): PlanStep[] {
  return paths
    .filter((p) => !onlyMissing || !existsSync(p))
    .map((path) => ({
      op: "mkdir",
      path,
      mode: 0o755,
      why: "a bind source the job file creates when missing",
    }));
}

/** What `--status` and `--result` ask of a run. */
interface Supervising {
  printStatus: boolean;
  resultFile?: string;
}

async function runJob(
  ctx: CommandContext,
  job: Job,
  executor: ContainerExecutor,
  say: (line: string) => void,
  supervising: Supervising,
): Promise<number> {
  const abort = new AbortController();
  let container: Container | undefined;
  let signals = 0;
  const graceMs = job.stopGraceMs ?? 10_000;
  let started = false;
  let abortTimer: NodeJS.Timeout | undefined;
  /** The stop signal, then SIGKILL after the grace period. */
  const stopContainer = () =>
    void container?.kill({ ...(job.stopSignal && { signal: job.stopSignal }), graceMs }).catch(() => {});
  const stop = (first: boolean) => {
    if (!container) return;
    const supervision = container.supervision;
    if (first && supervision) {
      // The convention's way first: ABORT, and the grace period for the job to stop by itself.
      void supervision.notify("ABORT").catch(() => {});
      abortTimer = setTimeout(() => {
        say(`the job did not stop within ${graceMs / 1000}s of ABORT: stopping the container`);
        stopContainer();
      }, graceMs);
    } else if (first) stopContainer();
    else void container.kill({ signal: "SIGKILL", graceMs: 0 }).catch(() => {});
  };
  let firstSignal: NodeJS.Signals | undefined;
  /** Stops the running container for the signals received so far, saying how at the first. */
  const stopFor = (signal: NodeJS.Signals) => {
    if (signals === 1) {
      say(
        container?.supervision
          ? `${signal}: asking the job to stop (ABORT in its notifications), then its stop signal after ${graceMs / 1000}s; Ctrl-C again to kill it now`
          : `${signal}: stopping the container (${job.stopSignal ?? "its stop signal"}, then SIGKILL after ${graceMs / 1000}s; Ctrl-C again to kill it now)`,
      );
    }
    stop(signals === 1);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    firstSignal ??= signal;
    abort.abort(new Error(`${signal} received`));
    // Before the container runs, the abort stops what is under way (a load, a conversion); one
    // that comes while it starts (its output may already be out) is acted on once it runs.
    if (!started) return;
    stopFor(signal);
  };
  const signalNames: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signalNames) process.on(s, onSignal);
  let progress: ProgressReporter | undefined;
  // A pull's layers, on a terminal only (as a load's bar): a log gets the "pulling" line.
  const pullBoard = ctx.stderr.isTTY === true ? new PullProgressBoard(ctx.stderr) : undefined;
  try {
    const resolved = await resolveImage(executor, job.image, {
      dryRun: false,
      signal: abort.signal,
      log: say,
      env: ctx.env,
      // One bar for the whole load: the checks, then the conversion or the daemon's load.
      onProgress: ({ stage, bytesDone, bytesTotal }) => {
        if (ctx.stderr.isTTY !== true || stage === "done") return;
        progress ??= new ProgressReporter(ctx.stderr, `loading ${basename(job.spec.image)}`);
        progress.update(bytesDone, bytesTotal);
      },
      ...(pullBoard && { onPullProgress: (p) => pullBoard.update(p) }),
    });
    progress?.finish();
    pullBoard?.finish();
    await resolved.dispose();
    if (job.spec.unsupported === "ignore") {
      // What create() will leave out, said before it runs (a dry run says it from the plan).
      const { capabilities } = await executor.info();
      for (const g of checkCapabilities(job.spec, capabilities, executor.runtime))
        say(`warning: ${g.field} is left out: ${g.reason}`);
    }
    for (const path of job.createHostPaths) await mkdir(path, { recursive: true });
    if (abort.signal.aborted) return 130;
    const created = await executor.create({ ...job.spec, image: resolved.image });
    container = created;
    try {
      const copied = [pipeTo(created.stdout, ctx.stdout), pipeTo(created.stderr, ctx.stderr)];
      // Every status, in order, to the end (the last one may come after the exit).
      const statuses =
        supervising.printStatus && created.supervision
          ? (async () => {
              for await (const update of (created.supervision as Supervision).statusUpdates())
                ctx.stderr.write(formatStatus(update));
            })().catch(() => {})
          : undefined;
      if (abort.signal.aborted) return 130;
      await created.start();
      started = true;
      // A signal that came while it was starting: stop it now, as if it had come after.
      if (firstSignal !== undefined) stopFor(firstSignal);
      if (created.stdin) {
        const stdin = created.stdin;
        stdin.on("error", () => {});
        ctx.stdin.pipe(stdin);
        ctx.stdin.on("end", () => stdin.end());
      }
      const status = await created.wait();
      clearTimeout(abortTimer);
      await Promise.all([...copied, statuses]);
      if (status.oomKilled) say("the container ran out of memory (killed by the OOM killer)");
      if (supervising.resultFile !== undefined) {
        if (status.result !== undefined) await writeFile(supervising.resultFile, status.result);
        else {
          // No result from this run: an earlier run's file must not pass for it.
          await rm(supervising.resultFile, { force: true });
          ctx.stderr.write(`contexec: the job wrote no result: ${supervising.resultFile} not written\n`);
        }
      } else if (supervising.printStatus && status.result !== undefined) {
        ctx.stdout.write(status.result);
      }
      return status.exitCode;
    } finally {
      clearTimeout(abortTimer);
      ctx.stdin.unpipe();
      ctx.stdin.pause();
      await created.remove();
    }
  } finally {
    progress?.finish();
    for (const s of signalNames) process.off(s, onSignal);
  }
}

/** A status update for stderr: its number, then its text (HTML reduced), each line indented. */
export function formatStatus(update: StatusUpdate): string {
  const lines = htmlToText(update.content).trimEnd().split("\n");
  return `contexec: status ${update.sequence}:\n${lines.map((l) => `  ${l}\n`).join("")}`;
}

/** Copies a container stream to ours as it comes, without ending ours; resolves at its end. */
function pipeTo(from: NodeJS.ReadableStream, to: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    from.on("data", (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
    from.once("end", resolve);
    from.once("close", resolve);
    from.once("error", () => resolve());
  });
}

/** Where detached runs keep their output: $XDG_STATE_HOME/contexec/runs, else ~/.local/state/contexec/runs. */
export function runsDir(env: NodeJS.ProcessEnv): string {
  return join(contexecStateDir(env), "runs");
}

/**
 * Starts this same command again without --detach, in the background (its own session, so the
 * terminal's Ctrl-C does not reach it), its output in a state folder; prints where.
 */
async function detach(ctx: CommandContext, job: Job, runtime: string): Promise<number> {
  const name = `${basename(job.file).replace(/\.[^.]*$/, "")}${job.service ? `-${job.service}` : ""}`;
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  const dir = join(runsDir(ctx.env), `${name}-${stamp}-${randomBytes(3).toString("hex")}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const args = ctx.args.filter((a) => a !== "--detach" && a !== "-d");
  const script = process.argv[1] as string;
  const child = spawn(process.execPath, [...process.execArgv, script, "run", ...args, "--runtime", runtime], {
    cwd: ctx.cwd,
    detached: true,
    stdio: ["ignore", openSync(join(dir, "stdout"), "w"), openSync(join(dir, "stderr"), "w")],
    env: { ...ctx.env, [RUN_STATE_ENV]: dir },
  });
  child.unref();
  await writeFile(join(dir, "pid"), `${child.pid}\n`);
  ctx.stdout.write(`${dir}\n`);
  ctx.stderr.write(
    `contexec: ${name} runs in the background (pid ${child.pid}); output in ${dir}/stdout and ${dir}/stderr, its exit code in ${dir}/exit when done; stop it with: kill ${child.pid}\n`,
  );
  return 0;
}
