import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { pushForPull } from "@contexec/registry/testing";
import Dockerode from "dockerode";
import { afterAll, inject } from "vitest";
import { DockerExecutor } from "./docker-executor.js";
import { LABEL_EXECUTOR } from "./render-create-options.js";

const fixtures = inject("fixturesDir");
const pullReference = await pushForPull(inject("registries"), join(fixtures, "layered.tar"), "layered");
afterAll(async () => {
  if (!pullReference) return;
  // Untag only: the image is the layered fixture others load too; its last tag stays.
  const docker = new Dockerode();
  const tags = ((
    await docker
      .getImage(pullReference)
      .inspect()
      .catch(() => undefined)
  )?.RepoTags ?? []) as string[];
  if (tags.length > 1)
    await docker
      .getImage(pullReference)
      .remove({ noprune: true })
      .catch(() => {});
});

await describeConformance({
  name: "docker",
  createExecutor: async () => new DockerExecutor(),
  fixtures: { busybox: join(fixtures, "busybox.tar"), layered: join(fixtures, "layered.tar") },
  ...(pullReference && { pullReference }),
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
