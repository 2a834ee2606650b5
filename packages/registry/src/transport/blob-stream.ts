import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { AbortedError, ContainerError, RegistryError } from "@contexec/core";

export interface BlobStreamOptions {
  registry: string;
  /** "sha256:<hex>" (or sha512) the bytes must hash to. */
  digest: string;
  /** The size the descriptor gives; more bytes than this is a mismatch. */
  size: number;
  /** Names the blob in messages ("layer sha256:ab12…"). */
  what: string;
  /** Opens the blob from byte `offset` (a Range request past 0); rejects after its own retries. */
  open(offset: number): Promise<IncomingMessage>;
  /** Resumes after a dropped connection, at most this many times in a row without progress. */
  resumes: number;
  /** Wait before resume attempt n (1-based). */
  backoffMs(attempt: number): number;
  signal?: AbortSignal | undefined;
  /** Bytes handed on so far, as they arrive. */
  onBytes?: ((n: number) => void) | undefined;
}

/**
 * A blob as a stream that is checked while it flows: every byte is hashed on its way out, and the
 * stream ends only when exactly `size` bytes matched `digest`; otherwise it errors with
 * RegistryError ("digest-mismatch") instead of ending, so a consumer never takes a bad blob for a
 * whole one. A connection that drops mid-blob is resumed where it stopped, with a Range request
 * when the registry (or the storage it redirects to) honours ranges, else by reading again from
 * the start and skipping what was already handed on.
 */
export function openVerifiedBlob(options: BlobStreamOptions): Readable {
  return Readable.from(verifiedChunks(options), { objectMode: false, highWaterMark: 1024 * 1024 });
}

async function* verifiedChunks(o: BlobStreamOptions): AsyncGenerator<Buffer> {
  const algorithm = o.digest.slice(0, o.digest.indexOf(":"));
  const hash = createHash(algorithm);
  let handed = 0;
  let failures = 0;
  for (;;) {
    if (o.signal?.aborted) throw new AbortedError(`fetching ${o.what}`, { cause: o.signal.reason });
    const res = await o.open(handed);
    let skip = 0;
    if (handed > 0) {
      const range = /^bytes (\d+)-/.exec(res.headers["content-range"] ?? "");
      if (res.statusCode === 206 && range && Number(range[1]) === handed) skip = 0;
      else if (res.statusCode === 200)
        skip = handed; // ranges not honoured: read past what was handed on
      else {
        res.destroy();
        throw new RegistryError(
          o.registry,
          "protocol",
          `resuming ${o.what} at byte ${handed}: the registry answered HTTP ${res.statusCode} ${res.headers["content-range"] ?? ""}`,
          { status: res.statusCode },
        );
      }
    }
    const before = handed;
    try {
      for await (const raw of res as AsyncIterable<Buffer>) {
        let chunk = raw;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        handed += chunk.length;
        if (handed > o.size) {
          res.destroy();
          throw new RegistryError(
            o.registry,
            "digest-mismatch",
            `${o.what} is longer than the ${o.size} bytes its descriptor gives`,
          );
        }
        hash.update(chunk);
        o.onBytes?.(chunk.length);
        yield chunk;
      }
    } catch (err) {
      res.destroy();
      if (err instanceof ContainerError) throw err;
      if (o.signal?.aborted) throw new AbortedError(`fetching ${o.what}`, { cause: o.signal.reason });
      // A dropped connection (reset, aborted, idle timeout): resume below.
    }
    if (handed === o.size && skip === 0) break;
    if (handed > before) failures = 0;
    failures++;
    if (failures > o.resumes) {
      throw new RegistryError(
        o.registry,
        "unreachable",
        `${o.what}: the connection kept dropping (${failures} times in a row at byte ${handed} of ${o.size})`,
      );
    }
    await delay(o.backoffMs(failures), undefined, o.signal ? { signal: o.signal } : {}).catch(() => {});
  }
  const actual = `${algorithm}:${hash.digest("hex")}`;
  if (actual !== o.digest) {
    throw new RegistryError(
      o.registry,
      "digest-mismatch",
      `${o.what} does not match its digest ${o.digest} (the bytes received hash to ${actual}); the registry or something between holds corrupt content`,
    );
  }
}
