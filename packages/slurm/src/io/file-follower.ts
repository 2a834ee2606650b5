import { open } from "node:fs/promises";
import { Readable } from "node:stream";

export interface FileFollowerOptions {
  /** The pause after the file grew (and the first one); default 100 ms. */
  minIntervalMs?: number;
  /** The longest pause while it does not grow (the pause doubles up to it); default 1000 ms. */
  maxIntervalMs?: number;
  /** Bytes read at a time; default 1 MiB. */
  chunkBytes?: number;
  /** Called when new bytes were found (the job is alive and writing). */
  onGrowth?: () => void;
}

/**
 * A file another machine appends to, as a stream: polled (opened, read from the last offset,
 * closed) so that it works on a network file system, where inotify sees nothing and an open file
 * may not show what another client wrote until it is opened again (NFS close-to-open). Polling
 * starts with {@link follow}; after {@link finish} the rest of the file is read and the stream
 * ends. Reads only while the consumer wants data (back-pressure), so an unread stream costs nothing.
 */
export class FileFollower extends Readable {
  readonly path: string;
  readonly #min: number;
  readonly #max: number;
  readonly #chunk: number;
  readonly #onGrowth: (() => void) | undefined;
  #offset = 0;
  #following = false;
  #finishing = false;
  #pumping = false;
  #wanted = false;
  #wake: (() => void) | undefined;

  constructor(path: string, options: FileFollowerOptions = {}) {
    super();
    this.path = path;
    this.#min = options.minIntervalMs ?? 100;
    this.#max = Math.max(options.maxIntervalMs ?? 1000, this.#min);
    this.#chunk = options.chunkBytes ?? 1024 * 1024;
    this.#onGrowth = options.onGrowth;
  }

  /** Bytes passed on so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Starts polling the file (the job runs, so the file may grow). */
  follow(): void {
    if (this.#following) return;
    this.#following = true;
    this.#pump();
  }

  /** The file is complete (the job ended): read what is left, then end the stream. */
  finish(): void {
    this.#finishing = true;
    this.#following = true;
    this.#wake?.();
    this.#pump();
  }

  /** Ends the stream now, without reading further (the container was removed). */
  stop(): void {
    this.#finishing = true;
    this.#following = false;
    this.#wake?.();
    if (!this.readableEnded && !this.destroyed) this.push(null);
  }

  override _read(): void {
    this.#wanted = true;
    this.#wake?.();
    this.#pump();
  }

  #pump(): void {
    if (this.#pumping || !this.#following || this.destroyed || this.readableEnded) return;
    this.#pumping = true;
    void this.#loop().finally(() => {
      this.#pumping = false;
      // _read() may have asked while the loop was on its way out.
      if (this.#wanted) this.#pump();
    });
  }

  async #loop(): Promise<void> {
    let pause = this.#min;
    while (this.#following && !this.destroyed && !this.readableEnded) {
      // Nobody reads: stop until _read() asks again.
      if (!this.#wanted) return;
      const finishing = this.#finishing;
      let chunk: Buffer | undefined;
      try {
        chunk = await this.#readChunk();
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      if (chunk && chunk.length > 0) {
        this.#offset += chunk.length;
        pause = this.#min;
        this.#onGrowth?.();
        this.#wanted = this.push(chunk);
        continue;
      }
      // Nothing new. After finish() began, this read saw the whole file: end.
      if (finishing) {
        this.push(null);
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      pause = Math.min(pause * 2, this.#max);
    }
  }

  /** The bytes after the offset (up to a chunk); empty when there are none or the file is not there yet. */
  async #readChunk(): Promise<Buffer | undefined> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      const buffer = Buffer.allocUnsafe(this.#chunk);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.#offset);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }
}
