import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

let setpriv: string | null | undefined;

/**
 * An argv that runs `argv` so that it is SIGKILLed when this process dies, even by SIGKILL:
 * `setpriv --pdeathsig KILL -- argv...` (util-linux >= 2.33), which sets the kernel's parent-death
 * signal (prctl PR_SET_PDEATHSIG, which Node cannot call) and then executes the command, keeping
 * it. Where setpriv lacks the option, `argv` unchanged: the owner records' sweep is then what
 * ends such a process.
 *
 * The signal follows the thread that spawned the child (Node spawns from the thread of the event
 * loop that asked: the main thread, or a worker's); a process that forks and lets the fork go on
 * (Apptainer's starter) is not covered.
 */
export function dieWithParent(argv: readonly string[]): string[] {
  if (setpriv === undefined) setpriv = findSetpriv();
  return setpriv ? [setpriv, "--pdeathsig", "KILL", "--", ...argv] : [...argv];
}

function findSetpriv(): string | null {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/bin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, "setpriv");
    try {
      accessSync(path, constants.X_OK);
    } catch {
      continue;
    }
    // Measured once: an older setpriv refuses the option.
    const r = spawnSync(path, ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore", timeout: 5000 });
    return r.status === 0 ? path : null;
  }
  return null;
}
