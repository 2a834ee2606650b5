// A separate Node process for the crash test: with two executors (root mode and userns mode) it
// runs a container in each (the root one with a memory limit: its own cgroup), a service (an
// instance), and then starts converting a large archive; it prints "converting" and waits to be
// SIGKILLed. Its owner folder goes where CONTEXEC_STATE_DIR says.
// argv: cacheDir tmpDir busyboxArchive bigArchive
import { ApptainerExecutor } from "../apptainer-executor.js";

const [cacheDir, tmpDir, busybox, big] = process.argv.slice(2) as [string, string, string, string];
const root = new ApptainerExecutor({ cacheDir, tmpDir });
const userns = new ApptainerExecutor({ cacheDir, tmpDir, userns: true });
const image = await root.loadImage(busybox);
for (const [executor, limits] of [
  [root, { memoryBytes: 64 * 1024 * 1024 }],
  [userns, {}],
] as const) {
  const c = await executor.create({
    image,
    command: ["sh", "-c", "sleep 1000 & sleep 1001"],
    resources: limits,
  });
  c.stdout.resume();
  c.stderr.resume();
  await c.start();
  // Running for sure (and its processes found, its limits applied) before the crash.
  await c.exec(["true"]);
}
await root.startService({ image, command: ["sleep", "1002"] }, { ready: { exec: ["true"] } });
void root.loadImage(big).catch(() => {});
process.stdout.write("converting\n");
setInterval(() => {}, 1000);
