// Bench section "slurm": the SLURM backend's tracking. N short jobs submitted at once to the
// cluster scripts/setup-slurm.sh runs, Apptainer inside. Reports the scheduler queries per minute
// (they should stay flat at one per interval, whatever the number of jobs in flight) and the time
// from a job's end (its exit status file written on the node) to wait() resolving.
//
//   options: --slurm-jobs N (default 100)  --slurm-full (500 jobs, as in packages/slurm's README)
//            --slurm-sleep S (default 3)  --slurm-tracking auto|sacct|squeue
//            --slurm-interval MS (default 2000)  --slurm-max-interval MS (default 30000)
//
// Each job sleeps S seconds and exits i % 3. Every scheduler command goes through a wrapper
// (slurm.binDir) that logs its name and time, so the counts are of real processes started, not
// of the library's own bookkeeping. Without a cluster that answers, the section says so and
// measures nothing.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { medianOf } from "./lib/measure.mjs";

export const name = "slurm";
export const title = "SLURM jobs at once: scheduler queries per minute, job end -> wait()";

export async function run(ctx) {
  const { root, log } = ctx;
  const jobs = Number(ctx.option("slurm-jobs", ctx.flag("slurm-full") ? "500" : "100"));
  const sleepSec = Number(ctx.option("slurm-sleep", "3"));
  const tracking = ctx.option("slurm-tracking", "auto");
  const intervalMs = Number(ctx.option("slurm-interval", "2000"));
  const maxIntervalMs = Number(ctx.option("slurm-max-interval", "30000"));

  const missing = clusterMissing();
  if (missing) {
    log(`not measured: ${missing}`);
    return { skipped: missing, checks: [] };
  }
  const { ApptainerExecutor } = await import(join(root, "packages/singularity/dist/index.js"));
  const { SlurmExecutor, SCHEDULER_COMMANDS } = await import(join(root, "packages/slurm/dist/index.js"));
  const fixtures = execFileSync(join(root, "scripts/build-fixtures.sh"), { encoding: "utf8" }).trim();
  const dir = await mkdtemp(join(tmpdir(), "contexec-bench-slurm-"));
  const callLog = join(dir, "calls.log");
  const binDir = join(dir, "bin");
  await mkdir(binDir);
  await writeFile(callLog, "");
  for (const command of SCHEDULER_COMMANDS) {
    const real = execFileSync("sh", ["-c", `command -v ${command} || true`], { encoding: "utf8" }).trim();
    if (real) {
      await writeFile(
        join(binDir, command),
        `#!/bin/sh\nprintf '%s %s\\n' "$(date +%s%3N)" ${command} >> '${callLog}'\nexec '${real}' "$@"\n`,
        { mode: 0o755 },
      );
    }
  }

  // The node is this machine: its own Apptainer profile is the node's.
  const local = new ApptainerExecutor();
  const { details: _details, ...nodeProfile } = await local.info();
  await local.close();
  const executor = new SlurmExecutor({
    runtime: "slurm",
    inner: "apptainer",
    nodeProfile,
    slurm: {
      workDir: join(dir, "work"),
      binDir,
      tracking,
      pollIntervalMs: intervalMs,
      maxPollIntervalMs: maxIntervalMs,
    },
  });

  try {
    const image = await executor.loadImage(join(fixtures, "busybox.tar"));
    const info = await executor.info();
    const nodeCpus = execFileSync("sinfo", ["--noheader", "--format=%c"], { encoding: "utf8" }).trim();
    log(
      `SLURM ${info.version} (${info.details.tracking}), ${nodeCpus} CPUs declared, ${jobs} jobs of sleep ${sleepSec}, interval ${intervalMs} ms (max ${maxIntervalMs} ms)`,
    );
    const started = Date.now();
    const lags = [];
    let wrong = 0;
    await Promise.all(
      Array.from({ length: jobs }, async (_, i) => {
        const c = await executor.create({
          image,
          command: ["sh", "-c", `sleep ${sleepSec}; exit $(( ${i} % 3 ))`],
        });
        c.stdout.resume();
        c.stderr.resume();
        await c.start();
        const status = await c.wait();
        const resolvedAt = Date.now();
        const ended = (await stat(c.files.exit)).mtimeMs;
        lags.push(resolvedAt - ended);
        if (status.exitCode !== i % 3) wrong++;
        await c.remove();
      }),
    );
    const elapsed = Date.now() - started;
    const calls = (await readFile(callLog, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [at, command] = l.split(" ");
        return { at: Number(at), name: command };
      })
      .filter((c) => c.at >= started);
    const queries = calls.filter((c) => ["sacct", "squeue", "scontrol"].includes(c.name));
    const perMinute = new Map();
    for (const q of queries) {
      const minute = Math.floor((q.at - started) / 60_000);
      perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
    }
    // The most queries in any 60 s window: one per interval at most.
    let busiestMinute = 0;
    for (let i = 0, j = 0; i < queries.length; i++) {
      while (queries[i].at - queries[j].at >= 60_000) j++;
      busiestMinute = Math.max(busiestMinute, i - j + 1);
    }
    lags.sort((a, b) => a - b);
    const pct = (p) => Math.round(lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))]);
    const perInterval = Math.ceil(60_000 / intervalMs);
    log(`all ${jobs} done in ${(elapsed / 1000).toFixed(1)} s; wrong exit codes: ${wrong}`);
    log(
      `scheduler calls: ${calls.filter((c) => c.name === "sbatch").length} sbatch, ${queries.length} queries (${[
        ...new Set(queries.map((q) => q.name)),
      ].join(", ")}), ${calls.filter((c) => c.name === "scancel").length} scancel`,
    );
    log(
      `queries per minute: ${[...perMinute.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([m, n]) => `min ${m + 1}: ${n}`)
        .join(", ")}; busiest 60 s: ${busiestMinute} (at most ${perInterval} at one per interval)`,
    );
    log(
      `job end -> wait() resolved: median ${pct(50)} ms, p90 ${pct(90)} ms, max ${Math.round(lags.at(-1))} ms`,
    );
    return {
      jobs,
      sleepSec,
      tracking: info.details.tracking,
      elapsedS: elapsed / 1000,
      queries: queries.length,
      perMinute: Object.fromEntries(perMinute),
      lagMs: { median: medianOf(lags), p90: pct(90), max: Math.round(lags.at(-1)) },
      checks: [
        { what: `every job's exit code right (${jobs} jobs)`, ok: wrong === 0, value: `${wrong} wrong` },
        {
          what: `at most one scheduler query per interval (${perInterval} in any 60 s)`,
          ok: busiestMinute <= perInterval + 1,
          value: `${busiestMinute} in the busiest 60 s`,
        },
        {
          what: "job end -> wait() within two intervals, p90",
          ok: pct(90) <= 2 * intervalMs,
          value: `${pct(90)} ms`,
        },
      ],
    };
  } finally {
    await executor.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Why no cluster can be measured here, or undefined when a node takes jobs. */
function clusterMissing() {
  try {
    const states = execFileSync("sinfo", ["--noheader", "--format=%T"], {
      encoding: "utf8",
      timeout: 20_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
    return /idle|mixed|allocated|completing/.test(states)
      ? undefined
      : `no SLURM node takes jobs (sinfo: ${states.trim() || "no nodes"})`;
  } catch (err) {
    return `no SLURM cluster answers (scripts/setup-slurm.sh starts one): ${err.message.split("\n")[0]}`;
  }
}
