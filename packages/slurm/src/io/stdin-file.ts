import { type FileHandle, open, writeFile } from "node:fs/promises";
import { Writable } from "node:stream";

/**
 * The container's stdin as a file the job reads while it grows: every write is appended and
 * flushed to the file server (fdatasync, so another machine sees it), and end() makes the end
 * marker, after which the job gives the container EOF once it has passed on every byte.
 */
export class StdinFile extends Writable {
  readonly path: string;
  readonly endMarker: string;
  #handle: Promise<FileHandle> | undefined;

  constructor(path: string, endMarker: string) {
    super();
    this.path = path;
    this.endMarker = endMarker;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#append([chunk]).then(() => callback(), callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    this.#append(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    void (async () => {
      if (this.#handle) await (await this.#handle).close();
      this.#handle = undefined;
      await writeFile(this.endMarker, "");
    })().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = undefined;
    if (!handle) {
      callback(error);
      return;
    }
    handle
      .then((h) => h.close())
      .then(
        () => callback(error),
        () => callback(error),
      );
  }

  async #append(chunks: Buffer[]): Promise<void> {
    this.#handle ??= open(this.path, "a");
    const handle = await this.#handle;
    for (const chunk of chunks) await handle.write(chunk);
    await handle.datasync();
  }
}
