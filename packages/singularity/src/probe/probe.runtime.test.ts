import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAPABILITY_NAMES } from "@contexec/core";
import { afterAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { findBinary } from "./find-binary.js";
import { probeRuntime } from "./probe.js";

const gate = runtimeGate("apptainer");

// Nothing is made when the file is skipped: vitest runs no afterAll then.
const work = gate.skip ? "" : await mkdtemp(join(tmpdir(), "contexec-probe-test-"));
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(gate.skip)(gate.title("probe (real Apptainer)"), () => {
  it("finds flavor and version, and declares every capability, with a reason when off, within 2 s", async () => {
    const started = Date.now();
    const probe = await probeRuntime({ binary: await findBinary(), workDir: work });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(probe.flavor).toBe("apptainer");
    expect(probe.version).toMatch(/^\d+\.\d+/);
    expect(Object.keys(probe.capabilities).sort()).toEqual([...CAPABILITY_NAMES].sort());
    for (const [name, status] of Object.entries(probe.capabilities)) {
      if (!status.supported) expect(status.reason.length, name).toBeGreaterThan(10);
    }
    console.log(`[probe] ${probe.durationMs} ms`, probe.details, JSON.stringify(probe.capabilities));
    // Measured facts of this machine: Apptainer >= 1.1 has --no-eval; network none works; no GPU;
    // ports are never published; exec (nsenter) works as root.
    expect(probe.render.noEval).toBe(true);
    expect(probe.capabilities["network-none"].supported).toBe(true);
    expect(probe.capabilities["network-host"].supported).toBe(true);
    expect(probe.capabilities.ports.supported).toBe(false);
    expect(probe.capabilities.gpu).toEqual({
      supported: false,
      reason: expect.stringMatching(/no GPU found/),
    });
    expect(probe.capabilities.exec.supported).toBe(true);
    // The mode is measured: root without a user namespace as root, a user namespace otherwise
    // (Debian's apptainer has no setuid support: APPTAINER_SUID_INSTALL=0).
    const root = process.getuid?.() === 0;
    expect(probe.privilege).toBe(root ? "root" : "userns");
    expect(probe.render.userns).toBe(!root);
    expect(probe.details.setuidInstall).toBe("false");
  });

  it("with userns: true uses --userns and still runs", async () => {
    const probe = await probeRuntime({
      binary: await findBinary(),
      workDir: await mkdtemp(join(work, "u-")),
      userns: true,
    });
    expect(probe.render.userns).toBe(true);
    expect(probe.privilege).toBe("userns");
    expect(probe.details.mode).toBe("user namespace (--userns)");
    expect(probe.render.dockerCaps).toBe(false);
    expect(probe.capabilities.user.supported).toBe(false);
  });

  it("is measured once per executor, however many ask at once", async () => {
    const executor = new ApptainerExecutor({ cacheDir: join(work, "cache") });
    try {
      const [a, b] = await Promise.all([executor.info(), executor.info()]);
      expect(a.details.probeMs).toBe(b.details.probeMs);
      expect(executor.probe()).toBe(executor.probe());
      expect(a.runtime).toBe("apptainer");
      expect(a.privilege).toBe((await executor.probe()).privilege);
      expect(a.details.binary).toMatch(/apptainer$/);
    } finally {
      await executor.close();
    }
  });

  it("never hangs: a runtime that does not answer fails the probe within its timeout", async () => {
    // A fake "apptainer" that sleeps: every probe run times out.
    const { writeFile, chmod } = await import("node:fs/promises");
    const fake = join(work, "sleepy-apptainer");
    await writeFile(fake, "#!/bin/sh\nexec sleep 30\n");
    await chmod(fake, 0o755);
    const started = Date.now();
    await expect(
      probeRuntime({ binary: fake, workDir: await mkdtemp(join(work, "s-")), timeoutMs: 300 }),
    ).rejects.toMatchObject({
      code: "E_RUNTIME_UNAVAILABLE",
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
