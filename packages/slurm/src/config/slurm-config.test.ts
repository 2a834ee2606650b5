import { validateExecutorConfig } from "@contexec/core";
import { describe, expect, it } from "vitest";
import { resolveSlurmConfig } from "./slurm-config.js";

const base = { runtime: "slurm", inner: "apptainer", slurm: { workDir: "/shared/contexec" } };

describe("resolveSlurmConfig", () => {
  it("fills in the defaults", () => {
    const r = resolveSlurmConfig(base);
    expect(r.inner).toBe("apptainer");
    expect(r.slurm).toMatchObject({
      workDir: "/shared/contexec",
      sharedCacheDir: "/shared/contexec/images",
      tracking: "auto",
      pollIntervalMs: 2000,
      maxPollIntervalMs: 30_000,
      signalBeforeLimitSec: 60,
      runtimeMemoryMiB: 64,
      startWaitsForRunning: true,
      extra: {},
    });
  });

  it("lists every problem in one InvalidConfigError, saying what to fix", () => {
    let error: unknown;
    try {
      resolveSlurmConfig({
        runtime: "slurm",
        inner: "podman",
        colour: "blue",
        innerConfig: { runtime: "docker" },
        slurm: {
          workDir: "relative/dir",
          sharedCacheDir: "/ok",
          partition: "two\nlines",
          timeLimit: "1h",
          extra: { output: "/x", "Bad Name": "x", constraint: { a: 1 } },
          tracking: "sometimes",
          pollIntervalMs: -1,
          nodeProbeCommand: [],
          speed: 3,
        },
      });
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: "E_INVALID_CONFIG" });
    const message = (error as Error).message;
    for (const part of [
      'unknown option "colour"',
      "inner must be one of apptainer, docker",
      "innerConfig must not name a runtime",
      'unknown option "slurm.speed"',
      "slurm.partition must be a non-empty single-line string",
      "slurm.workDir must be an absolute path",
      'slurm.timeLimit: "1h" is not a SLURM time',
      "slurm.extra.output: the executor sets --output itself",
      "slurm.extra.Bad Name: an option name is lower-case",
      "slurm.extra.constraint must be a single-line string",
      "slurm.tracking must be one of auto, sacct, squeue",
      "slurm.pollIntervalMs must be a positive number",
      "slurm.nodeProbeCommand must be a non-empty argv",
    ]) {
      expect(message).toContain(part);
    }
  });

  it("has the inner backend check innerConfig, and keeps the SIF cache the shared one", () => {
    expect(() => resolveSlurmConfig({ ...base, innerConfig: { userns: "yes", colour: 1 } })).toThrow(
      /innerConfig, as the apptainer backend reads it: invalid apptainer executor config: unknown option "colour".*userns must be a boolean/,
    );
    expect(() =>
      resolveSlurmConfig({ ...base, inner: "docker", innerConfig: { requestTimeoutMs: "5" } }),
    ).toThrow(/innerConfig, as the docker backend reads it: .*requestTimeoutMs/);
    expect(() => resolveSlurmConfig({ ...base, innerConfig: { cacheDir: "/elsewhere" } })).toThrow(
      "innerConfig.cacheDir: the SIF cache is the shared one",
    );
    expect(resolveSlurmConfig({ ...base, innerConfig: { userns: true } }).innerConfig).toEqual({
      userns: true,
    });
  });

  it("is what core's validateExecutorConfig runs for runtime slurm", async () => {
    await expect(
      validateExecutorConfig({ ...base, innerConfig: { probeTimeoutMs: -1 } }),
    ).rejects.toMatchObject({ code: "E_INVALID_CONFIG", message: expect.stringContaining("probeTimeoutMs") });
    await expect(validateExecutorConfig({ ...base, innerConfig: { userns: true } })).resolves.toBeUndefined();
  });

  it("refuses a workDir sbatch would read as a file pattern", () => {
    expect(() => resolveSlurmConfig({ ...base, slurm: { workDir: "/shared/100%" } })).toThrow(
      /must not hold %/,
    );
  });
});
