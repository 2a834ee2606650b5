// The test file `contexec conformance` hands to vitest: the conformance suite for the runtime
// named in the environment, on the fixtures named there. Not a test of this package.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { createExecutor, type ExecutorConfig } from "@contexec/core";
import { afterAll } from "vitest";
import { CONFORMANCE_ENV } from "./conformance-env.js";

const runtime = process.env[CONFORMANCE_ENV.runtime] as string;
const fixtures = process.env[CONFORMANCE_ENV.fixtures] as string;
let config = { runtime } as ExecutorConfig;
if (runtime === "apptainer" || runtime === "singularity") {
  // A SIF cache of its own: the suite removes images, and must not touch the user's.
  const cacheDir = await mkdtemp(join(tmpdir(), "contexec-conformance-sif-"));
  afterAll(() => rm(cacheDir, { recursive: true, force: true }));
  config = { runtime, cacheDir };
}

await describeConformance({
  name: runtime,
  createExecutor: () => createExecutor(config),
  fixtures: { busybox: join(fixtures, "busybox.tar"), layered: join(fixtures, "layered.tar") },
});
