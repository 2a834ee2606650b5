import { type LoadOptions, type PullOptions, registryReferenceOf } from "../executor.js";
import type { ImageId } from "../spec.js";

/** What a load is doing: the stages every backend reports, in order. */
export const LOAD_STAGES = ["checking", "converting", "loading", "done"] as const;
export type LoadStage = (typeof LOAD_STAGES)[number];

/**
 * Progress of `loadImage`, on one scale from the first report to the last: `bytesDone` grows
 * from 0 to `bytesTotal` across every pass the load makes over the archive (Docker: the entry
 * checks, then the daemon reading it; Apptainer: the checks, then the conversion), never going
 * back. An image already there reports `done` at once, with `bytesDone === bytesTotal`.
 */
export interface LoadProgress {
  stage: LoadStage;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Maps each stage's own byte count onto the one scale of {@link LoadProgress}: stage k starts
 * where the stages before it end. Reports are monotone and repeat nothing.
 */
export class LoadProgressScale {
  readonly #report: ((p: LoadProgress) => void) | undefined;
  readonly #stages: { stage: LoadStage; bytes: number }[];
  readonly bytesTotal: number;
  #last = -1;

  constructor(
    report: ((p: LoadProgress) => void) | undefined,
    stages: { stage: LoadStage; bytes: number }[],
  ) {
    this.#report = report;
    this.#stages = stages;
    this.bytesTotal = stages.reduce((n, s) => n + Math.max(0, s.bytes), 0);
  }

  /** `bytes` done of `stage` (its own count, from 0 to its size). */
  stage(stage: LoadStage, bytes: number): void {
    let before = 0;
    for (const s of this.#stages) {
      if (s.stage === stage) {
        this.#emit(stage, before + Math.min(Math.max(0, bytes), s.bytes));
        return;
      }
      before += s.bytes;
    }
  }

  /** The load is over: everything counts as done. */
  done(): void {
    this.#emit("done", this.bytesTotal);
  }

  #emit(stage: LoadStage, bytesDone: number): void {
    if (!this.#report || bytesDone < this.#last || (bytesDone === this.#last && stage !== "done")) return;
    this.#last = bytesDone;
    this.#report({ stage, bytesDone, bytesTotal: this.bytesTotal });
  }
}

/**
 * `loadImage(docker://REF)` on a backend that pulls: `pull` (its pullImage) with the load's
 * signal and limits, the load's progress then ended with `done` (a pull reports per layer, through
 * pullImage's own onProgress). Resolves with the image's id; undefined when `source` is an
 * archive, which the backend loads itself.
 */
export async function pullForLoad(
  source: string | NodeJS.ReadableStream,
  options: LoadOptions,
  pull: (reference: string, options: PullOptions) => Promise<ImageId>,
): Promise<ImageId | undefined> {
  const reference = registryReferenceOf(source);
  if (reference === undefined) return undefined;
  const id = await pull(reference, {
    ...(options.signal && { signal: options.signal }),
    ...(options.limits && { limits: options.limits }),
  });
  new LoadProgressScale(options.onProgress, []).done();
  return id;
}
