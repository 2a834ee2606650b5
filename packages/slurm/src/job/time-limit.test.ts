import { describe, expect, it } from "vitest";
import { parseTimeLimit, signalLeadSeconds, timeLimitOption } from "./time-limit.js";

describe("parseTimeLimit", () => {
  it.each([
    ["30", 1800],
    ["1:30", 90],
    ["1:30:00", 5400],
    ["2-0", 172_800],
    ["1-2:3", 93_780],
    ["1-02:03:04", 93_784],
    [" 5 ", 300],
  ])("%s is %i s", (text, seconds) => {
    expect(parseTimeLimit(text)).toBe(seconds);
  });

  it("reads a number as minutes", () => {
    expect(parseTimeLimit(2)).toBe(120);
    expect(parseTimeLimit(0.5)).toBe(30);
  });

  it("reads 0, UNLIMITED and INFINITE as no limit", () => {
    for (const v of ["0", "UNLIMITED", "infinite", 0] as const) expect(parseTimeLimit(v)).toBe(Infinity);
  });

  it("refuses what sbatch would refuse, saying which forms work", () => {
    for (const bad of ["", "1h", "1:2:3:4", "-5", "a-1", "1--2"]) {
      expect(() => parseTimeLimit(bad)).toThrow(/not a SLURM time .*UNLIMITED/);
    }
    expect(() => parseTimeLimit(-1)).toThrow(/0 \(no limit\) or more/);
    expect(() => parseTimeLimit(Number.NaN)).toThrow();
  });
});

describe("timeLimitOption", () => {
  it("passes SLURM's own form through and rounds minutes up", () => {
    expect(timeLimitOption(" 1-00:00:00 ")).toBe("1-00:00:00");
    expect(timeLimitOption(0.5)).toBe("1");
    expect(timeLimitOption(0)).toBe("0");
  });
});

describe("signalLeadSeconds", () => {
  it("is the wanted lead, at most half the limit, within what --signal accepts", () => {
    expect(signalLeadSeconds(3600, 60)).toBe(60);
    expect(signalLeadSeconds(60, 60)).toBe(30);
    expect(signalLeadSeconds(Infinity, 90)).toBe(90);
    expect(signalLeadSeconds(1, 60)).toBe(1);
    expect(signalLeadSeconds(Infinity, 1e9)).toBe(65_535);
  });
});
