import { lstat, mkdtemp, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formatPlan } from "./format-plan.js";
import type { RunPlan } from "./run-plan.js";
import { runPlanSteps } from "./run-plan-steps.js";

const work = await mkdtemp(join(tmpdir(), "contexec-plan-steps-"));
afterAll(() => rm(work, { recursive: true, force: true }));

describe("the symlink step", () => {
  it("makes the link, replacing what is there", async () => {
    const link = join(work, "image.sif");
    await writeFile(link, "an old file");
    await runPlanSteps([{ op: "symlink", path: link, target: "/cache/abc.sif", why: "test" }]);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe("/cache/abc.sif");
    await runPlanSteps([{ op: "symlink", path: link, target: "/cache/def.sif", why: "again" }]);
    expect(await readlink(link)).toBe("/cache/def.sif");
  });

  it("is `ln -sfn` with both paths quoted in a formatted plan", () => {
    const plan = {
      planVersion: 1,
      runtime: "apptainer",
      profile: {
        runtime: "apptainer",
        flavor: "apptainer",
        version: "1.4.5",
        privilege: "root",
        host: { hostname: "h", uid: 0, gid: 0, kernel: "6", arch: "x64" },
      },
      spec: { image: "sha256:x" },
      image: { id: "sha256:x", tags: [], action: "present" },
      before: [{ op: "symlink", path: "/s/c 1/image.sif", target: "/cache/it's.sif", why: "w" }],
      command: { argv: ["true"], env: {}, cwd: "/", stdin: false },
      process: { argv: ["true"], workdir: "/", env: {} },
      after: [],
      ignored: [],
      notes: [],
    } satisfies RunPlan;
    expect(formatPlan(plan, { header: false })).toContain(
      `ln -sfn -- '/cache/it'"'"'s.sif' '/s/c 1/image.sif' || exit 125\n`,
    );
  });
});
