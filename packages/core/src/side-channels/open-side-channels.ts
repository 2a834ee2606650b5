import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExitStatus } from "../executor.js";
import { resolveEnv } from "../image-config.js";
import type { BindMount, ContainerSpec, ImageConfig } from "../spec.js";
import { HostCommandBridge, type HostCommandEvent, type RequestChannel } from "./host-command-bridge.js";
import { writeClientBin } from "./host-command-client.js";
import { compileHostCommandPolicy } from "./host-command-policy.js";
import { commandName, hostCommandsDefaults, ruleParts, supervisionDefaults } from "./side-channel-spec.js";
import { type Supervision, SupervisorFiles } from "./supervisor-files.js";

export interface SideChannelOptions {
  /** Where the private folders are made (one folder per container); default the OS temp folder. */
  scratchDir?: string;
  /**
   * How host-command requests arrive: "fifo" (default; the container runs on this machine) or
   * "file" (a regular `reqs` file read by polling: the container runs on another node that shares
   * the filesystem, as under SLURM).
   */
  requestChannel?: RequestChannel;
  /** How often files are polled (the `reqs` file in "file" mode, the status file always); default 200 ms / 500 ms. */
  pollMs?: number;
  /** Quiet period before a changed status file counts as written; default 100 ms. */
  statusSettleMs?: number;
  /** Every request the bridge handled: ran, refused, ignored, failed. */
  onHostCommand?: (event: HostCommandEvent) => void;
  /** The environment host commands inherit (under `hostCommands.env`); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/**
 * What a backend adds to one container for its side channels. A backend calls
 * {@link openSideChannels} in `create()`, runs `applyTo(spec, image)` instead of the spec, hands
 * `completeExit` the exit status, exposes `supervision`, and calls `close()` when it removes the
 * container. With neither `spec.hostCommands` nor `spec.supervision` every call is a no-op.
 */
export interface SideChannels {
  /** Bind mounts to add: the request folder, the client bin folder, the supervision folder. */
  readonly mounts: readonly BindMount[];
  /** Put first on the container's PATH (the folder of host command links), when there is one. */
  readonly pathPrefix: string | undefined;
  readonly supervision: Supervision | undefined;
  readonly hostCommands: HostCommandBridge | undefined;
  /**
   * The spec the runtime should run: its mounts plus ours, PATH with our prefix before the
   * image's (or the spec's), and no side-channel fields left (it validates as a plain spec).
   */
  applyTo(spec: ContainerSpec, image: Pick<ImageConfig, "env">): ContainerSpec;
  /** After the container's process ended: delivers the last status and adds the job's `result`. */
  completeExit<S extends ExitStatus>(status: S): Promise<S>;
  /** Stops serving, stops host commands still running, removes the private folders. Idempotent. */
  close(): Promise<void>;
}

const NONE: SideChannels = Object.freeze({
  mounts: [],
  pathPrefix: undefined,
  supervision: undefined,
  hostCommands: undefined,
  applyTo: (spec: ContainerSpec) => spec,
  completeExit: async <S extends ExitStatus>(status: S) => status,
  close: async () => {},
});

/**
 * Opens the side channels a (validated) spec asks for: a private folder with the `reqs` pipe
 * (or file), served at once, the client script and its links, and the supervision folder with
 * its status watcher. Everything made is removed again if a step fails.
 */
export async function openSideChannels(
  spec: ContainerSpec,
  options: SideChannelOptions = {},
): Promise<SideChannels> {
  if (!spec.hostCommands && !spec.supervision) return NONE;
  const scratch = await mkdtemp(join(options.scratchDir ?? tmpdir(), "contexec-side-"));
  const mounts: BindMount[] = [];
  let bridge: HostCommandBridge | undefined;
  let supervisor: SupervisorFiles | undefined;
  let pathPrefix: string | undefined;
  try {
    if (spec.hostCommands) {
      const h = spec.hostCommands;
      const d = hostCommandsDefaults(h);
      const requests = join(scratch, "requests");
      const bin = join(scratch, "bin");
      await mkdir(requests);
      // Any user of the container writes requests; the scratch folder (0700) keeps others out.
      await chmod(requests, 0o777);
      await writeClientBin(
        bin,
        d.mountPath,
        h.allow.map((r) => commandName(ruleParts(r).command)),
      );
      bridge = await HostCommandBridge.open({
        dir: requests,
        policy: compileHostCommandPolicy(h),
        channel: options.requestChannel ?? "fifo",
        cwd: h.cwd ?? process.cwd(),
        env: { ...definedOnly(options.env ?? process.env), ...(h.env ?? {}) },
        timeoutMs: d.timeoutMs,
        maxOutputBytes: d.maxOutputBytes,
        concurrency: d.concurrency,
        ...(options.pollMs !== undefined && { pollMs: options.pollMs }),
        ...(options.onHostCommand && { onEvent: options.onHostCommand }),
      });
      mounts.push({ type: "bind", source: requests, target: d.mountPath });
      mounts.push({ type: "bind", source: bin, target: d.binPath, readOnly: true });
      pathPrefix = d.binPath;
    }
    if (spec.supervision) {
      const s = supervisionDefaults(spec.supervision);
      const owned = spec.supervision.hostDir === undefined;
      const dir = spec.supervision.hostDir ?? join(scratch, "service");
      if (owned) {
        await mkdir(dir);
        await chmod(dir, 0o777);
      }
      supervisor = await SupervisorFiles.open({
        dir,
        owned,
        statusFile: s.statusFile,
        resultFile: s.resultFile,
        notificationsFile: s.notificationsFile,
        ...(options.statusSettleMs !== undefined && { settleMs: options.statusSettleMs }),
        ...(options.pollMs !== undefined && { pollMs: options.pollMs }),
      });
      mounts.push({ type: "bind", source: dir, target: s.mountPath });
    }
  } catch (err) {
    await bridge?.close().catch(() => {});
    await supervisor?.close().catch(() => {});
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    mounts,
    pathPrefix,
    supervision: supervisor,
    hostCommands: bridge,
    applyTo(target, image) {
      const { hostCommands: _h, supervision: _s, ...plain } = target;
      const env = pathPrefix
        ? { ...target.env, PATH: `${pathPrefix}:${resolveEnv(image, target.env).get("PATH")}` }
        : target.env;
      return { ...plain, mounts: [...(target.mounts ?? []), ...mounts], ...(env && { env }) };
    },
    async completeExit(status) {
      const result = await supervisor?.finish();
      return result === undefined ? status : { ...status, result };
    },
    close() {
      closing ??= (async () => {
        await Promise.allSettled([bridge?.close(), supervisor?.close()]);
        await rm(scratch, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}
