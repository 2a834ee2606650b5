import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { ContainerError, RuntimeUnavailableError, readImageArchive, runContainer } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";

const gate = runtimeGate("docker");

/*
 * A Docker daemon that dies under a pending wait(). This file starts a PRIVATE dockerd (its own
 * socket, data root, exec root, pid file and containerd; no bridge, no iptables), once, and
 * SIGKILLs and restarts only that one: the machine's shared daemon is never touched.
 */

const hasDockerd = (() => {
  try {
    execFileSync("sh", ["-c", "command -v dockerd && command -v unshare"], { stdio: "ignore" });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
})();

const busybox = join(inject("fixturesDir"), "busybox.tar");
let dir: string;
let socketPath: string;
let daemon: ChildProcess | undefined;

/*
 * In a network namespace of its own: dockerd started with --bridge=none deletes any interface
 * named docker0 it can see (Docker 20.10, removeDefaultBridgeInterface), which in the host's
 * namespace is the shared daemon's bridge. Only its socket, a file, is shared.
 */
function startDaemon(): ChildProcess {
  const log = openSync(join(dir, "dockerd.log"), "a");
  return spawn(
    "unshare",
    [
      "--net",
      "--",
      "dockerd",
      `--host=unix://${socketPath}`,
      `--data-root=${join(dir, "data")}`,
      `--exec-root=${join(dir, "exec")}`,
      `--pidfile=${join(dir, "dockerd.pid")}`,
      "--bridge=none",
      "--iptables=false",
      "--ip6tables=false",
      "--userland-proxy=false",
      "--log-level=warn",
    ],
    { stdio: ["ignore", log, log] },
  );
}

/** Waits until the private daemon answers a ping (a fresh client each time). */
async function untilAnswering(timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const probe = new DockerExecutor({ socketPath, requestTimeoutMs: 2000 });
    try {
      await probe.docker.ping();
      return;
    } catch (err) {
      if (Date.now() > until) {
        const log = await readFile(join(dir, "dockerd.log"), "utf8").catch(() => "");
        throw new Error(`the private dockerd did not answer within ${timeoutMs} ms:\n${log.slice(-2000)}`, {
          cause: err,
        });
      }
      await delay(200);
    }
  }
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once("exit", resolve));
}

/**
 * What a SIGKILLed private dockerd leaves running: its containerd, the shims of its containers
 * (their command lines name this file's folder) and the containers' processes under them. Ended
 * by pid, children first: a restarted containerd that finds a shim whose stdio FIFOs nobody reads
 * hangs on it (containerd 1.6), and dockerd gives up on it.
 */
