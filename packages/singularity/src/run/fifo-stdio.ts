import { execFile } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { rm } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";

/**
 * Standard streams for a child made of named pipes (FIFOs) instead of Node's stdio "pipe",
 * which libuv makes with socketpair(2). A container's program sees real pipes, as under Docker:
 * `echo x > /dev/stderr`, `tee /dev/fd/3` and `cat /dev/stdin` reopen their standard streams
 * through /proc/self/fd, and opening a socket that way fails ("No such device or address").
 */
export interface FifoStdio {
  /** What to give spawn's `stdio`. */
  childStdio: ["ignore" | number, number, number];
  /** Our ends: stdin to write (when asked for), stdout and stderr to read. */
  stdin: Socket | null;
  stdout: Socket;
  stderr: Socket;
  /** Closes our copies of the child's ends; call once the child has been spawned (or failed to). */
  closeChildEnds(): void;
}

/** Makes FIFOs: Node has no mkfifo(3); coreutils' is one short process for all of them. */
function mkfifo(names: string[]): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    execFile("mkfifo", ["-m", "600", ...names], { env: { PATH: "/usr/bin:/bin" } }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

/**
 * FIFOs made ahead, many per `mkfifo` process, in a private folder: a container takes two or
 * three, so a run pays no process of its own for them (3 ms each, measured here). Refilled in the
 * background when half used; what is left goes with the folder.
 */
export class FifoPool {
  readonly #dir: () => Promise<string>;
  readonly #batch: number;
  readonly #ready: string[] = [];
  #filling: Promise<void> | undefined;
  #serial = 0;

  constructor(dir: () => Promise<string>, batch = 24) {
    this.#dir = dir;
    this.#batch = batch;
  }

  /** Starts making a batch now, so the first container finds FIFOs ready. */
  warm(): void {
    if (this.#ready.length === 0) void this.#fill().catch(() => {});
  }

  async take(n: number): Promise<string[]> {
    while (this.#ready.length < n) await this.#fill();
    const names = this.#ready.splice(0, n);
    if (this.#ready.length < this.#batch / 2) void this.#fill().catch(() => {});
    return names;
  }

  #fill(): Promise<void> {
    this.#filling ??= (async () => {
      const dir = await this.#dir();
      const names = Array.from({ length: this.#batch }, () =>
        join(dir, `fifo-${process.pid}-${this.#serial++}`),
      );
      await mkfifo(names);
      this.#ready.push(...names);
    })().finally(() => {
      this.#filling = undefined;
    });
    return this.#filling;
  }
}

/** A folder to make FIFOs in, one `mkfifo` per call, or a pool of ready ones. */
export type FifoSource = string | FifoPool;

/** Takes (or makes) the FIFOs, opens both ends and removes the names again. */
export async function openFifoStdio(source: FifoSource, withStdin: boolean): Promise<FifoStdio> {
  const count = withStdin ? 3 : 2;
  let names: string[];
  if (typeof source === "string") {
    names = ["out", "err", "in"].slice(0, count).map((n) => join(source, `${n}-${process.hrtime.bigint()}`));
    await mkfifo(names);
  } else {
    names = await source.take(count);
  }
  const [outPath, errPath, inPath] = names as [string, string, string | undefined];
  const opened: number[] = [];
  try {
    const output = (path: string) => {
      // Our end first, non-blocking, so the child's blocking end opens at once.
      const ours = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      opened.push(ours);
      const theirs = openSync(path, constants.O_WRONLY);
      opened.push(theirs);
      return { ours, theirs };
    };
    const out = output(outPath);
    const err = output(errPath);
    let input: { ours: number; theirs: number } | undefined;
    if (inPath) {
      // The child's read end must block (a program reading stdin must not get EAGAIN): hold a
      // throwaway reader so our non-blocking writer can open, then open the child's end blocking.
      const placeholder = openSync(inPath, constants.O_RDONLY | constants.O_NONBLOCK);
      const ours = openSync(inPath, constants.O_WRONLY | constants.O_NONBLOCK);
      opened.push(ours);
      const theirs = openSync(inPath, constants.O_RDONLY);
      opened.push(theirs);
      closeSync(placeholder);
      input = { ours, theirs };
    }
    const childEnds = [out.theirs, err.theirs, ...(input ? [input.theirs] : [])];
    let closed = false;
    return {
      childStdio: [input ? input.theirs : "ignore", out.theirs, err.theirs],
      stdin: input ? new Socket({ fd: input.ours, readable: false, writable: true }) : null,
      stdout: new Socket({ fd: out.ours, readable: true, writable: false }),
      stderr: new Socket({ fd: err.ours, readable: true, writable: false }),
      closeChildEnds: () => {
        if (closed) return;
        closed = true;
        for (const fd of childEnds) closeSync(fd);
      },
    };
  } catch (err) {
    for (const fd of opened) {
      try {
        closeSync(fd);
      } catch {}
    }
    throw err;
  } finally {
    await Promise.all(names.map((n) => rm(n, { force: true })));
  }
}
