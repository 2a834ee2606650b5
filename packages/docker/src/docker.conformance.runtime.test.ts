import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { readImageArchive } from "@contexec/core";
import { pushForPull } from "@contexec/registry/testing";
import Dockerode from "dockerode";
import { afterAll, inject } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";
import { LABEL_EXECUTOR } from "./render-create-options.js";

const fixtures = inject("fixturesDir");
const gate = runtimeGate("docker");
const pullReference = gate.skip
  ? undefined
  : await pushForPull(inject("registries"), join(fixtures, "layered.tar"), "layered");
afterAll(async () => {
  if (!pullReference) return;
  // Untag only: the image is the layered fixture, which other runs load too. Where the pulled
  // name is its last, the archive's own tag goes on first, so the daemon is left as a load leaves it.
  const docker = new Dockerode();
  const image = await docker
    .getImage(pullReference)
    .inspect()
    .catch(() => undefined);
  if (!image) return;
  const tags = (image.RepoTags ?? []).filter((t) => t !== pullReference);
  if (tags.length === 0) {
    const [archiveTag] = (await readImageArchive(join(fixtures, "layered.tar"))).repoTags;
    if (!archiveTag) return;
    const colon = archiveTag.lastIndexOf(":");
    await docker
      .getImage(image.Id)
      .tag({ repo: archiveTag.slice(0, colon), tag: archiveTag.slice(colon + 1) });
  }
  await docker
    .getImage(pullReference)
    .remove({ noprune: true })
    .catch(() => {});
});

await describeConformance({
  name: "docker",
  ...(gate.reason !== undefined && { unavailable: gate.reason }),
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
