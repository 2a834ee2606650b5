#!/usr/bin/env node
// Runs pipeline.json's three steps on the backend a config file names: { "runtime": "docker" },
// { "runtime": "apptainer" }, or { "runtime": "slurm", ... } (slurm.json: each step a batch job).
// Nothing else changes.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ContainerError, createExecutor, type ExecutorConfig, readImageArchive } from "@contexec/core";
import { planWorkflow, runWorkflow, type Step, StepFailedError } from "./workflow.js";

const here = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    config: { type: "string", short: "c", default: resolve(here, "docker.json") },
    image: { type: "string", short: "i" },
    pipeline: { type: "string", default: resolve(here, "pipeline.json") },
    input: { type: "string", default: resolve(here, "input") },
    work: { type: "string", short: "w" },
    "dry-run": { type: "boolean" },
  },
});
if (!values.image || !values.work) {
  console.error(
    "usage: contexec-workflow --config docker.json --image IMAGE.tar --work DIR [--pipeline pipeline.json] [--input DIR] [--dry-run]",
  );
  process.exit(64);
}

try {
  const config = JSON.parse(await readFile(values.config, "utf8")) as ExecutorConfig;
  const { steps } = JSON.parse(await readFile(values.pipeline, "utf8")) as { steps: Step[] };
  const executor = await createExecutor(config);
  const dirs = { input: resolve(values.input), work: resolve(values.work) };
  try {
    if (values["dry-run"]) {
      const { id } = await readImageArchive(values.image);
      for (const script of await planWorkflow(executor, id, steps, { ...dirs, archive: values.image }))
        process.stdout.write(`${script}\n`);
    } else {
      const image = await executor.loadImage(values.image);
      console.log(`workflow on ${executor.runtime}: ${steps.map((s) => s.name).join(" -> ")}`);
      await runWorkflow(executor, image, steps, dirs, (r, stdout) => {
        console.log(`  ${r.name.padEnd(8)} exit ${r.exitCode}  ${r.seconds.toFixed(2)}s  -> ${r.output}`);
        for (const line of stdout.trimEnd().split("\n")) console.log(`           | ${line}`);
      });
    }
  } finally {
    await executor.close();
  }
} catch (err) {
  if (err instanceof StepFailedError) {
    console.error(`workflow stopped: ${err.message}`);
    process.exitCode = 1;
  } else if (err instanceof ContainerError) {
    console.error(`error ${err.code}: ${err.message}`);
    process.exitCode = 1;
  } else throw err;
}
