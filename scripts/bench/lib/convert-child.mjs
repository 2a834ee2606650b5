// One native conversion in a process of its own, for the converter benchmark:
//   node convert-child.mjs <archive> <out.sif> <compression> [unverified]
// Prints one JSON line: the conversion call's wall time and CPU time (this process: main thread,
// digest worker, libuv threads), this process's whole CPU time (Node's start included; sqfstar is
// not: the parent measures the process tree), and its own peak RSS. VmHWM belongs to this
// process's memory since its exec; getrusage's ru_maxrss would include the parent's, inherited
// across fork and exec.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const [input, output, compression, mode] = process.argv.slice(2);
const { convertArchiveToSif } = await import(join(root, "packages/sif/dist/index.js"));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const result = await convertArchiveToSif(input, output, {
  compression,
  verifyDigests: mode !== "unverified",
});
const callMs = performance.now() - t0;
const callCpu = process.cpuUsage(cpu0);
const total = process.cpuUsage();
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
process.stdout.write(
  `${JSON.stringify({
    callMs,
    callCpuMs: (callCpu.user + callCpu.system) / 1000,
    processCpuMs: (total.user + total.system) / 1000,
    peakRssKb: hwm ? Number(hwm[1]) : null,
    sifBytes: result.sifBytes,
  })}\n`,
);
