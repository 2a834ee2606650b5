import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import {
  currentOwner,
  type OwnerLiveness,
  type OwnerRecord,
  ownedByThisUser,
  ownerLiveness,
  parseOwnerRecord,
} from "./owner-record.js";

/** Environment variable naming the folder of owner records. */
export const STATE_DIR_ENV = "CONTEXEC_STATE_DIR";

/**
 * Where executors keep their owner records: $CONTEXEC_STATE_DIR, else $XDG_RUNTIME_DIR/contexec
 * (a per-user tmpfs, gone at reboot with what it describes), else $XDG_STATE_HOME/contexec, else
 * ~/.local/state/contexec. Pure.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const fromEnv = env[STATE_DIR_ENV];
  if (fromEnv && isAbsolute(fromEnv)) return fromEnv;
  for (const base of [env.XDG_RUNTIME_DIR, env.XDG_STATE_HOME]) {
    if (base && isAbsolute(base)) return join(base, "contexec");
  }
  return join(home, ".local", "state", "contexec");
}

/** What an owner folder says of itself (`owner.json`). */
export interface OwnerFolderInfo<D = Record<string, unknown>> {
  dir: string;
  owner: OwnerRecord;
  /** What the executor wrote beside its owner record (its scratch folder, ...). */
  details: D;
}

/** What a sweep removed, and what it could not. */
export interface SweepReport {
  /** One line per resource removed: "container 1a2b3c4d5e6f (owner pid 4242 on node7, dead)". */
  removed: string[];
  /** One line per resource that could not be removed, with the reason. */
  failed: string[];
}

const OWNER_FILE = "owner.json";
const RESOURCES = "resources";
const NAME = /^[A-Za-z0-9._-]+$/;

/**
 * One executor's folder of owner records, `<stateDir>/<kind>/<host>-<pid>-<random>/`: its
 * `owner.json` (the owner record and the executor's details) and one JSON file per resource it
 * holds (`resources/<name>.json`), written before the resource exists and removed after it has
 * gone. When the executor's process dies, whatever it still held is listed here for the next
 * sweep, which removes it once the owner is dead on this host.
 */
export class OwnerFolder {
  readonly dir: string;
  readonly owner: OwnerRecord;

  private constructor(dir: string, owner: OwnerRecord) {
    this.dir = dir;
    this.owner = owner;
  }

  /** Makes the folder and writes its owner record (this process) with `details`. */
  static async create(
    stateDir: string,
    kind: string,
    details: Record<string, unknown>,
  ): Promise<OwnerFolder> {
    checkName(kind);
    const owner = currentOwner();
    const dir = join(stateDir, kind, `${owner.host}-${owner.pid}-${randomBytes(4).toString("hex")}`);
    await mkdir(join(dir, RESOURCES), { recursive: true, mode: 0o700 });
    await writeAtomically(join(dir, OWNER_FILE), { schema: 1, owner, details });
    return new OwnerFolder(dir, owner);
  }

  /** Writes (or replaces) the record of one resource. */
  async record(name: string, data: Record<string, unknown>): Promise<void> {
    checkName(name);
    await writeAtomically(join(this.dir, RESOURCES, `${name}.json`), data);
  }

  /** Removes the record of a resource that has gone. */
  async forget(name: string): Promise<void> {
    checkName(name);
    await rm(join(this.dir, RESOURCES, `${name}.json`), { force: true });
  }

  /** Removes the whole folder (the executor closed, holding nothing). */
  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** {@link remove}, synchronously (exit handlers). */
  removeSync(): void {
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // nothing more can be done on the way out
    }
  }
}

/** The owner folders of one kind, each with its owner's liveness (folders that cannot be read are skipped). */
export async function listOwnerFolders<D = Record<string, unknown>>(
  stateDir: string,
  kind: string,
): Promise<(OwnerFolderInfo<D> & { liveness: OwnerLiveness })[]> {
  checkName(kind);
  const base = join(stateDir, kind);
  const names = await readdir(base).catch(() => [] as string[]);
  const out: (OwnerFolderInfo<D> & { liveness: OwnerLiveness })[] = [];
  for (const name of names) {
    const dir = join(base, name);
    const info = await readOwnerFolder<D>(dir);
    if (info) {
      const sameUser = await ownedByThisUser(dir);
      out.push({ ...info, liveness: await ownerLiveness(info.owner, { sameUser }) });
    }
  }
  return out;
}

/** Reads one owner folder's `owner.json`; undefined when it is missing or broken. */
export async function readOwnerFolder<D = Record<string, unknown>>(
  dir: string,
): Promise<OwnerFolderInfo<D> | undefined> {
  try {
    const raw = JSON.parse(await readFile(join(dir, OWNER_FILE), "utf8")) as {
      schema?: unknown;
      owner?: unknown;
      details?: unknown;
    };
    const owner = parseOwnerRecord(raw.owner);
    if (raw.schema !== 1 || !owner) return undefined;
    return { dir, owner, details: (raw.details ?? {}) as D };
  } catch {
    return undefined;
  }
}

/** The resource records in an owner folder, by name (broken ones are skipped). */
export async function readResourceRecords(dir: string): Promise<Map<string, Record<string, unknown>>> {
  const records = new Map<string, Record<string, unknown>>();
  const names = await readdir(join(dir, RESOURCES)).catch(() => [] as string[]);
  for (const file of names) {
    if (!file.endsWith(".json")) continue;
    try {
      const data = JSON.parse(await readFile(join(dir, RESOURCES, file), "utf8")) as unknown;
      if (typeof data === "object" && data !== null)
        records.set(file.slice(0, -5), data as Record<string, unknown>);
    } catch {
      // half-written or gone meanwhile
    }
  }
  return records;
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`not a plain file name: ${JSON.stringify(name)}`);
}

// A reader never sees half a record: written beside, then renamed into place.
async function writeAtomically(path: string, data: unknown): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(tmp, `${JSON.stringify(data)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}
