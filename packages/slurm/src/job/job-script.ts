import { posix } from "node:path";
import {
  formatPlanCommand,
  formatPlanHeader,
  formatPlanStep,
  INITIAL_PID_NS,
  OWNER_LABELS,
  PLAN_SETUP_FAILED_EXIT,
  type PlannedCommand,
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
  /** Give the container a memory cgroup of its own in the job (see {@link ContainerMemoryCgroup}). */
  memoryCgroup?: ContainerMemoryCgroup | undefined;
  /**
   * With Docker inside: the `docker` command (argv[0] and environment) of the plan, whose
   * `docker run` reads its owner labels from `files.ownerLabels` (see {@link dockerOwnerLines}).
   */
  dockerOwner?: PlannedCommand | undefined;
}

/**
 * The container's memory limit inside the job, as Docker gives it: with cgroup v1, a memory
 * cgroup of the container's own under the batch shell's (so under the limit SLURM holds the
 * job to), holding only the container's processes: not the runtime's (Apptainer's starter and
 * its namespace's init), which stay beside it in the job. Its limit is `memoryBytes`, its OOM
 * kills are counted into the exit status file, and it is shown to the container read-only at
 * /sys/fs/cgroup/memory through `link` (the plan binds `skeleton`, holding an empty `memory`
 * folder, over /sys/fs/cgroup first: a fresh sysfs has no folder to bind onto). With cgroup v2
 * (no processes may sit beside a child with controllers) the job's own cgroup is shown instead
 * and SLURM's limit is the one that holds.
 */
