import type { ContainerExecutor } from "@contexec/core";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerLifecycleCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("state goes created -> running -> exited -> removed", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().busybox,
      command: ["sh", "-c", "read line; echo got $line"],
      stdin: true,
    });
    ctx.defer(() => c.remove());
    c.stderr.resume();
    expect(await c.state()).toBe("created");
    await c.start();
    expect(await c.state()).toBe("running");
    c.stdin?.end("x\n");
    const output: Buffer[] = [];
    for await (const chunk of c.stdout) output.push(chunk);
    expect((await c.wait()).exitCode).toBe(0);
    expect(Buffer.concat(output).toString()).toBe("got x\n");
    expect(await c.state()).toBe("exited");
    await c.remove();
    expect(await c.state()).toBe("removed");
  });

  test("start twice gives ContainerStateError; kill after exit and remove twice are no-ops", async () => {
    const c = await ctx.executor().create({ image: ctx.images().busybox, command: ["true"] });
    ctx.defer(() => c.remove());
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    await expect(c.start()).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
    expect((await c.wait()).exitCode).toBe(0);
    await expect(c.start()).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
    await c.kill();
    expect((await c.wait()).exitCode).toBe(0);
    await c.remove();
    await c.remove();
    expect(await c.state()).toBe("removed");
    await expect(c.start()).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
  });

  test("wait before start gives ContainerStateError; kill before start is a no-op", async () => {
    const c = await ctx.executor().create({ image: ctx.images().busybox, command: ["true"] });
    ctx.defer(() => c.remove());
    await expect(c.wait()).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
    await c.kill();
    expect(await c.state()).toBe("created");
  });

  test("wait takes an AbortSignal; aborting does not stop the container", async () => {
    const c = await ctx.start({ image: ctx.images().busybox, command: ["sleep", "30"] });
    const controller = new AbortController();
    const waiting = c.wait({ signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: "E_ABORTED" });
    expect(await c.state()).toBe("running");
    await c.kill({ graceMs: 1000 });
    expect(await c.state()).toBe("exited");
  });

  test("remove of a running container kills it first", async () => {
    const c = await ctx.start({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    await c.remove();
    expect(await c.state()).toBe("removed");
  });

  test("await using removes the container at the end of the block", async () => {
    let seen: Awaited<ReturnType<typeof ctx.start>> | undefined;
    {
      await using c = await ctx.executor().create({ image: ctx.images().busybox, command: ["true"] });
      seen = c;
      expect(await c.state()).toBe("created");
    }
    expect(await seen.state()).toBe("removed");
  });

  test("an invalid spec is refused with InvalidSpecError naming each field, before anything runs", async () => {
    const bad = {
      image: ctx.images().busybox,
      command: "echo hi",
      workdir: "relative/dir",
      env: { "1BAD": "x", GOOD: 3 },
      mounts: [{ type: "bind", source: "relative", target: "/x" }],
      network: "wifi",
      colour: "blue",
    };
    const err = await ctx
      .executor()
      .create(bad as never)
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: "E_INVALID_SPEC" });
    const paths = (err as { issues: { path: string }[] }).issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "command",
        "workdir",
        "env.1BAD",
        "env.GOOD",
        "mounts[0].source",
        "network",
        "colour",
      ]),
    );
  });

  test("close() removes every container the executor created", async () => {
    const ex = await ctx.options.createExecutor();
    ctx.defer(() => ex.close());
    await ex.loadImage(ctx.options.fixtures.busybox);
    const running = await ex.create({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    running.stdout.resume();
    running.stderr.resume();
    await running.start();
    const created = await ex.create({ image: ctx.images().busybox, command: ["true"] });
    await ex.close();
    expect(await running.state()).toBe("removed");
    expect(await created.state()).toBe("removed");
    if (ctx.options.leftovers) expect(await ctx.options.leftovers(ex)).toEqual([]);
  });

  test("an executor is AsyncDisposable: leaving an `await using` block closes it", async () => {
    let running: Awaited<ReturnType<ContainerExecutor["create"]>> | undefined;
    let held: ContainerExecutor | undefined;
    {
      await using ex = await ctx.options.createExecutor();
      held = ex;
      await ex.loadImage(ctx.options.fixtures.busybox);
      running = await ex.create({ image: ctx.images().busybox, command: ["sleep", "1000"] });
      running.stdout.resume();
      running.stderr.resume();
      await running.start();
    }
    expect(await running.state()).toBe("removed");
    if (ctx.options.leftovers) expect(await ctx.options.leftovers(held)).toEqual([]);
  });
}
