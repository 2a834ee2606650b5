import { type BigIntStats, constants, type FSWatcher, watch } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { ContainerStateError, InvalidSpecError, RuntimeError } from "../errors.js";

/** One complete version of the job's status file. */
export interface StatusUpdate {
  /** The file's whole content (UTF-8): text or HTML (see `htmlToText`). */
  content: string;
  /** 1 for the first update of this container, then 2, 3, … */
  sequence: number;
  /** When the bridge read it. */
  at: Date;
}

/**
 * The supervisor's side of `spec.supervision`: the job's status as events, notifications to the
 * job, and the job's result once it has ended.
 *
 * Status: a write counts once the file has stopped changing for a quiet period (100 ms by
 * default) and did not change while it was read, so a reader never sees a half-written page;
 * versions written faster than that may be skipped (only the latest is delivered), never
 * reordered, and the same content twice in a row is one update. The last version written before
 * the job exits is delivered before `wait()` resolves. A job that writes the file aside and
 * renames it into place (`mv`) is never read mid-write by anyone.
 */
export interface Supervision {
  /** The host folder bound into the container. */
  readonly hostDir: string;
  /** The latest status delivered, if any. */
  readonly status: StatusUpdate | undefined;
  /** Calls `listener` with each new status, in order; returns the function that stops it. */
  onStatus(listener: (update: StatusUpdate) => void): () => void;
  /**
   * The status updates from now on, in order, as an async iterable that ends once the job has
   * ended and its last status was delivered (or when `signal` fires).
   */
  statusUpdates(options?: { signal?: AbortSignal }): AsyncIterableIterator<StatusUpdate>;
  /**
   * Appends `message` and a newline to the notifications file, in one write (`ABORT` asks the
   * job to stop, by the convention). One line: no newline, carriage return or NUL in it.
   */
  notify(message: string): Promise<void>;
  /**
   * The job's result file as written by this run, read once after the job ended; undefined when
   * the job wrote none (a file left from an earlier run in a given `hostDir` does not count).
   */
  result(): Promise<string | undefined>;
}

export interface SupervisorFilesOptions {
  /** The host folder (exists). */
  dir: string;
  statusFile: string;
  resultFile: string;
  notificationsFile: string;
  /** Remove `dir` on close (a private folder). */
  owned: boolean;
  /** Quiet period before a changed status file is read; default 100 ms. */
  settleMs?: number;
  /** How often the files are checked besides inotify (which a shared filesystem lacks); default 500 ms. */
  pollMs?: number;
}

/** Files read whole; a bigger one is not read (status) or is cut (result). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** A status rewritten faster than the quiet period is still read this often (its read checked whole). */
const MAX_STARVE_MS = 1000;

type Signature = string | undefined;

/** {@link Supervision} over a host folder: inotify and polling for the status, plain files for the rest. */
export class SupervisorFiles implements Supervision {
  readonly hostDir: string;
  readonly #options: SupervisorFilesOptions;
  readonly #listeners = new Set<(u: StatusUpdate) => void>();
  readonly #ended = new Set<() => void>();
  readonly #resultAtStart: Signature;
  #lastStatusSig: Signature;
  #lastContent: string | undefined;
  #status: StatusUpdate | undefined;
  #sequence = 0;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #closed = false;
  #notifying: Promise<void> = Promise.resolve();
  #result: Promise<string | undefined> | undefined;

  private constructor(options: SupervisorFilesOptions, statusAtStart: Signature, resultAtStart: Signature) {
    this.#options = options;
    this.hostDir = options.dir;
    this.#lastStatusSig = statusAtStart;
    this.#resultAtStart = resultAtStart;
  }

  /** Creates the notifications file (kept if present) and starts watching the status file. */
  static async open(options: SupervisorFilesOptions): Promise<SupervisorFiles> {
    const notifications = join(options.dir, options.notificationsFile);
    const handle = await open(
      notifications,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
      0o644,
    );
    if (options.owned) await handle.chmod(0o644);
    await handle.close();
    const [status, result] = await Promise.all([
      signatureOf(join(options.dir, options.statusFile)),
      signatureOf(join(options.dir, options.resultFile)),
    ]);
    const files = new SupervisorFiles(options, status, result);
    files.#watch();
    return files;
  }

  get status(): StatusUpdate | undefined {
    return this.#status;
  }

