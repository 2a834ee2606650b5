import type { OwnerFolder } from "@contexec/core";
import { readProcStat } from "@contexec/core";

/** The kind of owner folder Apptainer executors keep (`<stateDir>/apptainer/...`). */
export const OWNER_KIND = "apptainer";

/** One process named for later: its pid and start time (a reused pid is another process). */
export interface ProcessRef {
  pid: number;
  startTime: number;
}

/** What an Apptainer executor writes beside its owner record. */
export interface ExecutorDetails {
  runtime: string;
  /** The executor's scratch folder (FIFOs, spooled archives, every container's scratch folder). */
  tmpRoot: string;
}

/** A batch container: its runtime process leads a session of its own (spawned detached). */
export interface ContainerRecord {
  kind: "container";
  id: string;
  /** The container's scratch folder (inside the executor's). */
  scratch: string;
  /** Its own cgroup folders, parents first. */
  cgroups: string[];
  /** The runtime process, once spawned. */
  runtime?: ProcessRef;
}

/** A service: an Apptainer instance (a daemon of its own) and the command run in it. */
export interface ServiceRecord {
  kind: "service";
  /** The instance's name. */
  name: string;
  /** The folder `instance start` ran in, which Apptainer records in the instance's config. */
  startCwd: string;
  scratch: string;
  /** The instance's init, once known. */
  init?: ProcessRef;
  /** The `exec instance://` process of the service's command (it leads a session of its own). */
  main?: ProcessRef;
}

export type LeftoverRecord = ContainerRecord | ServiceRecord;

/**
 * Keeps one resource's record in the executor's owner folder: written before the resource is
 * made, updated as more is known, removed once it has gone. Writes happen in order (a late update
 * can never bring back a record already forgotten).
 */
export class ResourceLedger<R extends LeftoverRecord> {
  readonly #folder: OwnerFolder | undefined;
  readonly #name: string;
  #record: R | undefined;
  #queue: Promise<void> = Promise.resolve();
  #forgotten = false;

  constructor(folder: OwnerFolder | undefined, name: string) {
    this.#folder = folder;
    this.#name = name;
  }

  /** Writes the record, or merges `update` into it. */
  write(update: R | Partial<R>): Promise<void> {
    return this.#enqueue(async (folder) => {
      if (this.#forgotten) return;
      this.#record = { ...(this.#record as R), ...update } as R;
      await folder.record(this.#name, this.#record as unknown as Record<string, unknown>);
    });
  }

  /** The resource has gone: its record goes too. */
  forget(): Promise<void> {
    return this.#enqueue(async (folder) => {
      this.#forgotten = true;
      await folder.forget(this.#name);
    });
  }

  #enqueue(op: (folder: OwnerFolder) => Promise<void>): Promise<void> {
    const folder = this.#folder;
    if (!folder) return Promise.resolve();
    // A record that cannot be written costs only the clean-up after a crash: never the run.
    this.#queue = this.#queue.then(() => op(folder)).catch(() => {});
    return this.#queue;
  }
}

/** A process's reference, read at once (undefined when it has already gone). */
export async function processRef(pid: number | undefined): Promise<ProcessRef | undefined> {
  if (pid === undefined) return undefined;
  const stat = await readProcStat(pid);
  return stat ? { pid, startTime: stat.startTime } : undefined;
}