async function endLeftovers(): Promise<void> {
  const table = new Map<number, { ppid: number; cmdline: string }>();
  for (const name of await readdir("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (stat) table.set(pid, { ppid, cmdline: cmdline.replaceAll("\0", " ") });
  }
  const ours = new Set([...table].filter(([, p]) => p.cmdline.includes(dir)).map(([pid]) => pid));
  const children = [...table].filter(([pid, p]) => ours.has(p.ppid) && !ours.has(pid)).map(([pid]) => pid);
  for (const pid of [...children, ...ours]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && [...children, ...ours].some((pid) => existsSync(`/proc/${pid}`)); i++)
    await delay(100);
}

/** Unmounts what the private daemon mounted under its folder (deepest first). */
async function unmountAll(): Promise<void> {
  const mounts = (await readFile("/proc/mounts", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((target) => target.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const target of mounts) execFileSync("umount", [target]);
}

/** The cgroups of the containers made here (cgroupfs v1 puts them under docker/<id> in every hierarchy). */
async function removeCgroups(ids: Iterable<string>): Promise<void> {
  const hierarchies = await readdir("/sys/fs/cgroup").catch(() => [] as string[]);
  for (const id of ids) {
    for (const h of hierarchies) await rmdir(join("/sys/fs/cgroup", h, "docker", id)).catch(() => {});
  }
}

const containerIds = new Set<string>();

const hostBridge = () => existsSync("/sys/class/net/docker0");
const hadHostBridge = hostBridge();

beforeAll(async () => {
  if (gate.skip) return;
  if (!hasDockerd) return;
  // Short: a unix socket path must fit in 108 bytes.
  dir = await mkdtemp(join(tmpdir(), "cx-dockerd-"));
  socketPath = join(dir, "docker.sock");
  daemon = startDaemon();
  await untilAnswering();
  const loader = new DockerExecutor({ socketPath });
  await loader.loadImage(busybox);
  await loader.close();
});

afterAll(async () => {
  if (gate.skip) return;
  if (!daemon) return;
  // A clean stop: dockerd stops its containers and its containerd, and unmounts what it mounted.
  if (daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill("SIGTERM");
    await Promise.race([exited(daemon), delay(30_000)]);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill("SIGKILL");
  }
  await endLeftovers();
  await unmountAll();
  await removeCgroups(containerIds);
  await rm(dir, { recursive: true, force: true });
  // The shared daemon's bridge is untouched.
  expect(hostBridge()).toBe(hadHostBridge);
});

describe.skipIf(!hasDockerd || gate.skip)(
  gate.title("a Docker daemon that dies (a private dockerd; needs root, dockerd and unshare)"),
  () => {
    it("wait() rejects with RuntimeUnavailableError within seconds, kill/remove/close return, info() is not stale; after a restart fresh calls work", async () => {
      const executor = new DockerExecutor({ socketPath });
      const image = (await readImageArchive(busybox)).id;
      expect((await executor.info()).runtime).toBe("docker");
      const container = await executor.create({ image, command: ["sleep", "300"], network: "none" });
      containerIds.add(container.id);
      await container.start();
      const waiting = container.wait();
      waiting.catch(() => {});
      await delay(300); // the wait request is in flight

      (daemon as ChildProcess).kill("SIGKILL");
      await exited(daemon as ChildProcess);
      const killedAt = Date.now();

      const err = await waiting.then(
        () => new Error("wait() resolved although the daemon died"),
        (e: unknown) => e,
      );
      const waitedMs = Date.now() - killedAt;
      expect(err).toBeInstanceOf(RuntimeUnavailableError);
      expect((err as Error).message).toContain(socketPath);
      console.log(`[daemon-death] wait() rejected ${waitedMs} ms after SIGKILL`);
      expect(waitedMs).toBeLessThan(10_000);

      // Each of these settles promptly; when it fails, it is a typed error.
      for (const [what, call] of [
        ["kill", () => container.kill({ graceMs: 100 })],
        ["remove", () => container.remove()],
        ["info", () => executor.info()],
        ["close", () => executor.close()],
      ] as const) {
        const started = Date.now();
        const outcome = await (call as () => Promise<unknown>)().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(Date.now() - started, `${what} took too long`).toBeLessThan(10_000);
        if (outcome !== undefined) expect(outcome, what).toBeInstanceOf(ContainerError);
        if (what === "info")
          expect(outcome, "info() served a stale answer").toBeInstanceOf(RuntimeUnavailableError);
      }

      await endLeftovers();
      daemon = startDaemon();
      await untilAnswering();
      // The same executor: info() probes afresh, a new container runs, the old one can be removed.
      expect((await executor.info()).runtime).toBe("docker");
      const result = await runContainer(executor, { image, command: ["echo", "back"], network: "none" });
      expect(result.stdout.toString()).toBe("back\n");
      await container.remove();
      expect(await container.state()).toBe("removed");
      await executor.close();
      const left = await executor.docker.listContainers({ all: true });
      expect(left).toEqual([]);
    });

    it("a daemon that stops answering (SIGSTOP) is noticed by the periodic ping: wait() rejects within seconds; once it answers again, calls work", async () => {
      const executor = new DockerExecutor({ socketPath, requestTimeoutMs: 3000 });
      const image = (await readImageArchive(busybox)).id;
      const container = await executor.create({ image, command: ["sleep", "300"], network: "none" });
      containerIds.add(container.id);
      await container.start();
      const waiting = container.wait();
      waiting.catch(() => {});
      await delay(300);
      const pid = (daemon as ChildProcess).pid as number;
      process.kill(pid, "SIGSTOP");
      const stoppedAt = Date.now();
      try {
        const err = await waiting.then(
          () => new Error("wait() resolved although the daemon is stopped"),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RuntimeUnavailableError);
        expect((err as Error).message).toMatch(/stopped answering/);
        const stoppedMs = Date.now() - stoppedAt;
        console.log(`[daemon-death] wait() rejected ${stoppedMs} ms after SIGSTOP`);
        expect(stoppedMs).toBeLessThan(10_000);
        await expect(executor.info()).rejects.toBeInstanceOf(ContainerError);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      expect((await executor.info()).runtime).toBe("docker");
      await container.remove();
      await executor.close();
      expect(await executor.docker.listContainers({ all: true })).toEqual([]);
    });
  },
);
