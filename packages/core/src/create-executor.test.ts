import { describe, expect, it } from "vitest";
import { createExecutor, knownRuntimes, registerBackend } from "./create-executor.js";
import type { ContainerExecutor } from "./executor.js";

describe("createExecutor", () => {
  it("refuses a config without a runtime, or an unknown runtime, listing the known ones", async () => {
    await expect(createExecutor({} as never)).rejects.toMatchObject({ code: "E_INVALID_CONFIG" });
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
    await expect(createExecutor({ runtime: "docker", bogus: true })).rejects.toThrow(
      /unknown docker executor option "bogus"/,
    );
  });
});
