import { describe, expect, it } from "vitest";
import { classifyInnerFailure } from "./inner-failure.js";

describe("classifyInnerFailure", () => {
  it("reads Apptainer's FATAL lines (1.4)", () => {
    expect(
      classifyInnerFailure(
        "apptainer",
        255,
        'FATAL:   "nosuch": executable file not found in $PATH\n',
        "nosuch",
      ),
    ).toEqual({
      kind: "command-not-found",
      command: "nosuch",
      message: '"nosuch": executable file not found in $PATH',
    });
    expect(classifyInnerFailure("apptainer", 3, "FATAL: not ours\n", "sh")).toBeUndefined();
  });

  it("reads docker run's and tini's messages", () => {
    expect(
      classifyInnerFailure(
        "docker",
        127,
        "[FATAL tini (7)] exec nosuch failed: No such file or directory\n",
        "nosuch",
      ),
    ).toEqual({ kind: "command-not-found", command: "nosuch", message: "No such file or directory" });
    expect(
      classifyInnerFailure(
        "docker",
        125,
        "docker: Error response from daemon: invalid mount config.\nSee 'docker run --help'.\n",
        "x",
      ),
    ).toEqual({ kind: "runtime", message: "Error response from daemon: invalid mount config." });
    expect(classifyInnerFailure("docker", 127, "sh: nosuch: not found\n", "sh")).toBeUndefined();
    expect(classifyInnerFailure("docker", 125, "", "x")).toBeUndefined();
  });
});
