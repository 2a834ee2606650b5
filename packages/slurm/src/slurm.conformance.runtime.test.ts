import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { pushForPull } from "@contexec/registry/testing";
import { afterAll, inject } from "vitest";
import { runtimeGate } from "#test/runtimes";
import type { SlurmExecutor } from "./slurm-executor.js";
import { sharedFolder, testExecutor } from "./test-support/cluster.js";

const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const gate = runtimeGate("slurm");
// A shared folder of its own, so the suite starts from nothing and leaves nothing behind.
const shared = gate.skip ? undefined : await sharedFolder("conformance");
afterAll(() => shared?.remove());
// Pulled on this machine into the shared SIF cache, then run on the node from there.
const pullReference = gate.skip
  ? undefined
  : await pushForPull(inject("registries"), join(fixtures, "layered.tar"), "layered");

await describeConformance({
  name: "slurm (apptainer inside)",
  ...(gate.reason !== undefined && { unavailable: gate.reason }),
  createExecutor: async () => {
    const dir = shared?.dir as string;
    return testExecutor(join(dir, "work"), { sharedCacheDir: join(dir, "images") });
  },
  fixtures: { busybox: join(fixtures, "busybox.tar"), layered: join(fixtures, "layered.tar") },
  ...(pullReference && { pullReference }),
  // Every job the executor submitted has ended (none left in the queue) and its folder is gone.
  leftovers: async (executor) => {
    const slurm = executor as SlurmExecutor;
    return slurm.containers().map((c) => `job ${c.jobId ?? "(not submitted)"} in ${c.files.dir}`);
  },
});
