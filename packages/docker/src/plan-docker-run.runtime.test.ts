import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ContainerSpec, ImageId } from "@contexec/core";
import type Dockerode from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";
import { LABEL_EXECUTOR } from "./render-create-options.js";

const gate = runtimeGate("docker");

const run = promisify(execFile);
const fixtures = inject("fixturesDir");

/** The settings of a created container that a spec decides (what must not differ between the API and the CLI). */
function settingsOf(info: Dockerode.ContainerInspectInfo) {
  const c = info.Config;
  const h = info.HostConfig as Dockerode.HostConfig & { Init?: boolean; Mounts?: unknown[] };
  const labels = { ...c.Labels };
  delete labels[LABEL_EXECUTOR];
  return {
    // `docker run` can only give the program to --entrypoint and the rest as arguments: the
    // argv the container runs is what must be the same.
    argv: [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])],
    Env: [...(c.Env ?? [])].sort(),
    WorkingDir: c.WorkingDir,
    User: c.User,
    Labels: labels,
    OpenStdin: c.OpenStdin,
    StdinOnce: c.StdinOnce,
    AttachStdin: c.AttachStdin,
    Init: h.Init,
    NetworkMode: h.NetworkMode,
    Memory: h.Memory,
    MemorySwap: h.MemorySwap,
    NanoCpus: h.NanoCpus,
    Mounts: h.Mounts ?? [],
    PortBindings: h.PortBindings ?? {},
    ExposedPorts: c.ExposedPorts ?? {},
  };
}

describe.skipIf(gate.skip)(gate.title("the docker run argv of a plan"), () => {
  let executor: DockerExecutor;
  let layered: ImageId;
  let work: string;
  const created: string[] = [];

  beforeAll(async () => {
    executor = new DockerExecutor();
    layered = await executor.loadImage(join(fixtures, "layered.tar"));
    work = await mkdtemp(join(tmpdir(), "contexec-plan-argv-"));
    await mkdir(join(work, "in,put"));
    await mkdir(join(work, 'out "quoted"'));
  });
  afterAll(async () => {
    await Promise.all(
      created.map((id) =>
        executor.docker
          .getContainer(id)
          .remove({ force: true })
          .catch(() => {}),
      ),
    );
    await executor.close();
    await rm(work, { recursive: true, force: true });
  });

  const specs = (): [string, ContainerSpec][] => [
    ["the image's own ENTRYPOINT, CMD, ENV and WORKDIR", { image: layered }],
    [
      "every option a batch run takes",
      {
        image: layered,
        command: ["a b", "$X", "--flag", 'it\'s "quoted"'],
        entrypoint: ["/bin/sh", "-c", 'echo "$@"', "sh"],
        env: { A: "1", B: "x y=z", C: "line\nbreak", D: "$(id) `id` 'q'" },
        workdir: "/somewhere/new",
        mounts: [
          { type: "bind", source: join(work, "in,put"), target: "/in", readOnly: true },
          { type: "bind", source: join(work, 'out "quoted"'), target: "/out" },
          { type: "tmpfs", target: "/scratch", sizeBytes: 1 << 20 },
        ],
        stdin: true,
        network: "none",
        resources: { memoryBytes: 64 << 20, cpus: 0.5 },
        user: "1000:100",
        labels: { app: "x", "dots.and-dashes": "v=w, and spaces" },
      },
    ],
    [
      "a published port",
      { image: layered, ports: [{ containerPort: 8080 }, { containerPort: 53, protocol: "udp" }] },
    ],
    ["an empty entrypoint", { image: layered, entrypoint: [], command: ["/bin/true"] }],
  ];

  const titles = [
    "the image's own ENTRYPOINT, CMD, ENV and WORKDIR",
    "every option a batch run takes",
    "a published port",
    "an empty entrypoint",
  ];
  for (const title of titles) {
    it(`creates the same container as the API body: ${title}`, async () => {
      const spec = specs().find(([t]) => t === title)?.[1] as ContainerSpec;
      const plan = await executor.plan(spec);
      expect(plan.image.action).toBe("present");
      const fromApi = await executor.docker.createContainer(
        plan.dockerCreateBody as Dockerode.ContainerCreateOptions,
      );
      created.push(fromApi.id);
      const argv = plan.command.argv;
      expect(argv.slice(0, 3)).toEqual(["docker", "run", "--rm"]);
      const { stdout } = await run(argv[0] as string, ["create", ...argv.slice(3)], {
        env: plan.command.env,
      });
      const fromCli = stdout.trim();
      created.push(fromCli);
      const [a, b] = await Promise.all([
        executor.docker.getContainer(fromApi.id).inspect(),
        executor.docker.getContainer(fromCli).inspect(),
      ]);
      expect(settingsOf(b)).toEqual(settingsOf(a));
    });
  }
});
