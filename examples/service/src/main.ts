#!/usr/bin/env node
// A service and a batch step against it, on whichever backend the config file names:
// busybox httpd serves a host folder in the background; a batch container fetches a file from
// it; then everything is torn down. Both use the host's network, which Docker and Apptainer
// both offer, so the batch step reaches the service at 127.0.0.1 on either.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  ContainerError,
  createExecutor,
  type ExecutorConfig,
  findFreePort,
  runContainer,
} from "@contexec/core";

const { values } = parseArgs({
  options: {
    config: { type: "string", short: "c", default: "docker.json" },
    image: { type: "string", short: "i" },
  },
});
if (!values.image) {
  console.error("usage: contexec-service --config docker.json --image BUSYBOX.tar");
  process.exit(2);
}

const www = await mkdtemp(join(tmpdir(), "contexec-example-www-"));
try {
  await writeFile(join(www, "data.txt"), "a file served by the service\n");
  const config = JSON.parse(await readFile(values.config, "utf8")) as ExecutorConfig;
  const executor = await createExecutor(config);
  try {
    const image = await executor.loadImage(values.image);
    const port = await findFreePort();
    const service = await executor.startService(
      {
        image,
        command: ["httpd", "-f", "-v", "-p", `127.0.0.1:${port}`, "-h", "/www"],
        mounts: [{ type: "bind", source: www, target: "/www", readOnly: true }],
        network: "host",
        name: "example-httpd",
      },
      { ready: { http: port, path: "/data.txt" }, readyOptions: { timeoutMs: 30_000 } },
    );
    console.log(`service ${service.name} is ready on port ${port}`);

    const batch = await runContainer(executor, {
      image,
      command: ["wget", "-q", "-O", "-", `http://127.0.0.1:${port}/data.txt`],
      network: "host",
    });
    console.log(`batch step exit ${batch.exitCode}, fetched: ${batch.stdout.toString().trim()}`);

    const status = await service.stop({ graceMs: 2000 });
    const logs = await service.logs();
    console.log(`service stopped (${status.signal ?? `exit ${status.exitCode}`}); its log:`);
    process.stdout.write(logs.stderr + logs.stdout);
    process.exitCode = batch.exitCode;
  } finally {
    await executor.close();
  }
} catch (err) {
  if (err instanceof ContainerError) console.error(`error ${err.code}: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
} finally {
  await rm(www, { recursive: true, force: true });
}
