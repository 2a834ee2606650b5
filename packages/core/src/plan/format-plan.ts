import { shellJoin, shellQuote } from "../shell-quote.js";
import type { PlannedCommand, PlanStep, RunPlan } from "./run-plan.js";

/** The exit code of a formatted plan when the runtime could not be prepared (as `docker run` uses it). */
export const PLAN_SETUP_FAILED_EXIT = 125;

export interface FormatPlanOptions {
  /** Start with `#!/usr/bin/env bash` (default true). */
  shebang?: boolean;
  /** The comment lines describing the plan (default true). */
  header?: boolean;
}

/**
 * A plan as a bash script a person can read, paste and run: the image prepared with the
 * runtime's own tools when it is missing, the steps before, the runtime command with exactly the
 * plan's environment (`env -i`), and the steps after (on any exit, by a trap). The script exits
 * with the container's exit code, or {@link PLAN_SETUP_FAILED_EXIT} when a step before it failed.
 *
 * Every word goes through {@link shellQuote}; nothing is string-joined. Values a shell word
 * cannot carry (a NUL, invalid Unicode) are refused with InvalidSpecError.
 */
export function formatPlan(plan: RunPlan, options: FormatPlanOptions = {}): string {
  const lines: string[] = [];
  if (options.shebang !== false) lines.push("#!/usr/bin/env bash");
  if (options.header !== false) lines.push(...formatPlanHeader(plan));
  lines.push("set -u");
  if (plan.after.length > 0) {
    lines.push("contexec_after() {");
    for (const step of plan.after) lines.push(`  ${formatPlanStep(step)}`);
    lines.push("}", "trap contexec_after EXIT");
  }
  const setupFailed = `exit ${PLAN_SETUP_FAILED_EXIT}`;
  const prepare = plan.image.prepare;
  if (prepare) {
    lines.push(`if ! ${formatPlanCommand(prepare.present, "image.prepare.present")} >/dev/null 2>&1; then`);
    prepare.commands.forEach((c, i) => {
      lines.push(`  ${formatPlanCommand(c, `image.prepare.commands[${i}]`)} || ${setupFailed}`);
    });
    lines.push("fi");
  }
  for (const step of plan.before) lines.push(`${formatPlanStep(step)} || ${setupFailed}`);
  lines.push(`cd -- ${shellQuote(plan.command.cwd, "command.cwd")} || ${setupFailed}`);
  const run = formatPlanCommand(plan.command, "command");
  lines.push(plan.command.stdin ? run : `${run} </dev/null`);
  return `${lines.join("\n")}\n`;
}

/** The plan in a few lines of prose: what runs, where, from which image, and what to know. */
export function describePlan(plan: RunPlan): string[] {
  const p = plan.profile;
  const image = plan.image;
  const lines = [
    `contexec plan: ${p.runtime} (${p.flavor} ${p.version}, ${p.privilege}) on ${p.host.hostname} as uid ${p.host.uid}`,
    `image: ${image.id}${image.tags.length ? ` (${image.tags.join(", ")})` : ""}${
      image.action === "present" ? "" : `, ${image.action} from ${image.archive ?? "?"}`
    }${image.path ? ` -> ${image.path}` : ""}`,
    `in the container: ${plan.process.argv.map(displayWord).join(" ")}`,
    `  in ${displayWord(plan.process.workdir)}${plan.process.user ? ` as ${plan.process.user}` : ""}`,
  ];
  for (const [k, v] of Object.entries(plan.process.env)) lines.push(`  env ${k}=${oneLine(v)}`);
  for (const g of plan.ignored) lines.push(`ignored: spec.${g.field} (${g.reason})`);
  for (const n of plan.notes) lines.push(`note: ${n}`);
  return lines;
}

/**
 * {@link describePlan} as bash comment lines, for the head of a script built around a plan.
 * Every physical line is a comment: an argument may hold newlines (`sh -c` with a script), and a
 * line of it left uncommented would run on the host.
 */
export function formatPlanHeader(plan: RunPlan): string[] {
  return describePlan(plan).flatMap((l) => l.split(/\r\n|\r|\n/).map((p) => `# ${p}`.trimEnd()));
}

/**
 * One planned command as a bash command line: `env -i` with exactly its environment, its argv,
 * inside its cgroups when it has any. For scripts built around a plan (a batch scheduler's job).
 */
export function formatPlanCommand(command: PlannedCommand, where = "command"): string {
  const env = Object.entries(command.env).map(([k, v]) => shellQuote(`${k}=${v}`, `${where}.env.${k}`));
  const run = ["env", "-i", ...env, shellJoin(command.argv, `${where}.argv`)].join(" ");
  if (!command.joinCgroups?.length) return run;
  // A subshell joins the cgroups, then becomes the command: everything it starts is inside.
  const join = command.joinCgroups.map((f) => `echo "$BASHPID" > ${shellQuote(f, `${where}.joinCgroups`)}`);
  return `( ${join.join(" && ")} && exec ${run} )`;
}

/** One plan step as a bash command line: what runPlanSteps does, for a script. */
export function formatPlanStep(step: PlanStep): string {
  const path = shellQuote(step.path, "step.path");
  switch (step.op) {
    case "mkdir":
      return `mkdir -p -m ${step.mode.toString(8).padStart(4, "0")} -- ${path}`;
    case "write": {
      const write = `printf '%s' ${shellQuote(step.content, "step.content")} > ${path}`;
      return step.optional ? `{ ${write}; } 2>/dev/null || true` : write;
    }
    case "remove":
      return `rm -rf -- ${path}`;
    case "rmdir":
      return `rmdir -- ${path} 2>/dev/null || true`;
    case "symlink":
      return `ln -sfn -- ${shellQuote(step.target, "step.target")} ${path}`;
  }
}

// A header comment must stay one line: a newline in a value would end the comment.
function oneLine(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
const CONTROL = /[\u0000-\u001f\u007f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
const CONTROL_OR_QUOTE = /[\\'\u0000-\u001f\u007f]/g;

/** A word as bash reads it, on one line: `$'...'` with escapes when it holds control characters. */
function displayWord(word: string): string {
  if (!CONTROL.test(word)) return shellQuote(word);
  const escaped = word.replace(CONTROL_OR_QUOTE, (c) => {
    const named: Record<string, string> = { "\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r" };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
  return `$'${escaped}'`;
}
