import { PassThrough } from "node:stream";
import { collect } from "@contexec/core";
import { describe, expect, it } from "vitest";
import { demuxStream } from "./demux-stream.js";

const frame = (type: number, payload: Buffer | string) => {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};

describe("demuxStream", () => {
  it("splits frames into stdout and stderr, whatever the chunk boundaries", async () => {
    const wire = Buffer.concat([
      frame(1, "out1\n"),
      frame(2, "err1\n"),
      frame(1, "out2\n"),
      frame(2, Buffer.from([0, 255])),
    ]);
    for (const size of [1, 3, 8, 9, wire.length]) {
      const source = new PassThrough();
      const { stdout, stderr } = demuxStream(source);
      for (let i = 0; i < wire.length; i += size) source.write(wire.subarray(i, i + size));
      source.end();
      const [out, err] = await Promise.all([collect(stdout), collect(stderr)]);
      expect(out.toString()).toBe("out1\nout2\n");
      expect(err.equals(Buffer.from("err1\n\u0000\u00ff", "latin1"))).toBe(true);
    }
  });

  it("hands stderr to the tap as it passes", async () => {
    const source = new PassThrough();
    const seen: string[] = [];
    const { stdout, stderr } = demuxStream(source, (c) => seen.push(c.toString()));
    source.end(Buffer.concat([frame(2, "fatal"), frame(1, "ok")]));
    await Promise.all([collect(stdout), collect(stderr)]);
    expect(seen).toEqual(["fatal"]);
  });

  it("pauses the source while a reader does not read, instead of buffering everything", async () => {
    const source = new PassThrough();
    const { stdout, stderr } = demuxStream(source);
    stderr.resume();
    const chunk = frame(1, Buffer.alloc(64 * 1024, 1));
    for (let i = 0; i < 200; i++) source.write(chunk);
    await new Promise((r) => setTimeout(r, 50));
    // Nobody reads stdout: the demuxer took in a few chunks, the rest waits in the source.
    expect(stdout.readableLength).toBeGreaterThan(0);
    expect(source.readableLength + source.writableLength).toBeGreaterThan(190 * chunk.length);
    const reading = collect(stdout);
    source.end();
    expect((await reading).length).toBe(200 * 64 * 1024);
  });
});
