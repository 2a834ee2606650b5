import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { AbortedError, type ImageArchive, RuntimeError, RuntimeUnavailableError } from "@contexec/core";
import { runtimeProcessEnv } from "../plan/runtime-env.js";
import { configPrefixOf, type RuntimeFlavor } from "../probe/runtime-version.js";
import { runTool } from "../process/run-tool.js";
import { fatalMessage } from "../process/stderr-tail.js";

export interface SifConvertInput {
  /** The docker-archive or OCI layout tarball, a file on disk. */
  archivePath: string;
  /** What core's readImageArchive read from it. */
  archive: ImageArchive;
}

export interface SifConvertOptions {
  signal?: AbortSignal;
  /** Called with what the converter is doing ("converting", output lines). */
  onProgress?: (progress: { stage: string; message?: string }) => void;
  /** A folder for the converter's scratch files; the converter removes what it made there. */
  tmpDir: string;
}

/** Turns an image archive into a SIF file at `outPath` (which must not exist yet). */
export interface SifConverter {
  readonly name: string;
  convert(input: SifConvertInput, outPath: string, options: SifConvertOptions): Promise<void>;
}

export interface ApptainerBuildConverterOptions {
  binary: string;
  flavor: RuntimeFlavor;
  env?: NodeJS.ProcessEnv;
}

/**
 * `apptainer build OUT.sif docker-archive://ARCHIVE` (or oci-archive://), with a private cache
 * and temp folder for each conversion, removed afterwards.
 */
export class ApptainerBuildConverter implements SifConverter {
  readonly name = "apptainer-build";
  readonly #options: ApptainerBuildConverterOptions;

  constructor(options: ApptainerBuildConverterOptions) {
    this.#options = options;
  }

  async convert(input: SifConvertInput, outPath: string, options: SifConvertOptions): Promise<void> {
    const { binary, flavor } = this.#options;
    const work = await mkdtemp(join(options.tmpDir, "build-"));
    try {
      // Apptainer reads "docker-archive:///a/b:c.tar" as the file "/a/b" with reference "c.tar"
      // ("open /a/b: no such file or directory"): a link with a plain name avoids that.
      const link = join(work, "archive.tar");
      await symlink(input.archivePath, link);
      const transport = input.archive.format === "oci-layout" ? "oci-archive" : "docker-archive";
      const prefix = configPrefixOf(flavor);
      const env = runtimeProcessEnv(this.#options.env ?? process.env, {
        [`${prefix}CACHEDIR`]: join(work, "cache"),
        [`${prefix}TMPDIR`]: join(work, "tmp"),
      });
      await Promise.all([mkdir(join(work, "cache")), mkdir(join(work, "tmp"))]);
      options.onProgress?.({ stage: "converting", message: `${binary} build (${transport})` });
      const r = await runTool([binary, "--quiet", "build", outPath, `${transport}://${link}`], {
        env,
        cwd: work,
        timeoutMs: 0,
        ...(options.signal && { signal: options.signal }),
      });
      if (options.signal?.aborted)
        throw new AbortedError("converting the image to SIF", { cause: options.signal?.reason });
      if (r.exitCode !== 0) {
        const stderr = String(r.stderr ?? "");
        throw new RuntimeError(
          flavor,
          `${binary} build of ${input.archivePath} failed: ${fatalMessage(stderr) ?? (stderr.trim().split("\n").pop() || `exit ${r.exitCode ?? r.signal}`)}`,
          { ...(r.exitCode !== undefined && { runtimeExitCode: r.exitCode }), stderr },
        );
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}

/**
 * The native converter, and `apptainer build` for an archive it cannot convert because a tool
 * is missing here (RuntimeUnavailableError: no sqfstar, no zstd for a zstd layer).
 */
export class FallbackConverter implements SifConverter {
  readonly #first: SifConverter;
  readonly #second: () => Promise<SifConverter>;
  #used: SifConverter;

  constructor(first: SifConverter, second: () => Promise<SifConverter>) {
    this.#first = first;
    this.#second = second;
    this.#used = first;
  }

  get name(): string {
    return this.#used.name;
  }

  async convert(input: SifConvertInput, outPath: string, options: SifConvertOptions): Promise<void> {
    try {
      await this.#first.convert(input, outPath, options);
      this.#used = this.#first;
    } catch (err) {
      if (!(err instanceof RuntimeUnavailableError)) throw err;
      await rm(outPath, { force: true });
      this.#used = await this.#second();
      await this.#used.convert(input, outPath, options);
    }
  }
}
