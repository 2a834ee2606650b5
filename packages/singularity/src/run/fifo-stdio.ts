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

/** Makes the FIFOs in `dir` (a private folder), opens both ends and removes the names again. */
export async function openFifoStdio(dir: string, withStdin: boolean): Promise<FifoStdio> {
  const names = ["out", "err", ...(withStdin ? ["in"] : [])].map((n) =>
    join(dir, `${n}-${process.hrtime.bigint()}`),
  );
  // Node has no mkfifo(3); coreutils' is one short process for all of them.
  await new Promise<void>((resolve, reject) =>
    execFile("mkfifo", ["-m", "600", ...names], { env: { PATH: "/usr/bin:/bin" } }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
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
