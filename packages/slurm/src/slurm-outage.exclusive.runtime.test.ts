import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ImageId, type RunResult, runContainer } from "@contexec/core";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import type { SlurmExecutor } from "./slurm-executor.js";
import { sharedFolder, testExecutor } from "./test-support/cluster.js";

// Stops the cluster's controller: this file runs alone (the "exclusive" test project, after the
// others), since every other job on the cluster would wait out the outage too.
const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const setupScript = fileURLToPath(new URL("../../../scripts/setup-slurm.sh", import.meta.url));
const pidFile = "/run/slurmctld.pid";
const gate = runtimeGate("slurm");
const missing =
  gate.reason ??
  (await readFile(pidFile, "utf8").then(
    () => undefined,
    () =>
      `no ${pidFile}: the controller was not started by scripts/setup-slurm.sh, so this test will not stop it`,
  ));

describe.skipIf(missing !== undefined)(
  `SLURM controller outage${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    let shared: Awaited<ReturnType<typeof sharedFolder>>;
    const executors: SlurmExecutor[] = [];
    let image: ImageId;

    beforeAll(async () => {
      shared = await sharedFolder("outage");
      for (const tracking of ["sacct", "squeue"] as const) {
        executors.push(
          await testExecutor(join(shared.dir, "work"), {
            tracking,
            sharedCacheDir: join(shared.dir, "images"),
            pollIntervalMs: 500,
            maxPollIntervalMs: 3000,
            commandTimeoutMs: 5000,
          }),
        );
      }
      const [first, second] = executors as [SlurmExecutor, SlurmExecutor];
      image = await first.loadImage(join(fixtures, "busybox.tar"));
      await second.loadImage(join(fixtures, "busybox.tar"));
    }, 300_000);
    afterAll(async () => {
      // Whatever happened, the controller runs again for whoever comes next.
      await execa(setupScript, { reject: false });
      await Promise.all(executors.map((e) => e.close()));
      await shared?.remove();
    }, 180_000);

    it("slurmctld stopped for 30 s while jobs run and end: nothing is reported failed, every job is tracked to its exit code afterwards (sacct and squeue)", async () => {
      const settledEarly: string[] = [];
      const runs: Promise<RunResult>[] = [];
      for (const [e, ex] of executors.entries()) {
        for (let i = 0; i < 3; i++) {
          const code = 10 * e + i;
          const run = runContainer(ex, {
            image,
            command: ["sh", "-c", `sleep 8; echo done ${code}; exit ${code}`],
          });
          run.then(
            () => settledEarly.push(`${code} resolved`),
            (err: Error) => settledEarly.push(`${code} rejected: ${err.message}`),
          );
          runs.push(run);
        }
      }
      // Every container runs (start() resolved), then the controller goes away.
      await waitFor(
        async () => executors.every((ex) => ex.containers().length === 3) && (await allRunning()),
      );
      const pid = Number((await readFile(pidFile, "utf8")).trim());
      process.kill(pid, "SIGTERM");
      await waitFor(async () => !alive(pid));
      await new Promise((r) => setTimeout(r, 30_000));
      // The jobs ended during the outage; nobody may have been told anything yet.
      expect(settledEarly).toEqual([]);
      for (const ex of executors) {
        for (const c of ex.containers()) expect(await c.state()).toBe("running");
      }
      await execa(setupScript);
      const results = await Promise.all(runs);
      expect(results.map((r) => r.exitCode)).toEqual([0, 1, 2, 10, 11, 12]);
      expect(results.map((r) => r.stdout.toString())).toEqual(
        [0, 1, 2, 10, 11, 12].map((c) => `done ${c}\n`),
      );

      async function allRunning(): Promise<boolean> {
        const states = await Promise.all(executors.flatMap((ex) => ex.containers().map((c) => c.state())));
        return states.every((s) => s === "running");
      }
    }, 240_000);
  },
);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
  why: () => Promise<string> = async () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting ${await why()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
