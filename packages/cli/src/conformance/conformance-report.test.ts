import { describe, expect, it } from "vitest";
import {
  type CaseOutcome,
  formatJunit,
  formatTable,
  formatTap,
  splitSkipReason,
  summaryLine,
} from "./conformance-report.js";

const cases: CaseOutcome[] = [
  { name: "exit > code 7", state: "passed", durationMs: 120 },
  { name: "resources > memory limit", state: "skipped", reason: "memory-limit: needs <cgroups> & root" },
  { name: "kill # grace", state: "failed", reason: 'expected 143, got "0"', durationMs: 2000 },
];

describe("conformance reports", () => {
  it("splits the reason out of a skipped case's title", () => {
    expect(splitSkipReason("memory limit (skipped: needs memory-limit: no cgroup)")).toEqual({
      name: "memory limit",
      reason: "needs memory-limit: no cgroup",
    });
    expect(splitSkipReason("plain")).toEqual({ name: "plain" });
  });

  it("counts", () => expect(summaryLine(cases)).toBe("1 passed, 1 failed, 1 skipped"));

  it("prints a table with reasons", () => {
    expect(formatTable("docker", cases)).toBe(
      [
        "docker",
        "",
        "pass  exit > code 7",
        "skip  resources > memory limit",
        "        memory-limit: needs <cgroups> & root",
        "FAIL  kill # grace",
        '        expected 143, got "0"',
        "",
        "1 passed, 1 failed, 1 skipped",
        "",
      ].join("\n"),
    );
  });

  it("prints TAP 13", () => {
    expect(formatTap(cases)).toBe(
      [
        "TAP version 13",
        "1..3",
        "ok 1 - exit > code 7",
        "ok 2 - resources > memory limit # SKIP memory-limit: needs <cgroups> & root",
        "not ok 3 - kill \\# grace",
        "  ---",
        '  message: "expected 143, got \\"0\\""',
        "  ...",
        "# 1 passed, 1 failed, 1 skipped",
        "",
      ].join("\n"),
    );
  });

  it("prints JUnit XML with escaped text", () => {
    const out = formatJunit("docker", cases);
    expect(out).toContain('<testsuite name="docker" tests="3" failures="1" skipped="1" time="2.120">');
    expect(out).toContain('<skipped message="memory-limit: needs &#60;cgroups&#62; &#38; root"/>');
    expect(out).toContain('<failure message="expected 143, got &#34;0&#34;"/>');
  });
});
