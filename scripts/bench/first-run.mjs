// Bench section "first-run": what a container costs through contexec against the raw runtime
// command doing the same work, measured in one run:
//   - a fresh `contexec run JOB` process running `true` (Node's start, the module graph, the
//     probe (cached on disk), planning, the run) against raw `docker run --rm IMAGE true` and
//     against the very `apptainer exec ...` command the plan prints, run directly;
//   - a warm executor (one process, runs one after another) against the same raw commands;
//   - `node -e 0`, for the floor no Node process can go under (its start plus the raw command),
//     and what a fresh run spends beyond that floor.
//
//   options: --rounds N (default 7)  --warm-runs N (default 15)  --runtimes docker,apptainer
//
// Rounds interleave the things compared, the order rotating; medians are reported.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { loadAverages, measureCommand, medianOf } from "./lib/measure.mjs";

export const name = "first-run";
export const title = "a fresh `contexec run` and a warm executor against the raw docker/apptainer command";

/** Targets, as ratios to the raw command: a fresh process (Node's start included), a warm executor. */
const TARGETS = { fresh: 1.3, warm: 1.05 };

export async function run(ctx) {
  const { root, log } = ctx;
  const rounds = Number(ctx.option("rounds", "7"));
  const warmRuns = Number(ctx.option("warm-runs", "15"));
  const runtimes = ctx.option("runtimes", "docker,apptainer").split(",");
  const fixtures = execFileSync(join(root, "scripts/build-fixtures.sh"), { encoding: "utf8" }).trim();
  const archive = join(fixtures, "busybox.tar");
  const cli = join(root, "packages/cli/dist/main.js");
  const work = await mkdtemp(join(tmpdir(), "contexec-bench-first-run-"));
  const checks = [];
  const results = {};
  try {
    for (const runtime of runtimes) {
      const prepared = await prepare(root, runtime, archive);
      const job = join(work, `${runtime}.yaml`);
      await writeFile(job, `image: ${prepared.id}\ncommand: ["true"]\n`);
      const fresh = [];
      const raw = [];
      // Node's own start, for the floor a Node process cannot go under: its start plus the raw command.
      const nodeStart = [];
      for (let round = 0; round < rounds; round++) {
        const steps = [
          async () =>
            fresh.push(
              (await measureCommand(process.execPath, [cli, "run", job, "--runtime", runtime])).wallMs,
            ),
          async () =>
            raw.push(
              (
                await measureCommand(prepared.raw.argv[0], prepared.raw.argv.slice(1), {
                  env: prepared.raw.env,
                })
              ).wallMs,
            ),
          async () => nodeStart.push((await measureCommand(process.execPath, ["-e", "0"])).wallMs),
        ];
        if (round % 2) steps.reverse();
        for (const step of steps) await step();
      }
      await prepared.cleanup();
      const warm = await warmRunsOf(root, runtime, prepared.id, warmRuns);
      const r = {
        freshMs: medianOf(fresh),
        rawMs: medianOf(raw),
        warmMs: medianOf(warm),
        nodeStartMs: medianOf(nodeStart),
        load: loadAverages(),
      };
      r.freshRatio = r.freshMs / r.rawMs;
      // The best a fresh Node process can do: start, then run the raw command, nothing between.
      r.floorRatio = (r.nodeStartMs + r.rawMs) / r.rawMs;
      r.beyondFloorMs = r.freshMs - r.nodeStartMs - r.rawMs;
      r.warmRatio = r.warmMs / r.rawMs;
      results[runtime] = r;
      log(
        `  ${runtime}: raw ${r.rawMs.toFixed(0)} ms; fresh contexec run ${r.freshMs.toFixed(0)} ms (${r.freshRatio.toFixed(2)}x); warm executor ${r.warmMs.toFixed(0)} ms (${r.warmRatio.toFixed(2)}x); load ${r.load}`,
      );
      log(
        `  ${runtime}: floor of a fresh Node process: node -e 0 ${r.nodeStartMs.toFixed(0)} ms + raw = ${r.floorRatio.toFixed(2)}x; contexec's own part of a fresh run ${r.beyondFloorMs.toFixed(0)} ms (module loading, planning, the runtime's extra calls)`,
      );
      checks.push(
        {
          what: `${runtime}: fresh contexec run <= ${TARGETS.fresh}x raw`,
          ok: r.freshRatio <= TARGETS.fresh,
          value: `${r.freshRatio.toFixed(2)}x`,
        },
        {
          what: `${runtime}: warm executor <= ${TARGETS.warm}x raw`,
          ok: r.warmRatio <= TARGETS.warm,
          value: `${r.warmRatio.toFixed(2)}x`,
        },
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { checks, results };
}

/** Loads the image and finds the raw command: `docker run --rm`, or the Apptainer argv the plan runs. */
async function prepare(root, runtime, archive) {
  const core = await import(join(root, "packages/core/dist/index.js"));
  const executor = await core.createExecutor({ runtime });
  let plan;
  let id;
  try {
    id = await executor.loadImage(archive);
    if (runtime === "docker") {
      return {
        id,
        raw: { argv: ["docker", "run", "--rm", id, "true"], env: process.env },
        cleanup: async () => {},
      };
    }
    plan = await executor.plan({ image: id, command: ["true"] });
  } finally {
    await executor.close();
  }
  // The same work without contexec: the argv and environment its plan runs, its files made once
  // (the plan's steps before: the scratch folder, environment script, image link) and kept.
  await core.runPlanSteps(plan.before);
  return {
    id,
    raw: { argv: plan.command.argv, env: plan.command.env },
    cleanup: async () => {
      await core.runCleanupSteps(plan.after);
      await rm(dirname(plan.after.find((s) => s.op === "remove")?.path ?? "/nonexistent/x"), {
        recursive: true,
        force: true,
      });
    },
  };
}

/** Per-run times of an executor that has run once already, in a child process of its own. */
async function warmRunsOf(root, runtime, id, runs) {
  const script = `
    const { createExecutor, runContainer } = await import(${JSON.stringify(join(root, "packages/core/dist/index.js"))});
    const executor = await createExecutor({ runtime: ${JSON.stringify(runtime)} });
    await runContainer(executor, { image: ${JSON.stringify(id)}, command: ["true"] });
    const times = [];
    for (let i = 0; i < ${runs}; i++) {
      const t = performance.now();
      await runContainer(executor, { image: ${JSON.stringify(id)}, command: ["true"] });
      times.push(performance.now() - t);
    }
    await executor.close();
    console.log(JSON.stringify(times));
  `;
  const r = await measureCommand(process.execPath, ["--input-type=module", "-e", script]);
  return JSON.parse(r.stdout.trim().split("\n").at(-1));
}