export interface ContainerMemoryCgroup {
  version: 1 | 2;
  memoryBytes: number;
  link: string;
  skeleton: string;
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
    ...formatPlanHeader(plan),
    "set -u",
    // Without job control a background command ignores SIGINT and SIGQUIT (bash(1)), and the
    // container could not be given them.
    "set -m",
    `contexec_status() {`,
    `  printf 'phase=%s\\ncode=%s\\noom=%s\\n' "$1" "$2" "\${3:-0}" > ${q(exitTmp)} && mv -f -- ${q(exitTmp)} ${q(files.exit)}`,
    `}`,
    // A requeued job starts again: the status of an earlier attempt is not this one's.
    `rm -f -- ${q(files.exit)} ${q(exitTmp)}`,
    "contexec_lock_held=0",
    "contexec_box=",
    "contexec_on_exit() {",
    ...(input.prepareLock
      ? [`  [ "$contexec_lock_held" = 0 ] || rmdir -- ${q(input.prepareLock)} 2>/dev/null`]
      : []),
    ...plan.after.map((step) => `  ${formatPlanStep(step)}`),
    // The container's cgroup goes before the job's: SLURM could not remove the job's otherwise.
    '  if [ -n "$contexec_box" ]; then for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir -- "$contexec_box" 2>/dev/null && break; sleep 0.1; done; fi',
    "  :",
    "}",
    "trap contexec_on_exit EXIT",
    `contexec_setup_failed() { contexec_status setup ${PLAN_SETUP_FAILED_EXIT}; exit ${PLAN_SETUP_FAILED_EXIT}; }`,
  );

  // Signals reach the runtime process, which passes them to the container's process. Trapped
  // from the start: one that comes before the container runs (while the image is prepared, or
  // the steps before run) is kept and decides below, instead of ending this script unreported
  // or being lost (the container would then run on to SIGKILL).
  const signals = new Set<string>(FORWARDED_SIGNALS);
  const stop = input.stopSignal.replace(/^SIG/, "");
  if (stop !== "KILL" && stop !== "STOP") signals.add(stop);
  lines.push(
    "contexec_pid=",
    "contexec_early=",
    "contexec_trapped=0",
    "contexec_step=",
    "contexec_forward() {",
    "  contexec_trapped=1",
    '  if [ -n "$contexec_pid" ]; then kill -s "$1" "$contexec_pid" 2>/dev/null || true; return; fi',
    "  contexec_early=$1",
    // A preparation step (a conversion, a load) is ended at once: the job stops within its grace.
    '  [ -z "$contexec_step" ] || kill -s TERM -- "-$contexec_step" 2>/dev/null || true',
    "}",
    ...[...signals].map((s) => `trap 'contexec_forward ${s}' ${s}`),
    // Stopped before the container started: it never starts, and the job ends as that signal
    // would have ended the container (128+n), as a container killed the moment it starts does.
    'contexec_stopped() { contexec_status container "$((128 + $(kill -l "$contexec_early")))" 0; exit "$((128 + $(kill -l "$contexec_early")))"; }',
    // Waits for the preparation command just started in the background (job control: its own
    // process group): a trapped signal interrupts a wait, where it would wait for a foreground
    // command to end first.
    "contexec_wait_step() {",
    "  contexec_step=$!",
    '  [ -z "$contexec_early" ] || kill -s TERM -- "-$contexec_step" 2>/dev/null || true',
    "  contexec_trapped=1",
    '  while [ "$contexec_trapped" = 1 ]; do',
    "    contexec_trapped=0",
    '    wait "$contexec_step"',
    "    contexec_step_code=$?",
    '    [ -z "$contexec_early" ] || { wait "$contexec_step" 2>/dev/null; contexec_step=; contexec_stopped; }',
    "  done",
    "  contexec_step=",
    '  return "$contexec_step_code"',
    "}",
  );

  const prepare = plan.image.prepare;
  if (prepare) {
    const present = `${formatPlanCommand(prepare.present, "image.prepare.present")} >/dev/null 2>&1`;
    const commands = prepare.commands.map(
      (c, i) =>
        `${formatPlanCommand(c, `image.prepare.commands[${i}]`)} & contexec_wait_step || contexec_setup_failed`,
    );
    lines.push(`if ! ${present}; then`);
    if (input.prepareLock) {
      const lock = q(input.prepareLock);
      // One job prepares the image; the others wait for it, then find it there. A lock older
      // than an hour was left by a job that died.
      lines.push(
        `  mkdir -p -- ${q(posix.dirname(input.prepareLock))} || contexec_setup_failed`,
        `  until mkdir -- ${lock} 2>/dev/null; do`,
        `    [ -z "$(find ${lock} -maxdepth 0 -mmin +60 2>/dev/null)" ] || rmdir -- ${lock} 2>/dev/null`,
        '    [ -z "$contexec_early" ] || contexec_stopped',
        "    sleep 1",
        "  done",
        '  [ -z "$contexec_early" ] || contexec_stopped',
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
  if (input.memoryCgroup) lines.push(...memoryCgroupLines(input.memoryCgroup));
  for (const step of plan.before) lines.push(`${formatPlanStep(step)} || contexec_setup_failed`);
  lines.push(`cd -- ${q(plan.command.cwd, "command.cwd")} || contexec_setup_failed`);
  if (input.dockerOwner) lines.push(...dockerOwnerLines(input.dockerOwner, files.ownerLabels));

  lines.push('[ -z "$contexec_early" ] || contexec_stopped');

  const run = formatPlanCommand(plan.command, "command");
  const output = `>> ${q(files.stdout)} 2>> ${q(files.stderr)}`;
  if (plan.command.stdin) {
    lines.push(...stdinFeeder(files), `contexec_feed_stdin | ${run} ${output} &`);
  } else {
    lines.push(`${run} < /dev/null ${output} &`);
  }
  // A signal between the start and this line found no pid yet: it is passed on now.
  lines.push(
    "contexec_pid=$!",
    '[ -z "$contexec_early" ] || kill -s "$contexec_early" "$contexec_pid" 2>/dev/null || true',
  );
  if (input.memoryCgroup?.version === 1) {
    lines.push('if [ -n "$contexec_box" ]; then contexec_confine & contexec_confiner=$!; fi');
  }
  lines.push(
    // wait returns early when a trapped signal arrives; the loop waits again (bash keeps the
    // status of a child that ended meanwhile).
    "contexec_trapped=1",
    'while [ "$contexec_trapped" = 1 ]; do',
    "  contexec_trapped=0",
    '  wait "$contexec_pid"',
    "  contexec_code=$?",
    "done",
    ...(input.memoryCgroup?.version === 1
      ? [
          'if [ -n "$contexec_box" ]; then',
          '  kill "$contexec_confiner" 2>/dev/null',
          '  while read -r contexec_k contexec_v; do [ "$contexec_k" != oom_kill ] || [ "$contexec_v" = 0 ] || contexec_oom=1; done < "$contexec_box/memory.oom_control"',
          "fi",
        ]
      : []),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
    'contexec_status container "$contexec_code" "${contexec_oom:-0}"',
    'exit "$contexec_code"',
  );
  return `${lines.join("\n")}\n`;
}

/**
 * v1: makes the container's memory cgroup under the batch shell's own and a function moving the
 * container's processes into it; v2: finds the job's cgroup. Links the view to it. Where neither
 * can be made the link points at an empty folder (the bind still works and shows nothing), and
 * the job's limit alone holds.
 */
function memoryCgroupLines(cg: ContainerMemoryCgroup): string[] {
  const q = shellQuote;
  const empty = `${cg.skeleton}/memory`;
  const lines = [`mkdir -p -- ${q(empty)} || contexec_setup_failed`, "contexec_oom=0"];
  if (cg.version === 2) {
    return [
      ...lines,
      `contexec_cg=$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)`,
      `contexec_cg_root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)`,
      // SLURM's path is .../job_N/step_batch/...: the limit is set at the job.
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
      "contexec_view=$contexec_cg_root${contexec_cg%%/step_*}",
      `[ -n "$contexec_cg" ] && [ -n "$contexec_cg_root" ] && [ -d "$contexec_view" ] || contexec_view=${q(empty)}`,
      `ln -sfn -- "$contexec_view" ${q(cg.link)} || contexec_setup_failed`,
    ];
  }
  return [
    ...lines,
    `contexec_cg=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)`,
    `contexec_cg_root=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)`,
    "contexec_shell_cg=$contexec_cg_root$contexec_cg",
    'if [ -n "$contexec_cg" ] && [ -n "$contexec_cg_root" ] && [ -d "$contexec_shell_cg" ]; then',
    "  contexec_box=$contexec_shell_cg/contexec-container",
    `  if ! { mkdir -p -- "$contexec_box" && printf '%s' ${cg.memoryBytes} > "$contexec_box/memory.limit_in_bytes"; }; then`,
    '    rmdir -- "$contexec_box" 2>/dev/null',
    "    contexec_box=",
    "  fi",
    // Memory the container's processes allocated before they moved in is charged along (v1).
    `  [ -z "$contexec_box" ] || { printf 3 > "$contexec_box/memory.move_charge_at_immigrate"; } 2>/dev/null`,
    "fi",
    `if [ -n "$contexec_box" ]; then contexec_view=$contexec_box; else contexec_view=${q(empty)}; fi`,
    `ln -sfn -- "$contexec_view" ${q(cg.link)} || contexec_setup_failed`,
    // Moves the container's processes (in a PID namespace other than this shell's, but not that
    // namespace's init, the runtime's shim) out of the shell's cgroup into the container's;
    // what they start later is born there. Often at first, then for a few seconds.
    "contexec_confine() {",
    "  local pid k v sweep=0 quiet=0 moved=0 found",
    '  while [ $sweep -lt 100 ] && kill -0 "$contexec_pid" 2>/dev/null; do',
    "    found=0",
    "    while read -r pid; do",
    "      [ /proc/$pid/ns/pid -ef /proc/self/ns/pid ] && continue",
    "      v=",
    '      { while read -r k v; do [ "$k" = NSpid: ] && break; done < /proc/$pid/status; } 2>/dev/null',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
    '      [ -n "$v" ] && [ "${v##*[[:space:]]}" != 1 ] || continue',
    '      echo "$pid" > "$contexec_box/cgroup.procs" 2>/dev/null && found=1',
    '    done < "$contexec_shell_cg/cgroup.procs"',
    "    if [ $found = 1 ]; then moved=1; quiet=0; else quiet=$((quiet + 1)); fi",
    "    [ $moved = 1 ] && [ $quiet -ge 10 ] && return 0",
    "    sweep=$((sweep + 1))",
    "    if [ $sweep -lt 40 ]; then sleep 0.02; else sleep 0.1; fi",
    "  done",
    "}",
  ];
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

/**
 * With Docker inside, the container runs under the node's daemon, outside the job: a SIGKILLed
 * job (scancel --signal=KILL, a node's OOM killer, the end of KillWait) takes the docker CLI with
 * it and leaves the container running. Its owner labels therefore name this batch shell on its
 * node (pid, start time, host, boot, PID namespace), written to `labelFile` for
 * `docker run --label-file`, with the job id for people; and before its own container, the job
 * removes this node's contexec containers whose owner is gone, by core's rule (judgeOwner, which
 * every Docker executor's sweep applies): an earlier boot; or, in this shell's own PID namespace,
 * a pid whose start time no longer matches, or a zombie. Never touched: other hosts' containers,
 * labels core would not read (ownerFromLabels' forms), owners of another PID namespace (or of an
 * unnamed one, seen from a namespace other than the host's), and where /proc hides other users'
 * processes (hidepid: pid 1 not readable), a pid it does not show. A shell whose /proc is an outer
 * namespace's (its pid there is not `$$`) sweeps nothing and names no owner. The next Docker job
 * on the node, or any contexec there, cleans up.
 */
function dockerOwnerLines(docker: PlannedCommand, labelFile: string): string[] {
  const q = shellQuote;
  const L = OWNER_LABELS;
  const run = `${formatPlanCommand({ ...docker, argv: docker.argv.slice(0, 1), joinCgroups: [] })} "$@"`;
  // "|" between the fields: an empty label stays an empty field (read splits on it alone).
  const format = `{{.ID}}|{{.Label "${L.pid}"}}|{{.Label "${L.startTime}"}}|{{.Label "${L.bootId}"}}|{{.Label "${L.pidNs}"}}`;
  // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansions, not templates
  const job = '"io.contexec.slurm.job=${SLURM_JOB_ID:-}"';
  return [
    `contexec_docker() { ${run}; }`,
    "contexec_boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)",
    "contexec_host=$(uname -n)",
    "contexec_pidns=$(readlink /proc/self/ns/pid 2>/dev/null)",
    "contexec_hidepid=",
    "cat /proc/1/stat > /dev/null 2>&1 || contexec_hidepid=1",
    // More than one pid in NSpid: /proc here is an outer namespace's, where this shell is not $$.
    `contexec_nested=$(awk '$1 == "NSpid:" { if (NF > 2) print 1; exit }' /proc/self/status 2>/dev/null)`,
    // "STATE START": fields 3 and 22 of /proc/PID/stat (after the command name, which may hold
    // spaces and parentheses); fails when the process is not there to read.
    "contexec_proc() {",
    "  local stat",
    '  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
    "  set -- ${stat##*) }",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
    '  printf "%s %s" "$1" "${20}"',
    "}",
    // Whether the owner (pid $1, start time $2, both as /proc writes them) is gone.
    "contexec_owner_gone() {",
    "  local now",
    '  if ! now=$(contexec_proc "$1"); then [ -z "$contexec_hidepid" ]; return; fi',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
    '  case "${now%% *}" in Z | X) return 0 ;; esac',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
    '  [ "${now#* }" != "$2" ]',
    "}",
    'if [ -n "$contexec_boot" ] && [ -z "$contexec_nested" ]; then',
    // docker's own messages go to the job's log, not into the list.
    `  if contexec_list=$(contexec_docker ps --all --no-trunc --filter ${q("label=io.contexec.managed=true")} --filter "label=${L.host}=$contexec_host" --format ${q(format)}); then`,
    `    printf "%s\\n" "$contexec_list" | while IFS='|' read -r contexec_c contexec_p contexec_s contexec_b contexec_n; do`,
    // The forms core reads (OWNER_LABEL_FORMS): decimal without sign or leading zero, a boot id.
    "      case \"$contexec_p\" in '' | 0* | *[!0-9]*) continue ;; esac",
    "      case \"$contexec_s\" in '' | 0?* | *[!0-9]*) continue ;; esac",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansions, not templates
    '      [ "${#contexec_p}" -le 10 ] && [ "${#contexec_s}" -le 15 ] && [ -n "$contexec_b" ] || continue',
    '      if [ "$contexec_b" = "$contexec_boot" ]; then',
    `        [ "$contexec_n" = "$contexec_pidns" ] || { [ -z "$contexec_n" ] && [ "$contexec_pidns" = ${q(INITIAL_PID_NS)} ]; } || continue`,
    '        contexec_owner_gone "$contexec_p" "$contexec_s" || continue',
    "      fi",
    '      contexec_docker rm --force --volumes "$contexec_c" < /dev/null > /dev/null 2>&1 || true',
    "    done",
    "  else",
    '    echo "contexec: no sweep of this node\'s leftover containers: docker ps failed" >&2',
    "  fi",
    "fi",
    'if [ -n "$contexec_boot" ] && [ -z "$contexec_nested" ] && contexec_self=$(contexec_proc $$); then',
    `  printf '%s\\n' "${L.pid}=$$" "${L.startTime}=\${contexec_self#* }" "${L.host}=$contexec_host" "${L.bootId}=$contexec_boot" "${L.pidNs}=$contexec_pidns" ${job} > ${q(labelFile)} || contexec_setup_failed`,
    "else",
    `  printf '%s\\n' ${job} > ${q(labelFile)} || contexec_setup_failed`,
    "fi",
  ];
}
