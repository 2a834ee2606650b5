import { randomBytes } from "node:crypto";
import { constants, openSync } from "node:fs";
import { type FileHandle, lstat, open, rename, rm, stat } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { execa } from "execa";
import { signalNumber } from "../exit-status.js";
import { parseCommandScript } from "./command-script.js";
import { decideHostCommand, type HostCommandPolicy, showClientText as show } from "./host-command-policy.js";

/**
 * Exit codes the bridge itself writes to `<id>.code` (GNU `timeout`'s conventions); any other
 * code is the command's own, or 128+n when signal n ended it.
 */
export const HOST_COMMAND_CODES = Object.freeze({
  /** The command ran longer than `timeoutMs` and was stopped. */
  timedOut: 124,
  /** The bridge failed: output over `maxOutputBytes`, the bridge closing, an unexpected spawn error. */
  bridgeFailure: 125,
  /** Refused: not allowed, or the `.cmd` file cannot be read or parsed. Nothing ran. */
  refused: 126,
  /** Allowed, but not found on the host. */
  notFound: 127,
});

/** How requests arrive: a named pipe `reqs` (one machine), or a regular `reqs` file read by polling (a shared filesystem). */
export type RequestChannel = "fifo" | "file";

/** What the bridge did with one line of `reqs`, for logs and audits. */
export type HostCommandEvent =
  | { kind: "ignored"; line: string; reason: string }
  | { kind: "refused"; id: string; reason: string }
  | {
      kind: "ran";
      id: string;
      argv: string[];
      cwd: string;
      exitCode: number;
      durationMs: number;
      timedOut: boolean;
    }
  | { kind: "failed"; id: string; error: Error };

export interface HostCommandBridgeOptions {
  /** The request folder on the host; `reqs` is made in it. */
  dir: string;
  policy: HostCommandPolicy;
  /** Default "fifo". */
  channel?: RequestChannel;
  /** The folder commands run in (unless an allowed `cd` says otherwise). */
  cwd: string;
  /** The whole environment of the commands. Relative PATH entries are dropped. */
  env: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
  concurrency: number;
  /** With `channel: "file"`: how often `reqs` is read; default 200 ms. */
  pollMs?: number;
  onEvent?: (event: HostCommandEvent) => void;
}

/** Ids as singreqrun's clients make them: url-safe base64 (padded or not) or hex. */
const REQUEST_ID = /^[A-Za-z0-9_-]{1,128}={0,2}$/;
const MAX_LINE_BYTES = 4096;
const MAX_COMMAND_FILE_BYTES = 1024 * 1024;
/** On a shared filesystem a `.cmd` written on another node can show up after its id does. */
const COMMAND_FILE_WAIT_MS = 3000;
const KILL_GRACE_MS = 2000;

/**
 * The host side of singreqrun's protocol. A client in the container writes `<id>.cmd` (a `#!`
 * line and one shell-quoted command), then `<id>\n` to `reqs`; the bridge parses the command back
 * into an argv, runs it with no shell if the policy allows it, and answers with `<id>.stdout`,
 * `<id>.stderr`, then `<id>.code`, each complete when it appears (written aside, then renamed).
 * A bad line, id or file is answered or skipped and never stops the bridge.
 */
