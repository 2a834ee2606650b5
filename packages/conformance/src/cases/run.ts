import {
  AbortedError,
  CommandNotFoundError,
  type ContainerError,
  type RunErrorResult,
  runContainer,
  TimeoutError,
} from "@contexec/core";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

/** runContainer's deadline, abort, output bound, and the result every error of a run carries. */
export function registerRunCases(ctx: SuiteContext): void {
  const { test } = ctx;
  const rejection = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => {
        throw new Error("the run succeeded");
      },
      (e: unknown) => e as ContainerError & { result: RunErrorResult },
    );
    expect(err.result, "the error carries the run's result").toBeDefined();
    return err;
  };

  test("a successful run reports its duration, and neither timedOut nor isCanceled", async () => {
    const r = await runContainer(ctx.executor(), { image: ctx.images().busybox, command: ["echo", "hi"] });
    expect(r).toMatchObject({
      exitCode: 0,
      timedOut: false,
      isCanceled: false,
      truncatedBytes: { stdout: 0, stderr: 0 },
    });
    expect(r.durationMs).toBeGreaterThan(0);
  });

  test("timeoutMs kills it (grace, then SIGKILL) and rejects with TimeoutError carrying the output so far and how it ended", async () => {
    const started = Date.now();
    const err = await rejection(
      runContainer(
        ctx.executor(),
        {
          image: ctx.images().busybox,
          // Ignores SIGTERM, so only the SIGKILL after the grace period ends it.
          command: [
            "sh",
            "-c",
            "trap '' TERM; echo started; echo warming >&2; while true; do sleep 0.1; done",
          ],
        },
        { timeoutMs: 3000, kill: { graceMs: 500 } },
      ),
    );
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.code).toBe("E_TIMEOUT");
    expect(err.result).toMatchObject({ timedOut: true, isCanceled: false, exitCode: 137, signal: "SIGKILL" });
    expect(err.result.stdout.toString()).toBe("started\n");
    expect(err.result.stderr.toString()).toBe("warming\n");
    expect(err.result.durationMs).toBeGreaterThanOrEqual(3000);
    expect(elapsed).toBeLessThan(3000 + 500 + 15_000);
  });

  test("an AbortSignal.timeout() is reported as a timeout, not as an abort", async () => {
    const err = await rejection(
      runContainer(
        ctx.executor(),
        { image: ctx.images().busybox, command: ["sh", "-c", "echo before; sleep 1000"] },
        { signal: AbortSignal.timeout(2500), kill: { graceMs: 500 } },
      ),
    );
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.result).toMatchObject({ timedOut: true, isCanceled: false });
    expect(err.result.exitCode).toBeGreaterThan(128);
    expect(err.result.stdout.toString()).toBe("before\n");
  });

  test("aborting is AbortedError (E_ABORTED) with isCanceled and the output so far", async () => {
    const controller = new AbortController();
    const running = runContainer(
      ctx.executor(),
      { image: ctx.images().busybox, command: ["sh", "-c", "echo ready; sleep 1000"] },
      { signal: controller.signal, kill: { graceMs: 500 } },
    );
    setTimeout(() => controller.abort(), 2500);
    const err = await rejection(running);
    expect(err).toBeInstanceOf(AbortedError);
    expect(err.result).toMatchObject({ timedOut: false, isCanceled: true });
    expect(err.result.stdout.toString()).toBe("ready\n");
  });

  test("maxBuffer keeps the last bytes of each stream and counts what it dropped", async () => {
    const r = await runContainer(
      ctx.executor(),
      {
        image: ctx.images().busybox,
        command: ["sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); done; echo tail >&2"],
      },
      { maxBuffer: 100 },
    );
    const total = Array.from({ length: 1000 }, (_, i) => `line${i}\n`).join("");
    expect(r.stdout.toString()).toBe(total.slice(-100));
    expect(r.truncatedBytes).toEqual({ stdout: total.length - 100, stderr: 0 });
    expect(r.stderr.toString()).toBe("tail\n");
  });

  test("a failed run's error carries its result too (a command that does not exist)", async () => {
    const err = await rejection(
      runContainer(ctx.executor(), { image: ctx.images().busybox, command: ["/no/such/program"] }),
    );
    expect(err).toBeInstanceOf(CommandNotFoundError);
    expect(err.result).toMatchObject({ exitCode: undefined, timedOut: false, isCanceled: false });
    expect(Buffer.isBuffer(err.result.stdout)).toBe(true);
    expect(err.result.durationMs).toBeGreaterThan(0);
  });
}
