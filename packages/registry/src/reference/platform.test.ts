import { describe, expect, it } from "vitest";
import { formatPlatform, hostPlatform, parsePlatform, selectPlatform } from "./platform.js";

describe("platforms", () => {
  it("names this kind of machine as OCI does", () => {
    expect(hostPlatform("x64", "linux")).toEqual({ os: "linux", architecture: "amd64" });
    expect(hostPlatform("arm64", "linux")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(hostPlatform("arm", "linux", "6")).toEqual({ os: "linux", architecture: "arm", variant: "v6" });
    expect(hostPlatform("ppc64", "linux")).toEqual({ os: "linux", architecture: "ppc64le" });
  });

  it("parses and normalises os/arch/variant", () => {
    expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("linux/aarch64")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(parsePlatform("linux/arm/7")).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(formatPlatform(parsePlatform("linux/arm64/v8"))).toBe("linux/arm64/v8");
    expect(() => parsePlatform("amd64")).toThrow(/os\/arch/);
    expect(() => parsePlatform("linux/amd64/v1/x")).toThrow(/os\/arch/);
  });

  it("picks an index entry by os, architecture and variant", () => {
    const index = [
      { os: "linux", architecture: "arm", variant: "v6" },
      { os: "linux", architecture: "arm", variant: "v7" },
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "arm64", variant: "v8" },
      undefined,
      { os: "unknown", architecture: "unknown" },
    ];
    expect(selectPlatform(index, { os: "linux", architecture: "amd64" })).toBe(2);
    expect(selectPlatform(index, { os: "linux", architecture: "arm", variant: "v7" })).toBe(1);
    expect(selectPlatform(index, { os: "linux", architecture: "arm64" })).toBe(3);
    expect(selectPlatform(index, { os: "linux", architecture: "s390x" })).toBe(-1);
    expect(selectPlatform(index, { os: "windows", architecture: "amd64" })).toBe(-1);
    // An entry without a variant serves any variant of its architecture.
    expect(
      selectPlatform([{ os: "linux", architecture: "arm64" }], { os: "linux", architecture: "arm64" }),
    ).toBe(0);
    expect(
      selectPlatform([{ os: "linux", architecture: "arm" }], {
        os: "linux",
        architecture: "arm",
        variant: "v5",
      }),
    ).toBe(0);
    // An index of one image that names no platform.
    expect(selectPlatform([undefined], { os: "linux", architecture: "amd64" })).toBe(0);
  });
});
