#!/usr/bin/env node
// Runs one container on whichever backend the config file names. Switching from Docker to
// Apptainer is a change of one value in that file: { "runtime": "docker" } -> { "runtime": "apptainer" }.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ContainerError, createExecutor, type ExecutorConfig, runContainer } from "@contexec/core";

const { values } = parseArgs({
  options: {
    config: { type: "string", short: "c", default: "docker.json" },
    image: { type: "string", short: "i" },
  },
});
if (!values.image) {
  console.error("usage: contexec-hello --config docker.json --image IMAGE.tar (a `docker save` archive)");
  process.exit(2);
}

try {
  const config = JSON.parse(await readFile(values.config, "utf8")) as ExecutorConfig;
  const executor = await createExecutor(config);
  try {
    const info = await executor.info();
    console.log(`runtime: ${info.runtime} (${info.flavor} ${info.version})`);
    const image = await executor.loadImage(values.image);
    console.log(`image:   ${image}`);
    const result = await runContainer(executor, {
      image,
      entrypoint: [
        "sh",
        "-c",
        'echo "hello from $(pwd) as $(id -un), GREETING=$GREETING, NAME=$NAME"; cat /data/keep/file.txt',
      ],
      env: { NAME: "contexec" },
    });
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    console.log(`exit:    ${result.exitCode}${result.signal ? ` (${result.signal})` : ""}`);
    process.exitCode = result.exitCode;
  } finally {
    await executor.close();
  }
} catch (err) {
  // Typed errors carry a code and a message that says what to do.
  if (err instanceof ContainerError) console.error(`error ${err.code}: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
}
