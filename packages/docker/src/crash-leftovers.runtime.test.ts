import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OWNER_LABELS } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";

const gate = runtimeGate("docker");

// The TypeScript loader of the Apptainer package's child-process tests runs this package's child too.
const LOADER = fileURLToPath(new URL("../../singularity/src/test-support/ts-loader.mjs", import.meta.url));
const CHILD = fileURLToPath(new URL("./test-support/crash-child.ts", import.meta.url));

let executor: DockerExecutor;
let image: string;
beforeAll(async () => {
  if (gate.skip) return;
  executor = new DockerExecutor();
  image = await executor.loadImage(join(inject("fixturesDir"), "busybox.tar"));
});
afterAll(() => executor?.close());

/** Starts the child and resolves with its pid and the ids of what it started. */
async function startChild(): Promise<{ pid: number; ids: string[]; exited: Promise<NodeJS.Signals | null> }> {
  const child = spawn(process.execPath, ["--import", LOADER, CHILD, image], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => {
    stderr += b;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("exit", (_code, signal) => resolve(signal)),
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b;
      if (out.includes("\n")) resolve(out.split("\n")[0] as string);
    });
    void exited.then(() => reject(new Error(`the child ended early:\n${stderr}`)));
  });
  return { pid: child.pid as number, ids: (JSON.parse(line) as { ids: string[] }).ids, exited };
}

/** The containers, running or not, whose owner labels name `pid` on this host. */
async function ownedBy(pid: number): Promise<string[]> {
  const list = await executor.docker.listContainers({
    all: true,
    filters: { label: [`${OWNER_LABELS.pid}=${pid}`] },
  });
  return list.map((c) => `${c.Id.slice(0, 12)} ${c.State}`);
}

describe.skipIf(gate.skip)(gate.title("a Docker executor's process that dies"), () => {
  it("by SIGKILL leaves its containers running, and the next executor removes them before its first container", async () => {
    const child = await startChild();
    expect(child.ids).toHaveLength(3);
    process.kill(child.pid, "SIGKILL");
    expect(await child.exited).toBe("SIGKILL");
    expect((await ownedBy(child.pid)).filter((c) => c.endsWith("running"))).toHaveLength(3);

    const next = new DockerExecutor();
    try {
      // Its first container comes after the sweep.
      const c = await next.create({ image, command: ["true"], network: "none" });
      await c.remove();
      expect(await ownedBy(child.pid)).toEqual([]);
    } finally {
      await next.close();
    }
  });

  it("by SIGTERM removes its containers on the way out", async () => {
    const child = await startChild();
    process.kill(child.pid, "SIGTERM");
    expect(await child.exited).toBe("SIGTERM");
    expect(await ownedBy(child.pid)).toEqual([]);
  });

  it("never touches the containers of a live owner", async () => {
    const child = await startChild();
    try {
      const report = await executor.sweepLeftovers();
      expect(report.removed.filter((r) => child.ids.some((id) => r.includes(id.slice(0, 12))))).toEqual([]);
      expect((await ownedBy(child.pid)).filter((c) => c.endsWith("running"))).toHaveLength(3);
    } finally {
      process.kill(child.pid, "SIGINT");
      await child.exited;
    }
    expect(await ownedBy(child.pid)).toEqual([]);
  });
});
