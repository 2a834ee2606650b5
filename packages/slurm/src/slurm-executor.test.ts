import { readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPlan, type RuntimeProfile, SUPPORTED, unsupported } from "@contexec/core";
import { dockerArchiveOf, tarOf } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterInfoOf, parsePartitions, parseScontrolConfig } from "./scheduler/cluster-info.js";
import { SlurmExecutor } from "./slurm-executor.js";

const recorded = (name: string) =>
  readFileSync(new URL(`./scheduler/recorded/${name}`, import.meta.url), "utf8");

/** A node's Apptainer profile as its info() gives it: root, cgroups v1. */
const NODE: RuntimeProfile = {
  runtime: "apptainer",
  flavor: "apptainer",
  version: "1.4.5",
  privilege: "root",
  capabilities: {
    "network-none": SUPPORTED,
    "network-bridge": unsupported("no CNI"),
    "network-host": SUPPORTED,
    "memory-limit": SUPPORTED,
    "cpu-limit": SUPPORTED,
    gpu: unsupported("no GPU"),
    "oom-detection": SUPPORTED,
    user: SUPPORTED,
    ports: unsupported("host network"),
    exec: SUPPORTED,
  },
  planner: {
    binary: "/opt/apptainer/bin/apptainer",
    render: {
      flavor: "apptainer",
      userns: false,
      dockerCaps: true,
      noEval: true,
      noUmask: true,
      ownCgroups: true,
    },
    nsenter: "/usr/bin/nsenter",
    cgroupLayout: { version: 1 },
  },
  host: { hostname: "node17", uid: 0, gid: 0, kernel: "6.1.0", arch: "x64" },
  probedAt: "2026-11-30T00:00:00.000Z",
};

/** What a SLURM executor's info() gives (contexec probe --runtime slurm --json), from recorded 22.05 output. */
const SLURM_PROFILE: RuntimeProfile = {
  runtime: "slurm",
  flavor: "slurm",
  version: "22.05.8",
  privilege: "root",
  capabilities: NODE.capabilities,
  planner: {
    inner: "apptainer",
    nodeProfile: NODE,
    cluster: clusterInfoOf({
      version: "slurm-wlm 22.05.8",
      config: parseScontrolConfig(recorded("scontrol-config-22.05.txt")),
      partitions: parsePartitions(recorded("scontrol-partition-22.05.txt")),
      accounting: true,
    }),
  },
  host: { hostname: "login1", uid: 1000, gid: 1000, kernel: "6.1.0", arch: "x64" },
  probedAt: "2026-11-30T00:00:00.000Z",
};

describe("planning a job from a SLURM profile, with neither the scheduler nor Apptainer here", () => {
  let work: string;
  let archive: string;
  let executor: SlurmExecutor;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "contexec-slurm-plan-"));
    archive = join(work, "image.tar");
    const layer = await tarOf([{ name: "bin/", type: "directory" }]);
    await writeFile(archive, await dockerArchiveOf({ layers: [layer], tag: "test/slurm-plan:1" }));
    // Any scheduler command or Apptainer probe would fail: none is found.
    executor = new SlurmExecutor({
      runtime: "slurm",
      inner: "apptainer",
      innerConfig: { binary: join(work, "no-apptainer") },
      slurm: { workDir: join(work, "shared"), binDir: join(work, "no-slurm-bin"), partition: "debug" },
    });
  });
  afterAll(async () => {
    await executor.close();
    await rm(work, { recursive: true, force: true });
  });

  it("takes the cluster's settings and the nodes' profile from it; the job converts the image on its node", async () => {
    const plan = await executor.plan(
      { image: "test/slurm-plan:1", command: ["echo", "hi"], resources: { memoryBytes: 256 * 2 ** 20 } },
      { profile: SLURM_PROFILE, archive, checkHostPaths: false },
    );
    expect(plan.runtime).toBe("slurm");
    expect(plan.slurm.inner.profile.host.hostname).toBe("node17");
    expect(plan.slurm.inner.image.action).toBe("convert");
    expect(plan.slurm.options).toEqual(
      expect.arrayContaining(["--partition=debug", `--mem=${256 + 64}M`, "--nodes=1"]),
    );
    const script = plan.slurm.script;
    expect(script).toMatch(/^#!\/usr\/bin\/env bash\n#SBATCH --job-name=contexec-/);
    expect(script).toContain(archive);
    // The pasted plan writes that script whole and submits it, waiting.
    const pasted = formatPlan(plan);
    expect(pasted).toContain("--parsable --wait");
    expect(pasted).toContain("#SBATCH --partition=debug");
  });

  it("refuses a SLURM profile without the cluster's settings or the nodes' profile, saying what is missing", async () => {
    const { cluster: _c, ...planner } = SLURM_PROFILE.planner;
    await expect(
      executor.plan(
        { image: "test/slurm-plan:1", command: ["true"] },
        { profile: { ...SLURM_PROFILE, planner }, archive, checkHostPaths: false },
      ),
    ).rejects.toMatchObject({
      code: "E_INVALID_CONFIG",
      message: expect.stringContaining("planner.cluster"),
    });
  });
});

describe("pulling for a SLURM job", () => {
  it("with Docker inside, is refused before anything is fetched or written (the nodes load archives only)", async () => {
    const work = await mkdtemp(join(tmpdir(), "contexec-slurm-pull-"));
    const executor = new SlurmExecutor({
      runtime: "slurm",
      inner: "docker",
      slurm: { workDir: join(work, "shared"), binDir: join(work, "no-slurm-bin") },
    });
    try {
      // Port 9 (discard) on loopback: a request there would fail as unreachable, not as unsupported.
      for (const pull of [
        () => executor.pullImage("127.0.0.1:9/some/image:1"),
        () => executor.loadImage("docker://127.0.0.1:9/some/image:1"),
      ]) {
        await expect(pull()).rejects.toMatchObject({ code: "E_UNSUPPORTED", capability: "pull" });
      }
      await expect(readdir(work)).resolves.toEqual([]);
    } finally {
      await executor.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});
