import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SUPERVISED_JOB_SH } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { describeOnEachRuntime, runtimeGate } from "#test/runtimes";
import { bash, buildCli, contexec, startContexec } from "./test-support/contexec-process.js";

// The same job file through `contexec run` on Docker and on Apptainer, its printed plan pasted
// into bash, a DockSing file, Ctrl-C, and the other commands: all as a user runs them.

const GATES = { docker: runtimeGate("docker"), apptainer: runtimeGate("apptainer") };
// Each block below runs once per runtime; one this run does not test is skipped with its reason.
const RUNTIMES = ["docker", "apptainer"] as const;
// The shared daemon's default bridge: when its interface is missing, no container can join it.
const bridgeMissing = !existsSync("/sys/class/net/docker0");

let work: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  buildCli();
  work = await mkdtemp(join(tmpdir(), "contexec-cli-test-"));
  await copyFile(join(inject("fixturesDir"), "busybox.tar"), join(work, "busybox.tar"));
  // A SIF cache and a scratch folder of the tests' own: nothing of the user's is touched, and
  // whatever a run leaves behind in TMPDIR is seen.
  await mkdir(join(work, "tmp"));
  env = { ...process.env, CONTEXEC_SIF_CACHE: join(work, "sif-cache"), TMPDIR: join(work, "tmp") };
}, 300_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** A job folder of its own with the image beside the job file. */
async function jobDir(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  await copyFile(join(work, "busybox.tar"), join(dir, "busybox.tar"));
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return dir;
}

/** Every file under `dir`, by relative path, with its content. */
async function filesUnder(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    out[full.slice(dir.length + 1)] = await readFile(full, "utf8");
  }
  return out;
}

const JOB = `# One job, every runtime.
image: ./busybox.tar
command:
  - sh
  - -c
  - |
    echo "in $(pwd) as $(id -u)"
    echo "GREETING=$GREETING"
    echo "TRICKY=$TRICKY"
    echo "from file: $FROM_FILE"
    cat /in/input.txt > /out/copy.txt
    echo "$GREETING" > /out/sub/greeting.txt
    ls /scratch && echo scratch-empty
    echo "to stderr" >&2
    exit 7
working_dir: /tmp
env_file: job.env
environment:
  GREETING: hello world
  TRICKY: "$HOME \`id\` 'q' \\"dq\\" *"
volumes:
  - ./in:/in:ro
  - ./out:/out
tmpfs: /scratch
network_mode: none
`;

/**
 * What the job prints. Docker runs it as the image's user, root; Apptainer run by an ordinary
 * user runs it as that user (the README's semantics table), root only when root runs it.
 */
const expectedStdout = (runtime: string) =>
  [
    `in /tmp as ${runtime === "apptainer" ? (process.getuid?.() ?? 0) : 0}`,
    "GREETING=hello world",
    "TRICKY=$HOME `id` 'q' \"dq\" *",
    "from file: literal $VALUE",
    "scratch-empty",
    "",
  ].join("\n");

async function sameJobDir(name: string): Promise<string> {
  const dir = await jobDir(name, { "job.yaml": JOB, "job.env": "FROM_FILE='literal $VALUE'\n" });
  await mkdir(join(dir, "in"));
  await mkdir(join(dir, "out", "sub"), { recursive: true });
  await writeFile(join(dir, "in", "input.txt"), "input bytes\n");
  return dir;
}

