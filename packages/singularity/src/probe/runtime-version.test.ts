import { describe, expect, it } from "vitest";
import { configPrefixOf, envPrefixOf, parseRuntimeVersion, versionAtLeast } from "./runtime-version.js";

describe("parseRuntimeVersion", () => {
  it.each([
    ["apptainer version 1.4.5", "apptainer", "1.4.5", [1, 4, 5]],
    ["apptainer version 1.3.0-rc.2", "apptainer", "1.3.0-rc.2", [1, 3, 0]],
    ["singularity-ce version 4.1.2-jammy", "singularityce", "4.1.2-jammy", [4, 1, 2]],
    ["SingularityCE version 3.11.4", "singularityce", "3.11.4", [3, 11, 4]],
    ["singularity version 3.7.1", "singularity", "3.7.1", [3, 7, 1]],
    ["2.6.1-dist", "singularity", "2.6.1-dist", [2, 6, 1]],
    ["apptainer version v1.2", "apptainer", "1.2", [1, 2, 0]],
  ] as const)("reads %j", (output, flavor, version, [major, minor, patch]) => {
    expect(parseRuntimeVersion(`${output}\n`)).toEqual({ flavor, version, major, minor, patch });
  });

  it("skips lines before the version (warnings)", () => {
    expect(parseRuntimeVersion("WARNING: something\napptainer version 1.1.9\n").version).toBe("1.1.9");
  });

  it("throws RuntimeUnavailableError for output that holds no version", () => {
    expect(() => parseRuntimeVersion("bash: apptainer: command not found", "/usr/bin/apptainer")).toThrow(
      /cannot read the version of \/usr\/bin\/apptainer/,
    );
  });
});

describe("versions and prefixes", () => {
  it("compares major.minor", () => {
    const v = parseRuntimeVersion("apptainer version 1.4.5");
    expect(versionAtLeast(v, 1, 1)).toBe(true);
    expect(versionAtLeast(v, 1, 4)).toBe(true);
    expect(versionAtLeast(v, 1, 5)).toBe(false);
    expect(versionAtLeast(v, 2, 0)).toBe(false);
  });

  it("names the environment and settings prefixes of each flavor", () => {
    expect(envPrefixOf("apptainer")).toBe("APPTAINERENV_");
    expect(envPrefixOf("singularityce")).toBe("SINGULARITYENV_");
    expect(configPrefixOf("apptainer")).toBe("APPTAINER_");
    expect(configPrefixOf("singularity")).toBe("SINGULARITY_");
  });
});
