import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import {
  AbortedError,
  type ImageConfig,
  type ImageId,
  ImageNotFoundError,
  type LoadOptions,
  type PullOptions,
  RuntimeUnavailableError,
  readImageArchive,
  registryReferenceOf,
  throwIfAborted,
  UnsupportedError,
} from "@contexec/core";
import { type ApptainerExecutor, normalizeTag, parseImageRef } from "@contexec/singularity";

/** An image kept as its archive on the shared file system, for a job to load or convert on its node. */
export interface SharedArchive {
  id: ImageId;
  repoTags: string[];
  path: string;
}

/**
 * Images where every node finds them. With Apptainer inside, an image is converted once, on the
 * submitting machine, into the shared SIF cache (the inner executor's cache, with its
 * cross-process lock); when this machine cannot convert (no Apptainer, no sqfstar), the archive
 * is kept instead and the job converts it on its node. With Docker inside, the archive is kept
 * and the job loads it into the node's daemon. Archives live in `<dir>/archives` as
 * `<hex>.tar` and `<hex>.json` (id and tags), each written to a temporary name and renamed.
 */
export class SharedImages {
  readonly dir: string;
  readonly #inner: "apptainer" | "docker";
  readonly #converter: ApptainerExecutor | undefined;

  /** `converter`: the Apptainer executor whose cache is the shared SIF folder (none with Docker inside). */
  constructor(dir: string, inner: "apptainer" | "docker", converter?: ApptainerExecutor) {
    this.dir = dir;
    this.#inner = inner;
    this.#converter = converter;
  }

  get archivesDir(): string {
    return join(this.dir, "archives");
  }

  async load(archive: string | NodeJS.ReadableStream, options: LoadOptions = {}): Promise<ImageId> {
    throwIfAborted(options.signal, "loading the image");
    const reference = registryReferenceOf(archive);
    // A pull has no archive to keep instead: its errors are the pull's own.
    if (reference !== undefined)
      return this.pull(reference, {
        ...(options.signal && { signal: options.signal }),
        ...(options.limits && { limits: options.limits }),
      });
    if (this.#converter) {
      try {
        return await this.#converter.loadImage(archive, options);
      } catch (err) {
        // Only "this machine cannot convert": a bad archive is the caller's to fix.
        if (!(err instanceof RuntimeUnavailableError) || typeof archive !== "string") throw err;
      }
    }
    return (await this.keepArchive(archive, options)).id;
  }

  /**
   * Pulls an image from its registry into the shared SIF cache, on this machine, once for every
   * node (Apptainer inside). With Docker inside, the nodes' daemons take images from archives on
   * the shared folder only: UnsupportedError, before anything is fetched.
   */
  async pull(reference: string, options: PullOptions = {}): Promise<ImageId> {
    if (!this.#converter) throw pullUnsupported();
    return this.#converter.pullImage(reference, options);
  }

  /** Copies the archive into the shared folder (checked first: a bad archive leaves nothing). */
  async keepArchive(
    archive: string | NodeJS.ReadableStream,
    options: LoadOptions = {},
  ): Promise<SharedArchive> {
    await mkdir(this.archivesDir, { recursive: true });
    const tmp = join(this.archivesDir, `.incoming-${process.pid}-${randomBytes(6).toString("hex")}.tar`);
    try {
      if (typeof archive === "string") {
        // Read before copying: ImageArchiveError for a bad archive, before any byte is written.
        await readImageArchive(archive, options.signal ? { signal: options.signal } : {});
        await copyFile(archive, tmp);
      } else {
        await pipeline(archive, createWriteStream(tmp), options.signal ? { signal: options.signal } : {});
      }
      const read = await readImageArchive(tmp, options.signal ? { signal: options.signal } : {});
      const hex = read.id.slice("sha256:".length);
      const path = join(this.archivesDir, `${hex}.tar`);
      const previous = await this.#readMeta(read.id);
      const repoTags = [...new Set([...(previous?.repoTags ?? []), ...read.repoTags])];
      await rename(tmp, path);
      const metaTmp = `${tmp}.json`;
      await writeFile(metaTmp, `${JSON.stringify({ id: read.id, repoTags }, null, 2)}\n`);
      await rename(metaTmp, join(this.archivesDir, `${hex}.json`));
      return { id: read.id, repoTags, path };
    } catch (err) {
      if (options.signal?.aborted) throw new AbortedError("loading the image", { cause: err });
      throw err;
    } finally {
      await rm(tmp, { force: true });
      await rm(`${tmp}.json`, { force: true });
    }
  }

  /** The kept archive an id or tag names, if any. */
  async archive(ref: string): Promise<SharedArchive | undefined> {
    const r = parseImageRef(ref);
    if (r.kind === "id") {
      const meta = await this.#readMeta(r.id);
      return meta && (await exists(meta.path)) ? meta : undefined;
    }
    const names = await readdir(this.archivesDir).catch(() => [] as string[]);
    for (const n of names) {
      if (!/^[0-9a-f]{64}\.json$/.test(n)) continue;
      const meta = await this.#readMeta(`sha256:${n.slice(0, 64)}`);
      if (meta?.repoTags.some((t) => normalizeTag(t) === r.tag) && (await exists(meta.path))) return meta;
    }
    return undefined;
  }

  async has(ref: string): Promise<boolean> {
    if (this.#converter && (await this.#converter.hasImage(ref))) return true;
    return (await this.archive(ref)) !== undefined;
  }

  /** True when the image is converted already (Apptainer inside): no archive needed in the plan. */
  async converted(ref: string): Promise<boolean> {
    return this.#converter ? this.#converter.hasImage(ref) : false;
  }

  /** The image's config (ENV, ENTRYPOINT, ...): from the shared SIF cache, else from the kept archive. */
  async config(ref: string): Promise<ImageConfig> {
    if (this.#converter && (await this.#converter.hasImage(ref)))
      return (await this.#converter.image(ref)).config;
    const kept = await this.archive(ref);
    if (!kept) throw new ImageNotFoundError(ref);
    return (await readImageArchive(kept.path)).config;
  }

  async remove(ref: string): Promise<void> {
    const kept = await this.archive(ref);
    if (this.#converter) await this.#converter.removeImage(kept?.id ?? ref);
    if (kept) {
      const hex = kept.id.slice("sha256:".length);
      await rm(join(this.archivesDir, `${hex}.json`), { force: true });
      await rm(kept.path, { force: true });
    }
  }

  get inner(): "apptainer" | "docker" {
    return this.#inner;
  }

  async #readMeta(id: ImageId): Promise<SharedArchive | undefined> {
    const hex = id.slice("sha256:".length);
    try {
      const raw = JSON.parse(await readFile(join(this.archivesDir, `${hex}.json`), "utf8")) as {
        id?: string;
        repoTags?: string[];
      };
      if (raw.id !== id) return undefined;
      return {
        id,
        repoTags: Array.isArray(raw.repoTags) ? raw.repoTags : [],
        path: join(this.archivesDir, `${hex}.tar`),
      };
    } catch {
      return undefined;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function pullUnsupported(): UnsupportedError {
  return new UnsupportedError(
    "pull",
    "with Docker inside, a SLURM job loads its image from an archive on the shared folder: pull it into a local Docker (docker pull), export it (docker save) and load that archive, or run Apptainer inside, which pulls into the shared SIF cache",
  );
}