describeOnEachRuntime(RUNTIMES, "contexec run on %s", (runtime) => {
  it("runs the job: its stdout, stderr, exit code and output files", async () => {
    const dir = await sameJobDir(`same-${runtime}`);
    const r = await contexec(["run", "job.yaml", "--runtime", runtime, "--quiet"], { cwd: dir, env });
    expect(r.stderr).toBe("to stderr\n");
    expect(r.stdout).toBe(expectedStdout(runtime));
    expect(r.code).toBe(7);
    expect(await filesUnder(join(dir, "out"))).toEqual({
      "copy.txt": "input bytes\n",
      "sub/greeting.txt": "hello world\n",
    });
  });

  it("prints a plan that, pasted into bash, does the same", async () => {
    const dir = await sameJobDir(`plan-${runtime}`);
    const plan = await contexec(["run", "job.yaml", "--runtime", runtime, "--dry-run"], { cwd: dir, env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^#!\/usr\/bin\/env bash\n# contexec plan: /);
    // Nothing ran: no output file yet.
    expect(await filesUnder(join(dir, "out"))).toEqual({});
    const r = await bash(plan.stdout, { cwd: "/", env });
    expect(r.stdout).toBe(expectedStdout(runtime));
    expect(r.stderr).toBe("to stderr\n");
    expect(r.code).toBe(7);
    expect(await filesUnder(join(dir, "out"))).toEqual({
      "copy.txt": "input bytes\n",
      "sub/greeting.txt": "hello world\n",
    });
  });

  it("stops the container on Ctrl-C (stop signal, grace, SIGKILL) and leaves nothing behind", async () => {
    const marker = `contexec-cli-ctrlc-${runtime}-${process.pid}-${Date.now()}`;
    const tmp = join(work, `tmp-ctrlc-${runtime}`);
    await mkdir(tmp);
    const dir = await jobDir(`ctrlc-${runtime}`, {
      "job.yaml": [
        "image: ./busybox.tar",
        `command: [sh, -c, 'trap "echo stopping; exit 42" TERM; echo started; while true; do sleep 0.2; done', ${marker}]`,
        "network_mode: none",
        `labels: { test-marker: ${marker} }`,
        "stop_grace_period: 20s",
      ].join("\n"),
    });
    const run = startContexec(["run", "job.yaml", "--runtime", runtime], {
      cwd: dir,
      env: { ...env, TMPDIR: tmp },
    });
    await run.waitForStdout("started\n");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.stdout).toBe("started\nstopping\n");
    expect(r.code).toBe(42);
    expect(r.stderr).toContain("SIGINT: stopping the container");
    await expectNothingLeft(marker, tmp);
  });

  it("kills at once on a second Ctrl-C, for a job that ignores SIGTERM", async () => {
    const marker = `contexec-cli-kill-${runtime}-${process.pid}-${Date.now()}`;
    const tmp = join(work, `tmp-kill-${runtime}`);
    await mkdir(tmp);
    const dir = await jobDir(`kill-${runtime}`, {
      "job.yaml": [
        "image: ./busybox.tar",
        `command: [sh, -c, 'trap "" TERM; echo started; while true; do sleep 0.2; done', ${marker}]`,
        "network_mode: none",
        `labels: { test-marker: ${marker} }`,
        "stop_grace_period: 5m",
      ].join("\n"),
    });
    const run = startContexec(["run", "job.yaml", "--runtime", runtime], {
      cwd: dir,
      env: { ...env, TMPDIR: tmp },
    });
    await run.waitForStdout("started\n");
    run.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r.code).toBe(137);
    await expectNothingLeft(marker, tmp);
  });
});

