import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  chooseStartMode,
  interfacesOf,
  interpretProbe,
  inUserNamespace,
  type ProbeObservations,
  parseLimits,
  parseSetuidInstall,
  type RunRecord,
} from "./interpret-probe.js";

/** Probe observations recorded on a machine of this project's kind (see `recordedOn` in each file). */
function recording(name: string): ProbeObservations {
  return JSON.parse(
    readFileSync(new URL(`./recordings/${name}`, import.meta.url), "utf8"),
  ) as ProbeObservations;
}

const failed = (stderr: string): RunRecord => ({ exitCode: 255, stdout: "", stderr, timedOut: false });

describe("interpretProbe on recorded observations", () => {
  it("root on Debian 12: Docker's capabilities, own cgroups, users, exec; no bridge network", () => {
    const p = interpretProbe(recording("root-apptainer-1.4.5.json"), "2026-11-30T00:00:00.000Z");
    expect(p).toMatchObject({
      flavor: "apptainer",
      version: "1.4.5",
      privilege: "root",
      nsenter: "/usr/bin/nsenter",
    });
    expect(p.render).toEqual({
      flavor: "apptainer",
      userns: false,
      dockerCaps: true,
      noEval: true,
      noUmask: true,
      ownCgroups: true,
    });
    const supported = Object.entries(p.capabilities)
      .filter(([, s]) => s.supported)
      .map(([n]) => n);
    expect(supported.sort()).toEqual(
      ["cpu-limit", "exec", "memory-limit", "network-host", "network-none", "oom-detection", "user"].sort(),
    );
    expect(p.capabilities["network-bridge"]).toMatchObject({ reason: expect.stringMatching(/CNI/) });
    expect(p.cgroupLayout?.version).toBe(1);
  });

  it("root asking for user namespaces: no user switching, no Docker capabilities", () => {
    const p = interpretProbe(recording("root-userns-apptainer-1.4.5.json"));
    expect(p.privilege).toBe("userns");
    expect(p.render).toMatchObject({ userns: true, dockerCaps: false });
    expect(p.capabilities.user).toMatchObject({
      supported: false,
      reason: expect.stringMatching(/user namespace/),
    });
  });

  it("a runtime that starts nothing is RuntimeUnavailableError with both reasons", () => {
    const o = recording("root-apptainer-1.4.5.json");
    o.start = {
      plain: failed(
        "FATAL:   container creation failed: mount /proc/self/fd/3->/var/lib/apptainer/mnt/session/rootfs error",
      ),
      userns: failed("FATAL:   while creating user namespace: operation not permitted"),
    };
    expect(() => chooseStartMode(o)).toThrow(
      /Without --userns: container creation failed.*With --userns: while creating user namespace/,
    );
    expect(() => interpretProbe(o)).toThrow(expect.objectContaining({ code: "E_RUNTIME_UNAVAILABLE" }));
  });

  it("a plain start refused (no setuid, not root) falls back to --userns", () => {
    const o = recording("root-userns-apptainer-1.4.5.json");
    o.isRoot = false;
    o.preferUserns = false;
    o.start = {
      plain: failed("ERROR  : No setuid installation found"),
      userns: o.start?.userns as RunRecord,
    };
    expect(chooseStartMode(o)).toEqual({ userns: true, privilege: "userns" });
    expect(interpretProbe(o).privilege).toBe("userns");
  });

  it("a broken installation: --version fails, the message says where to look", () => {
    const o = recording("root-apptainer-1.4.5.json");
    o.version = failed(
      "/usr/bin/apptainer: error while loading shared libraries: libc.so.6: version `GLIBC_2.38' not found",
    );
    expect(() => interpretProbe(o)).toThrow(/--version failed.*setup-apptainer/);
  });

  it("own cgroups that do not show their limits inside: limits fall back to what --memory/--cpus did", () => {
    const o = recording("root-apptainer-1.4.5.json");
    o.ownCgroups = {
      outcome: "ran",
      run: { exitCode: 0, stdout: "memory.max max\n", stderr: "", timedOut: false },
      oomCounted: true,
    };
    const p = interpretProbe(o);
    expect(p.render.ownCgroups).toBe(false);
    expect(p.capabilities["oom-detection"]).toMatchObject({
      supported: false,
      reason: expect.stringMatching(/did not see its limits/),
    });
  });
});

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
