import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";

// examples/workflow as a user runs it (its main, in a Node of its own, on the TypeScript sources
// through the test loader), with the config files it ships: the same pipeline on Apptainer and,
// with slurm.json instead, as SLURM jobs, giving the same results.
const loader = fileURLToPath(
  new URL("../packages/singularity/src/test-support/ts-loader.mjs", import.meta.url),
);
const example = fileURLToPath(new URL("../examples/workflow/", import.meta.url));
const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const slurm = runtimeGate("slurm");
const apptainer = runtimeGate("apptainer");

async function runExample(config: string, work: string) {
  const r = await promisify(execFile)(
    process.execPath,
    [
      "--import",
      loader,
      join(example, "src/main.ts"),
      "--config",
      join(example, config),
      "--image",
      join(fixtures, "busybox.tar"),
      "--work",
      work,
    ],
    { encoding: "utf8", timeout: 600_000 },
  );
  const report = await readFile(join(work, "report", "report.txt"), "utf8");
  const stdouts = await Promise.all(
    ["split", "count", "report"].map((s) => readFile(join(work, `${s}.stdout`), "utf8")),
  );
  return { out: r.stdout, report, stdouts };
}

describe.skipIf(slurm.skip || apptainer.skip)(
  slurm.skip ? slurm.title("examples/workflow on SLURM") : apptainer.title("examples/workflow on SLURM"),
  () => {
    let dir: string;
    let workDir: string;
    let madeWorkDir = false;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "contexec-workflow-example-"));
      const config = JSON.parse(await readFile(join(example, "slurm.json"), "utf8"));
      workDir = config.slurm.workDir;
      // The shipped config's folder keeps the converted image and the nodes' profile (a cache):
      // removed after the test only when this test made it.
      madeWorkDir = !existsSync(workDir);
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
      if (madeWorkDir) await rm(workDir, { recursive: true, force: true });
    });

    it("runs the same three steps with slurm.json as with apptainer.json, each step a job, with the same results", async () => {
      const onSlurm = await runExample("slurm.json", join(dir, "slurm"));
      const onApptainer = await runExample("apptainer.json", join(dir, "apptainer"));
      expect(onSlurm.out).toMatch(/^workflow on slurm: split -> count -> report\n/);
      expect(onSlurm.out).toMatch(/ {2}report {3}exit 0 /);
      expect(onSlurm.report).not.toBe("");
      expect({ report: onSlurm.report, stdouts: onSlurm.stdouts }).toEqual({
        report: onApptainer.report,
        stdouts: onApptainer.stdouts,
      });
      // The config files differ only in what picks and places the backend.
      const [a, s] = await Promise.all(
        ["apptainer.json", "slurm.json"].map(async (f) =>
          JSON.parse(await readFile(join(example, f), "utf8")),
        ),
      );
      expect(a).toEqual({ runtime: "apptainer" });
      expect(Object.keys(s).sort()).toEqual(["inner", "runtime", "slurm"]);
    }, 600_000);
  },
);
