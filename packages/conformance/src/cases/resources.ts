import type { ContainerSpec } from "@contexec/core";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

/** Reads a cgroup file, v2 name first, then v1. */
const cgroupValue = (v2: string, v1: string) =>
  `cat /sys/fs/cgroup/${v2} 2>/dev/null || cat /sys/fs/cgroup/${v1}`;

export function registerResourceCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("20 containers at once, each with its own correct output", async () => {
    const runs = Array.from({ length: 20 }, (_, i) =>
      ctx.run({
        image: ctx.images().busybox,
        command: ["sh", "-c", `echo "container $N"; echo "err $N" >&2; exit $(( N % 5 ))`],
        env: { N: String(i) },
      }),
    );
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      expect(r.out).toBe(`container ${i}\n`);
      expect(r.err).toBe(`err ${i}\n`);
      expect(r.exitCode).toBe(i % 5);
    });
  });

  test("a memory limit is applied", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", cgroupValue("memory.max", "memory/memory.limit_in_bytes")],
      resources: { memoryBytes: 64 * 1024 * 1024 },
    });
    expect(r.out.trim()).toBe(String(64 * 1024 * 1024));
  }, ["memory-limit"]);

  test("a process over its memory limit is OOM-killed and reported so", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      // tail holds the whole "line" of zeros in memory.
      command: ["sh", "-c", "head -c 512m /dev/zero | tail > /dev/null"],
      resources: { memoryBytes: 32 * 1024 * 1024 },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.oomKilled).toBe(true);
  }, ["memory-limit", "oom-detection"]);

  test("a CPU limit is applied", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: [
        "sh",
        "-c",
        `${cgroupValue("cpu.max", "cpu/cpu.cfs_quota_us")}; cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null; true`,
      ],
      resources: { cpus: 0.5 },
    });
    const numbers = r.out.trim().split(/\s+/).map(Number);
    expect(numbers[0] && numbers[1] ? numbers[0] / numbers[1] : Number.NaN).toBeCloseTo(0.5, 2);
  }, ["cpu-limit"]);

  test("spec.user runs the process as that uid:gid", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "id -u; id -g"],
      user: "65534:65534",
    });
    expect(r.out).toBe("65534\n65534\n");
  }, ["user"]);

  // Any capability the backend lacks will do; GPUs are missing on most test machines.
  const lacking = (["gpu", "memory-limit", "user", "network-none", "ports"] as const).find(
    (c) => !ctx.info.capabilities[c].supported,
  );
  const asks: Record<NonNullable<typeof lacking>, Partial<ContainerSpec>> = {
    gpu: { resources: { gpus: { count: 1 } } },
    "memory-limit": { resources: { memoryBytes: 64 * 1024 * 1024 } },
    user: { user: "65534" },
    "network-none": { network: "none" },
    ports: { ports: [{ containerPort: 80 }] },
  };
  ctx.test(
    `a spec asking for what the runtime lacks (${lacking ?? "nothing"}) is refused unless unsupported is "ignore"`,
    async () => {
      const spec: ContainerSpec = {
        image: ctx.images().busybox,
        command: ["true"],
        ...asks[lacking ?? "gpu"],
      };
      await expect(ctx.executor().create(spec)).rejects.toMatchObject({ code: "E_UNSUPPORTED" });
      const r = await ctx.run({ ...spec, unsupported: "ignore" });
      expect(r.exitCode).toBe(0);
    },
    [],
    lacking ? undefined : "the backend supports every capability this case could ask for",
  );
}
