import type { PlannedCommand } from "@contexec/core";
import type { JobFiles } from "./job-files.js";

// Run by bash with the paths as its arguments (nothing is pasted into the script's text):
// $1 sbatch, $2 the batch script, $3/$4 the container's stdout/stderr files, $5 the exit status
// file, $6/$7 the stdin file and its end marker ("" without stdin), $8 the job's folder.
const SUBMIT_AND_WAIT = [
  // The caller's stdin goes to the job's stdin file as it comes; the marker says it ended. (<&0:
  // bash gives a background command /dev/null as its stdin otherwise.)
  'if [ -n "$6" ]; then { cat >> "$6"; : > "$7"; } <&0 & fi',
  // --wait: sbatch returns once the job has ended, with the job's exit code.
  '"$1" --parsable --wait "$2" > /dev/null',
  "submitted=$?",
  'cat -- "$3" 2>/dev/null',
  'cat -- "$4" >&2 2>/dev/null',
  // The container's own code when the job script wrote it (125: the image or a step failed).
  "code=$(sed -n 's/^code=//p' \"$5\" 2>/dev/null)",
  // The job has ended: its folder goes, as a run's does at remove() (and the executor's folder
  // above it, when no other job is left in it).
  'rm -rf -- "$8"',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
  'rmdir -- "${8%/*}" 2>/dev/null',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash parameter expansion, not a template
  'exit "${code:-$submitted}"',
].join("\n");

/**
 * The command a SLURM plan runs when its script is pasted into bash: submit the job and wait for
 * its end (`sbatch --wait`), then print the container's stdout and stderr from the job's files
 * and exit with the container's exit code, as a run through the executor does; then remove the
 * job's folder. (The executor itself submits without waiting and follows the job with its
 * tracker.) Interrupted, it leaves the job and its folder. Pure.
 */
export function submitAndWaitCommand(input: {
  sbatch: string;
  files: JobFiles;
  stdin: boolean;
  env: Record<string, string>;
}): PlannedCommand {
  const { files } = input;
  return {
    argv: [
      // --norc: bash whose stdin is a socket (as a Node child's is) reads ~/.bashrc otherwise.
      "bash",
      "--norc",
      "--noprofile",
      "-c",
      SUBMIT_AND_WAIT,
      "contexec-submit",
      input.sbatch,
      files.script,
      files.stdout,
      files.stderr,
      files.exit,
      input.stdin ? files.stdin : "",
      input.stdin ? files.stdinEnd : "",
      files.dir,
    ],
    env: input.env,
    cwd: files.dir,
    stdin: input.stdin,
  };
}
