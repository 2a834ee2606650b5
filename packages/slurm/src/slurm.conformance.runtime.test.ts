import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { afterAll, describe, inject, it } from "vitest";
import type { SlurmExecutor } from "./slurm-executor.js";
import { clusterMissing, sharedFolder, testExecutor } from "./test-support/cluster.js";

const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const missing = await clusterMissing();

if (missing) {
  describe("conformance: slurm", () => {
    it.skip(`(skipped: ${missing})`, () => {});
  });
} else {
  // A shared folder of its own, so the suite starts from nothing and leaves nothing behind.
  const shared = await sharedFolder("conformance");
  afterAll(() => shared.remove());
  await describeConformance({
    name: "slurm (apptainer inside)",
    createExecutor: () =>
      testExecutor(join(shared.dir, "work"), { sharedCacheDir: join(shared.dir, "images") }),
    fixtures: { busybox: join(fixtures, "busybox.tar"), layered: join(fixtures, "layered.tar") },
    // Every job the executor submitted has ended (none left in the queue) and its folder is gone.
    leftovers: async (executor) => {
      const slurm = executor as SlurmExecutor;
      return slurm.containers().map((c) => `job ${c.jobId ?? "(not submitted)"} in ${c.files.dir}`);
    },
  });
}
