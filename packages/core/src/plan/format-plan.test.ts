import { describe, expect, it } from "vitest";
import { formatPlan } from "./format-plan.js";
import type { RunPlan } from "./run-plan.js";

function plan(argv: string[]): RunPlan {
  return {
    planVersion: 1,
    runtime: "docker",
    profile: {
      runtime: "docker",
      flavor: "docker",
      version: "1",
      privilege: "daemon",
      host: { hostname: "h", uid: 0, gid: 0, kernel: "k", arch: "x64" },
    },
    spec: { image: "sha256:x" },
    image: { id: `sha256:${"0".repeat(64)}`, tags: [], action: "present" },
    before: [],
    command: { argv: ["docker", "run", "img", ...argv], env: {}, cwd: "/", stdin: false },
    process: { argv, workdir: "/", env: {} },
    after: [],
    ignored: [],
    notes: [],
  };
}

describe("formatPlan", () => {
  it("keeps a multi-line argument of the container's command inside comments in the header", () => {
    const script = formatPlan(plan(["sh", "-c", "echo one\ntouch /tmp/should-not-run\r\necho three"]));
    const header = script.split("set -u\n")[0] as string;
    for (const line of header.split("\n").filter(Boolean)) expect(line).toMatch(/^(#!|# )/);
    // The command itself carries the newlines inside one quoted word.
    expect(script).toContain("'echo one\ntouch /tmp/should-not-run\r\necho three' </dev/null\n");
  });
});
