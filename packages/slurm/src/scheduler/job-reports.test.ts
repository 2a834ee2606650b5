import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  isUnknownJobError,
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
  sacctArgs,
  squeueArgs,
} from "./job-reports.js";

const recorded = (name: string) => readFileSync(new URL(`./recorded/${name}`, import.meta.url), "utf8");

describe("parseSacct (slurm 22.05, recorded)", () => {
  it("reads state, exit code and signal, node and reason of each job", () => {
    const reports = parseSacct(recorded("sacct-22.05.txt"));
    expect(reports.map((r) => [r.jobId, r.state, r.exitCode, r.exitSignal, r.nodes, r.reason])).toEqual([
      ["1", "FAILED", 3, 0, "vm", "None"],
      ["4", "COMPLETED", 0, 0, "vm", "None"],
      ["5", "OUT_OF_MEMORY", 0, 125, "vm", "None"],
      ["6", "TIMEOUT", 0, 9, "vm", "None"],
      ["7", "RUNNING", 0, 0, "vm", "None"],
      ["8", "PENDING", 0, 0, "", "JobHeldUser"],
      ["9", "CANCELLED", 0, 0, "vm", "None"],
      ["15", "FAILED", 0, 9, "vm", "None"],
    ]);
  });

  it("skips blank lines, step lines and noise", () => {
    expect(parseSacct("\n1.batch|COMPLETED|0:0|vm|None\nsacct: error: x\n")).toEqual([]);
  });
});

describe("parseSqueue (slurm 22.05, recorded)", () => {
  it("reads the raw wait status as exit code and signal", () => {
    const reports = parseSqueue(recorded("squeue-22.05.txt"));
    expect(reports.map((r) => [r.jobId, r.state, r.exitCode, r.exitSignal, r.nodes])).toEqual([
      ["9", "CANCELLED", 0, 15, "vm"],
      ["1", "FAILED", 3, 0, "vm"],
      ["15", "FAILED", 0, 9, "vm"],
      ["8", "PENDING", 0, 0, ""],
      ["7", "RUNNING", 0, 0, "vm"],
      ["11", "COMPLETING", 0, 0, "vm"],
    ]);
  });
});

describe("parseScontrolJobs (slurm 22.05, recorded)", () => {
  it("reads the fields of each one-line job record", () => {
    const reports = parseScontrolJobs(recorded("scontrol-job-22.05.txt"));
    expect(reports).toEqual([
      { jobId: "6", state: "TIMEOUT", exitCode: 0, exitSignal: 9, nodes: "vm", reason: "TimeLimit" },
      { jobId: "8", state: "PENDING", exitCode: 0, exitSignal: 0, nodes: "", reason: "JobHeldUser" },
    ]);
  });
});

describe("scheduler arguments", () => {
  it("ask for every job of the list in one call", () => {
    expect(sacctArgs(["1", "22", "333"])).toContain("--jobs=1,22,333");
    expect(sacctArgs(["1"])).toContain("--allocations");
    expect(squeueArgs(["1", "2"])).toEqual(expect.arrayContaining(["--states=all", "--jobs=1,2"]));
  });

  it("tell an unknown job id from other failures", () => {
    expect(isUnknownJobError("slurm_load_jobs error: Invalid job id specified\n")).toBe(true);
    expect(
      isUnknownJobError("slurm_load_jobs error: Unable to contact slurm controller (connect failure)"),
    ).toBe(false);
  });
});
