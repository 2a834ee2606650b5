import { describe, expect, it } from "vitest";
import type { JobReport } from "./job-reports.js";
import { exitStatusOf, parseExitFile, viewOf } from "./job-state.js";

const report = (state: string, exitCode = 0, exitSignal = 0): JobReport => ({
  jobId: "42",
  state,
  exitCode,
  exitSignal,
  nodes: "node1",
  reason: "None",
});

describe("viewOf", () => {
  it.each([
    ["PENDING", "pending"],
    ["CONFIGURING", "pending"],
    ["PREEMPTED", "pending"],
    ["REQUEUED", "pending"],
    ["RUNNING", "running"],
    ["COMPLETING", "running"],
    ["COMPLETED", "finished"],
    ["FAILED", "finished"],
    ["CANCELLED", "finished"],
    ["TIMEOUT", "finished"],
    ["OUT_OF_MEMORY", "finished"],
    ["NODE_FAIL", "broken"],
    ["BOOT_FAIL", "broken"],
    ["SOMETHING_NEW", "unknown"],
  ])("%s is %s", (state, kind) => {
    expect(viewOf(report(state)).kind).toBe(kind);
  });

  it("a job the scheduler did not mention is unknown, never failed", () => {
    expect(viewOf(undefined)).toEqual({ kind: "unknown" });
  });
});

describe("exitStatusOf", () => {
  it("COMPLETED and FAILED give the exit file's code", () => {
    expect(exitStatusOf(report("FAILED", 42), { phase: "container", code: 42, oom: false })).toEqual({
      exitCode: 42,
      oomKilled: false,
      jobId: "42",
      jobState: "FAILED",
    });
    expect(exitStatusOf(report("FAILED", 137), { phase: "container", code: 137, oom: false })).toMatchObject({
      exitCode: 137,
      signal: "SIGKILL",
    });
    expect(exitStatusOf(report("COMPLETED"), { phase: "container", code: 0, oom: false })).toMatchObject({
      exitCode: 0,
    });
  });

  it("without the file, falls back to the scheduler's ExitCode (code:signal)", () => {
    expect(exitStatusOf(report("FAILED", 3, 0), undefined)).toMatchObject({ exitCode: 3 });
    expect(exitStatusOf(report("FAILED", 0, 9), undefined)).toMatchObject({
      exitCode: 137,
      signal: "SIGKILL",
    });
    expect(exitStatusOf(report("COMPLETED", 0, 0), undefined)).toMatchObject({ exitCode: 0 });
  });

  it("CANCELLED gives the signal (what kill() sent, else SIGKILL), or the container's code when it got to exit", () => {
    expect(exitStatusOf(report("CANCELLED"), undefined, "SIGTERM")).toMatchObject({
      exitCode: 143,
      signal: "SIGTERM",
      reason: "cancelled",
    });
    expect(exitStatusOf(report("CANCELLED"), undefined)).toMatchObject({
      signal: "SIGKILL",
      reason: "cancelled",
    });
    expect(exitStatusOf(report("CANCELLED"), { phase: "container", code: 3, oom: false })).toMatchObject({
      exitCode: 3,
      reason: "cancelled",
    });
  });

  it("TIMEOUT has the time-limit reason and the signal", () => {
    expect(exitStatusOf(report("TIMEOUT", 0, 9), undefined)).toEqual({
      exitCode: 137,
      signal: "SIGKILL",
      oomKilled: false,
      jobId: "42",
      jobState: "TIMEOUT",
      reason: "time-limit",
    });
    expect(exitStatusOf(report("TIMEOUT", 0, 0), undefined)).toMatchObject({ signal: "SIGTERM" });
    expect(
      exitStatusOf(report("TIMEOUT", 0, 9), { phase: "container", code: 143, oom: false }),
    ).toMatchObject({
      exitCode: 143,
      signal: "SIGTERM",
      reason: "time-limit",
    });
  });

  it("an OOM kill counted by the container's own cgroup is oomKilled, whatever the job's state", () => {
    expect(exitStatusOf(report("FAILED", 137), { phase: "container", code: 137, oom: true })).toMatchObject({
      exitCode: 137,
      signal: "SIGKILL",
      oomKilled: true,
      reason: "out-of-memory",
    });
  });

  it("OUT_OF_MEMORY is oomKilled", () => {
    expect(exitStatusOf(report("OUT_OF_MEMORY", 0, 125), undefined)).toMatchObject({
      exitCode: 137,
      oomKilled: true,
      reason: "out-of-memory",
    });
    expect(exitStatusOf(report("OUT_OF_MEMORY"), { phase: "container", code: 1, oom: false })).toMatchObject({
      exitCode: 1,
      oomKilled: true,
    });
  });
});

describe("parseExitFile", () => {
  it("reads a whole status file and refuses a partial or foreign one", () => {
    expect(parseExitFile("phase=container\ncode=7\noom=0\n")).toEqual({
      phase: "container",
      code: 7,
      oom: false,
    });
    expect(parseExitFile("phase=container\ncode=137\noom=1\n")).toEqual({
      phase: "container",
      code: 137,
      oom: true,
    });
    expect(parseExitFile("phase=setup\ncode=125\n")).toEqual({ phase: "setup", code: 125, oom: false });
    expect(parseExitFile("phase=container\ncode=7")).toBeUndefined();
    expect(parseExitFile("phase=container\n")).toBeUndefined();
    expect(parseExitFile("")).toBeUndefined();
    expect(parseExitFile("phase=other\ncode=1\n")).toBeUndefined();
  });
});