  #watch(): void {
    try {
      this.#watcher = watch(this.hostDir, { persistent: false }, (_event, name) => {
        if (name === null || name === this.#options.statusFile) this.#schedule();
      });
      this.#watcher.on("error", () => {});
    } catch {
      // No inotify here (or on this filesystem): polling alone.
    }
    this.#timer = setInterval(() => this.#schedule(), this.#options.pollMs ?? 500);
    this.#timer.unref();
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#checking) {
      this.#again = true;
      return;
    }
    this.#checking = (async () => {
      do {
        this.#again = false;
        await this.#check(false).catch(() => {});
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#checking = undefined;
    });
  }

  /** Reads the status file once it is complete and delivers it when it is new. */
  async #check(final: boolean): Promise<void> {
    const path = join(this.hostDir, this.#options.statusFile);
    const settleMs = this.#options.settleMs ?? 100;
    const started = Date.now();
    // After the job ended nothing should write; still, a file that keeps changing gets 5 tries.
    for (let attempt = 0; !final || attempt < 5; attempt++) {
      const before = await signatureOf(path);
      if (before === undefined || before === this.#lastStatusSig) return;
      if (!final && Date.now() - started < MAX_STARVE_MS) {
        await delay(settleMs);
        if ((await signatureOf(path)) !== before) continue;
      }
      const content = await readWhole(path);
      const after = await signatureOf(path);
      if (after !== before) {
        if (this.#stopped && !final) return;
        continue;
      }
      this.#lastStatusSig = after;
      if (content === undefined || content === this.#lastContent) return;
      this.#lastContent = content;
      this.#deliver({ content, sequence: ++this.#sequence, at: new Date() });
      return;
    }
  }

  #deliver(update: StatusUpdate): void {
    this.#status = update;
    for (const listener of [...this.#listeners]) {
      try {
        listener(update);
      } catch {
        // A listener's failure must not stop the others.
      }
    }
  }

  onStatus(listener: (update: StatusUpdate) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  statusUpdates(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<StatusUpdate> {
    const queue: StatusUpdate[] = [];
    let wake: (() => void) | undefined;
    let done = this.#stopped;
    const poke = () => {
      wake?.();
      wake = undefined;
    };
    const end = () => {
      done = true;
      poke();
    };
    const unsubscribe = this.onStatus((u) => {
      queue.push(u);
      poke();
    });
    this.#ended.add(end);
    options.signal?.addEventListener("abort", end, { once: true });
    const finish = () => {
      unsubscribe();
      this.#ended.delete(end);
      options.signal?.removeEventListener("abort", end);
    };
    const iterator: AsyncIterableIterator<StatusUpdate> = {
      next: async () => {
        while (queue.length === 0 && !done && !options.signal?.aborted) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        const value = options.signal?.aborted ? undefined : queue.shift();
        if (value) return { value, done: false };
        finish();
        return { value: undefined, done: true };
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  notify(message: string): Promise<void> {
    if (typeof message !== "string" || /[\n\r\0]/.test(message)) {
      return Promise.reject(
        new InvalidSpecError([
          { path: "message", message: "must be one line of text: no newline, carriage return or NUL" },
        ]),
      );
    }
    if (this.#closed) return Promise.reject(new ContainerStateError("notify", "removed"));
    const path = join(this.hostDir, this.#options.notificationsFile);
    const write = async () => {
      let handle: Awaited<ReturnType<typeof open>>;
      try {
        // O_NOFOLLOW and a file check: the job may have replaced the file with a link or a FIFO.
        handle = await open(
          path,
          constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK,
        );
      } catch (err) {
        throw new RuntimeError(
          "supervision",
          `cannot open ${path} to notify the job: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      try {
        if (!(await handle.stat()).isFile())
          throw new RuntimeError("supervision", `${path} is no longer a regular file; the job replaced it`);
        await handle.write(`${message}\n`);
      } finally {
        await handle.close();
      }
    };
    // One after the other, in the order asked.
    const next = this.#notifying.then(write, write);
    this.#notifying = next.catch(() => {});
    return next;
  }

  result(): Promise<string | undefined> {
    this.#result ??= (async () => {
      const path = join(this.hostDir, this.#options.resultFile);
      const sig = await signatureOf(path);
      if (sig === undefined || sig === this.#resultAtStart) return undefined;
      return readWhole(path, true);
    })();
    return this.#result;
  }

  /**
   * The job has ended: delivers its last status, stops watching, ends the iterators and reads
   * the result. Returns the result.
   */
  async finish(): Promise<string | undefined> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#stopWatching();
      await this.#checking;
      await this.#check(true).catch(() => {});
      for (const end of [...this.#ended]) end();
    }
    return this.result();
  }

  #stopWatching(): void {
    this.#watcher?.close();
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Stops everything and removes the folder when it is private. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopped = true;
    this.#stopWatching();
    for (const end of [...this.#ended]) end();
    await this.#checking;
    await this.#notifying;
    if (this.#options.owned) await rm(this.hostDir, { recursive: true, force: true });
  }
}

/** What changes when a file is written or replaced; undefined when it is missing. */
async function signatureOf(path: string): Promise<Signature> {
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const s: BigIntStats = await handle.stat({ bigint: true });
      if (!s.isFile()) return undefined;
      return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

/** A regular file's text (never through a link); undefined when missing, not a file, or too big (unless `cut`). */
async function readWhole(path: string, cut = false): Promise<string | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const s = await handle.stat();
    if (!s.isFile()) return undefined;
    if (s.size > MAX_FILE_BYTES && !cut) return undefined;
    const buffer = Buffer.alloc(Math.min(s.size, MAX_FILE_BYTES));
    let read = 0;
    while (read < buffer.length) {
      const { bytesRead } = await handle.read(buffer, read, buffer.length - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return buffer.subarray(0, read).toString("utf8");
  } finally {
    await handle.close();
  }
}
