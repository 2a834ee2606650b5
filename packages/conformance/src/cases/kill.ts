import { once } from "node:events";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerKillCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("kill() ends a sleep 1000 within the grace period", async () => {
    const c = await ctx.start({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    const started = Date.now();
    await c.kill({ graceMs: 5000 });
    const elapsed = Date.now() - started;
    const status = await c.wait();
    expect(await c.state()).toBe("exited");
    expect(elapsed).toBeLessThan(5000 + 3000);
    expect(["SIGTERM", "SIGKILL"]).toContain(status.signal);
  });

  test("a process that traps SIGTERM exits with its own code", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().busybox,
      command: ["sh", "-c", "trap 'echo trapped; exit 3' TERM; echo ready; while true; do sleep 0.1; done"],
    });
    ctx.defer(() => c.remove());
    c.stderr.resume();
    await c.start();
    const [first] = (await once(c.stdout, "data")) as [Buffer];
    expect(first.toString()).toBe("ready\n");
    await c.kill({ graceMs: 10_000 });
    const status = await c.wait();
    expect(status.exitCode).toBe(3);
    expect(status.signal).toBeUndefined();
  });

  test("kill() without a signal sends the image's STOPSIGNAL (SIGINT in the layered image)", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().layered,
      entrypoint: [
        "sh",
        "-c",
        "trap 'exit 5' INT; trap 'exit 6' TERM; echo ready; while true; do sleep 0.1; done",
      ],
    });
    ctx.defer(() => c.remove());
    c.stderr.resume();
    await c.start();
    await once(c.stdout, "data");
    c.stdout.resume();
    await c.kill({ graceMs: 10_000 });
    expect((await c.wait()).exitCode).toBe(5);
  });

  test("a process that ignores SIGTERM is killed with SIGKILL after the grace period", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().busybox,
      command: ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
    });
    ctx.defer(() => c.remove());
    c.stderr.resume();
    await c.start();
    await once(c.stdout, "data");
    c.stdout.resume();
    const started = Date.now();
    await c.kill({ graceMs: 1500 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    const status = await c.wait();
    expect(status.exitCode).toBe(137);
    expect(status.signal).toBe("SIGKILL");
  });

  test("kill() with SIGKILL also ends the processes the container started in the background", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().busybox,
      command: ["sh", "-c", "sleep 1000 & sleep 1001 & echo ready; wait"],
    });
    ctx.defer(() => c.remove());
    c.stderr.resume();
    await c.start();
    await once(c.stdout, "data");
    c.stdout.resume();
    await c.kill({ signal: "SIGKILL" });
    expect((await c.wait()).signal).toBe("SIGKILL");
    if (ctx.options.leftovers) {
      // Let the runtime settle, then nothing of this container may remain.
      await c.remove();
      expect(await ctx.options.leftovers(ctx.executor())).toEqual([]);
    }
  });
}
