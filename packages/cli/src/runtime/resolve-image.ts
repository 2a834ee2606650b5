import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import {
  ContainerError,
  type ContainerExecutor,
  ImageArchiveError,
  type LoadOptions,
  type PlannedCommand,
  type PullOptions,
  type RunPlan,
  readImageArchive,
} from "@contexec/core";
import type { JobImage } from "../job/job.js";

/** The image a spec names once resolved, and what planning needs to know of it. */
export interface ResolvedImage {
  /** What goes into `spec.image`: an id, or a tag the runtime knows. */
  image: string;
  /** The archive to plan from (a dry run: nothing is loaded). */
  archive?: string;
  /** Adjusts a dry run's plan (the image comes out of the Docker daemon first). */
  patchPlan?: (plan: RunPlan) => void;
  /** Removes what resolving made (a temporary archive). */
  dispose(): Promise<void>;
}

export interface ResolveImageOptions {
  /** Plan only: read archives, load nothing. */
  dryRun: boolean;
  signal?: AbortSignal;
  onProgress?: LoadOptions["onProgress"];
  /** Per-layer progress of a pull (`image: docker://REF`). */
  onPullProgress?: PullOptions["onProgress"];
  /** Says what is happening (exporting from Docker, converting). */
  log: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

const nothing = async () => {};

/**
 * Finds the job's image for `executor`: an archive is loaded (a dry run reads its config only);
 * `docker://REF` is pulled unless the runtime has it already (compose's pull_policy "missing"; a
 * dry run pulls nothing and needs it there); an id or tag must be known to the runtime, except on
 * Apptainer and SLURM, where a tag of the local Docker daemon is exported from it (`docker save`)
 * and converted (or kept for the nodes), as DockSing users expect.
 */
export async function resolveImage(
  executor: ContainerExecutor,
  image: JobImage,
  options: ResolveImageOptions,
): Promise<ResolvedImage> {
  const signal = options.signal ? { signal: options.signal } : {};
  if (image.kind === "archive") {
    await stat(image.path).catch((err) => {
      throw new ImageArchiveError(`the image archive ${image.path} does not exist or cannot be read`, {
        cause: err,
      });
    });
    if (options.dryRun) {
      const meta = await readImageArchive(image.path, signal);
      return { image: meta.id, archive: image.path, dispose: nothing };
    }
    const id = await executor.loadImage(image.path, {
      ...signal,
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
    return { image: id, dispose: nothing };
  }
  if (image.kind === "registry") {
    const have = await executor.hasImage(image.ref).catch((err: unknown) => {
      if (options.dryRun) return false;
      throw err;
    });
    if (have) return { image: image.ref, dispose: nothing };
    if (options.dryRun) {
      throw new ContainerError(
        "E_IMAGE_NOT_FOUND",
        `image docker://${image.ref} is not in ${executor.runtime} here, and a dry run pulls nothing: run contexec pull ${image.ref} --runtime ${executor.runtime} first, then plan again`,
      );
    }
    options.log(`pulling ${image.ref} into ${executor.runtime}`);
    const id = await executor.pullImage(image.ref, {
      ...signal,
      ...(options.onPullProgress && { onProgress: options.onPullProgress }),
    });
    return { image: id, dispose: nothing };
  }
  // Apptainer (and SLURM, which converts or keeps archives for its nodes) takes a Docker tag out of the local daemon.
  if (!["apptainer", "singularity", "slurm"].includes(executor.runtime)) {
    if (!(await executor.hasImage(image.ref))) throw notFound(image.ref, executor.runtime);
    return { image: image.ref, dispose: nothing };
  }
  // An image id names one image everywhere: the SIF cache has it or not, Docker need not be asked.
  if (/^sha256:[0-9a-f]{64}$/.test(image.ref) && (await executor.hasImage(image.ref))) {
    return { image: image.ref, dispose: nothing };
  }
  const fromCache = async (): Promise<ResolvedImage> => {
    if (await executor.hasImage(image.ref)) return { image: image.ref, dispose: nothing };
    throw notFound(image.ref, executor.runtime);
  };
  // No daemon to ask (no DOCKER_HOST, no socket: an HPC login node): the Docker client is not
  // even loaded (it costs a fresh process ~75 ms). process.env, as the client itself reads it.
  if (!process.env.DOCKER_HOST && !existsSync(DEFAULT_DOCKER_SOCKET)) return fromCache();
  // Loaded only for a tag: an Apptainer run pays nothing for the Docker client otherwise.
  const { DockerExecutor } = await import("@contexec/docker");
  const docker = new DockerExecutor({ requestTimeoutMs: 10_000 });
  try {
    const dockerId = await docker.docker
      .getImage(image.ref)
      .inspect()
      .then((i) => i.Id as string)
      .catch(() => undefined);
    if (dockerId !== undefined) {
      if (await executor.hasImage(dockerId)) return { image: dockerId, dispose: nothing };
      options.log(`exporting ${image.ref} from the local Docker daemon (docker save)`);
      const dir = await mkdtemp(join(options.env.TMPDIR || tmpdir(), "contexec-docker-save-"));
      const dispose = () => rm(dir, { recursive: true, force: true });
      try {
        const archive = join(dir, "image.tar");
        await pipeline(await docker.docker.getImage(image.ref).get(), createWriteStream(archive), signal);
        if (options.dryRun) {
          return {
            image: image.ref,
            archive,
            patchPlan: (plan) => exportStep(plan, image.ref, archive, options.env),
            dispose,
          };
        }
        const id = await executor.loadImage(archive, {
          ...signal,
          ...(options.onProgress && { onProgress: options.onProgress }),
        });
        await dispose();
        return { image: id, dispose: nothing };
      } catch (err) {
        await dispose();
        throw err;
      }
    }
  } finally {
    await docker.close().catch(() => {});
  }
  return fromCache();
}

/** Where a Docker daemon listens when DOCKER_HOST does not say otherwise. */
const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";

function notFound(ref: string, runtime: string): ContainerError {
  const where =
    runtime === "docker"
      ? "the Docker daemon has no such image"
      : "it is neither in the SIF cache nor in a Docker daemon on this machine";
  return new ContainerError(
    "E_IMAGE_NOT_FOUND",
    `image "${ref}" not found: ${where}. Name a docker-archive instead (image: ./image.tar, made with docker save -o image.tar ${ref})`,
  );
}

/**
 * A dry run's image came out of the Docker daemon into a temporary archive that is gone once the
 * plan is printed: the script exports it again (`docker save`) before converting it, and removes it.
 */
function exportStep(plan: RunPlan, ref: string, archive: string, env: NodeJS.ProcessEnv): void {
  const prepare = plan.image.prepare;
  if (!prepare) return;
  const cliEnv: Record<string, string> = { PATH: env.PATH ?? "/usr/local/bin:/usr/bin:/bin" };
  if (env.HOME) cliEnv.HOME = env.HOME;
  if (env.DOCKER_HOST) cliEnv.DOCKER_HOST = env.DOCKER_HOST;
  const save: PlannedCommand = {
    argv: ["docker", "save", "-o", archive, ref],
    env: cliEnv,
    cwd: "/",
    stdin: false,
  };
  const mkdir: PlannedCommand = {
    argv: ["mkdir", "-p", "-m", "0700", join(archive, "..")],
    env: cliEnv,
    cwd: "/",
    stdin: false,
  };
  prepare.commands.unshift(mkdir, save);
  plan.after.push({
    op: "remove",
    path: join(archive, ".."),
    why: "the image exported from the Docker daemon",
  });
  plan.notes.push(
    `the image comes from the local Docker daemon (${ref}): the script exports it with docker save`,
  );
}