describeOnEachRuntime(RUNTIMES, "supervised runs (--status, --result) on %s", (runtime) => {
  /** A job in the /service convention: a progress page per step, a result, and ABORT honoured. */
  async function supervisedJob(name: string, steps: number, stepSeconds: number): Promise<string> {
    return jobDir(name, {
      "job.yaml": [
        "image: ./busybox.tar",
        `command: [sh, -c, ${JSON.stringify(SUPERVISED_JOB_SH)}, job]`,
        "network_mode: none",
        `environment: { STEPS: "${steps}", STEP_SECONDS: "${stepSeconds}" }`,
        "stop_grace_period: 20s",
      ].join("\n"),
    });
  }
  const stepsPrinted = (stderr: string) =>
    [...stderr.matchAll(/^ {2}step (\d+) of \d+$/gm)].map((m) => Number(m[1]));

  it("prints every status as text, in order, and writes the result to --result", async () => {
    const dir = await supervisedJob(`status-${runtime}`, 3, 0.7);
    const r = await contexec(
      ["run", "job.yaml", "--runtime", runtime, "--status", "--result", "result.txt"],
      {
        cwd: dir,
        env,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(stepsPrinted(r.stderr)).toEqual([1, 2, 3]);
    expect(r.stderr).toContain("contexec: status 1:\n  Progress\n");
    expect(r.stderr).not.toContain("<p>");
    expect(await readFile(join(dir, "result.txt"), "utf8")).toBe("done: 3 steps\n");
  });

  it("refuses a --result it could not write before anything runs, and leaves no stale result", async () => {
    const dir = await supervisedJob(`result-${runtime}`, 1, 0.1);
    const refused = await contexec(
      ["run", "job.yaml", "--runtime", runtime, "--result", join(dir, "no-such-dir", "r.txt")],
      { cwd: dir, env },
    );
    expect(refused.code).toBe(64);
    expect(refused.stderr).toContain("cannot write into");
    // A job that writes no result: an earlier run's file does not pass for this one's.
    await writeFile(join(dir, "job.yaml"), "image: ./busybox.tar\ncommand: [true]\nnetwork_mode: none\n");
    await writeFile(join(dir, "old.txt"), "an earlier result\n");
    const r = await contexec(["run", "job.yaml", "--runtime", runtime, "--result", "old.txt", "--quiet"], {
      cwd: dir,
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("the job wrote no result");
    expect(existsSync(join(dir, "old.txt"))).toBe(false);
  });

  it("on Ctrl-C sends ABORT first: the job stops by itself with its own result, on stdout", async () => {
    const dir = await supervisedJob(`abort-${runtime}`, 120, 0.5);
    const run = startContexec(["run", "job.yaml", "--runtime", runtime, "--status"], { cwd: dir, env });
    const deadline = Date.now() + 120_000;
    while (stepsPrinted(run.stderr()).length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("SIGINT: asking the job to stop (ABORT");
    expect(r.stdout).toMatch(/^aborted at step \d+\n$/);
    expect(r.stderr).toMatch(/ {2}aborted at step \d+\n$/);
  });
});

/** No container, instance or process carries `marker`, and the run's scratch folder is empty. */
async function expectNothingLeft(marker: string, tmp: string): Promise<void> {
  if (!GATES.docker.skip) {
    const containers = execFileSync("docker", ["ps", "-aq", "--filter", `label=test-marker=${marker}`], {
      encoding: "utf8",
    });
    expect(containers.trim()).toBe("");
  }
  const instances = execFileSync("apptainer", ["instance", "list"], { encoding: "utf8" });
  expect(instances).not.toContain(marker);
  const processes = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes(marker) && !l.includes("ps -eo"));
  expect(processes).toEqual([]);
  expect(await readdir(tmp)).toEqual([]);
}

describe.skipIf(GATES.apptainer.skip)(
  GATES.apptainer.title("contexec run --dry-run where Apptainer is not installed"),
  () => {
    it("plans from a profile file, and the plan runs where the profile was made", async () => {
      const dir = await sameJobDir("far");
      const probe = await contexec(["probe", "--runtime", "apptainer", "--json"], { cwd: dir, env });
      expect(probe.code, probe.stderr).toBe(0);
      await writeFile(join(dir, "node.json"), probe.stdout);
      const profile = JSON.parse(probe.stdout) as { runtime: string; capabilities: object };
      expect(profile.runtime).toBe("apptainer");

      // No apptainer on PATH, and the binary setting pointing nowhere.
      const bare: NodeJS.ProcessEnv = {
        PATH: "/usr/bin:/bin",
        HOME: env.HOME,
        TMPDIR: env.TMPDIR,
        CONTEXEC_SIF_CACHE: join(work, "far-cache"),
        CONTEXEC_APPTAINER: join(work, "no", "apptainer"),
      };
      expect(existsSync("/usr/bin/apptainer") || existsSync("/bin/apptainer")).toBe(false);
      const plan = await contexec(
        ["run", "job.yaml", "--runtime", "apptainer", "--dry-run", "--profile", "node.json"],
        { cwd: dir, env: bare },
      );
      expect(plan.stderr).toBe("");
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain("--silent exec --containall");
      expect(plan.stdout).toContain("build --force"); // the image is converted by the script itself
      // The profile is this machine's: here the plan runs, converting the image on the way.
      const r = await bash(plan.stdout, { cwd: "/", env });
      expect(r.stdout).toBe(expectedStdout("apptainer"));
      expect(r.code).toBe(7);
      expect(await filesUnder(join(dir, "out"))).toEqual({
        "copy.txt": "input bytes\n",
        "sub/greeting.txt": "hello world\n",
      });
    });
  },
);

const DOCKSING = (image: string) => `remotedir: results
slurm:
  nodes: 1
  cpus-per-task: 1
  job-name: docksing_test
container:
  image: ${image}
  commands: ["sh -c", "'echo the $V is $W > /out/r.txt; cat /out/r.txt; pwd'"]
  environment:
    - V: value
    - W: "here & there"
  volumes:
    - ./out:/out
  working_dir: /tmp
  ports:
    - 8080:8080
`;

describe("DockSing files, unchanged", () => {
  let tag: string | undefined;
  beforeAll(() => {
    if (bridgeMissing || GATES.docker.skip) return;
    // DockSing names a tag of the local Docker daemon: an image of this test's own.
    const id = execFileSync("docker", ["load", "-q", "-i", join(work, "busybox.tar")], { encoding: "utf8" });
    const base = /sha256:[0-9a-f]{64}|Loaded image: (\S+)/.exec(id)?.[0]?.replace("Loaded image: ", "");
    tag = `contexec-cli-test/docksing:${process.pid}-${Date.now()}`;
    execFileSync("docker", ["build", "-q", "-t", tag, "-"], {
      input: `FROM ${base}\nLABEL contexec-cli-test=${tag}\n`,
      env: { ...process.env, DOCKER_BUILDKIT: "0" },
    });
  }, 120_000);
  afterAll(() => {
    if (tag) execFileSync("docker", ["rmi", tag]);
  });

  describeOnEachRuntime(RUNTIMES, "on %s", (runtime) => {
    it.skipIf(bridgeMissing || GATES.docker.skip)(
      GATES.docker.title(
        `runs a DockSing file whose image is a Docker tag${bridgeMissing ? " (skipped: the shared Docker daemon's bridge docker0 is missing here, so no container on its default network can start)" : ""}`,
      ),
      async () => {
        const dir = await jobDir(`docksing-${runtime}`, { "config.yaml": DOCKSING(tag as string) });
        const r = await contexec(["run", "config.yaml", "--runtime", runtime], { cwd: dir, env });
        expect(r.stdout).toBe("the value is here & there\n/tmp\n");
        expect(r.code).toBe(0);
        expect(await filesUnder(join(dir, "out"))).toEqual({ "r.txt": "the value is here & there\n" });
        if (runtime === "apptainer") {
          expect(r.stderr).toContain("exporting");
          expect(r.stderr).toContain("ports is left out");
        }
      },
    );
  });

  for (const runtime of RUNTIMES)
    it.skipIf(GATES[runtime].skip)(
      GATES[runtime].title(`runs a DockSing file whose image is an archive, on ${runtime}`),
      async () => {
        // Ports need the default network on Docker; this one has none, so it runs whatever the bridge.
        const text = DOCKSING("./busybox.tar").replace(/ {2}ports:\n {4}- 8080:8080\n/, "");
        const dir = await jobDir(`docksing-archive-${runtime}`, { "config.yaml": text });
        const r = await contexec(["run", "config.yaml", "--runtime", runtime], { cwd: dir, env });
        if (bridgeMissing && runtime === "docker") {
          // The daemon refuses its default network here: a runtime failure, not the job's exit code.
          expect(r.code).toBe(125);
          expect(r.stderr).toContain("docker0");
          return;
        }
        expect(r.stdout).toBe("the value is here & there\n/tmp\n");
        expect(r.code).toBe(0);
        expect(await filesUnder(join(dir, "out"))).toEqual({ "r.txt": "the value is here & there\n" });
      },
    );
});

describe.skipIf(GATES.apptainer.skip)(GATES.apptainer.title("the other commands"), () => {
  it("converts an archive to a SIF, with progress lines when not on a terminal", async () => {
    const out = join(work, "convert", "busybox.sif");
    await mkdir(join(work, "convert"));
    const r = await contexec(
      ["convert", join(work, "busybox.tar"), "-o", out, "--compression", "lz4", "--json"],
      {
        cwd: work,
        env,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { id: string; sif: string; sifBytes: number };
    expect(result.sif).toBe(out);
    expect(result.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.stderr).toMatch(/converting busybox\.tar: 100% {2}/);
    expect(await readdir(join(work, "convert"))).toEqual(["busybox.sif"]);
    const run = execFileSync("apptainer", ["exec", "--userns", out, "echo", "from the sif"], {
      encoding: "utf8",
    });
    expect(run).toBe("from the sif\n");
  });

  it("lists and prunes the SIF cache", async () => {
    const cacheDir = join(work, "cache-cmd-sif");
    const dir = await jobDir("cache-cmd", {
      "job.yaml": "image: ./busybox.tar\ncommand: [true]\nnetwork_mode: none\n",
    });
    const cacheEnv = { ...env, CONTEXEC_SIF_CACHE: cacheDir };
    expect(
      (await contexec(["run", "job.yaml", "--runtime", "apptainer"], { cwd: dir, env: cacheEnv })).code,
    ).toBe(0);
    const ls = await contexec(["cache", "ls", "--json"], { cwd: dir, env: cacheEnv });
    const listed = JSON.parse(ls.stdout) as { dir: string; images: { id: string; repoTags: string[] }[] };
    expect(listed.dir).toBe(cacheDir);
    expect(listed.images).toHaveLength(1);
    const prune = await contexec(["cache", "prune", "--all"], { cwd: dir, env: cacheEnv });
    expect(prune.code).toBe(0);
    expect(prune.stdout).toContain(`removed ${listed.images[0]?.id}`);
    expect((await readdir(cacheDir)).filter((n) => !n.startsWith("."))).toEqual([]);
  });

  it("reports the conformance suite's cases as TAP", async () => {
    const r = await contexec(
      [
        "conformance",
        "--runtime",
        "apptainer",
        "--reporter",
        "tap",
        "--fixtures",
        inject("fixturesDir"),
        "--filter",
        "exit",
      ],
      { cwd: work, env },
    );
    expect(r.stdout).toMatch(/^TAP version 13\n1\.\.\d+\n/);
    expect(r.stdout).toMatch(/^ok \d+ - exit > /m);
    expect(r.stdout).toMatch(/^# \d+ passed, 0 failed, \d+ skipped$/m);
    expect(r.code, r.stderr).toBe(0);
  }, 600_000);
});

describeOnEachRuntime(RUNTIMES, "exit codes and streams on %s", (runtime) => {
  it("exits 127 when the command is not in the image, 65 when the job is refused", async () => {
    const dir = await jobDir(`codes-${runtime}`, {
      "missing.yaml": "image: ./busybox.tar\ncommand: [no-such-program]\nnetwork_mode: none\n",
      "bad.yaml": "image: ./busybox.tar\ncomand: [true]\n",
      "noimage.yaml": "image: ./gone.tar\ncommand: [true]\n",
    });
    const missing = await contexec(["run", "missing.yaml", "--runtime", runtime], { cwd: dir, env });
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("no-such-program");
    const bad = await contexec(["run", "bad.yaml", "--runtime", runtime], { cwd: dir, env });
    expect(bad.code).toBe(65);
    expect(bad.stderr).toContain(
      `${join(dir, "bad.yaml")}:2:1: comand: unknown key "comand"; did you mean "command"?`,
    );
    const noImage = await contexec(["run", "noimage.yaml", "--runtime", runtime], { cwd: dir, env });
    expect(noImage.code).toBe(65);
    expect(noImage.stderr).toContain(`${join(dir, "gone.tar")} does not exist`);
  });

  it("feeds its stdin to a stdin_open job", async () => {
    const dir = await jobDir(`stdin-${runtime}`, {
      "job.yaml":
        "image: ./busybox.tar\ncommand: [sh, -c, 'tr a-z A-Z; echo done']\nstdin_open: true\nnetwork_mode: none\n",
    });
    const r = await contexec(["run", "job.yaml", "--runtime", runtime], {
      cwd: dir,
      env,
      input: "line one\nline two\n",
    });
    expect(r.stdout).toBe("LINE ONE\nLINE TWO\ndone\n");
    expect(r.code).toBe(0);
  });

  it("runs a job in the background with --detach, its output and exit code in its state folder", async () => {
    const dir = await jobDir(`detach-${runtime}`, {
      "job.yaml":
        "image: ./busybox.tar\ncommand: [sh, -c, 'sleep 1; echo detached; exit 5']\nnetwork_mode: none\n",
    });
    const state = join(work, `state-${runtime}`);
    const r = await contexec(["run", "job.yaml", "--runtime", runtime, "--detach"], {
      cwd: dir,
      env: { ...env, XDG_STATE_HOME: state },
    });
    expect(r.code, r.stderr).toBe(0);
    const runDir = r.stdout.trim();
    expect(runDir.startsWith(join(state, "contexec", "runs", "job-"))).toBe(true);
    expect(r.stderr).toContain("runs in the background");
    const deadline = Date.now() + 120_000;
    while (!existsSync(join(runDir, "exit")) && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 200));
    expect(await readFile(join(runDir, "exit"), "utf8")).toBe("5\n");
    expect(await readFile(join(runDir, "stdout"), "utf8")).toBe("detached\n");
  });
});

describe("usage", () => {
  it("exits 64 on a wrong command line, and prints help for every command", async () => {
    expect((await contexec(["run"], { cwd: work, env })).code).toBe(64);
    expect((await contexec(["frobnicate"], { cwd: work, env })).code).toBe(64);
    expect((await contexec(["run", "x.yaml", "--bogus"], { cwd: work, env })).code).toBe(64);
    for (const command of ["run", "pull", "convert", "info", "probe", "cache", "conformance"]) {
      const help = await contexec([command, "--help"], { cwd: work, env });
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: contexec ${command}`));
    }
    expect((await contexec(["--version"], { cwd: work, env })).stdout).toMatch(/^contexec \d+\.\d+\.\d+\n$/);
  });
});
