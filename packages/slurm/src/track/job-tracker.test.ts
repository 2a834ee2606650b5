import { describe, expect, it } from "vitest";
import { nextPollInterval } from "./job-tracker.js";

describe("nextPollInterval", () => {
  const limits = { intervalMs: 1000, maxIntervalMs: 30_000 };

  it("doubles while nothing changes, up to the longest pause", () => {
    let interval = limits.intervalMs;
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      interval = nextPollInterval(interval, false, limits);
      seen.push(interval);
    }
    expect(seen).toEqual([2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("is the shortest again after a change", () => {
    expect(nextPollInterval(16_000, true, limits)).toBe(1000);
  });

  it("never goes below the shortest pause", () => {
    expect(nextPollInterval(10, false, limits)).toBe(1000);
  });
});
