import { Transform, type TransformCallback } from "node:stream";
import { TailBuffer } from "@contexec/core";

/**
 * Keeps the last `limit` bytes of a stream (in core's one bounded buffer) while passing every
 * byte through untouched: enough to read the runtime's own FATAL message at the end without
 * holding a chatty container's stderr.
 */
export class StreamTail extends Transform {
  readonly limit: number;
  readonly #tail: TailBuffer;

  constructor(limit = 8192) {
    super();
    this.limit = limit;
    this.#tail = new TailBuffer(limit);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#tail.push(chunk);
    callback(null, chunk);
  }

  /** The kept tail as text (at most `limit` bytes). */
  text(): string {
    return this.#tail.bytes().toString("utf8");
  }
}

// Apptainer colours its log prefixes when stderr is a terminal; strip any escape sequence.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escapes is the point
const ANSI = /\x1b\[[0-9;]*m/g;

/** The runtime's FATAL message in a stderr tail: the last "FATAL:" line, without its prefix. */
export function fatalMessage(stderrTail: string): string | undefined {
  const lines = stderrTail.replace(ANSI, "").split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^FATAL:\s+(.*)$/.exec((lines[i] as string).trimEnd());
    if (m) return m[1];
  }
  return undefined;
}

export type RuntimeFailure =
  | { kind: "command-not-found"; command: string; message: string }
  | { kind: "runtime"; message: string };

/**
 * Tells a failure of Apptainer itself (exit 255 and a FATAL line) from the container's own exit:
 * a command that could not be executed, or any other runtime error. Undefined when the exit code
 * is the container's. A container process that itself prints "FATAL: ..." and exits 255 is read
 * as a runtime failure: there is no other channel to tell them apart.
 */
export function classifyRuntimeFailure(
  exitCode: number,
  stderrTail: string,
  command: string,
): RuntimeFailure | undefined {
  if (exitCode === 1) {
    // Failures before the container exists exit 1: a refused flag ('Error for command "exec":
    // unknown flag: --bogus') or the starter's "ERROR  : Requesting capability set ...".
    const clean = stderrTail.replace(ANSI, "");
    const m = /^(Error for command ".*|ERROR {2}: .*)$/m.exec(clean);
    return m ? { kind: "runtime", message: (m[1] as string).trim() } : undefined;
  }
  if (exitCode !== 255) return undefined;
  const message = fatalMessage(stderrTail);
  if (message === undefined) return undefined;
  // Apptainer 1.4: `FATAL:   "nosuch": executable file not found in $PATH`,
  // `FATAL:   stat /bin/nosuch: no such file or directory`, `FATAL:   permission denied`.
  if (
    /executable file not found in \$PATH/.test(message) ||
    /^stat .*: no such file or directory$/.test(message) ||
    message === "permission denied" ||
    (/: permission denied$/.test(message) && message.includes(command))
  ) {
    return { kind: "command-not-found", command, message };
  }
  return { kind: "runtime", message };
}
