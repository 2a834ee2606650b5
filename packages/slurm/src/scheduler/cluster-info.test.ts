import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { clusterCapabilities, clusterInfoOf, parsePartitions, parseScontrolConfig } from "./cluster-info.js";

const recorded = (name: string) => readFileSync(new URL(`./recorded/${name}`, import.meta.url), "utf8");

describe("cluster info (slurm 22.05, recorded)", () => {
  const config = parseScontrolConfig(recorded("scontrol-config-22.05.txt"));
  const partitions = parsePartitions(recorded("scontrol-partition-22.05.txt"));

  it("reads the config, the cgroup section included", () => {
    expect(config.get("ClusterName")).toBe("contexec");
    expect(config.get("TaskPlugin")).toBe("task/cgroup");
    expect(config.get("ConstrainRAMSpace")).toBe("yes");
    expect(config.get("SelectTypeParameters")).toBe("CR_CORE_MEMORY");
  });

  it("reads the partitions", () => {
    expect(partitions).toEqual([
      { name: "debug", state: "UP", isDefault: true, maxTime: "UNLIMITED", nodes: 1 },
    ]);
  });

  it("tells what the cluster confines, and says why when it does not", () => {
    const info = clusterInfoOf({ version: "slurm-wlm 22.05.8", config, partitions, accounting: true });
    expect(info).toMatchObject({
      name: "contexec",
      version: "22.05.8",
      accounting: true,
      confinesMemory: true,
      confinesCores: false,
      minJobAgeSec: 300,
      killWaitSec: 30,
    });
    const caps = clusterCapabilities(info);
    expect(caps["memory-limit"]).toEqual({ supported: true });
    expect(caps["oom-detection"]).toEqual({ supported: true });
    expect(caps["cpu-limit"]).toMatchObject({
      supported: false,
      reason: expect.stringContaining("ConstrainCores"),
    });

    const plain = new Map(config);
    plain.set("TaskPlugin", "task/none");
    const none = clusterCapabilities(
      clusterInfoOf({ version: "x", config: plain, partitions, accounting: false }),
    );
    expect(none["memory-limit"]).toMatchObject({
      supported: false,
      reason: expect.stringContaining("task/cgroup"),
    });
    expect(none["oom-detection"].supported).toBe(false);
  });
});