export class HostCommandBridge {
  readonly dir: string;
  readonly reqsPath: string;
  readonly #options: HostCommandBridgeOptions;
  readonly #env: Record<string, string>;
  readonly #seen = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #queue: (() => void)[] = [];
  readonly #closing = new AbortController();
  #running = 0;
  #pending = Buffer.alloc(0);
  #discarding = false;
  #socket: Socket | undefined;
  #poller: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  private constructor(options: HostCommandBridgeOptions) {
    this.#options = options;
    this.dir = options.dir;
    this.reqsPath = join(options.dir, "reqs");
    this.#env = { ...options.env, PATH: absolutePath(options.env.PATH) };
  }

  /** Makes `reqs` in `options.dir` and starts serving. */
  static async open(options: HostCommandBridgeOptions): Promise<HostCommandBridge> {
    const bridge = new HostCommandBridge(options);
    await bridge.#listen();
    return bridge;
  }

  async #listen(): Promise<void> {
    if ((this.#options.channel ?? "fifo") === "file") {
      const handle = await open(this.reqsPath, "a");
      await handle.chmod(0o666);
      await handle.close();
      this.#poller = this.#poll(this.#options.pollMs ?? 200);
      return;
    }
    // Node has no mkfifo(3). -m sets the mode exactly (no umask): any user of the container writes.
    await execa("mkfifo", ["-m", "666", this.reqsPath], { stdin: "ignore" });
    // Read and write: we hold a writer ourselves, so the pipe never reads EOF between clients,
    // and opening it never blocks.
    // A plain fd, owned by the socket from here on (a FileHandle would close it again when collected).
    const fd = openSync(this.reqsPath, constants.O_RDWR | constants.O_NONBLOCK);
    const socket = new Socket({ fd, readable: true, writable: false });
    socket.on("data", (chunk: Buffer) => this.#onBytes(chunk));
    socket.on("error", () => {});
    this.#socket = socket;
  }

  /** Reads what was appended to a regular `reqs` file, reopening it each time (NFS sees new data on open). */
  async #poll(pollMs: number): Promise<void> {
    let offset = 0;
    const buffer = Buffer.alloc(64 * 1024);
    const signal = this.#closing.signal;
    while (!signal.aborted) {
      try {
        const handle = await open(this.reqsPath, "r");
        try {
          const { size } = await handle.stat();
          if (size < offset) offset = 0; // truncated or replaced: start over
          while (offset < size) {
            const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
            if (bytesRead === 0) break;
            offset += bytesRead;
            this.#onBytes(Buffer.from(buffer.subarray(0, bytesRead)));
          }
        } finally {
          await handle.close();
        }
      } catch {
        // `reqs` removed or unreadable for a moment: try again at the next tick.
      }
      await delay(pollMs, undefined, { signal }).catch(() => {});
    }
  }

  #onBytes(chunk: Buffer): void {
    if (this.#closing.signal.aborted) return;
    let data = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10)) {
      const line = data.subarray(0, nl);
      data = data.subarray(nl + 1);
      if (this.#discarding) this.#discarding = false;
      else this.#onLine(line.toString("utf8"));
    }
    if (data.length > MAX_LINE_BYTES) {
      if (!this.#discarding)
        this.#emit({ kind: "ignored", line: show(data.toString("utf8")), reason: "line too long" });
      this.#discarding = true;
      data = Buffer.alloc(0);
    }
    this.#pending = Buffer.from(data);
  }

  #onLine(line: string): void {
    if (!REQUEST_ID.test(line)) {
      this.#emit({ kind: "ignored", line: show(line), reason: "not a request id" });
      return;
    }
    if (this.#seen.has(line)) {
      this.#emit({ kind: "ignored", line, reason: "request id already seen" });
      return;
    }
    this.#seen.add(line);
    const task = this.#handle(line).catch((error: Error) => this.#emit({ kind: "failed", id: line, error }));
    this.#inFlight.add(task);
    void task.finally(() => this.#inFlight.delete(task));
  }

  async #handle(id: string): Promise<void> {
    if (await exists(join(this.dir, `${id}.code`))) {
      this.#emit({ kind: "ignored", line: id, reason: "request already answered" });
      return;
    }
    const text = await this.#readCommandFile(id);
    const script = text.ok ? parseCommandScript(text.text) : text;
    const decision = script.ok
      ? decideHostCommand(this.#options.policy, script)
      : { allowed: false as const, reason: script.reason };
    if (!decision.allowed) {
      this.#emit({ kind: "refused", id, reason: decision.reason });
      const answer = await Answer.create(this.dir, id);
      await answer.stderr.write(`contexec host-command: refused: ${decision.reason}\n`);
      await answer.commit(HOST_COMMAND_CODES.refused);
      return;
    }
    await this.#slot();
    try {
      if (this.#closing.signal.aborted) {
        const answer = await Answer.create(this.dir, id);
        await answer.stderr.write(
          "contexec host-command: the bridge closed before the command could start\n",
        );
        await answer.commit(HOST_COMMAND_CODES.bridgeFailure);
        return;
      }
      await this.#run(id, decision);
    } finally {
      this.#release();
    }
  }

  /** The `.cmd` file's text: a regular file (never followed through a link), UTF-8, at most 1 MiB. */
  async #readCommandFile(id: string): Promise<{ ok: true; text: string } | { ok: false; reason: string }> {
    const path = join(this.dir, `${id}.cmd`);
    const deadline = Date.now() + (this.#options.channel === "file" ? COMMAND_FILE_WAIT_MS : 0);
    let handle: FileHandle;
    for (;;) {
      try {
        // O_NONBLOCK: a FIFO named .cmd must not hang us; O_NOFOLLOW: no link to a host file.
        handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && Date.now() < deadline) {
          await delay(100);
          continue;
        }
        if (code === "ENOENT") return { ok: false, reason: `no ${id}.cmd file` };
        if (code === "ELOOP") return { ok: false, reason: `${id}.cmd is a symbolic link` };
        return { ok: false, reason: `cannot open ${id}.cmd (${code ?? "error"})` };
      }
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) return { ok: false, reason: `${id}.cmd is not a regular file` };
      if (info.size > MAX_COMMAND_FILE_BYTES) return { ok: false, reason: `${id}.cmd is larger than 1 MiB` };
      const bytes = await handle.readFile();
      try {
        return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
      } catch {
        return { ok: false, reason: `${id}.cmd is not valid UTF-8` };
      }
    } finally {
      await handle.close();
    }
  }

  async #run(id: string, decision: { program: string; args: string[]; cd?: string }): Promise<void> {
    const answer = await Answer.create(this.dir, id);
    const cwd = decision.cd ?? this.#options.cwd;
    const started = Date.now();
    const ran = (exitCode: number, timedOut = false) =>
      this.#emit({
        kind: "ran",
        id,
        argv: [decision.program, ...decision.args],
        cwd,
        exitCode,
        durationMs: Date.now() - started,
        timedOut,
      });
    if (decision.cd !== undefined && !(await stat(decision.cd).catch(() => undefined))?.isDirectory()) {
      // What `cd DIR && …` gives in bash when DIR is missing.
      await answer.stderr.write(`contexec host-command: cd: ${decision.cd}: No such file or directory\n`);
      await answer.commit(1);
      ran(1);
      return;
    }
    const { maxOutputBytes } = this.#options;
    const subprocess = execa(decision.program, decision.args, {
      cwd,
      env: this.#env,
      extendEnv: false,
      stdin: "ignore",
      buffer: false,
      timeout: this.#options.timeoutMs,
      forceKillAfterDelay: KILL_GRACE_MS,
      cancelSignal: this.#closing.signal,
      reject: false,
    });
    let overflow = false;
    const stop = () => {
      overflow = true;
      subprocess.kill();
    };
    const [, , result] = await Promise.all([
      copyCapped(subprocess.stdout, answer.stdout, maxOutputBytes, stop),
      copyCapped(subprocess.stderr, answer.stderr, maxOutputBytes, stop),
      subprocess,
    ]);
    const note = (line: string) => answer.stderr.write(`contexec host-command: ${line}\n`);
    let code: number;
    const spawnError = (result.cause as NodeJS.ErrnoException | undefined)?.code;
    if (result.isCanceled) {
      code = HOST_COMMAND_CODES.bridgeFailure;
      await note("the bridge closed before the command ended");
    } else if (overflow) {
      code = HOST_COMMAND_CODES.bridgeFailure;
      await note(`output over ${maxOutputBytes} bytes (maxOutputBytes): the command was stopped`);
    } else if (result.timedOut) {
      code = HOST_COMMAND_CODES.timedOut;
      await note(`stopped after ${this.#options.timeoutMs} ms (timeoutMs)`);
    } else if (result.exitCode === undefined && result.signal === undefined && spawnError) {
      code =
        spawnError === "ENOENT"
          ? HOST_COMMAND_CODES.notFound
          : spawnError === "EACCES"
            ? HOST_COMMAND_CODES.refused
            : HOST_COMMAND_CODES.bridgeFailure;
      await note(
        spawnError === "ENOENT"
          ? `${decision.program}: not found on the host`
          : `${decision.program}: cannot be run on the host (${spawnError})`,
      );
    } else if (result.signal) {
      code = 128 + (signalNumber(result.signal) ?? 0);
    } else {
      code = result.exitCode ?? HOST_COMMAND_CODES.bridgeFailure;
    }
    await answer.commit(code);
    ran(code, result.timedOut);
  }

  #slot(): Promise<void> {
    if (this.#running < this.#options.concurrency) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#queue.push(resolve));
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#running--;
  }

  #emit(event: HostCommandEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A listener's failure is not the bridge's.
    }
  }

  /** Resolves once every request read so far has been answered. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Stops reading requests, stops running commands (their answers say so, code 125) and waits
   * for every answer to be written. The folder is left to its owner.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.#socket?.destroy();
      await this.#poller;
      await this.idle();
    })();
    return this.#closed;
  }
}

/**
 * The three answer files of one request, written under hidden names (ids never start with a
 * dot) created exclusively, so nothing a client put in the folder is followed or overwritten,
 * then renamed into place: stdout, stderr, and the code last.
 */
