import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { describePlan, formatPlan } from "./format-plan.js";
import type { RunPlan } from "./run-plan.js";

const argv = ["/bin/sh", "-c", 'printf "[%s]" "$@"', "sh", "new\nline", "it's"];
const plan: RunPlan = {
  planVersion: 1,
  runtime: "test",
  profile: {
    runtime: "test",
    flavor: "sh",
    version: "1",
    privilege: "root",
    host: { hostname: "h", uid: 0, gid: 0, kernel: "k", arch: "x64" },
  },
  spec: { image: "x" },
  image: { id: `sha256:${"0".repeat(64)}`, tags: [], action: "present" },
  before: [],
  command: { argv, env: { PATH: "/usr/bin:/bin" }, cwd: "/", stdin: false },
  process: { argv, workdir: "/", env: {} },
  after: [],
  ignored: [],
  notes: [],
};

describe("formatPlan", () => {
  it("keeps an argument with a line break inside the header comment: the script still runs", () => {
    expect(describePlan(plan).every((l) => !l.includes("\n"))).toBe(true);
    expect(execFileSync("bash", ["-c", formatPlan(plan)], { encoding: "utf8" })).toBe("[new\nline][it's]");
  });
});
