import {
  describePlan,
  formatPlanCommand,
  formatPlanStep,
  PLAN_SETUP_FAILED_EXIT,
  type RunPlan,
  shellQuote,
} from "@contexec/core";
import type { JobFiles } from "./job-files.js";
import { sbatchDirective } from "./sbatch-options.js";

/** Signals the batch shell passes on to the container (SIGKILL cannot be caught: scancel sends it to every process). */
export const FORWARDED_SIGNALS = ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"] as const;

export interface JobScriptInput {
  /** The inner runtime's plan, made for the compute node. */
  plan: RunPlan;
  /** sbatch long options, written as `#SBATCH` directives. */
  options: string[];
  files: JobFiles;
  /** The container's stop signal ("SIGTERM", "SIGINT"): forwarded as well when it is not in FORWARDED_SIGNALS. */
  stopSignal: NodeJS.Signals;
  /** A folder made while one job prepares the image, so concurrent jobs convert it once. */
  prepareLock?: string | undefined;
}

/**
 * The batch script of one container: the inner plan (image preparation, steps before, the runtime
 * command, steps after) wrapped for a job. Every word goes through core's shellQuote (the plan's
 * commands and steps through formatPlanCommand/formatPlanStep); nothing is string-joined.
 *
 * The script runs the container in the background with stdout and stderr appended to the job's
 * files and stdin fed from the job's stdin file (or /dev/null), passes on the signals it gets
 * (scancel --batch --signal, and `--signal=B:<stop signal>@N` before the time limit), waits, and
 * writes the exit status file atomically (a temporary name, then mv): `phase=container` with the
 * container's code, or `phase=setup` with 125 when the image or a step before could not be
 * prepared.
 */
export function renderJobScript(input: JobScriptInput): string {
  const { plan, files } = input;
  const q = shellQuote;
  const exitTmp = `${files.exit}.tmp`;
  const lines: string[] = ["#!/usr/bin/env bash"];
  for (const option of input.options) lines.push(sbatchDirective(option));
  lines.push(
    "#",
    "# contexec job: a container run by the plan below, on the node SLURM picks.",
    ...describePlan(plan).map((l) => `# ${l}`.trimEnd()),
    "set -u",
    // Without job control a background command ignores SIGINT and SIGQUIT (bash(1)), and the
    // container could not be given them.
    "set -m",
    `contexec_status() {`,
    `  printf 'phase=%s\\ncode=%s\\n' "$1" "$2" > ${q(exitTmp)} && mv -f -- ${q(exitTmp)} ${q(files.exit)}`,
    `}`,
    // A requeued job starts again: the status of an earlier attempt is not this one's.
    `rm -f -- ${q(files.exit)} ${q(exitTmp)}`,
    "contexec_lock_held=0",
    "contexec_on_exit() {",
    ...(input.prepareLock
      ? [`  [ "$contexec_lock_held" = 0 ] || rmdir -- ${q(input.prepareLock)} 2>/dev/null`]
      : []),
    ...plan.after.map((step) => `  ${formatPlanStep(step)}`),
    "  :",
    "}",
    "trap contexec_on_exit EXIT",
    `contexec_setup_failed() { contexec_status setup ${PLAN_SETUP_FAILED_EXIT}; exit ${PLAN_SETUP_FAILED_EXIT}; }`,
  );

  const prepare = plan.image.prepare;
  if (prepare) {
    const present = `${formatPlanCommand(prepare.present, "image.prepare.present")} >/dev/null 2>&1`;
    const commands = prepare.commands.map(
      (c, i) => `${formatPlanCommand(c, `image.prepare.commands[${i}]`)} || contexec_setup_failed`,
    );
    lines.push(`if ! ${present}; then`);
    if (input.prepareLock) {
      const lock = q(input.prepareLock);
      // One job prepares the image; the others wait for it, then find it there. A lock older
      // than an hour was left by a job that died.
      lines.push(
        `  until mkdir -- ${lock} 2>/dev/null; do`,
        `    [ -z "$(find ${lock} -maxdepth 0 -mmin +60 2>/dev/null)" ] || rmdir -- ${lock} 2>/dev/null`,
        "    sleep 1",
        "  done",
        "  contexec_lock_held=1",
        `  if ! ${present}; then`,
        ...commands.map((c) => `    ${c}`),
        "  fi",
        `  rmdir -- ${lock}`,
        "  contexec_lock_held=0",
      );
    } else {
      lines.push(...commands.map((c) => `  ${c}`));
    }
    lines.push("fi");
  }
  for (const step of plan.before) lines.push(`${formatPlanStep(step)} || contexec_setup_failed`);
  lines.push(`cd -- ${q(plan.command.cwd, "command.cwd")} || contexec_setup_failed`);

  // Signals reach the runtime process, which passes them to the container's process.
  const signals = new Set<string>(FORWARDED_SIGNALS);
  const stop = input.stopSignal.replace(/^SIG/, "");
  if (stop !== "KILL" && stop !== "STOP") signals.add(stop);
  lines.push(
    "contexec_pid=",
    "contexec_trapped=0",
    "contexec_forward() {",
    "  contexec_trapped=1",
    '  [ -z "$contexec_pid" ] || kill -s "$1" "$contexec_pid" 2>/dev/null || true',
    "}",
    ...[...signals].map((s) => `trap 'contexec_forward ${s}' ${s}`),
  );

  const run = formatPlanCommand(plan.command, "command");
  const output = `>> ${q(files.stdout)} 2>> ${q(files.stderr)}`;
  if (plan.command.stdin) {
    lines.push(...stdinFeeder(files), `contexec_feed_stdin | ${run} ${output} &`);
  } else {
    lines.push(`${run} < /dev/null ${output} &`);
  }
  lines.push(
    "contexec_pid=$!",
    // wait returns early when a trapped signal arrives; the loop waits again (bash keeps the
    // status of a child that ended meanwhile).
    "contexec_trapped=1",
    'while [ "$contexec_trapped" = 1 ]; do',
    "  contexec_trapped=0",
    '  wait "$contexec_pid"',
    "  contexec_code=$?",
    "done",
    'contexec_status container "$contexec_code"',
    'exit "$contexec_code"',
  );
  return `${lines.join("\n")}\n`;
}

/**
 * A shell function copying the job's stdin file to its stdout as the executor appends to it,
 * until the end marker is there and every byte before it is passed on. Polling (no inotify), so
 * it works on a network file system.
 */
function stdinFeeder(files: JobFiles): string[] {
  const stdin = shellQuote(files.stdin);
  return [
    "contexec_feed_stdin() {",
    "  local sent=0 size complete=0",
    "  while :; do",
    `    size=$(stat -c %s -- ${stdin} 2>/dev/null || echo 0)`,
    '    if [ "$size" -gt "$sent" ]; then',
    `      tail -c "+$((sent + 1))" -- ${stdin} | head -c "$((size - sent))" || return 0`,
    "      sent=$size",
    `    elif [ "$complete" = 1 ] || [ -e ${shellQuote(files.exit)} ]; then`,
    "      return 0",
    `    elif [ -e ${shellQuote(files.stdinEnd)} ]; then`,
    // One more look: bytes appended before the marker appeared.
    "      complete=1",
    "    else",
    "      sleep 0.1",
    "    fi",
    "  done",
    "}",
  ];
}
