// A separate Node process for the crash test: it starts two containers and a service with a
// Docker executor, prints their ids, and waits to be killed (SIGKILL: nothing runs; SIGTERM:
// its exit handler removes them).
import { DockerExecutor } from "../docker-executor.js";

const [image] = process.argv.slice(2) as [string];
const executor = new DockerExecutor();
const ids: string[] = [];
for (const n of [1, 2]) {
  const c = await executor.create({ image, command: ["sleep", `${1000 + n}`], network: "none" });
  c.stdout.resume();
  c.stderr.resume();
  await c.start();
  ids.push(c.id);
}
const service = await executor.startService({ image, command: ["sleep", "1003"], network: "none" });
ids.push(service.id);
process.stdout.write(`${JSON.stringify({ ids })}\n`);
setInterval(() => {}, 1000);
