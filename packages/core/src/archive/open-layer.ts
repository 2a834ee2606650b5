import { type ChildProcess, spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { PassThrough, type Readable } from "node:stream";
import * as zlib from "node:zlib";
import { AbortedError, ImageArchiveError, RuntimeUnavailableError } from "../errors.js";
import { findExecutable } from "../find-executable.js";
import type { ArchiveLayer } from "./image-archive.js";

/**
 * Opens one layer of an image archive file by offset and gives its *uncompressed* tar bytes:
 * gzip through zlib, zstd through zlib when this Node has it (22.15+) or else the `zstd`
 * command, bzip2 and xz through their commands.
 */

const READ_CHUNK = 1024 * 1024;

export interface OpenedLayer {
  stream: Readable;
  /** Resolves when a decompressing child exited cleanly; rejects with its error otherwise. */
  finished: Promise<void>;
  /** Stops reading and kills any child. */
  destroy(): void;
}

type ZlibWithZstd = typeof zlib & { createZstdDecompress?: () => import("node:stream").Transform };

const COMMANDS: Record<string, { command: string; package: string }> = {
  zstd: { command: "zstd", package: "zstd" },
  bzip2: { command: "bzip2", package: "bzip2" },
  xz: { command: "xz", package: "xz-utils" },
};

/** Fails early, before anything is written, when a layer's compression cannot be read here. */
export async function checkLayerDecompression(layers: readonly ArchiveLayer[]): Promise<void> {
  for (const layer of layers) {
    if (layer.compression === "none" || layer.compression === "gzip") continue;
    if (layer.compression === "zstd" && typeof (zlib as ZlibWithZstd).createZstdDecompress === "function")
      continue;
    const tool = COMMANDS[layer.compression];
    if (!tool || !(await findExecutable(tool.command))) {
      throw new RuntimeUnavailableError(
        tool?.command ?? layer.compression,
        `layer ${layer.member} is ${layer.compression}-compressed and this machine cannot decompress it: install the ${tool?.command ?? layer.compression} command (apt-get install ${tool?.package ?? layer.compression})${layer.compression === "zstd" ? " or run on Node >= 22.15, whose zlib reads zstd" : ""}`,
      );
    }
  }
}

/** The layer's uncompressed tar as a stream. */
export function openLayer(
  archivePath: string,
  layer: ArchiveLayer,
  options: { signal?: AbortSignal; onRawBytes?: (n: number) => void } = {},
): OpenedLayer {
  const { signal, onRawBytes } = options;
  if (layer.size === 0) {
    const empty = new PassThrough();
    empty.end();
    return { stream: empty, finished: Promise.resolve(), destroy: () => empty.destroy() };
  }
  const raw = createReadStream(archivePath, {
    start: layer.dataOffset,
    end: layer.dataOffset + layer.size - 1,
    highWaterMark: READ_CHUNK,
  });
  if (onRawBytes) raw.on("data", (chunk) => onRawBytes(chunk.length));
  const what = `layer ${layer.member}`;
  const decompressError = (err: Error) =>
    new ImageArchiveError(`${what} cannot be decompressed (${layer.compression}): ${err.message}`, {
      cause: err,
    });
  switch (layer.compression) {
    case "none":
      return { stream: raw, finished: Promise.resolve(), destroy: () => raw.destroy() };
    case "gzip":
      return viaTransform(raw, zlib.createGunzip({ chunkSize: READ_CHUNK }), decompressError);
    case "zstd": {
      const create = (zlib as ZlibWithZstd).createZstdDecompress;
      if (typeof create === "function") return viaTransform(raw, create(), decompressError);
      return viaCommand(raw, "zstd", what, signal);
    }
    case "bzip2":
      return viaCommand(raw, "bzip2", what, signal);
    case "xz":
      return viaCommand(raw, "xz", what, signal);
  }
}

function viaTransform(
  raw: Readable,
  transform: import("node:stream").Transform,
  wrap: (err: Error) => Error,
): OpenedLayer {
  const out = new PassThrough({ highWaterMark: READ_CHUNK });
  raw.on("error", (err) => out.destroy(err));
  transform.on("error", (err) => out.destroy(wrap(err)));
  raw.pipe(transform).pipe(out);
  return {
    stream: out,
    finished: Promise.resolve(),
    destroy: () => {
      raw.destroy();
      transform.destroy();
      out.destroy();
    },
  };
}

function viaCommand(raw: Readable, command: string, what: string, signal?: AbortSignal): OpenedLayer {
  const child: ChildProcess = spawn(command, ["-d", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  const stdin = child.stdin as NonNullable<ChildProcess["stdin"]>;
  const stdout = child.stdout as Readable;
  // EPIPE when the child stops early: the exit status below says what went wrong.
  stdin.on("error", () => {});
  raw.on("error", (err) => stdout.destroy(err));
  raw.pipe(stdin);
  const onAbort = () => child.kill("SIGKILL");
  signal?.addEventListener("abort", onAbort, { once: true });
  const finished = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => {
      reject(
        new RuntimeUnavailableError(command, `cannot run ${command} to decompress ${what}: ${err.message}`, {
          cause: err,
        }),
      );
    });
    child.on("close", (code, sig) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) reject(new AbortedError("converting the image", { cause: signal.reason }));
      else if (code === 0) resolve();
      else
        reject(
          new ImageArchiveError(
            `${what} cannot be decompressed: ${command} -d exited with ${code ?? sig}: ${stderr.trim()}`,
          ),
        );
    });
  });
  finished.catch(() => {});
  return {
    stream: stdout,
    finished,
    destroy: () => {
      raw.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
