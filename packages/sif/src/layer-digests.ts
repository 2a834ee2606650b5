import { Worker } from "node:worker_threads";
import { AbortedError, type ArchiveLayer, ImageArchiveError } from "@contexec/core";

/**
 * Checks uncompressed layers of an archive file against their diff_ids in a worker thread that
 * reads the file itself. Hashing (SHA-256, about 1.2 GB/s here) is then off the conversion's
 * path: it runs beside the planning pass, when the second core is idle, and beside sqfstar, and
 * the writing pass needs to read only the bytes it copies. Compressed layers are hashed where
 * they are decompressed instead (see flatten-layers).
 */

export interface DigestCheck {
  /** Resolves when every layer matched; rejects with ImageArchiveError at the first mismatch. */
  done: Promise<void>;
  /** Stops the worker (after a failure elsewhere, or an abort). */
  cancel(): void;
}

/** The layers this check can take: stored uncompressed, with a sha256 diff_id. */
export function checkableByOffset(layer: ArchiveLayer): boolean {
  return layer.compression === "none" && layer.diffId?.startsWith("sha256:") === true;
}

// A CommonJS script run with `eval`, so it works the same from the built package and from the
// TypeScript sources under test. It runs with no execArgv of its own: a worker inherits the host
// process's by default, and with `--input-type=module` among them an eval'd script is an ES module,
// where `require` is not defined.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { openSync, readSync, closeSync } = require("node:fs");
const { createHash } = require("node:crypto");
const fd = openSync(workerData.path, "r");
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
try {
  for (const layer of workerData.layers) {
    const hash = createHash("sha256");
    let position = layer.start;
    while (position < layer.end) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, layer.end - position), position);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      position += n;
    }
    const actual = "sha256:" + hash.digest("hex");
    parentPort.postMessage({ member: layer.member, expected: layer.digest, actual, short: position < layer.end });
    if (actual !== layer.digest) break;
  }
} finally {
  closeSync(fd);
}
`;

export function checkLayerDigests(
  archivePath: string,
  layers: readonly ArchiveLayer[],
  signal?: AbortSignal,
): DigestCheck {
  const todo = layers.filter(checkableByOffset);
  if (todo.length === 0) return { done: Promise.resolve(), cancel: () => {} };
  const worker = new Worker(WORKER, {
    eval: true,
    execArgv: [],
    workerData: {
      path: archivePath,
      layers: todo.map((l) => ({
        member: l.member,
        start: l.dataOffset,
        end: l.dataOffset + l.size,
        digest: l.diffId,
      })),
    },
  });
  let cancelled = false;
  const onAbort = () => {
    cancelled = true;
    void worker.terminate();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const done = new Promise<void>((resolve, reject) => {
    let checked = 0;
    worker.on("message", (m: { member: string; expected: string; actual: string; short: boolean }) => {
      if (m.short) {
        reject(new ImageArchiveError("the layer is shorter than the archive says", { entry: m.member }));
      } else if (m.actual !== m.expected) {
        reject(
          new ImageArchiveError(
            `layer ${m.member} does not match its diff_id ${m.expected} (content is ${m.actual})`,
            {
              entry: m.member,
            },
          ),
        );
      } else checked++;
    });
    worker.on("error", (err) =>
      reject(new ImageArchiveError(`cannot check the layers' digests: ${err.message}`, { cause: err })),
    );
    worker.on("exit", () => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted || cancelled)
        reject(new AbortedError("checking the layers' digests", { cause: signal?.reason }));
      else if (checked === todo.length) resolve();
      else reject(new ImageArchiveError("the layers' digest check stopped early"));
    });
  });
  done.catch(() => {});
  return {
    done,
    cancel: () => {
      cancelled = true;
      void worker.terminate();
    },
  };
}
