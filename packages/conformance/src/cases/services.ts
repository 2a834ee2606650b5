import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ContainerSpec, collect, findFreePort as freePort, type Service } from "@contexec/core";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerServiceCases(ctx: SuiteContext): void {
  const { test } = ctx;
  const publish = (port: number): Partial<ContainerSpec> =>
    ctx.info.capabilities.ports.supported ? { ports: [{ containerPort: port }] } : {};
  const startService = async (spec: ContainerSpec, options?: Parameters<SuiteContext["startService"]>[1]) => {
    const service = await ctx.startService(spec, options);
    ctx.defer(() => service.stop({ graceMs: 1000 }).catch(() => {}));
    return service;
  };

  test("httpd serving a bound folder: ready over HTTP, fetched, exec inside, writes reach the host, stop leaves nothing", async () => {
    const www = await mkdtemp(join(tmpdir(), "contexec-www-"));
    ctx.defer(() => rm(www, { recursive: true, force: true }));
    await writeFile(join(www, "hello.txt"), "served from the host\n");
    const port = await freePort();
    const service = await startService(
      {
        image: ctx.images().busybox,
        command: ["httpd", "-f", "-v", "-p", String(port), "-h", "/www"],
        mounts: [{ type: "bind", source: www, target: "/www" }],
        ...publish(port),
      },
      { ready: { http: port, path: "/hello.txt" }, readyOptions: { timeoutMs: 30_000 } },
    );
    expect(await service.state()).toBe("running");
    const { host, port: hostPort } = await service.endpoint(port);
    const response = await fetch(`http://${host}:${hostPort}/hello.txt`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("served from the host\n");

    expect(await service.exec(["cat", "/www/hello.txt"])).toEqual({
      exitCode: 0,
      stdout: "served from the host\n",
      stderr: "",
    });
    expect((await service.exec(["sh", "-c", "echo from the service > /www/written.txt"])).exitCode).toBe(0);
    expect(await readFile(join(www, "written.txt"), "utf8")).toBe("from the service\n");

    expect((await ctx.executor().listServices()).map((s) => s.name)).toContain(service.name);
    const status = await service.stop({ graceMs: 2000 });
    expect(["SIGTERM", "SIGKILL"]).toContain(status.signal);
    expect((await ctx.executor().listServices()).map((s) => s.name)).not.toContain(service.name);
    await expect(fetch(`http://${host}:${hostPort}/hello.txt`)).rejects.toThrow();
    if (ctx.options.leftovers) expect(await ctx.options.leftovers(ctx.executor())).toEqual([]);
  }, ["exec"]);

  test("two services of one image run at once, each its own", async () => {
    const spec = (n: string): ContainerSpec => ({
      image: ctx.images().busybox,
      command: ["sh", "-c", "echo $N > /tmp/me; sleep 1000"],
      env: { N: n },
      name: "twin",
    });
    const [a, b] = await Promise.all([startService(spec("a")), startService(spec("b"))]);
    expect(a?.name).not.toBe(b?.name);
    for (const [service, n] of [
      [a, "a"],
      [b, "b"],
    ] as const) {
      let seen = "";
      for (let i = 0; i < 50 && seen === ""; i++) {
        seen = (await service?.exec(["sh", "-c", "cat /tmp/me 2>/dev/null; true"]))?.stdout ?? "";
        if (seen === "") await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen).toBe(`${n}\n`);
    }
    await Promise.all([a?.stop({ graceMs: 1000 }), b?.stop({ graceMs: 1000 })]);
  }, ["exec"]);

  test("a second service of a taken exact name is refused, and the first one keeps running and answering", async () => {
    const www = await mkdtemp(join(tmpdir(), "contexec-www-"));
    ctx.defer(() => rm(www, { recursive: true, force: true }));
    await writeFile(join(www, "who.txt"), "the first\n");
    const port = await freePort();
    const name = `contexec-dup-${process.pid}-${Date.now().toString(36)}`;
    const spec: ContainerSpec = {
      image: ctx.images().busybox,
      command: ["httpd", "-f", "-p", String(port), "-h", "/www"],
      mounts: [{ type: "bind", source: www, target: "/www" }],
      name,
      ...publish(port),
    };
    const first = await startService(spec, {
      exactName: true,
      ready: { http: port, path: "/who.txt" },
      readyOptions: { timeoutMs: 30_000 },
    });
    const { host, port: hostPort } = await first.endpoint(port);
    const err = await ctx.startService(spec, { exactName: true }).then(
      (s: Service) => s.stop().then(() => null),
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "E_RUNTIME" });
    expect(String((err as Error).message)).toContain(name);
    // Whatever the refused start cleaned up, it was not the first service.
    expect(await first.state()).toBe("running");
    const response = await fetch(`http://${host}:${hostPort}/who.txt`);
    expect(await response.text()).toBe("the first\n");
    if (ctx.info.capabilities.exec.supported)
      expect(await first.exec(["cat", "/www/who.txt"])).toMatchObject({ exitCode: 0, stdout: "the first\n" });
    expect((await ctx.executor().listServices()).filter((s) => s.name === name)).toHaveLength(1);
    await first.stop({ graceMs: 1000 });
  });

  test("stopping a stopped service returns the same status; exec into it gives ContainerStateError", async () => {
    const service = await startService({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    const first = await service.stop({ graceMs: 1000 });
    expect(await service.stop()).toEqual(first);
    await expect(service.exec(["true"])).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
    expect(["exited", "removed"]).toContain(await service.state());
  });

  test("stop() gives the service's process its stop signal: a trap runs and its exit code is reported", async () => {
    const service = await startService(
      {
        image: ctx.images().busybox,
        command: [
          "sh",
          "-c",
          "trap 'echo cleaning up; exit 7' TERM; echo up; while true; do sleep 0.1; done",
        ],
      },
      { ready: { log: "up" }, readyOptions: { timeoutMs: 20_000 } },
    );
    const status = await service.stop({ graceMs: 10_000 });
    expect(status.exitCode).toBe(7);
    expect((await service.logs()).stdout).toContain("cleaning up");
  });

  test("a service whose process dies is reported as exited with its code", async () => {
    const service = await startService({
      image: ctx.images().busybox,
      command: ["sh", "-c", "echo dying; sleep 0.3; exit 3"],
    });
    expect((await service.wait()).exitCode).toBe(3);
    expect(await service.state()).toBe("exited");
    expect((await service.logs()).stdout).toContain("dying");
    expect((await ctx.executor().listServices()).find((s) => s.name === service.name)?.state).toBe("exited");
  });

  test("readiness by log line and by a command inside", async () => {
    const byLog = await startService(
      { image: ctx.images().busybox, command: ["sh", "-c", "sleep 0.5; echo now listening; sleep 1000"] },
      { ready: { log: /now listening/ }, readyOptions: { timeoutMs: 20_000 } },
    );
    expect((await byLog.logs()).stdout).toContain("now listening");
    const byExec = await startService(
      { image: ctx.images().busybox, command: ["sh", "-c", "sleep 0.5; touch /tmp/ready; sleep 1000"] },
      { ready: { exec: ["test", "-e", "/tmp/ready"] }, readyOptions: { timeoutMs: 20_000 } },
    );
    expect((await byExec.exec(["ls", "/tmp/ready"])).exitCode).toBe(0);
  }, ["exec"]);

  test("a service that never gets ready: TimeoutError with its last log lines, and nothing left running", async () => {
    const port = await freePort();
    const before = (await ctx.executor().listServices()).length;
    const err = await ctx
      .startService(
        {
          image: ctx.images().busybox,
          command: ["sh", "-c", "echo still warming up; sleep 1000"],
          ...publish(port),
        },
        { ready: { tcp: port }, readyOptions: { timeoutMs: 1500, intervalMs: 100 } },
      )
      .then(
        (s: Service) => s.stop().then(() => null),
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: "E_TIMEOUT" });
    expect(String((err as Error).message)).toContain("still warming up");
    expect((await ctx.executor().listServices()).length).toBe(before);
  });

  test("a service that exits before it is ready fails at once, with its output", async () => {
    const started = Date.now();
    const err = await ctx
      .startService(
        { image: ctx.images().busybox, command: ["sh", "-c", "echo bad config >&2; exit 2"] },
        { ready: { tcp: 1 }, readyOptions: { timeoutMs: 30_000 } },
      )
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: "E_CONTAINER_STATE" });
    expect(String((err as Error).message)).toContain("bad config");
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  test("execStream streams a command's stdin and stdout", async () => {
    const service = await startService({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    const proc = await service.execStream(["sh", "-c", "tr a-z A-Z; echo done >&2"], { stdin: true });
    proc.stdin?.end("shout\n");
    const [out, err, code] = await Promise.all([collect(proc.stdout), collect(proc.stderr), proc.exitCode]);
    expect(out.toString()).toBe("SHOUT\n");
    expect(err.toString()).toBe("done\n");
    expect(code).toBe(0);
  }, ["exec"]);

  test("close() stops every service the executor started, leaving nothing behind", async () => {
    const executor = await ctx.options.createExecutor();
    ctx.defer(() => executor.close());
    await executor.loadImage(ctx.options.fixtures.busybox);
    const services = await Promise.all(
      [1, 2].map(() => executor.startService({ image: ctx.images().busybox, command: ["sleep", "1000"] })),
    );
    await executor.close();
    for (const s of services) expect(["exited", "removed"]).toContain(await s.state());
    expect(await executor.listServices()).toEqual([]);
    if (ctx.options.leftovers) expect(await ctx.options.leftovers(executor)).toEqual([]);
  });
}
