import { once } from "node:events";
import { mkdtemp, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ContainerSpec, collect, runContainer } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import {
  descendantsOf,
  isRunning,
  listProcesses,
  namespaceOf,
  type ProcessEntry,
  processEntry,
  processesInNamespace,
} from "../process/process-tree.js";
import { runChild } from "../test-support/child-process.js";
import { fixtures } from "../test-support/fixtures.js";
import type { ApptainerContainer } from "./apptainer-container.js";

const gate = runtimeGate("apptainer");

const { busybox, layered } = fixtures();
let work: string;
let executor: ApptainerExecutor;
let usernsExecutor: ApptainerExecutor;
let image: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "contexec-container-rt-"));
  const cacheDir = join(work, "cache");
  executor = new ApptainerExecutor({ cacheDir });
  usernsExecutor = new ApptainerExecutor({ cacheDir, userns: true });
  image = await executor.loadImage(busybox);
  await executor.loadImage(layered);
});
afterAll(async () => {
  await executor?.close();
  await usernsExecutor?.close();
  await rm(work, { recursive: true, force: true });
});

/** Every process of a container: the runtime's descendants and the members of its PID namespace. */
async function treeOf(c: ApptainerContainer): Promise<ProcessEntry[]> {
  const all = await listProcesses();
  const pids = new Set(descendantsOf(c.pid as number, all));
  pids.add(c.pid as number);
  for (const pid of [...pids]) {
    const ns = await namespaceOf(pid, "pid");
    if (ns && ns !== (await namespaceOf("self", "pid")))
      for (const p of await processesInNamespace(ns)) pids.add(p);
  }
  return all.filter((p) => pids.has(p.pid));
}

async function alive(entries: ProcessEntry[]): Promise<ProcessEntry[]> {
  const left: ProcessEntry[] = [];
  for (const e of entries) if (await isRunning(e)) left.push(e);
  return left;
}

const modes = [
  ["root mode", () => executor],
  ["userns mode", () => usernsExecutor],
] as const;

describe.skipIf(gate.skip).each(modes)(gate.title("process control (%s)"), (_mode, ex) => {
  const run = (spec: Partial<ContainerSpec>, input?: string) =>
    runContainer(ex(), { image, ...spec }, input !== undefined ? { input } : {});

  it("reports exit codes, and 128+n with the signal for a process ended by signal n", async () => {
    expect((await run({ command: ["sh", "-c", "exit 7"] })).exitCode).toBe(7);
    const killed = await run({ command: ["sh", "-c", "kill -9 $$"] });
    expect(killed).toMatchObject({ exitCode: 137, signal: "SIGKILL", oomKilled: false });
    expect(await run({ command: ["sh", "-c", "kill -TERM $$"] })).toMatchObject({
      exitCode: 143,
      signal: "SIGTERM",
    });
  });

  it("kill() ends the whole tree: nothing of the container is left, not even a setsid'd child", async () => {
    const c = await ex().create({
      image,
      command: ["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1001 & setsid sleep 1002 & echo ready; wait"],
    });
    c.stderr.resume();
    await c.start();
    await once(c.stdout, "data");
    c.stdout.resume();
    const before = await treeOf(c);
    expect(before.length).toBeGreaterThanOrEqual(5);
    await c.kill({ graceMs: 300 });
    expect(await c.wait()).toMatchObject({ exitCode: 137, signal: "SIGKILL" });
    await new Promise((r) => setTimeout(r, 200));
    expect(await alive(before)).toEqual([]);
    await c.remove();
  });

  it("kill() with the default SIGTERM ends a plain sleep at once (the init shim forwards it)", async () => {
    const c = await ex().create({ image, command: ["sleep", "1000"] });
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    await c.exec(["true"]);
    const started = Date.now();
    await c.kill();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await c.wait()).toMatchObject({ exitCode: 143, signal: "SIGTERM" });
    await c.remove();
  });

  it("a failure of Apptainer itself is a RuntimeError carrying its FATAL message, not an exit code", async () => {
    // A SIF removed between create and start: Apptainer exits 255 with "FATAL: ... could not open image".
    const cacheDir = join(work, `fatal-${_mode.replace(" ", "-")}`);
    const own = new ApptainerExecutor({ cacheDir, userns: ex() === usernsExecutor });
    try {
      const id = await own.loadImage(busybox);
      const c = await own.create({ image: id, command: ["true"] });
      c.stdout.resume();
      const stderr = collect(c.stderr);
      await unlink((await own.image(id)).sifPath);
      await c.start();
      const err = await c.wait().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "E_RUNTIME", runtimeExitCode: 255 });
      expect(String((err as Error).message)).toMatch(/could not open image|no such file/);
      expect((await stderr).toString()).toMatch(/FATAL/);
      expect(await c.state()).toBe("exited");
    } finally {
      await own.close();
    }
  });

  it("a command not in the image is CommandNotFoundError, from wait() and from exec()", async () => {
    await expect(run({ command: ["no-such-program"] })).rejects.toMatchObject({
      code: "E_COMMAND_NOT_FOUND",
    });
    await expect(run({ command: ["/etc/passwd"] })).rejects.toMatchObject({ code: "E_COMMAND_NOT_FOUND" });
    const c = await ex().create({ image, command: ["sleep", "1000"] });
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    await expect(c.exec(["no-such-program"])).rejects.toMatchObject({ code: "E_COMMAND_NOT_FOUND" });
    await c.remove();
    await expect(c.exec(["true"])).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
  });

  it("exec enters the running container: its files, env, workdir, PID namespace and limits", async () => {
    const memory = ex()
      .probe()
      .then((p) => p.capabilities["memory-limit"].supported);
    const c = await ex().create({
      image,
      command: ["sh", "-c", "echo main > /tmp/main.txt; exec sleep 1000"],
      env: { FROM_SPEC: "a $b `c`" },
      workdir: "/tmp",
      ...((await memory) && { resources: { memoryBytes: 64 << 20 } }),
    });
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    let seen = "";
    for (let i = 0; i < 50 && seen === ""; i++)
      seen = (await c.exec(["sh", "-c", "cat main.txt 2>/dev/null; true"])).stdout;
    expect(seen).toBe("main\n");
    const r = await c.exec(
      ["sh", "-c", 'printf "%s|%s|%s|" "$FROM_SPEC" "$EXTRA" "$(pwd)"; cat /proc/1/cmdline | tr "\\0" " "'],
      {
        env: { EXTRA: "x" },
        workdir: "/etc",
        input: "",
      },
    );
    expect(r.stdout).toMatch(/^a \$b `c`\|x\|\/etc\|/);
    if (await memory) {
      const limit = await c
        .exec(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
        .catch(() => undefined);
      if (limit) expect(limit.stdout.trim()).toBe(String(64 << 20));
      expect((await c.exec(["cat", "/proc/self/cgroup"])).stdout).toMatch(/contexec-/);
    }
    const missing = await c.exec(["true"], { workdir: "/no/such/folder" }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: "E_RUNTIME" });
    await c.remove();
  });

  it("streams are pipes, not sockets: /dev/stdout, /dev/stderr and /dev/fd/N can be reopened", async () => {
    const r = await run(
      {
        command: ["sh", "-c", "exec 3>&1; cat > /dev/stdout; echo err > /dev/stderr; echo three > /dev/fd/3"],
        stdin: true,
      },
      "piped in\n",
    );
    expect(r.stdout.toString()).toBe("piped in\nthree\n");
    expect(r.stderr.toString()).toBe("err\n");
  });

  it("the host's folder, environment and stdin do not reach the container", async () => {
    process.env.CONTEXEC_LEAK_TEST = "leaked";
    process.env.http_proxy = "http://leak.invalid";
    try {
      const r = await run({ command: ["sh", "-c", "pwd; env; cat; echo eof"] });
      const out = r.stdout.toString();
      expect(out.split("\n")[0]).toBe("/");
      expect(out).not.toMatch(/leaked|leak\.invalid|TERM=/);
      expect(out).toMatch(/eof\n$/);
    } finally {
      delete process.env.CONTEXEC_LEAK_TEST;
      delete process.env.http_proxy;
    }
  });
});

