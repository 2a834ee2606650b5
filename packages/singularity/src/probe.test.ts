import { describe, expect, it } from "vitest";
import { interfacesOf, inUserNamespace, parseLimits, parseSetuidInstall } from "./probe.js";

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

  it("tells a user namespace from the initial one by /proc/self/uid_map (recorded in containers)", () => {
    // root, and a setuid runtime's container: the initial namespace.
    expect(inUserNamespace("         0          0 4294967295\n")).toBe(false);
    // apptainer exec as uid 65534 without setuid (Apptainer 1.4.5 makes a user namespace itself).
    expect(inUserNamespace("     65534      65534          1\n")).toBe(true);
    // --fakeroot: root inside, subordinate ids after it.
    expect(inUserNamespace("0 1000 1\n1 100000 65536\n")).toBe(true);
  });

  it("reads setuid support from apptainer buildcfg", () => {
    const debian = "PACKAGE_VERSION=1.4.5\nAPPTAINER_CONFDIR=/etc/apptainer\nAPPTAINER_SUID_INSTALL=0\n";
    expect(parseSetuidInstall(debian)).toBe(false);
    expect(parseSetuidInstall("SINGULARITY_SUID_INSTALL=1\n")).toBe(true);
    expect(parseSetuidInstall("")).toBeUndefined();
  });
});
