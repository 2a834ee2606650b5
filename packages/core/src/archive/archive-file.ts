import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AbortedError, ContainerError, ImageArchiveError, IoError } from "../errors.js";

/** An image archive as a regular file on disk, which backends read by offset. */
export interface ArchiveFile {
  path: string;
  /** True when `path` is a copy this call made (of a stream, FIFO or device); remove() deletes it. */
  spooled: boolean;
  /** Bytes copied, for a spooled archive. */
  bytes: number;
  /** Deletes the copy (a no-op for a file given by path). */
  remove(): Promise<void>;
}

export interface ArchiveFileOptions {
  /** Where a copy goes (in a private folder made there); default the OS temp folder. */
  tmpDir?: string;
  signal?: AbortSignal;
  /** Called as a stream is copied. */
  onProgress?: (progress: { bytesRead: number }) => void;
  /** Names the operation in errors; default "loading the image". */
  operation?: string;
}

/**
 * Makes an archive readable by offset: a path to a regular file is used as it is; a stream, or a
 * path that is a FIFO or character device (`/dev/stdin`, `<(cat image.tar)`), is copied into a
 * new private folder under `tmpDir`. Any failure leaves no partial copy: a full or read-only disk
 * is an {@link IoError} (with the system's error as `cause`), a stream that fails while read is
 * an {@link ImageArchiveError}, an abort an {@link AbortedError}.
 */
export async function archiveFile(
  archive: string | NodeJS.ReadableStream | AsyncIterable<Buffer | string>,
  options: ArchiveFileOptions = {},
): Promise<ArchiveFile> {
  const operation = options.operation ?? "loading the image";
  let source: NodeJS.ReadableStream | AsyncIterable<Buffer | string>;
  if (typeof archive === "string") {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(archive);
    } catch (err) {
      throw new ImageArchiveError(
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? `archive ${archive} does not exist`
          : `cannot open archive ${archive}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (info.isFile()) return { path: archive, spooled: false, bytes: info.size, remove: async () => {} };
    if (info.isDirectory()) {
      throw new ImageArchiveError(`archive ${archive} is a folder; give the tarball \`docker save\` wrote`);
    }
    source = createReadStream(archive);
  } else {
    source = archive;
  }
  const base = options.tmpDir ?? tmpdir();
  let dir: string;
  try {
    await mkdir(base, { recursive: true });
    dir = await mkdtemp(join(base, "contexec-spool-"));
  } catch (err) {
    destroy(source);
    throw new IoError(`${operation}: making a folder for the archive`, base, err);
  }
  const path = join(dir, "image.tar");
  const remove = () => rm(dir, { recursive: true, force: true });
  let bytes = 0;
  let readError: unknown;
  let writeError: unknown;
  const out = createWriteStream(path, { mode: 0o600 });
  out.once("error", (err) => {
    writeError = err;
  });
  try {
    const counted = async function* (input: AsyncIterable<Buffer | string>) {
      try {
        for await (const chunk of input) {
          const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          bytes += buf.length;
          options.onProgress?.({ bytesRead: bytes });
          yield buf;
        }
      } catch (err) {
        readError = err;
        throw err;
      }
    };
    const input = isAsyncIterable(source) ? source : Readable.from(source as NodeJS.ReadableStream);
    await pipeline(counted(input), out, options.signal ? { signal: options.signal } : {});
  } catch (err) {
    destroy(source);
    await remove();
    if (options.signal?.aborted) throw new AbortedError(operation, { cause: options.signal.reason });
    if (readError === undefined && writeError !== undefined)
      throw new IoError(`${operation}: copying the archive stream`, path, writeError);
    if (err instanceof ContainerError) throw err;
    throw new ImageArchiveError(`cannot read the image archive stream: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { path, spooled: true, bytes, remove };
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Buffer | string> {
  return typeof (x as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === "function";
}

function destroy(source: unknown): void {
  const s = source as { destroy?: () => void };
  if (typeof s.destroy === "function") s.destroy();
}
