import { createHash } from "node:crypto";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
/** printf format printing bytes 0..255 (octal escapes, which every printf knows). */
const PRINTF_ALL_BYTES = Array.from({ length: 256 }, (_, i) => `\\${i.toString(8).padStart(3, "0")}`).join(
  "",
);

export function registerStdioCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("stdout and stderr are kept apart", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"],
    });
    expect(r.out).toBe("out1\nout2\n");
    expect(r.err).toBe("err1\nerr2\n");
  });

  test("stdin is piped to the process and end() gives it EOF", async () => {
    const r = await ctx.run({ image: ctx.images().busybox, command: ["cat"] }, "line one\nline two\n");
    expect(r.exitCode).toBe(0);
    expect(r.out).toBe("line one\nline two\n");
  });

  test("without spec.stdin the process reads EOF at once", async () => {
    const started = Date.now();
    const r = await ctx.run({ image: ctx.images().busybox, command: ["sh", "-c", "cat; echo eof-seen"] });
    expect(r.out).toBe("eof-seen\n");
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  test("binary bytes 0-255 come out of stdout unchanged", async () => {
    const r = await ctx.run({ image: ctx.images().busybox, command: ["printf", PRINTF_ALL_BYTES] });
    expect(r.stdout.equals(ALL_BYTES)).toBe(true);
  });

  test("binary bytes 0-255 go through stdin unchanged", async () => {
    const input = Buffer.concat([ALL_BYTES, ALL_BYTES.reverse()]);
    const r = await ctx.run({ image: ctx.images().busybox, command: ["cat"] }, input);
    expect(r.stdout.equals(input)).toBe(true);
  });

  test("100 MB of output is streamed intact (hash checked)", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().busybox,
      // The container hashes what it writes; the caller hashes what it receives.
      command: ["sh", "-c", "exec 3>&1; head -c 104857600 /dev/urandom | tee /dev/fd/3 | sha256sum >&2"],
    });
    ctx.defer(() => c.remove());
    const hash = createHash("sha256");
    let bytes = 0;
    c.stdout.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    const stdoutDone = new Promise((resolve) => c.stdout.once("end", resolve));
    const errChunks: Buffer[] = [];
    c.stderr.on("data", (chunk: Buffer) => errChunks.push(chunk));
    const stderrDone = new Promise((resolve) => c.stderr.once("end", resolve));
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    await Promise.all([stdoutDone, stderrDone]);
    expect(bytes).toBe(104857600);
    const inside = Buffer.concat(errChunks).toString().trim().split(/\s+/)[0];
    expect(hash.digest("hex")).toBe(inside);
  });
}
