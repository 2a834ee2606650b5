import { describe, expect, it } from "vitest";
import {
  createExecutor,
  type ExecutorConfig,
  knownRuntimes,
  registerBackend,
  validateExecutorConfig,
} from "./create-executor.js";
import type { ContainerExecutor } from "./executor.js";

// A third-party runtime, made known to the type of createExecutor's config as its README says.
declare module "./create-executor.js" {
  interface ExecutorConfigRegistry {
    mine: { runtime: "mine"; option: number };
  }
}

describe("createExecutor", () => {
  it("refuses a config without a runtime, or an unknown runtime, listing the known ones", async () => {
    await expect(createExecutor({} as never)).rejects.toMatchObject({ code: "E_INVALID_CONFIG" });
    // @ts-expect-error a runtime nobody registered does not compile
    await expect(createExecutor({ runtime: "podman" })).rejects.toThrow(
      /unknown runtime "podman"; known: .*apptainer.*docker/,
    );
  });

  it("uses a registered backend, handing it the whole config", async () => {
    const fake = { runtime: "mine" } as ContainerExecutor;
    let seen: unknown;
    registerBackend("mine", {
      createBackend: (config) => {
        seen = config;
        return fake;
      },
    });
    expect(await createExecutor({ runtime: "mine", option: 1 })).toBe(fake);
    expect(seen).toEqual({ runtime: "mine", option: 1 });
    expect(knownRuntimes()).toContain("mine");
  });

  it("loads the docker backend package only when asked for it", async () => {
    const executor = await createExecutor({ runtime: "docker", socketPath: "/nonexistent.sock" });
    expect(executor.runtime).toBe("docker");
    // @ts-expect-error a misspelt option does not compile; at run time the backend refuses it too
    await expect(createExecutor({ runtime: "docker", bogus: true })).rejects.toThrow(
      /invalid docker executor config: unknown option "bogus"/,
    );
  });

  it("validates a config without creating anything, listing every problem", async () => {
    await expect(
      validateExecutorConfig({ runtime: "apptainer", cacheDir: 3, probeTimeoutMs: -1, bogus: 1 }),
    ).rejects.toThrow(
      /unknown option "bogus".*cacheDir must be a non-empty string.*probeTimeoutMs must be a positive number/,
    );
    await expect(validateExecutorConfig({ runtime: "docker", requestTimeoutMs: "5" })).rejects.toMatchObject({
      code: "E_INVALID_CONFIG",
    });
    await expect(validateExecutorConfig({ runtime: "dokcer" })).rejects.toThrow(/unknown runtime "dokcer"/);
    await expect(
      validateExecutorConfig({ runtime: "apptainer", cacheDir: "/tmp/x" }),
    ).resolves.toBeUndefined();
  });

  it("types each runtime's options: misspelt runtimes and options are compile errors", () => {
    const good: ExecutorConfig[] = [
      { runtime: "docker", socketPath: "/run/docker.sock", requestTimeoutMs: 5000 },
      { runtime: "apptainer", converter: "native", userns: true },
      { runtime: "singularity", binary: "/usr/bin/singularity" },
      { runtime: "slurm", inner: "apptainer", slurm: { workDir: "/shared", partition: "debug" } },
      {
        runtime: "slurm",
        inner: "docker",
        slurm: { workDir: "/shared" },
        innerConfig: { requestTimeoutMs: 5000 },
      },
    ];
    // @ts-expect-error "dokcer" is no runtime
    const misspeltRuntime: ExecutorConfig = { runtime: "dokcer" };
    // @ts-expect-error Docker has no cacheDir
    const wrongOption: ExecutorConfig = { runtime: "docker", cacheDir: "/x" };
    // @ts-expect-error slurm needs its inner runtime
    const noInner: ExecutorConfig = { runtime: "slurm" };
    // @ts-expect-error converter is a name or an object
    const badConverter: ExecutorConfig = { runtime: "apptainer", converter: "fast" };
    // @ts-expect-error slurm needs a shared workDir
    const noWorkDir: ExecutorConfig = { runtime: "slurm", inner: "docker", slurm: { partition: "debug" } };
    const innerMismatch: ExecutorConfig = {
      runtime: "slurm",
      inner: "docker",
      slurm: { workDir: "/shared" },
      // @ts-expect-error Apptainer's options do not go to Docker
      innerConfig: { userns: true },
    };
    expect([
      good,
      misspeltRuntime,
      wrongOption,
      noInner,
      badConverter,
      noWorkDir,
      innerMismatch,
    ]).toHaveLength(7);
  });
});