class Answer {
  readonly #dir: string;
  readonly #id: string;
  readonly #temps: string[];
  readonly stdout: FileHandle;
  readonly stderr: FileHandle;

  private constructor(dir: string, id: string, temps: string[], stdout: FileHandle, stderr: FileHandle) {
    this.#dir = dir;
    this.#id = id;
    this.#temps = temps;
    this.stdout = stdout;
    this.stderr = stderr;
  }

  static async create(dir: string, id: string): Promise<Answer> {
    const temps: string[] = [];
    const handles: FileHandle[] = [];
    try {
      for (const stream of ["stdout", "stderr"]) {
        const { path, handle } = await createExclusive(dir, `${id}.${stream}`);
        temps.push(path);
        handles.push(handle);
      }
      return new Answer(dir, id, temps, handles[0] as FileHandle, handles[1] as FileHandle);
    } catch (err) {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
      await Promise.all(temps.map((t) => rm(t, { force: true })));
      throw err;
    }
  }

  async commit(code: number): Promise<void> {
    try {
      await this.stdout.close();
      await this.stderr.close();
      await rename(this.#temps[0] as string, join(this.#dir, `${this.#id}.stdout`));
      await rename(this.#temps[1] as string, join(this.#dir, `${this.#id}.stderr`));
      const { path, handle } = await createExclusive(this.#dir, `${this.#id}.code`);
      this.#temps.push(path);
      try {
        await handle.write(`${code}\n`);
      } finally {
        await handle.close();
      }
      await rename(path, join(this.#dir, `${this.#id}.code`));
    } catch (err) {
      await Promise.all(this.#temps.map((t) => rm(t, { force: true })));
      throw err;
    }
  }
}

async function createExclusive(dir: string, name: string): Promise<{ path: string; handle: FileHandle }> {
  const path = join(dir, `.${name}.${randomBytes(6).toString("hex")}`);
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o644,
  );
  // Readable by the container's user whatever our umask is.
  await handle.chmod(0o644);
  return { path, handle };
}

/** Copies a stream to a file up to `cap` bytes; past that, calls `onOverflow` once and drains the rest. */
async function copyCapped(
  from: Readable,
  to: FileHandle,
  cap: number,
  onOverflow: () => void,
): Promise<void> {
  let written = 0;
  let over = false;
  for await (const chunk of from as AsyncIterable<Buffer>) {
    if (over) continue;
    const room = cap - written;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    let offset = 0;
    while (offset < part.length) {
      const { bytesWritten } = await to.write(part, offset, part.length - offset);
      offset += bytesWritten;
    }
    written += part.length;
    if (chunk.length > room) {
      over = true;
      onOverflow();
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** PATH with its relative entries dropped: a command is never looked up in the folder it runs in. */
function absolutePath(path: string | undefined): string {
  const entries = (path ?? "").split(":").filter((p) => p.startsWith("/"));
  return entries.length > 0 ? entries.join(":") : "/usr/local/bin:/usr/bin:/bin";
}
