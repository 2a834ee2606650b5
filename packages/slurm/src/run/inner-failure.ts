import { classifyRuntimeFailure, type RuntimeFailure } from "@contexec/singularity";

// `docker run` itself failed (the daemon refused): the CLI exits 125 with this line.
const DOCKER_CLI_FAILURE = /^docker: (.*)$/m;
// The container's init (tini, `--init`) could not execute the command: exit 126 or 127.
const TINI_EXEC_FAILURE = /\[FATAL tini \(\d+\)\] exec (.*) failed: (.*)/;

/**
 * Tells a failure of the inner runtime (its command could not be executed, the runtime itself
 * failed) from the container's own exit code, by the runtime's exit code and the tail of the
 * container's stderr (where the runtime writes its own messages). Pure.
 */
export function classifyInnerFailure(
  inner: "apptainer" | "docker",
  exitCode: number,
  stderrTail: string,
  command: string,
): RuntimeFailure | undefined {
  if (inner === "apptainer") return classifyRuntimeFailure(exitCode, stderrTail, command);
  if (exitCode === 126 || exitCode === 127) {
    const m = TINI_EXEC_FAILURE.exec(stderrTail);
    if (m) return { kind: "command-not-found", command: m[1] ?? command, message: m[2] ?? "" };
  }
  if (exitCode === 125) {
    const m = DOCKER_CLI_FAILURE.exec(stderrTail);
    if (m) return { kind: "runtime", message: (m[1] as string).trim() };
  }
  return undefined;
}
