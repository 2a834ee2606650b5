import { constants } from "node:os";
import type { ExitStatus } from "./executor.js";

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** The number of a signal name (`SIGTERM` -> 15); undefined when unknown. */
export function signalNumber(signal: string): number | undefined {
  return (constants.signals as Record<string, number>)[signal];
}

/** An image's STOPSIGNAL ("SIGQUIT", "QUIT", "3") as a signal name; undefined when unknown. */
export function stopSignalOf(value: string | undefined): NodeJS.Signals | undefined {
  if (!value) return undefined;
  const v = value.trim().toUpperCase();
  if (/^\d+$/.test(v)) return SIGNAL_NAMES.get(Number(v));
  const name = v.startsWith("SIG") ? v : `SIG${v}`;
  return signalNumber(name) !== undefined ? (name as NodeJS.Signals) : undefined;
}

/**
 * An {@link ExitStatus} from an exit code as runtimes report it. 128+n is read as "ended by
 * signal n", the convention Docker and shells use (a process that itself exits 137 looks the same).
 */
export function exitStatusFromCode(exitCode: number, oomKilled = false): ExitStatus {
  const signal = exitCode > 128 ? SIGNAL_NAMES.get(exitCode - 128) : undefined;
  return signal ? { exitCode, signal, oomKilled } : { exitCode, oomKilled };
}

/** An {@link ExitStatus} from a process that ended by a signal: 128+n, as shells report it. */
export function exitStatusFromSignal(signal: NodeJS.Signals, oomKilled = false): ExitStatus {
  return { exitCode: 128 + (signalNumber(signal) ?? 0), signal, oomKilled };
}
