import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { inject } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";
import { LABEL_EXECUTOR } from "./render-create-options.js";

const fixtures = inject("fixturesDir");
const gate = runtimeGate("docker");

await describeConformance({
  name: "docker",
  ...(gate.reason !== undefined && { unavailable: gate.reason }),
  createExecutor: async () => new DockerExecutor(),
  fixtures: { busybox: join(fixtures, "busybox.tar"), layered: join(fixtures, "layered.tar") },
  // Containers the daemon still has with this executor's label.
  leftovers: async (executor) => {
    const docker = executor as DockerExecutor;
    const list = await docker.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_EXECUTOR}=${docker.instanceId}`] },
    });
    return list.map((c) => `${c.Id.slice(0, 12)} ${c.State}`);
  },
});
