import { describe, expect, it } from "vitest";
import { UsageError } from "../exit-codes.js";
import { chooseRuntime } from "./choose-runtime.js";

describe("chooseRuntime", () => {
  const job = { name: "apptainer", options: { userns: true } };
  it("takes --runtime, else the job's, else $CONTEXEC_RUNTIME, else docker", () => {
    expect(chooseRuntime("docker", job, { CONTEXEC_RUNTIME: "singularity" }).name).toBe("docker");
    expect(chooseRuntime(undefined, job, { CONTEXEC_RUNTIME: "singularity" }).name).toBe("apptainer");
    expect(chooseRuntime(undefined, undefined, { CONTEXEC_RUNTIME: "singularity" }).name).toBe("singularity");
    expect(chooseRuntime(undefined, undefined, {}).name).toBe("docker");
  });

  it("gives the job's backend options only to the backend they were written for", () => {
    expect(chooseRuntime("singularity", job, {})).toEqual({
      name: "singularity",
      config: { runtime: "singularity", userns: true },
      ignoredOptions: false,
    });
    expect(chooseRuntime("docker", job, {})).toEqual({
      name: "docker",
      config: { runtime: "docker" },
      ignoredOptions: true,
    });
  });

  it("refuses a runtime nobody knows", () => {
    expect(() => chooseRuntime("podman", undefined, {})).toThrow(UsageError);
  });
});
