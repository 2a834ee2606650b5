import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  collect,
  type ImageId,
  type OwnerRecord,
  ownerFromLabels,
  ownerLiveness,
  type RuntimeProfile,
  runContainer,
} from "@contexec/core";
import { DockerExecutor } from "@contexec/docker";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import type { SlurmExecutor } from "./slurm-executor.js";
import { countingBinDir, type SchedulerCall, sharedFolder, testExecutor } from "./test-support/cluster.js";

const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const gate = runtimeGate("slurm");
const dockerGate = runtimeGate("docker");
const INTERVAL_MS = 500;

describe.skipIf(gate.skip)(gate.title("SLURM on the test cluster"), () => {
  let shared: Awaited<ReturnType<typeof sharedFolder>>;
  let image: ImageId;
  const executors: SlurmExecutor[] = [];
  /** An executor of its own (its own wrappers, so its scheduler calls are its own), closed after all. */
  const executor = async (name: string, slurm: Parameters<typeof testExecutor>[1] = {}) => {
    const counting = await countingBinDir(join(shared.dir, name));
    const ex = await testExecutor(join(shared.dir, "work"), {
      sharedCacheDir: join(shared.dir, "images"),
      binDir: counting.binDir,
      pollIntervalMs: INTERVAL_MS,
      maxPollIntervalMs: 4000,
      ...slurm,
    });
    executors.push(ex);
    return { ex, calls: counting.calls };
  };

  /** An executor with Docker inside (the node's profile is this machine's daemon's), and the image loaded through it. */
  const dockerInside = async () => {
    const docker = new DockerExecutor();
    const { details: _details, ...profile } = await docker.info();
    await docker.close();
    const ex = await testExecutor(
      join(shared.dir, "work"),
      { sharedCacheDir: join(shared.dir, "images-docker"), pollIntervalMs: INTERVAL_MS },
      { inner: "docker", nodeProfile: profile },
    );
    executors.push(ex);
    return { ex, id: await ex.loadImage(join(fixtures, "busybox.tar")) };
  };

  beforeAll(async () => {
    shared = await sharedFolder("cluster");
    const { ex } = await executor("loader");
    image = await ex.loadImage(join(fixtures, "busybox.tar"));
  }, 300_000);
  afterAll(async () => {
    await Promise.all(executors.map((e) => e.close()));
    await shared?.remove();
  }, 120_000);

  it.concurrent("a job over its time limit: its container gets the stop signal first (its trap runs), then ends TIMEOUT", async () => {
    const { ex } = await executor("time-limit", { timeLimit: 1 });
    const c = await ex.create({
      image,
      command: ["sh", "-c", "trap 'echo got TERM' TERM; echo started; while true; do sleep 1; done"],
    });
    const out = collect(c.stdout);
    c.stderr.resume();
    await c.start();
    const status = await c.wait();
    expect(status).toMatchObject({ jobState: "TIMEOUT", reason: "time-limit" });
    // SLURM's SIGTERM at the limit reaches the runtime too (which ends with it), else SIGKILL after KillWait.
    expect(["SIGTERM", "SIGKILL"]).toContain(status.signal);
    // The warning before the limit (--signal=B:TERM@30), then SLURM's own SIGTERM at the limit.
    expect((await out).toString()).toMatch(/^started\ngot TERM\n(got TERM\n)*$/);
  }, 180_000);

  it.concurrent("50 containers at once are tracked to their exit codes with at most one scheduler query per interval", async () => {
    const { ex, calls } = await executor("fifty");
    await ex.info(); // the cluster's probes (sacct among them) are not tracking
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        runContainer(ex, {
          image,
          command: ["sh", "-c", `echo "job $N"; exit $(( N % 7 ))`],
          env: { N: String(i) },
        }),
      ),
    );
    const elapsed = Date.now() - started;
    results.forEach((r, i) => {
      expect(r.exitCode).toBe(i % 7);
      expect(r.stdout.toString()).toBe(`job ${i}\n`);
    });
    const all = (await calls()).filter((c) => c.at >= started);
    const queries = all.filter((c) => c.name === "sacct" || c.name === "squeue" || c.name === "scontrol");
    expect(all.filter((c) => c.name === "sbatch")).toHaveLength(50);
    // One query per interval, however many jobs: never two closer than the interval (less the
    // jitter of starting a process), and no more than the run's length allows.
    const gaps = queries.slice(1).map((q, i) => q.at - (queries[i] as SchedulerCall).at);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(INTERVAL_MS * 0.8);
    expect(queries.length).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 2);
    expect(queries.length).toBeLessThan(50);
  }, 300_000);

  it("six kills at once go out as one scancel, and each container gets the signal", async () => {
    const { ex, calls } = await executor("kills");
    const containers = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const c = await ex.create({
          image,
          command: ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.2; done"],
        });
        // Killed once its trap is set (before, the signal would end it as 143: the same on every backend).
        const ready = untilLine(c.stdout, "ready");
        c.stderr.resume();
        await c.start();
        await ready;
        return c;
      }),
    );
    const since = Date.now();
    await Promise.all(containers.map((c) => c.kill({ graceMs: 20_000 })));
    expect((await Promise.all(containers.map((c) => c.wait()))).map((s) => s.exitCode)).toEqual([
      7, 7, 7, 7, 7, 7,
    ]);
    expect((await calls()).filter((c) => c.name === "scancel" && c.at >= since)).toHaveLength(1);
  }, 120_000);

  it("a job cancelled while it waits in the queue never runs and reports the signal", async () => {
    const { ex, calls } = await executor("pending", { extra: { hold: true }, startWaitsForRunning: false });
    const c = await ex.create({ image, command: ["sh", "-c", "echo ran"] });
    const out = collect(c.stdout);
    c.stderr.resume();
    await c.start();
    expect(await c.state()).toBe("created");
    await c.kill({ graceMs: 1000 });
    const status = await c.wait();
    expect(status).toMatchObject({
      jobState: "CANCELLED",
      reason: "cancelled",
      signal: "SIGTERM",
      exitCode: 143,
    });
    expect(await c.state()).toBe("exited");
    expect((await out).toString()).toBe("");
    // One scancel cancels it if it still waits, one signals it in case it ran meanwhile.
    expect((await calls()).filter((x) => x.name === "scancel")).toHaveLength(2);
  }, 60_000);

  it("a container over its memory limit is OOM-killed and reported so; under it, it sees its limit", async () => {
    const { ex } = await executor("memory");
    const over = await runContainer(ex, {
      image,
      // The shell's own variable doubles until the memory cgroup's OOM killer ends it.
      command: ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"],
      resources: { memoryBytes: 48 * 1024 * 1024 },
    });
    expect(over).toMatchObject({
      exitCode: 137,
      signal: "SIGKILL",
      oomKilled: true,
      reason: "out-of-memory",
    });
    const under = await runContainer(ex, {
      image,
      command: ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
      resources: { memoryBytes: 48 * 1024 * 1024 },
    });
    expect(under).toMatchObject({ exitCode: 0, oomKilled: false });
    expect(under.stdout.toString().trim()).toBe(String(48 * 1024 * 1024));
  }, 120_000);

  for (const tracking of ["sacct", "squeue"] as const) {
    it(`tracking by ${tracking}: exit codes, a kill and a failure, asked of ${tracking} only`, async () => {
      const { ex, calls } = await executor(`mode-${tracking}`, { tracking });
      await ex.info(); // the cluster's probes (sacct among them) are not tracking
      const since = Date.now();
      const runs = [0, 3, 255].map((code) =>
        runContainer(ex, { image, command: ["sh", "-c", `exit ${code}`] }),
      );
      const killed = await ex.create({ image, command: ["sleep", "1000"] });
      killed.stdout.resume();
      killed.stderr.resume();
      await killed.start();
      await killed.kill({ graceMs: 2000 });
      const notFound = runContainer(ex, { image, command: ["no-such-program"] });
      expect((await Promise.all(runs)).map((r) => r.exitCode)).toEqual([0, 3, 255]);
      expect(await killed.wait()).toMatchObject({ signal: "SIGTERM", exitCode: 143 });
      await expect(notFound).rejects.toMatchObject({ code: "E_COMMAND_NOT_FOUND" });
      const names = new Set((await calls()).filter((c) => c.at >= since).map((c) => c.name));
      expect(names.has(tracking)).toBe(true);
      expect(names.has(tracking === "sacct" ? "squeue" : "sacct")).toBe(false);
    }, 120_000);
  }

  it("a service runs as a job: ready by log line and over HTTP at its node's host name, logs, stop", async () => {
    const { ex } = await executor("service");
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const web = await ex.startService(
      {
        image,
        command: [
          "sh",
          "-c",
          `echo serving; mkdir -p /tmp/www; echo hello > /tmp/www/index.html; exec httpd -f -p ${port} -h /tmp/www`,
        ],
      },
      { ready: { http: port, path: "/index.html" }, readyOptions: { timeoutMs: 60_000 } },
    );
    const { host } = await web.endpoint(port);
    const nodes = (await execa("sinfo", ["--noheader", "--format=%n"])).stdout.split("\n");
    expect(nodes).toContain(host);
    expect(await (await fetch(`http://${host}:${port}/index.html`)).text()).toBe("hello\n");
    expect((await web.logs()).stdout).toBe("serving\n");
    expect((await ex.listServices()).map((s) => s.name)).toContain(web.name);
    const status = await web.stop({ graceMs: 2000 });
    expect(status.signal).toBe("SIGTERM");
    await expect(fetch(`http://${host}:${port}/index.html`)).rejects.toThrow();
    const byLog = await ex.startService(
      { image, command: ["sh", "-c", "sleep 1; echo now listening; sleep 1000"] },
      { ready: { log: /now listening/ }, readyOptions: { timeoutMs: 60_000 } },
    );
    expect((await byLog.logs({ tail: 1 })).stdout).toBe("now listening\n");
    await byLog.stop({ graceMs: 1000 });
  }, 120_000);

  it("side channels through the shared folder: squeue from inside the job sees the job itself; supervision statuses and result", async () => {
    const { ex } = await executor("side-channels");
    const name = `contexec-side-${process.pid}-${Date.now().toString(36)}`;
    const updates: string[] = [];
    const r = await runContainer(
      ex,
      {
        image,
        name,
        // The host command runs on the submitting machine, the request written to the shared
        // folder from the node (the protocol's file mode); its answer comes back the same way.
        command: [
          "sh",
          "-c",
          [
            `squeue --noheader --name="$JOB" --format="%j %T"`,
            'echo "squeue exit $?"',
            'printf "<p>step 1</p>" > /service/status.html; sleep 1.5',
            'printf "<p>step 2</p>" > /service/status.html; sleep 1.5',
            'printf "all done\n" > /service/result.txt',
          ].join("\n"),
        ],
        env: { JOB: name },
        hostCommands: { allow: ["squeue"] },
        supervision: {},
      },
      { onStatus: (u) => updates.push(u.content) },
    );
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe(`${name} RUNNING\nsqueue exit 0\n`);
    expect(r).toMatchObject({ exitCode: 0, result: "all done\n" });
    expect(updates).toEqual(["<p>step 1</p>", "<p>step 2</p>"]);
    // The side channels' folder went with the container.
    expect((await readdir(ex.runDir).catch(() => [])).filter((n) => n.startsWith("contexec-side-"))).toEqual(
      [],
    );
  }, 120_000);

  it("sbatch reads every option back exactly from the script's #SBATCH lines, however hostile", async () => {
    const hostile = `a "quoted" it's #not-a-comment \\back\\slash $(id) \`id\` tab\there`;
    const { ex } = await executor("directives", { extra: { comment: hostile } });
    const c = await ex.create({ image, command: ["true"], name: "hostile-job.name_1" });
    c.stdout.resume();
    c.stderr.resume();
    await c.start();
    const shown = (await execa("scontrol", ["show", "job", c.jobId as string])).stdout;
    await c.wait();
    expect(shown).toContain("JobName=hostile-job.name_1");
    // scontrol prints the comment as the rest of its line.
    expect(/^\s*Comment=(.*)$/m.exec(shown)?.[1]?.trimEnd()).toBe(hostile);
  }, 60_000);

  it("probes the node's runtime once with srun, then reads the profile cached beside the images", async () => {
    const cacheDir = join(shared.dir, "images-probed");
    // The node probe script, run from the sources (the package's build runs the compiled one).
    const probe = [
      process.execPath,
      "--import",
      fileURLToPath(new URL("../../singularity/src/test-support/ts-loader.mjs", import.meta.url)),
      fileURLToPath(new URL("./node/print-node-profile.ts", import.meta.url)),
    ];
    const make = async (name: string) => {
      const counting = await countingBinDir(join(shared.dir, name));
      const ex = await testExecutor(
        join(shared.dir, "work"),
        { sharedCacheDir: cacheDir, binDir: counting.binDir, nodeProbeCommand: probe },
        { nodeProfile: undefined },
      );
      executors.push(ex);
      return { ex, calls: counting.calls };
    };
    const first = await make("probe-1");
    const info = await first.ex.info();
    const node = (info.planner as { nodeProfile: RuntimeProfile }).nodeProfile;
    expect(node).toMatchObject({ runtime: "apptainer", flavor: "apptainer" });
    expect((await execa("sinfo", ["--noheader", "--format=%n"])).stdout.split("\n")).toContain(
      node.host.hostname,
    );
    expect((await first.calls()).filter((c) => c.name === "srun")).toHaveLength(1);
    const second = await make("probe-2");
    expect(((await second.ex.info()).planner as { nodeProfile: RuntimeProfile }).nodeProfile).toEqual(node);
    expect((await second.calls()).filter((c) => c.name === "srun")).toHaveLength(0);
  }, 120_000);

  it.skipIf(dockerGate.skip)(
    dockerGate.title(
      "with Docker inside, the job loads the archive into the node's daemon and runs the container there",
    ),
    async () => {
      const docker = new DockerExecutor();
      const { ex, id } = await dockerInside();
      const plan = await ex.plan({ image: id, command: ["true"] });
      expect(plan.slurm.inner.image.prepare?.commands[0]?.argv).toEqual(
        expect.arrayContaining(["load", "--input", (await ex.images.archive(id))?.path]),
      );
      const r = await runContainer(ex, {
        image: id,
        command: ["sh", "-c", 'printf "%s|" "$V" "$@"; exit 5', "sh", "it's", "$(id)"],
        env: { V: 'a "b" $c' },
      });
      expect(r).toMatchObject({ exitCode: 5 });
      expect(r.stdout.toString()).toBe('a "b" $c|it\'s|$(id)|');
      expect(await docker.hasImage(id)).toBe(true);
      await docker.close();
    },
    180_000,
  );

  it.skipIf(dockerGate.skip)(
    dockerGate.title(
      "with Docker inside, a SIGKILLed job's container (the daemon's, outside the job) is removed by the next Docker job on its node",
    ),
    async () => {
      const { ex, id } = await dockerInside();
      const c = await ex.create({ image: id, command: ["sh", "-c", "echo ready; exec sleep 1000"] });
      const ready = untilLine(c.stdout, "ready");
      c.stderr.resume();
      await c.start();
      await ready;
      const jobId = c.jobId as string;
      const ofJob = async () =>
        (
          await execa("docker", [
            "ps",
            "--all",
            "--quiet",
            "--filter",
            `label=io.contexec.slurm.job=${jobId}`,
          ])
        ).stdout.trim();
      const container = await ofJob();
      try {
        expect(container).not.toBe("");
        // Its owner is the batch shell, alive by the rule of every Docker executor's sweep.
        const labels = JSON.parse(
          (await execa("docker", ["inspect", "--format", "{{json .Config.Labels}}", container])).stdout,
        ) as Record<string, string>;
        const owner = ownerFromLabels(labels) as OwnerRecord;
        expect(owner).toBeDefined();
        expect(await ownerLiveness(owner)).toBe("alive");
        // Another Docker job on the node sweeps first, and leaves a running job's container alone.
        expect((await runContainer(ex, { image: id, command: ["true"] })).exitCode).toBe(0);
        expect(await ofJob()).toBe(container);
        // SIGKILL to every process of the job, the batch shell and the docker CLI among them, as
        // slurmstepd sends it when KillWait ends (scancel --signal=KILL goes through SIGTERM first).
        // The test cluster is one node: the job's processes are this machine's.
        const pids = (await execa("scontrol", ["listpids", jobId])).stdout
          .split("\n")
          .slice(1)
          .map((l) => Number(l.trim().split(/\s+/)[0]))
          .filter((pid) => pid > 1);
        expect(pids.length).toBeGreaterThan(0);
        for (const pid of pids) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // ended meanwhile
          }
        }
        expect(await c.wait()).toMatchObject({ signal: "SIGKILL", jobState: "FAILED" });
        expect(await ownerLiveness(owner)).toBe("dead");
        // The daemon's container outlives the job, until the next Docker job on the node.
        expect(await ofJob()).toBe(container);
        expect((await runContainer(ex, { image: id, command: ["true"] })).exitCode).toBe(0);
        expect(await ofJob()).toBe("");
      } finally {
        if (container) await execa("docker", ["rm", "--force", container]).catch(() => {});
      }
    },
    180_000,
  );

  it("when this machine cannot convert, the job converts the image on its node, once for concurrent jobs", async () => {
    // A converter that cannot run here: the archive is kept and the jobs convert it.
    const noConverter = await testExecutor(
      join(shared.dir, "work"),
      {
        sharedCacheDir: join(shared.dir, "images-converted-in-job"),
        pollIntervalMs: INTERVAL_MS,
      },
      { innerConfig: { converter: "apptainer-build", binary: "/nonexistent/apptainer" } },
    );
    executors.push(noConverter);
    const id = await noConverter.loadImage(join(fixtures, "busybox.tar"));
    expect(await noConverter.hasImage(id)).toBe(true);
    const plan = await noConverter.plan({ image: id, command: ["true"] });
    expect(plan.slurm.inner.image.action).toBe("convert");
    const results = await Promise.all(
      [1, 2, 3].map((n) =>
        runContainer(noConverter, { image: id, command: ["sh", "-c", `echo converted ${n}`] }),
      ),
    );
    expect(results.map((r) => r.stdout.toString())).toEqual([
      "converted 1\n",
      "converted 2\n",
      "converted 3\n",
    ]);
    // The SIF is in the shared cache now: the other executor finds it converted.
    const sif = plan.slurm.inner.image.path as string;
    expect((await readFile(sif)).subarray(0, 32).toString("latin1")).toContain("run-singularity");
    expect(
      await readFile(
        join(noConverter.runDir, "..", "..", "images-converted-in-job", "archives", `${id.slice(7)}.json`),
        "utf8",
      ),
    ).toContain(id);
  }, 300_000);
});

/** Resolves once `line` has come out of `stream`; rejects when the stream ends first. */
function untilLine(stream: NodeJS.ReadableStream, line: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let seen = "";
    stream.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.split("\n").slice(0, -1).includes(line)) resolve();
    });
    stream.once("end", () => reject(new Error(`the output ended before "${line}": ${seen}`)));
  });
}
