// A separate Node process for the exit-guard test: starts a container that sleeps, prints the
// runtime's pid, waits for a line on stdin, then ends the way argv[4] says ("exit": process.exit, "throw": an uncaught
// error, "sigterm": killed by SIGTERM) without removing the container.
// argv: cacheDir archive how [userns]
import { ApptainerExecutor } from "../apptainer-executor.js";

const [cacheDir, archive, how, userns] = process.argv.slice(2) as [
  string,
  string,
  string,
  string | undefined,
];
const executor = new ApptainerExecutor({ cacheDir, userns: userns === "userns", tmpDir: `${cacheDir}.tmp` });
const id = await executor.loadImage(archive);
const container = await executor.create({ image: id, command: ["sh", "-c", "sleep 1000 & sleep 1001"] });
container.stdout.resume();
container.stderr.resume();
await container.start();
// Let the container get going so there is a tree to leave behind.
await container.exec(["true"]);
process.stdout.write(`${JSON.stringify({ pid: container.pid })}\n`);
// The test looks at the container's processes, then says "go".
await new Promise((resolve) => process.stdin.once("data", resolve));
if (how === "exit") process.exit(0);
if (how === "throw")
  setTimeout(() => {
    throw new Error("uncaught on purpose");
  }, 10);
if (how === "sigterm") process.kill(process.pid, "SIGTERM");
