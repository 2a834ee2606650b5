import { execFileSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SUPERVISED_JOB_SH } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { bash, buildCli, contexec, startContexec } from "./test-support/contexec-process.js";

// `contexec run --runtime slurm` on the test cluster, as a user runs it: a job file's container
// as a batch job (Apptainer inside), its printed plan pasted into bash, a DockSing file's slurm
// chapter, Ctrl-C.

const gate = runtimeGate("slurm");

describe.skipIf(gate.skip)(gate.title("contexec run on slurm"), () => {
  let work: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    buildCli();
    work = await mkdtemp(join(tmpdir(), "contexec-cli-slurm-"));
    await copyFile(join(inject("fixturesDir"), "busybox.tar"), join(work, "busybox.tar"));
    // The jobs' folders (the shared file system of the one-node cluster): the image converted
    // there once, the nodes' profile probed once, for every case.
    await mkdir(join(work, "tmp"));
    env = { ...process.env, CONTEXEC_SLURM_WORKDIR: join(work, "jobs"), TMPDIR: join(work, "tmp") };
  }, 300_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function jobDir(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(work, name);
    await mkdir(join(dir, "in"), { recursive: true });
    await mkdir(join(dir, "out", "sub"), { recursive: true });
    await copyFile(join(work, "busybox.tar"), join(dir, "busybox.tar"));
    await writeFile(join(dir, "in", "input.txt"), "input bytes\n");
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    return dir;
  }

  async function filesUnder(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const full = join(entry.parentPath, entry.name);
      out[full.slice(dir.length + 1)] = await readFile(full, "utf8");
    }
    return out;
  }

  /** What the executors left in the jobs' folder: only the shared images and node profiles. */
  async function jobFoldersLeft(): Promise<string[]> {
    return (await readdir(join(work, "jobs")).catch(() => [] as string[])).filter((n) => n !== "images");
  }

  const JOB = [
    "image: ./busybox.tar",
    "command:",
    "  - sh",
    "  - -c",
    "  - |",
    '    echo "in $(pwd) as $(id -u)"',
    '    echo "TRICKY=$TRICKY"',
    "    cat /in/input.txt > /out/copy.txt",
    '    echo "$GREETING" > /out/sub/greeting.txt',
    '    echo "to stderr" >&2',
    "    exit 7",
    "working_dir: /tmp",
    "environment:",
    "  GREETING: hello world",
    '  TRICKY: "$HOME `id` \'q\' \\"dq\\" *"',
    "volumes:",
    "  - ./in:/in:ro",
    "  - ./out:/out",
    "slurm:",
    "  job-name: cli-slurm-test",
    '  time: "00:05:00"',
    "",
  ].join("\n");
  const EXPECTED = "in /tmp as 0\nTRICKY=$HOME `id` 'q' \"dq\" *\n";

  it("runs the job as a batch job: its stdout, stderr, exit code and output files", async () => {
    const dir = await jobDir("run", { "job.yaml": JOB });
    const r = await contexec(["run", "job.yaml", "--runtime", "slurm", "--quiet"], { cwd: dir, env });
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
      code: 7,
      stdout: EXPECTED,
      stderr: "to stderr\n",
    });
    expect(await filesUnder(join(dir, "out"))).toEqual({
      "copy.txt": "input bytes\n",
      "sub/greeting.txt": "hello world\n",
    });
    expect(await jobFoldersLeft()).toEqual([]);
  });

  it("--dry-run prints the sbatch script in a plan that, pasted into bash, submits it and does the same", async () => {
    const dir = await jobDir("plan", { "job.yaml": JOB });
    const plan = await contexec(["run", "job.yaml", "--runtime", "slurm", "--dry-run"], { cwd: dir, env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^#!\/usr\/bin\/env bash\n# contexec plan: slurm /);
    // The batch script, whole, with the slurm: chapter's options as #SBATCH lines.
    for (const line of ["#SBATCH --job-name=cli-slurm-test", "#SBATCH --time=00:05:00", "# contexec job: "])
      expect(plan.stdout).toContain(`\n${line}`);
    expect(plan.stdout).toContain("--parsable --wait");
    const r = await bash(plan.stdout, { cwd: "/", env });
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
      code: 7,
      stdout: EXPECTED,
      stderr: "to stderr\n",
    });
    expect(await filesUnder(join(dir, "out"))).toEqual({
      "copy.txt": "input bytes\n",
      "sub/greeting.txt": "hello world\n",
    });
  });

  it("stops the job on Ctrl-C (its stop signal reaches the container's trap) and leaves no job behind", async () => {
    const name = `cli-slurm-ctrlc-${process.pid}-${Date.now()}`;
    const dir = await jobDir("ctrlc", {
      "job.yaml": [
        "image: ./busybox.tar",
        `command: [sh, -c, 'trap "echo stopping; exit 42" TERM; echo started; while true; do sleep 0.2; done']`,
        `container_name: ${name}`,
        "stop_grace_period: 20s",
      ].join("\n"),
    });
    const run = startContexec(["run", "job.yaml", "--runtime", "slurm"], { cwd: dir, env });
    await run.waitForStdout("started\n");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.stdout).toBe("started\nstopping\n");
    expect(r.code).toBe(42);
    expect(r.stderr).toContain("SIGINT: stopping the container");
    const queued = execFileSync("squeue", ["--noheader", `--name=${name}`, "--format=%i %T"], {
      encoding: "utf8",
    });
    expect(queued.trim()).toBe("");
    expect(await jobFoldersLeft()).toEqual([]);
  });

  it("--status prints the job's statuses from the shared folder, and its result at the end", async () => {
    const dir = await jobDir("status", {
      "job.yaml": [
        "image: ./busybox.tar",
        `command: [sh, -c, ${JSON.stringify(SUPERVISED_JOB_SH)}, job]`,
        'environment: { STEPS: "3", STEP_SECONDS: "0.7" }',
      ].join("\n"),
    });
    const r = await contexec(["run", "job.yaml", "--runtime", "slurm", "--status", "--quiet"], {
      cwd: dir,
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    expect([...r.stderr.matchAll(/^ {2}step (\d+) of 3$/gm)].map((m) => Number(m[1]))).toEqual([1, 2, 3]);
    expect(r.stdout).toBe("done: 3 steps\n");
    expect(await jobFoldersLeft()).toEqual([]);
  });
});
