import { describe, expect, it } from "vitest";
import { selectedRuntimes } from "./runtimes.js";

describe("CONTEXEC_RUNTIMES", () => {
  it("names the runtimes to test; unset or empty leaves it to detection", () => {
    expect(selectedRuntimes({})).toBeUndefined();
    expect(selectedRuntimes({ CONTEXEC_RUNTIMES: " " })).toBeUndefined();
    expect(selectedRuntimes({ CONTEXEC_RUNTIMES: "apptainer" })).toEqual(["apptainer"]);
    expect(selectedRuntimes({ CONTEXEC_RUNTIMES: "docker, apptainer" })).toEqual(["docker", "apptainer"]);
    expect(selectedRuntimes({ CONTEXEC_RUNTIMES: "docker,apptainer,slurm" })).toEqual([
      "docker",
      "apptainer",
      "slurm",
    ]);
  });

  it("refuses a name it does not know, saying which are known", () => {
    expect(() => selectedRuntimes({ CONTEXEC_RUNTIMES: "docker,podman" })).toThrow(
      'CONTEXEC_RUNTIMES names "podman"; known: docker, apptainer, slurm',
    );
  });
});
