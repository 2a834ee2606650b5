import { describe, expect, it } from "vitest";
import {
  describeProgress,
  formatBytes,
  formatProgressBar,
  formatSeconds,
  ProgressReporter,
} from "./progress-line.js";

describe("progress formatting", () => {
  it.each([
    [0, "0 B"],
    [1023, "1023 B"],
    [1536, "1.50 KiB"],
    [56_200_000, "53.6 MiB"],
    [5 * 1024 ** 3, "5.00 GiB"],
  ])("formatBytes(%d)", (n, s) => expect(formatBytes(n)).toBe(s));

  it.each([
    [3.4, "3s"],
    [65, "1m05s"],
    [3720, "1h02m"],
  ])("formatSeconds(%d)", (n, s) => expect(formatSeconds(n)).toBe(s));

  it("gives bytes, rate and ETA", () => {
    const MiB = 1024 ** 2;
    expect(describeProgress({ done: 10 * MiB, total: 40 * MiB, elapsedMs: 2000 })).toBe(
      "10.0 MiB / 40.0 MiB  5.00 MiB/s  ETA 6s",
    );
    expect(describeProgress({ done: 10 * MiB, total: undefined, elapsedMs: 1000 })).toBe(
      "10.0 MiB  10.0 MiB/s",
    );
  });

  it("draws a bar that fits the width", () => {
    const line = formatProgressBar("convert", { done: 50, total: 100, elapsedMs: 1000 }, 80);
    expect(line).toBe("convert [###############...............]  50%  50 B / 100 B  50 B/s  ETA 1s");
    expect(formatProgressBar("convert", { done: 50, total: 100, elapsedMs: 1000 }, 20)).toHaveLength(20);
  });

  it("writes plain lines, one per tenth, when not on a terminal", () => {
    const written: string[] = [];
    const out = { write: (s: string) => written.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const r = new ProgressReporter(out, "convert");
    for (let done = 0; done <= 100; done += 5) r.update(done, 100);
    r.finish();
    expect(written).toHaveLength(11);
    expect(written.every((l) => l.startsWith("convert: ") && l.endsWith("\n"))).toBe(true);
    expect(written[10]).toMatch(/^convert: 100% {2}100 B \/ 100 B/);
  });
});
