#!/usr/bin/env node
// Benchmark of the SLURM backend's tracking: N short jobs (default 500) submitted at once to the
// cluster scripts/setup-slurm.sh runs, Apptainer inside. Reports the scheduler queries per minute
// (they should stay flat, whatever the number of jobs in flight) and the time from a job's end
// (its exit status file written on the node) to wait() resolving.
//
//   npm run bench:slurm -- [--jobs N] [--sleep S] [--tracking MODE] [--interval MS] [--max-interval MS]
//
// Each job sleeps S seconds (default 0) and exits i % 3. --tracking auto|sacct|squeue.
//
// Plain JavaScript over packages/*/dist because Node 20 cannot run TypeScript. Every scheduler
// command goes through a wrapper (slurm.binDir) that logs its name and time, so the counts are
// of real processes started, not of the library's own bookkeeping.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const jobs = Number(arg("jobs", "500"));
const intervalMs = Number(arg("interval", "2000"));
const maxIntervalMs = Number(arg("max-interval", "30000"));
const sleepSec = Number(arg("sleep", "0"));
const tracking = arg("tracking", "auto");

const { ApptainerExecutor } = await import(join(root, "packages/singularity/dist/index.js"));
const { SlurmExecutor, SCHEDULER_COMMANDS } = await import(join(root, "packages/slurm/dist/index.js"));

const fixtures = execFileSync(join(root, "scripts/build-fixtures.sh"), { encoding: "utf8" }).trim();
const dir = await mkdtemp(join(tmpdir(), "contexec-bench-slurm-"));
const log = join(dir, "calls.log");
const binDir = join(dir, "bin");
await mkdir(binDir);
await writeFile(log, "");
for (const name of SCHEDULER_COMMANDS) {
  const real = execFileSync("sh", ["-c", `command -v ${name} || true`], { encoding: "utf8" }).trim();
  if (real) {
    await writeFile(
      join(binDir, name),
      `#!/bin/sh\nprintf '%s %s\\n' "$(date +%s%3N)" ${name} >> '${log}'\nexec '${real}' "$@"\n`,
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
  console.log(
    `SLURM ${info.version} (${info.details.tracking}), ${nodeCpus} CPUs declared, ${jobs} jobs of ${sleepSec} s, interval ${intervalMs} ms (max ${maxIntervalMs} ms)`,
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
  const calls = (await readFile(log, "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [at, name] = l.split(" ");
      return { at: Number(at), name };
    })
    .filter((c) => c.at >= started);
  const queries = calls.filter((c) => ["sacct", "squeue", "scontrol"].includes(c.name));
  const perMinute = new Map();
  for (const q of queries) {
    const minute = Math.floor((q.at - started) / 60_000);
    perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
  }
  lags.sort((a, b) => a - b);
  const pct = (p) => Math.round(lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))]);
  console.log(`all ${jobs} done in ${(elapsed / 1000).toFixed(1)} s; wrong exit codes: ${wrong}`);
  console.log(
    `scheduler calls: ${calls.filter((c) => c.name === "sbatch").length} sbatch, ${queries.length} queries (${[
      ...new Set(queries.map((q) => q.name)),
    ].join(", ")}), ${calls.filter((c) => c.name === "scancel").length} scancel`,
  );
  console.log(
    `queries per minute: ${[...perMinute.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([m, n]) => `min ${m + 1}: ${n}`)
      .join(", ")} (at most ${Math.ceil(60_000 / intervalMs)} at one per interval)`,
  );
  console.log(
    `job end -> wait() resolved: median ${pct(50)} ms, p90 ${pct(90)} ms, max ${Math.round(lags.at(-1))} ms`,
  );
} finally {
  await executor.close();
  await rm(dir, { recursive: true, force: true });
}
