import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import type { Writable } from "node:stream";
import { dieWithParent, findExecutable, RuntimeError, RuntimeUnavailableError } from "@contexec/core";

/**
 * `sqfstar` (squashfs-tools >= 4.5) turns a tar on its stdin into a squashfs image, with no
 * extraction to disk. It writes the image at an offset of its output file, so the SIF header and
 * small objects can be written in front of it afterwards and the squashfs is never copied.
 * Facts (4.5.1): options go before the output name; an existing output needs `-force`, and
 * `-force` truncates the whole file, bytes before the offset included (they read back as zeros).
 */

export const SQUASHFS_COMPRESSIONS = ["gzip", "zstd", "lz4", "none"] as const;
export type SquashfsCompression = (typeof SQUASHFS_COMPRESSIONS)[number];

export interface SqfstarOptions {
  compression?: SquashfsCompression;
  /** Byte offset in the output file where the squashfs starts. */
  offset?: number;
  /** Compressor threads; sqfstar's default is every processor. */
  processors?: number;
}

/**
 * Compressor threads that make the conversion fastest, measured on 2 cores: sqfstar competes for
 * the CPU with the process feeding it the tar. gzip and zstd are CPU-bound, and one thread more
 * than there are cores keeps every core compressing when the feeder pauses (-15% wall time with 3
 * threads against sqfstar's default of 2); lz4 is so cheap that a core left to the feeder wins
 * (-10% with 1 thread).
 */
export function defaultProcessors(compression: SquashfsCompression, cores = availableParallelism()): number {
  return compression === "gzip" || compression === "zstd" ? cores + 1 : Math.max(1, cores - 1);
}

/** sqfstar's argv (without the binary) for one conversion. */
export function sqfstarArgs(outPath: string, options: SqfstarOptions = {}): string[] {
  const compression = options.compression ?? "gzip";
  const args = [
    "-force",
    "-no-progress",
    "-quiet",
    "-exit-on-error",
    // The tar carries no extended attributes (see README); say so rather than rely on defaults.
    "-no-xattrs",
    // sqfstar ignores the tar's "./" entry; the image root is a plain root-owned 0755 folder.
    "-root-mode",
    "0755",
    "-root-uid",
    "0",
    "-root-gid",
    "0",
  ];
  if (compression === "none") args.push("-noI", "-noD", "-noF", "-noX");
  else args.push("-comp", compression);
  if (options.processors !== undefined) args.push("-processors", String(options.processors));
  if (options.offset) args.push("-offset", String(options.offset));
  args.push(outPath);
  return args;
}

/** The sqfstar binary to run: the given path, or `sqfstar` on PATH. */
export async function resolveSqfstar(sqfstarPath?: string): Promise<string> {
  const found = await findExecutable(sqfstarPath ?? "sqfstar");
  if (!found) {
    throw new RuntimeUnavailableError(
      "sqfstar",
      `${sqfstarPath ? `${sqfstarPath} is not an executable` : "no sqfstar on PATH"}; install squashfs-tools 4.5 or newer (apt-get install squashfs-tools), or pass sqfstarPath`,
    );
  }
  return found;
}

export interface SqfstarProcess {
  stdin: Writable;
  /** Resolves when sqfstar exits 0; rejects with a RuntimeError carrying its stderr otherwise. */
  done: Promise<void>;
  /** Kills sqfstar (SIGKILL); `done` then rejects. */
  kill(): void;
  /** True once kill() was called: a failure of `done` is then ours, not sqfstar's. */
  readonly killed: boolean;
}

const STDERR_LIMIT = 64 * 1024;

export function startSqfstar(binary: string, outPath: string, options: SqfstarOptions = {}): SqfstarProcess {
  // If this process dies (even by SIGKILL), sqfstar dies with it rather than finish a SIF nobody
  // will use (setpriv's parent-death signal, where util-linux has it).
  const [command, ...args] = dieWithParent([binary, ...sqfstarArgs(outPath, options)]);
  const child = spawn(command as string, args, { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    if (stderr.length < STDERR_LIMIT) stderr += d;
  });
  // EPIPE when sqfstar stops reading early; its exit status says why.
  child.stdin.on("error", () => {});
  let killed = false;
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => {
      reject(new RuntimeUnavailableError("sqfstar", `cannot run ${binary}: ${err.message}`, { cause: err }));
    });
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      const text = stderr.trim();
      reject(
        new RuntimeError(
          "sqfstar",
          `${killed ? "stopped" : `failed (${code === null ? `signal ${signal}` : `exit code ${code}`})`}${text ? `: ${text}` : ""}`,
          { ...(code !== null && { runtimeExitCode: code }), stderr: text },
        ),
      );
    });
  });
  done.catch(() => {});
  return {
    stdin: child.stdin,
    done,
    kill() {
      killed = true;
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
    get killed() {
      return killed;
    },
  };
}