describe.skipIf(gate.skip)(gate.title("no orphans when this process ends"), () => {
  it.each([
    ["exit", "root"],
    ["throw", "root"],
    ["sigterm", "root"],
    ["exit", "userns"],
    ["sigterm", "userns"],
  ])(
    "a Node process that ends by %s takes its containers with it (%s mode)",
    async (how, mode) => {
      let pid = 0;
      const child = runChild("./run-container-child.ts", [join(work, "cache"), busybox, how, mode], {
        onStdoutLine: (l) => {
          pid = (JSON.parse(l) as { pid: number }).pid;
        },
      });
      // Snapshot the container's tree while it runs.
      let tree: ProcessEntry[] = [];
      for (let i = 0; i < 200 && tree.length < 3; i++) {
        await new Promise((r) => setTimeout(r, 50));
        if (pid) {
          const all = await listProcesses();
          const pids = new Set([pid, ...descendantsOf(pid, all)]);
          tree = all.filter((p) => pids.has(p.pid));
        }
      }
      child.stdin.write("go\n");
      const result = await child.done;
      expect(tree.length, result.stderr).toBeGreaterThanOrEqual(3);
      await new Promise((r) => setTimeout(r, 500));
      expect(await alive(tree)).toEqual([]);
    },
    60_000,
  );
});

describe.skipIf(gate.skip)(gate.title("lifecycle races"), () => {
  it("remove() during start() waits for it and kills what it started", async () => {
    const c = await executor.create({ image, command: ["sleep", "1000"] });
    c.stdout.resume();
    c.stderr.resume();
    const starting = c.start();
    const removing = c.remove();
    await starting;
    await removing;
    expect(await c.state()).toBe("removed");
    const pid = c.pid as number;
    await new Promise((r) => setTimeout(r, 100));
    const left = await processEntry(pid);
    expect(left === undefined || left.state === "Z").toBe(true);
  });

  it("kill() and remove() at once, and twice, are safe", async () => {
    const c = await executor.create({ image, command: ["sleep", "1000"] });
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    await Promise.all([c.kill({ graceMs: 100 }), c.kill({ signal: "SIGKILL" }), c.remove(), c.remove()]);
    expect(await c.state()).toBe("removed");
    expect((await c.wait()).exitCode).toBeGreaterThan(128);
  });
});
