import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Capabilities, formatPlan, type RuntimeProfile, SUPPORTED, unsupported } from "@contexec/core";
import { dockerArchiveOf, tarOf } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApptainerExecutor } from "../apptainer-executor.js";
import type { ApptainerPlannerFacts } from "./plan-apptainer-run.js";

/** A compute node's profile as `contexec probe --json` records it: root, Apptainer 1.4, own cgroups v2. */
function nodeProfile(overrides: Partial<Capabilities> = {}): RuntimeProfile {
  const planner: ApptainerPlannerFacts = {
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
    cgroupLayout: {
      version: 2,
      memory: { mount: "/sys/fs/cgroup", own: "/sys/fs/cgroup/job" },
      cpu: { mount: "/sys/fs/cgroup", own: "/sys/fs/cgroup/job" },
    },
  };
  return {
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
      ...overrides,
    },
    planner: planner as unknown as Record<string, unknown>,
    host: { hostname: "node01", uid: 0, gid: 0, kernel: "6.1.0", arch: "x64" },
    probedAt: "2026-11-30T00:00:00.000Z",
  };
}

describe("planning an Apptainer run where Apptainer is not installed", () => {
  let work: string;
  let archive: string;
  let executor: ApptainerExecutor;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "contexec-plan-nort-"));
    archive = join(work, "image.tar");
    const base = await tarOf([
      { name: "etc/", type: "directory" },
      {
        name: "etc/passwd",
        content: "root:x:0:0:root:/root:/bin/sh\nworker:x:1234:2345::/home/worker:/bin/sh\n",
      },
      { name: "etc/group", content: "root:x:0:\nstaff:x:50:\n" },
      { name: "data/", type: "directory" },
      { name: "data/gone/", type: "directory" },
    ]);
    const upper = await tarOf([{ name: "data/.wh.gone", content: "" }]);
    await writeFile(
      archive,
      await dockerArchiveOf({
        layers: [base, upper],
        workingDir: "/data",
        user: "worker",
        tag: "test/plan:1",
      }),
    );
    // No binary anywhere: any probe would fail with RuntimeUnavailableError.
    executor = new ApptainerExecutor({
      binary: join(work, "no-apptainer-here"),
      cacheDir: join(work, "cache"),
      env: { PATH: "/nonexistent" },
    });
  });
  afterAll(async () => {
    await executor.close();
    await rm(work, { recursive: true, force: true });
  });

  it("plans from a recorded profile and the archive: image to convert, the image's USER and WORKDIR", async () => {
    const plan = await executor.plan(
      { image: "test/plan:1", command: ["id"] },
      { profile: nodeProfile(), archive },
    );
    expect(plan.profile.host.hostname).toBe("node01");
    expect(plan.image.action).toBe("convert");
    expect(plan.image.path).toBe(join(work, "cache", `${plan.image.id.slice(7)}.sif`));
    expect(plan.image.prepare?.commands.map((c) => c.argv[0])).toEqual([
      "mkdir",
      "/opt/apptainer/bin/apptainer",
      "mv",
    ]);
    const argv = plan.command.argv;
    expect(argv[0]).toBe("/opt/apptainer/bin/apptainer");
    // worker is resolved from the archive's /etc/passwd, as Docker resolves USER.
    expect(argv.join(" ")).toContain("--security uid:1234,gid:2345");
    expect(plan.process).toMatchObject({ argv: ["id"], workdir: "/data", user: "1234:2345" });
    // /data exists in the image: no empty scratch folder is put over it.
    expect(argv).not.toContain("--scratch");
    expect(formatPlan(plan)).toContain("/opt/apptainer/bin/apptainer");
  });

  it("a working folder the layers removed gets an empty one, as Docker makes it", async () => {
    const plan = await executor.plan(
      { image: "test/plan:1", workdir: "/data/gone", user: "0:0", command: ["pwd"] },
      {
        profile: nodeProfile(),
        archive,
      },
    );
    const argv = plan.command.argv;
    expect(argv[argv.indexOf("--scratch") + 1]).toBe("/data/gone");
  });

  it("limits become the node's own cgroups: steps before and after, and the command joins them", async () => {
    const plan = await executor.plan(
      { image: "test/plan:1", user: "0", command: ["true"], resources: { memoryBytes: 64 << 20 } },
      { profile: nodeProfile(), archive },
    );
    const writes = plan.before
      .filter((s) => s.op === "write" && s.path.startsWith("/sys/fs/cgroup/"))
      .map((s) => s.path);
    expect(writes[0]).toBe("/sys/fs/cgroup/job/cgroup.subtree_control");
    expect(writes).toContain(`${plan.command.joinCgroups?.[0]?.replace("cgroup.procs", "memory.max")}`);
    expect(plan.after.some((s) => s.op === "rmdir")).toBe(true);
  });

  it("what the profile cannot do is refused, or left out and listed with spec.unsupported: ignore", async () => {
    const profile = nodeProfile({ "memory-limit": unsupported("no cgroups on this node") });
    const spec = { image: "test/plan:1", user: "0", command: ["true"], resources: { memoryBytes: 64 << 20 } };
    await expect(executor.plan(spec, { profile, archive })).rejects.toMatchObject({ code: "E_UNSUPPORTED" });
    const plan = await executor.plan({ ...spec, unsupported: "ignore" }, { profile, archive });
    expect(plan.ignored).toEqual([
      { field: "resources.memoryBytes", capability: "memory-limit", reason: "no cgroups on this node" },
    ]);
  });

  it("a profile without planner facts, or an image the archive does not hold, is a clear error", async () => {
    await expect(
      executor.plan({ image: "test/plan:1" }, { profile: { ...nodeProfile(), planner: {} }, archive }),
    ).rejects.toMatchObject({
      code: "E_INVALID_CONFIG",
      message: expect.stringMatching(/contexec probe --json/),
    });
    await expect(
      executor.plan({ image: "other:tag" }, { profile: nodeProfile(), archive }),
    ).rejects.toMatchObject({
      code: "E_INVALID_SPEC",
    });
    await expect(executor.plan({ image: "test/plan:1" }, { profile: nodeProfile() })).rejects.toMatchObject({
      code: "E_IMAGE_NOT_FOUND",
    });
  });
});
