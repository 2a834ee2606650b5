import { PassThrough, type Readable, Writable } from "node:stream";

/**
 * Splits Docker's multiplexed attach/exec stream (frames of an 8-byte header: stream type,
 * three zero bytes, big-endian payload length) into stdout and stderr. Unlike a plain
 * write-through it respects backpressure: when a consumer stops reading, the socket is paused
 * instead of the output piling up in memory.
 */
export function demuxStream(
  source: Readable,
  onStderr?: (chunk: Buffer) => void,
): { stdout: PassThrough; stderr: PassThrough; done: Promise<void> } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let header = Buffer.alloc(0);
  let remaining = 0;
  let target: PassThrough | null = null;

  const sink = new Writable({
    write(chunk: Buffer, _enc, callback) {
      let offset = 0;
      const pending: Promise<void>[] = [];
      while (offset < chunk.length) {
        if (remaining === 0) {
          const need = 8 - header.length;
          header = Buffer.concat([header, chunk.subarray(offset, offset + need)]);
          offset += Math.min(need, chunk.length - offset);
          if (header.length < 8) break;
          const type = header[0];
          remaining = header.readUInt32BE(4);
          // Type 0 (stdin) is never sent back; anything unknown is treated as stdout, as the CLI does.
          target = type === 2 ? stderr : stdout;
          header = Buffer.alloc(0);
          continue;
        }
        const n = Math.min(remaining, chunk.length - offset);
        const out = target as PassThrough;
        const payload = chunk.subarray(offset, offset + n);
        if (out === stderr) onStderr?.(payload);
        if (!out.write(payload)) {
          pending.push(new Promise((resolve) => out.once("drain", resolve)));
        }
        remaining -= n;
        offset += n;
      }
      if (pending.length === 0) callback();
      else Promise.all(pending).then(() => callback(), callback);
    },
    final(callback) {
      stdout.end();
      stderr.end();
      callback();
    },
  });

  const done = new Promise<void>((resolve) => {
    const finish = (err?: Error | null) => {
      if (err) {
        stdout.destroy(err);
        stderr.destroy(err);
      } else {
        stdout.end();
        stderr.end();
      }
      resolve();
    };
    sink.once("finish", () => finish());
    sink.once("error", finish);
    // A connection closed by the daemon without a clean end still ends the output.
    source.once("close", () => {
      if (!sink.writableFinished) sink.end();
    });
    source.once("error", (err) => finish(err));
  });
  source.pipe(sink);
  return { stdout, stderr, done };
}

/** Splits a whole multiplexed buffer (what the logs endpoint returns without `follow`). */
export function demuxBuffer(data: Buffer): { stdout: Buffer; stderr: Buffer } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= data.length) {
    const size = data.readUInt32BE(offset + 4);
    const payload = data.subarray(offset + 8, offset + 8 + size);
    (data[offset] === 2 ? err : out).push(payload);
    offset += 8 + size;
  }
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
