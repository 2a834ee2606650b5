import { onExit } from "signal-exit";
import { descendantsOf, listProcessesSync } from "../process/process-tree.js";

/** What to SIGKILL if this Node process ends while the container runs. */
export interface GuardedProcess {
  /** The runtime process; it leads its own process group. */
  readonly pid: number;
  /** The container's PID 1 once known: killing it ends the whole PID namespace. */
  readonly initPid: number | undefined;
}

const guarded = new Set<GuardedProcess>();
let removeHook: (() => void) | undefined;

/**
 * Containers are children of this process, not of a daemon: when it exits (or dies of a signal
 * Node can catch) they are killed so that nothing is left running. The container's PID 1 goes
 * first; then its process group and every descendant (Apptainer's squashfuse helper has a group of
its own and would outlive a SIGKILLed runtime).
 */
export function guardProcess(p: GuardedProcess): () => void {
  guarded.add(p);
  removeHook ??= onExit(() => {
    if (guarded.size === 0) return;
    const processes = listProcessesSync();
    for (const g of guarded) {
      const tree = descendantsOf(g.pid, processes);
      if (g.initPid !== undefined) tryKill(g.initPid);
      tryKill(-g.pid);
      for (const pid of tree) tryKill(pid);
    }
  });
  return () => {
    guarded.delete(p);
    if (guarded.size === 0 && removeHook) {
      removeHook();
      removeHook = undefined;
    }
  };
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}
