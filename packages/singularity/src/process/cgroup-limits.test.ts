import { describe, expect, it } from "vitest";
import { cgroupLayoutOf, parseOomKills, planCgroups } from "./cgroup-limits.js";

const V1_CGROUP = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
const V1_MOUNTS = [
  "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");
const V2_CGROUP = "0::/user.slice/job\n";
const V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";

describe("cgroupLayoutOf", () => {
  it("finds v1 memory and cpu hierarchies before a v2 one beside them", () => {
    expect(cgroupLayoutOf(V1_CGROUP, V1_MOUNTS)).toEqual({
      version: 1,
      memory: { mount: "/sys/fs/cgroup/memory", own: "/sys/fs/cgroup/memory/process_api/abc" },
      cpu: { mount: "/sys/fs/cgroup/cpu", own: "/sys/fs/cgroup/cpu" },
    });
  });

  it("finds a pure v2 layout", () => {
    const own = { mount: "/sys/fs/cgroup", own: "/sys/fs/cgroup/user.slice/job" };
    expect(cgroupLayoutOf(V2_CGROUP, V2_MOUNTS)).toEqual({ version: 2, memory: own, cpu: own });
  });

  it("gives nothing without cgroup mounts", () => {
    expect(cgroupLayoutOf(V2_CGROUP, "")).toBeUndefined();
  });
});

describe("planCgroups", () => {
  const v1 = cgroupLayoutOf(V1_CGROUP, V1_MOUNTS);
  const v2 = cgroupLayoutOf(V2_CGROUP, V2_MOUNTS);
  if (!v1 || !v2) throw new Error("layouts");

  it("v1: a memory and a cpu cgroup under ours, bound over their mount points behind a skeleton", () => {
    const plan = planCgroups(v1, "contexec-1", { memoryBytes: 64 << 20, cpus: 0.5 }, "/tmp/x/points");
    expect(plan?.dirs).toEqual([
      "/sys/fs/cgroup/memory/process_api/abc/contexec-1",
      "/sys/fs/cgroup/cpu/contexec-1",
    ]);
    expect(plan?.writes).toEqual([
      {
        file: "/sys/fs/cgroup/memory/process_api/abc/contexec-1/memory.limit_in_bytes",
        value: String(64 << 20),
      },
      { file: "/sys/fs/cgroup/cpu/contexec-1/cpu.cfs_period_us", value: "100000" },
      { file: "/sys/fs/cgroup/cpu/contexec-1/cpu.cfs_quota_us", value: "50000" },
    ]);
    expect(plan?.binds).toEqual([
      { source: "/tmp/x/points", target: "/sys/fs/cgroup" },
      { source: "/sys/fs/cgroup/memory/process_api/abc/contexec-1", target: "/sys/fs/cgroup/memory" },
      { source: "/sys/fs/cgroup/cpu/contexec-1", target: "/sys/fs/cgroup/cpu" },
    ]);
    expect(plan?.skeleton).toEqual({ dir: "/tmp/x/points", entries: ["memory", "cpu"] });
    expect(plan?.oomFile).toBe("/sys/fs/cgroup/memory/process_api/abc/contexec-1/memory.oom_control");
    expect(plan?.procsFiles).toHaveLength(2);
  });

  it("v1: only the controllers asked for", () => {
    const plan = planCgroups(v1, "c", { cpus: 2 });
    expect(plan?.dirs).toEqual(["/sys/fs/cgroup/cpu/c"]);
    expect(plan?.oomFile).toBeUndefined();
    expect(plan?.writes.at(-1)).toEqual({ file: "/sys/fs/cgroup/cpu/c/cpu.cfs_quota_us", value: "200000" });
  });

  it("v2: one cgroup with memory.max and cpu.max, the parent's controllers enabled", () => {
    const plan = planCgroups(v2, "c", { memoryBytes: 1 << 30, cpus: 1.5 });
    expect(plan?.writes).toEqual([
      { file: "/sys/fs/cgroup/user.slice/job/cgroup.subtree_control", value: "+memory +cpu" },
      { file: "/sys/fs/cgroup/user.slice/job/c/memory.max", value: String(1 << 30) },
      { file: "/sys/fs/cgroup/user.slice/job/c/cpu.max", value: "150000 100000" },
    ]);
    expect(plan?.binds).toEqual([{ source: "/sys/fs/cgroup/user.slice/job/c", target: "/sys/fs/cgroup" }]);
    expect(plan?.oomFile).toBe("/sys/fs/cgroup/user.slice/job/c/memory.events");
  });

  it("nothing without limits", () => {
    expect(planCgroups(v1, "c", {})).toBeUndefined();
    expect(planCgroups(v2, "c", {})).toBeUndefined();
  });
});

describe("parseOomKills", () => {
  it("reads v1 memory.oom_control and v2 memory.events", () => {
    expect(parseOomKills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")).toBe(2);
    expect(parseOomKills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")).toBe(1);
    expect(parseOomKills("oom_kill_disable 0\nunder_oom 0\n")).toBe(0);
  });
});
