import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { access, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  AbortedError,
  currentOwner,
  type ImageArchive,
  ImageArchiveError,
  type ImageConfig,
  type ImageId,
  InvalidConfigError,
  ownerLiveness,
  parseOwnerRecord,
  type SweepReport,
  throwIfAborted,
} from "@contexec/core";
import { inspectSif, SIF_FS_TYPES, SIF_PARTITION_TYPES } from "@contexec/sif/format";
import type { SifConverter, SifConvertOptions } from "./sif-converter.js";

/** Environment variable naming the SIF cache folder. */
export const SIF_CACHE_ENV = "CONTEXEC_SIF_CACHE";

/** The SIF cache folder: $CONTEXEC_SIF_CACHE, else $XDG_CACHE_HOME/contexec/sif, else ~/.cache/contexec/sif. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (env[SIF_CACHE_ENV]) return env[SIF_CACHE_ENV];
  const base = env.XDG_CACHE_HOME?.startsWith("/") ? env.XDG_CACHE_HOME : join(home, ".cache");
  return join(base, "contexec", "sif");
}

/** One image in the cache: its SIF and the part of its config a run needs. */
export interface SifCacheEntry {
  id: ImageId;
  sifPath: string;
  config: ImageConfig;
  repoTags: string[];
  architecture: string;
  os: string;
  sifBytes: number;
  /** The converter that made the SIF. */
  converter: string;
  createdAt: string;
  /** Last time a loadImage asked for it (picks the newest image for a tag given to two images). */
  loadedAt: string;
}

interface StoredMeta extends Omit<SifCacheEntry, "sifPath"> {
  schema: 1;
}

export interface SifCacheOptions {
  dir: string;
  /**
   * A lock whose holder has not refreshed it for this long is taken over (its process died).
   * Default 15 000 ms; at least 2 000 (proper-lockfile's floor). The holder refreshes it every half of it.
   */
  lockStaleMs?: number;
  /** Checks a SIF before it is trusted; throws when it is not usable. Default {@link checkSif}. */
  validate?: (sifPath: string) => Promise<void>;
}

export interface EnsureOptions extends Omit<SifConvertOptions, "tmpDir"> {
  tmpDir: string;
}

/** The references an image can be given by: its id, its bare hex digest, or a tag. */
export type ImageRef = { kind: "id"; id: ImageId } | { kind: "tag"; tag: string };

export function parseImageRef(ref: string): ImageRef {
  const m = /^(?:sha256:)?([0-9a-f]{64})$/.exec(ref);
  if (m) return { kind: "id", id: `sha256:${m[1]}` };
  return { kind: "tag", tag: normalizeTag(ref) };
}

