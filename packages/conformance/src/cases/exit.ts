import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerExitCases(ctx: SuiteContext): void {
  const { test } = ctx;

  for (const code of [0, 1, 42]) {
    test(`exit ${code} is reported as exitCode ${code}`, async () => {
      const r = await ctx.run({ image: ctx.images().busybox, command: ["sh", "-c", `exit ${code}`] });
      expect(r.exitCode).toBe(code);
      expect(r.signal).toBeUndefined();
      expect(r.oomKilled).toBe(false);
    });
  }

  test("a process killed by SIGKILL gives 137 and signal SIGKILL", async () => {
    const r = await ctx.run({ image: ctx.images().busybox, command: ["sh", "-c", "kill -9 $$"] });
    expect(r.exitCode).toBe(137);
    expect(r.signal).toBe("SIGKILL");
  });

  test("a command that does not exist: wait() rejects with CommandNotFoundError", async () => {
    const c = await ctx
      .executor()
      .create({ image: ctx.images().busybox, command: ["/no/such/program", "arg"] });
    ctx.defer(() => c.remove());
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    await expect(c.wait()).rejects.toMatchObject({ code: "E_COMMAND_NOT_FOUND" });
    expect(await c.state()).toBe("exited");
  });

  test("a program not found on PATH: wait() rejects with CommandNotFoundError", async () => {
    await expect(
      ctx.run({ image: ctx.images().busybox, command: ["no-such-program"] }),
    ).rejects.toMatchObject({
      code: "E_COMMAND_NOT_FOUND",
    });
  });
}
