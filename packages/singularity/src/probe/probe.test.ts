import { describe, expect, it } from "vitest";
import { interfacesOf, parseLimits } from "./probe.js";

describe("probe output parsing", () => {
  it("lists the interfaces of /proc/net/dev", () => {
    const dev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
`;
    expect(interfacesOf(dev)).toEqual(["lo", "eth0"]);
  });

  it("reads memory and CPU limits of cgroup v1 and v2", () => {
    expect(
      parseLimits("memory.limit_in_bytes 67108864\ncpu.cfs_quota_us 50000\ncpu.cfs_period_us 100000\n"),
    ).toEqual({
      memoryBytes: 67108864,
      cpus: 0.5,
    });
    expect(parseLimits("memory.max 67108864\ncpu.max 150000 100000\n")).toEqual({
      memoryBytes: 67108864,
      cpus: 1.5,
    });
    expect(parseLimits("memory.max max\ncpu.max max 100000\n")).toEqual({});
    expect(
      parseLimits(
        "memory.limit_in_bytes 9223372036854771712\ncpu.cfs_quota_us -1\ncpu.cfs_period_us 100000\n",
      ),
    ).toEqual({
      memoryBytes: Number("9223372036854771712"),
    });
  });
});