/** "busybox" -> "busybox:latest"; "docker.io/library/busybox:1" -> "busybox:1". */
export function normalizeTag(tag: string): string {
  let t = tag.replace(/^docker\.io\//, "").replace(/^library\//, "");
  const lastSlash = t.lastIndexOf("/");
  if (!t.slice(lastSlash + 1).includes(":") && !t.includes("@")) t = `${t}:latest`;
  return t;
}

/**
 * Checks that a SIF is whole before it is trusted: SIF magic, a primary system partition that is
 * squashfs, its bytes within the file (via @contexec/sif's inspectSif). Throws ImageArchiveError.
 */
export async function checkSif(sifPath: string): Promise<void> {
  const info = await inspectSif(sifPath);
  const p = info.primaryPartition;
  if (!p) throw new ImageArchiveError(`${sifPath} has no primary system partition`);
  if (p.fsType !== SIF_FS_TYPES.squashfs || p.partType !== SIF_PARTITION_TYPES.primarySystem) {
    throw new ImageArchiveError(`${sifPath}: the primary partition is not squashfs (fs type ${p.fsType})`);
  }
  if (p.offset + p.size > info.fileSize) {
    throw new ImageArchiveError(
      `${sifPath} is truncated: its partition ends at ${p.offset + p.size}, the file at ${info.fileSize}`,
    );
  }
}

/**
 * SIF files keyed by ImageId in one folder, shared by every process that points at it:
 * `<hex>.sif`, `<hex>.json` (config and tags) and, while one is being made, the lock `<hex>.lock`.
 * A SIF is written under a temporary name in the same folder, fsynced and renamed into place;
 * the lock (proper-lockfile: a mkdir, refreshed while held, taken over when stale) makes
 * concurrent loads of one image convert it once.
 */
export class SifCache {
  readonly dir: string;
  readonly #staleMs: number;
  readonly #validate: (sifPath: string) => Promise<void>;
  /** SIFs already checked, by path, with the identity of the file that passed. */
  readonly #checked = new Map<string, string>();

  constructor(options: SifCacheOptions) {
    this.dir = options.dir;
    this.#staleMs = Math.max(options.lockStaleMs ?? 15_000, 2000);
    this.#validate = options.validate ?? checkSif;
  }

  paths(id: ImageId): { sif: string; meta: string; lock: string; hex: string } {
    const hex = id.slice("sha256:".length);
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new ImageArchiveError(`not an image id: ${id}`);
    return {
      hex,
      sif: join(this.dir, `${hex}.sif`),
      meta: join(this.dir, `${hex}.json`),
      lock: join(this.dir, `${hex}.lock`),
    };
  }

  /** The cached image an id or tag names, if its SIF is present and whole. */
  async lookup(ref: string): Promise<SifCacheEntry | undefined> {
    const r = parseImageRef(ref);
    if (r.kind === "id") return this.#valid(r.id);
    const candidates = (await this.list()).filter((e) => e.repoTags.some((t) => normalizeTag(t) === r.tag));
    candidates.sort((a, b) => b.loadedAt.localeCompare(a.loadedAt));
    for (const c of candidates) {
      const valid = await this.#valid(c.id);
      if (valid) return valid;
    }
    return undefined;
  }

  /** Every entry with readable metadata (SIFs not checked). */
  async list(): Promise<SifCacheEntry[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const entries = await Promise.all(
      names
        .filter((n) => /^[0-9a-f]{64}\.json$/.test(n))
        .map((n) => this.#readMeta(`sha256:${n.slice(0, 64)}`)),
    );
    return entries.filter((e): e is SifCacheEntry => e !== undefined);
  }

  /**
   * The cache entry for `archive`, converting it with `converter` when it is missing or its SIF
   * is not whole. Concurrent calls in any number of processes convert once; the others wait for
   * the lock and then find the entry. `converted` says whether this call made the SIF.
   */
  async ensure(
    archive: ImageArchive,
    archivePath: string,
    converter: SifConverter,
    options: EnsureOptions,
  ): Promise<{ entry: SifCacheEntry; converted: boolean }> {
    const id = archive.id;
    const p = this.paths(id);
    await mkdir(this.dir, { recursive: true }).catch(async (err) => {
      if (!(await exists(this.dir))) throw this.#readOnly(id, err);
    });
    const fast = await this.#valid(id);
    if (fast && archive.repoTags.every((t) => fast.repoTags.includes(t)) && !isOld(fast.loadedAt)) {
      return { entry: fast, converted: false };
    }
    // A cache shared read-only (another user's, an administrator's): what it holds is used as it
    // is, tags and load times left unrecorded; what it lacks cannot be added by this user.
    if (!(await writable(this.dir))) {
      if (fast) return { entry: fast, converted: false };
      throw this.#readOnly(id);
    }
    const release = await this.#lock(p.sif, p.lock, options.signal);
    try {
      const existing = await this.#valid(id);
      if (existing) {
        const entry = await this.#writeMeta(p.meta, {
          ...existing,
          repoTags: union(existing.repoTags, archive.repoTags),
          loadedAt: new Date().toISOString(),
        });
        return { entry: { ...entry, sifPath: p.sif }, converted: false };
      }
      // Leftovers of a process that died mid-conversion, and a SIF that failed its check.
      await this.#removeFiles(p.hex, true);
      const tmp = join(this.dir, `.${p.hex}.sif.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
      try {
        await converter.convert({ archivePath, archive }, tmp, options);
        throwIfAborted(options.signal, "loading the image");
        await fsyncFile(tmp);
        await this.#validate(tmp);
        const sifBytes = (await stat(tmp)).size;
        await rename(tmp, p.sif);
        await fsyncDir(this.dir);
        const now = new Date().toISOString();
        const entry = await this.#writeMeta(p.meta, {
          id,
          sifPath: p.sif,
          config: archive.config,
          repoTags: archive.repoTags,
          architecture: archive.architecture,
          os: archive.os,
          sifBytes,
          converter: converter.name,
          createdAt: now,
          loadedAt: now,
        });
        return { entry, converted: true };
      } finally {
        await rm(tmp, { force: true });
      }
    } finally {
      await release();
    }
  }

  /**
   * Removes what conversions of dead processes left in the cache: each lock whose holder died on
   * this host is taken over, the partial SIF and metadata files under it removed, and the lock
   * released. Finished entries, and locks of live holders or of other hosts, are left alone.
   */
  async sweep(): Promise<SweepReport> {
    const report: SweepReport = { removed: [], failed: [] };
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.lock$/.exec(name);
      if (!m || !(await holderIsDead(join(this.dir, name)))) continue;
      const hex = m[1] as string;
      const p = this.paths(`sha256:${hex}`);
      let release: () => Promise<void>;
      try {
        release = await this.#lock(p.sif, p.lock, AbortSignal.timeout(2000));
      } catch (err) {
        // Taken by a live process meanwhile, which cleans up itself; anything else is reported.
        if (!(err instanceof AbortedError))
          report.failed.push(`cache lock ${p.lock}: ${(err as Error).message}`);
        continue;
      }
      try {
        const partial = (await readdir(this.dir).catch(() => [] as string[])).filter(
          (n) => n.startsWith(`.${hex}.sif.tmp-`) || n.startsWith(`.${hex}.json.tmp-`),
        );
        for (const n of partial) {
          await rm(join(this.dir, n), { force: true });
          report.removed.push(`partial cache file ${join(this.dir, n)} (its converting process died)`);
        }
        report.removed.push(`cache lock ${p.lock} (its holder died)`);
      } finally {
        await release();
      }
    }
    return report;
  }

  /** Removes the image an id or tag names. False when there was none. */
  async remove(ref: string, signal?: AbortSignal): Promise<boolean> {
    const r = parseImageRef(ref);
    const entry = r.kind === "id" ? await this.#readMeta(r.id) : await this.lookup(ref);
    const id = r.kind === "id" ? r.id : entry?.id;
    if (!id) return false;
    const p = this.paths(id);
    const present = entry !== undefined || (await exists(p.sif));
    if (!present) return false;
    const release = await this.#lock(p.sif, p.lock, signal);
    try {
      await this.#removeFiles(p.hex, false);
    } finally {
      await release();
    }
    return true;
  }

  #readOnly(id: ImageId, cause?: unknown): InvalidConfigError {
    return new InvalidConfigError(
      `the SIF cache ${this.dir} cannot be written by this user (uid ${process.getuid?.() ?? "?"}) and holds no SIF of ${id}: ` +
        "load the image into a cache of your own (cacheDir, or CONTEXEC_SIF_CACHE; by default each user has one under ~/.cache), " +
        "or ask the owner of this cache to load it there",
      cause === undefined ? undefined : { cause },
    );
  }

  async #valid(id: ImageId): Promise<SifCacheEntry | undefined> {
    const entry = await this.#readMeta(id);
    if (!entry) return undefined;
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(entry.sifPath);
    } catch {
      return undefined;
    }
    if (st.size !== entry.sifBytes) return undefined;
    const identity = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.#checked.get(entry.sifPath) !== identity) {
      try {
        await this.#validate(entry.sifPath);
      } catch {
        this.#checked.delete(entry.sifPath);
        return undefined;
      }
      this.#checked.set(entry.sifPath, identity);
    }
    return entry;
  }

  async #readMeta(id: ImageId): Promise<SifCacheEntry | undefined> {
    const p = this.paths(id);
    try {
      const raw = JSON.parse(await readFile(p.meta, "utf8")) as StoredMeta;
      if (raw.schema !== 1 || raw.id !== id || typeof raw.sifBytes !== "number" || !raw.config)
        return undefined;
      const { schema: _, ...rest } = raw;
      return { ...rest, repoTags: Array.isArray(raw.repoTags) ? raw.repoTags : [], sifPath: p.sif };
    } catch {
      return undefined;
    }
  }

  async #writeMeta(path: string, entry: SifCacheEntry): Promise<SifCacheEntry> {
    const { sifPath, ...rest } = entry;
    const stored: StoredMeta = { schema: 1, ...rest };
    const tmp = join(
      this.dir,
      `.${entry.id.slice(7)}.json.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
    );
    try {
      const handle = await open(tmp, "w");
      try {
        await handle.writeFile(`${JSON.stringify(stored, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
      await fsyncDir(this.dir);
    } finally {
      await rm(tmp, { force: true });
    }
    this.#checked.delete(sifPath);
    return entry;
  }

  async #removeFiles(hex: string, keepNothingButLock: boolean): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const doomed = names.filter(
      (n) =>
        n === `${hex}.sif` ||
        n === `${hex}.json` ||
        n.startsWith(`.${hex}.sif.tmp-`) ||
        n.startsWith(`.${hex}.json.tmp-`),
    );
    // Metadata first: an entry without it is not trusted, whatever happens to the SIF.
    doomed.sort((a, b) => (a.endsWith(".json") ? -1 : b.endsWith(".json") ? 1 : 0));
    for (const n of doomed) await rm(join(this.dir, n), { force: true });
    if (!keepNothingButLock) this.#checked.delete(join(this.dir, `${hex}.sif`));
  }

  /** Takes the cross-process lock, waiting (and honouring `signal`) while another process holds it. */
  async #lock(file: string, lockPath: string, signal: AbortSignal | undefined): Promise<() => Promise<void>> {
    let delay = 50;
    for (;;) {
      throwIfAborted(signal, "waiting for the SIF cache lock");
      try {
        const release = await (await lockModule()).lock(file, {
          lockfilePath: lockPath,
          realpath: false,
          stale: this.#staleMs,
          retries: 0,
          fs: LOCK_FS,
          // The default throws from a timer; a lost lock only risks a second, identical conversion.
          onCompromised: () => {},
        });
        // Who holds it: a process that dies holding it is known to be dead at once.
        await writeFile(join(lockPath, LOCK_OWNER_FILE), JSON.stringify(currentOwner())).catch(() => {});
        return async () => {
          await release().catch(() => {});
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw err;
      }
      // A holder that died on this host is not waited for (proper-lockfile would wait for the
      // lock to go stale); a live one, or one on another host, is.
      if (await holderIsDead(lockPath)) {
        const removed = await rm(lockPath, { recursive: true, force: true }).then(
          () => true,
          () => false,
        );
        if (removed) continue;
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 500);
    }
  }
}

/** The owner record a lock holder writes into the lock folder. */
const LOCK_OWNER_FILE = "owner.json";

/** proper-lockfile (and graceful-fs under it), loaded by the first lock (a conversion, a removal): a run of a cached image takes none. */
let lockfileModule: Promise<typeof import("proper-lockfile")> | undefined;
function lockModule(): Promise<typeof import("proper-lockfile")> {
  // A CommonJS module: its exports are the namespace's default.
  lockfileModule ??= import("proper-lockfile").then(
    (m) => (m as unknown as { default: typeof import("proper-lockfile") }).default,
  );
  return lockfileModule;
}

/**
 * proper-lockfile removes a lock with rmdir, which the owner record inside would stop: this file
 * system removes the record first (on release, on a stale takeover, and at exit).
 */
const LOCK_FS = {
  ...fs,
  rmdir(path: fs.PathLike, callback: (err: NodeJS.ErrnoException | null) => void): void {
    fs.unlink(join(String(path), LOCK_OWNER_FILE), () => fs.rmdir(path, callback));
  },
  rmdirSync(path: fs.PathLike): void {
    try {
      fs.unlinkSync(join(String(path), LOCK_OWNER_FILE));
    } catch {
      // none written
    }
    fs.rmdirSync(path);
  },
};

/** The lock's holder is a process of this host that has ended (a lock without a record is never judged). */
async function holderIsDead(lockPath: string): Promise<boolean> {
  try {
    // Read and stat through one handle: the record judged is the one whose owner is checked.
    const handle = await open(join(lockPath, LOCK_OWNER_FILE), "r");
    try {
      const [text, info] = await Promise.all([handle.readFile("utf8"), handle.stat()]);
      const owner = parseOwnerRecord(JSON.parse(text));
      if (owner === undefined) return false;
      const sameUser = info.uid === process.getuid?.();
      return (await ownerLiveness(owner, { sameUser })) === "dead";
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}

/** A loadedAt older than a minute is refreshed so the newest load of a tag wins. */
function isOld(iso: string): boolean {
  return Date.now() - Date.parse(iso) > 60_000;
}

/** Whether this process can make files in `dir` (write and search permission). */
async function writable(dir: string): Promise<boolean> {
  return access(dir, fs.constants.W_OK | fs.constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a folder; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError("waiting for the SIF cache lock", { cause: signal?.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
