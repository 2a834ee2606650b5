// Measuring child processes for the benchmark sections: wall time, CPU time of the child and
// everything it waited for, and the child's own peak RSS.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";

// Linux reports times in /proc in USER_HZ ticks, 100 per second on every architecture Node runs on.
const TICK_MS = 10;

/**
 * CPU time (ms) of this process's children that have been waited for: fields cutime + cstime of
 * /proc/self/stat. A child's own children count too, once it waited for them (the converter waits
 * for sqfstar), so the difference around one child's run is the CPU of that whole process tree.
 */
export function reapedChildrenCpuMs() {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // cutime and cstime are fields 16 and 17 of the whole line; fields[0] is field 3.
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS;
}

/** Peak RSS (VmHWM, KiB) of a process, read from /proc; null once it is gone. */
export function peakRssKb(pid = "self") {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The load averages, as `uptime` prints them. */
export function loadAverages() {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(", ");
}

/**
 * Runs `command args` to its end and measures it: `wallMs`, `cpuMs` (its whole process tree,
 * see reapedChildrenCpuMs) and `sampledPeakRssKb` (the direct child's VmHWM, sampled every 20 ms:
 * a lower bound; a child that can report its own exact figure should). Its stdout is returned;
 * a non-zero exit rejects. Runs must not overlap: CPU of anything else reaped meanwhile would be
 * counted.
 */
export function measureCommand(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const cpu0 = reapedChildrenCpuMs();
    const t0 = performance.now();
    const child = spawn(command, args, {
      stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
      ...(options.env && { env: options.env }),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d) => {
      if (stderr.length < 65536) stderr += d;
    });
    let sampled = 0;
    const sample = () => {
      const kb = peakRssKb(child.pid);
      if (kb !== null) sampled = Math.max(sampled, kb);
    };
    const sampler = setInterval(sample, 20);
    child.on("error", (err) => {
      clearInterval(sampler);
      reject(err);
    });
    child.on("exit", sample);
    child.on("close", (code, signal) => {
      clearInterval(sampler);
      const wallMs = performance.now() - t0;
      const cpuMs = reapedChildrenCpuMs() - cpu0;
      if (code !== 0) {
        reject(new Error(`${command} ${args.join(" ")} exited with ${code ?? signal}: ${stderr.trim()}`));
        return;
      }
      resolve({ wallMs, cpuMs, sampledPeakRssKb: sampled, stdout, stderr });
    });
  });
}

export function medianOf(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
