import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidSpecError } from "../errors.js";
import { formatPlan, PLAN_SETUP_FAILED_EXIT } from "./format-plan.js";
import type { RunPlan } from "./run-plan.js";

const HOSTILE = ["", "it's", "$(touch pwned)", "`touch pwned`", "line\nbreak", "*", "-n", "ünï ✓", "A=b"];

/** A plan whose "runtime" is printf: the script's behaviour is then fully visible. */
function planOf(overrides: Partial<RunPlan>): RunPlan {
  return {
    planVersion: 1,
    runtime: "test",
    profile: {
      runtime: "test",
      flavor: "test",
      version: "1",
      privilege: "userns",
      host: { hostname: "h", uid: 1000, gid: 1000, kernel: "6", arch: "x64" },
    },
    spec: { image: `sha256:${"a".repeat(64)}` },
    image: { id: `sha256:${"a".repeat(64)}`, tags: [], action: "present" },
    before: [],
    command: { argv: ["printf", "[%s]\\n", ...HOSTILE], env: {}, cwd: "/", stdin: false },
    process: { argv: HOSTILE, workdir: "/work\ndir", env: { X: "a\nb" } },
    after: [],
    ignored: [],
    notes: ["a note\nwith a newline"],
    ...overrides,
  };
}

function bash(script: string, cwd = "/") {
  const r = spawnSync("bash", ["-c", script], { cwd, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("formatPlan", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("passes every hostile word through exactly, runs nothing of them, and the header stays comments", () => {
    dir = mkdtempSync(join(tmpdir(), "contexec-format-"));
    const script = formatPlan(
      planOf({ command: { argv: ["printf", "[%s]\\n", ...HOSTILE], env: {}, cwd: dir, stdin: false } }),
    );
    expect(execFileSync("bash", ["-n"], { input: script })).toBeDefined();
    const r = bash(script);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(HOSTILE.map((w) => `[${w}]\n`).join(""));
    expect(() => statSync(join(dir as string, "pwned"))).toThrow();
    for (const line of script.split("\n").slice(0, script.split("\n").indexOf("set -u"))) {
      expect(line.startsWith("#")).toBe(true);
    }
  });

  it("gives the command exactly the plan's environment and nothing of the caller's", () => {
    const script = formatPlan(
      planOf({
        command: {
          argv: ["/usr/bin/env"],
          env: { A: "$(x) 'y'", PATH: "/usr/bin:/bin" },
          cwd: "/",
          stdin: false,
        },
      }),
    );
    const r = spawnSync("bash", ["-c", script], {
      env: { ...process.env, SECRET: "leak" },
      encoding: "utf8",
    });
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual(["A=$(x) 'y'", "PATH=/usr/bin:/bin"]);
  });

  it("exits with the command's code, runs the steps before, and the steps after whatever happens", () => {
    dir = mkdtempSync(join(tmpdir(), "contexec-format-"));
    const scratch = join(dir, "scratch dir", "home");
    const script = formatPlan(
      planOf({
        before: [
          { op: "mkdir", path: scratch, mode: 0o700, why: "home" },
          { op: "write", path: join(dir, "limit"), content: "64 $(x)", why: "limit" },
          { op: "write", path: "/nonexistent/dir/file", content: "x", optional: true, why: "optional" },
        ],
        command: {
          argv: ["sh", "-c", 'test -d "$1" && exit 7', "sh", scratch],
          env: { PATH: "/usr/bin:/bin" },
          cwd: "/",
          stdin: false,
        },
        after: [{ op: "remove", path: join(dir, "scratch dir"), why: "scratch" }],
      }),
    );
    const r = bash(script);
    expect(r.code).toBe(7);
    expect(readFileSync(join(dir, "limit"), "utf8")).toBe("64 $(x)");
    expect(() => statSync(join(dir as string, "scratch dir"))).toThrow();
  });

  it("stops with the setup exit code when a step before fails, and still runs the steps after", () => {
    dir = mkdtempSync(join(tmpdir(), "contexec-format-"));
    writeFileSync(join(dir, "a-file"), "");
    const script = formatPlan(
      planOf({
        before: [{ op: "mkdir", path: join(dir, "a-file", "below"), mode: 0o700, why: "fails" }],
        after: [{ op: "remove", path: join(dir, "a-file"), why: "cleanup" }],
      }),
    );
    expect(bash(script).code).toBe(PLAN_SETUP_FAILED_EXIT);
    expect(() => statSync(join(dir as string, "a-file"))).toThrow();
  });

  it("prepares a missing image with the plan's commands, and skips them when it is there", () => {
    dir = mkdtempSync(join(tmpdir(), "contexec-format-"));
    const marker = join(dir, "image");
    const cmd = (argv: string[]) => ({ argv, env: { PATH: "/usr/bin:/bin" }, cwd: "/", stdin: false });
    const plan = planOf({
      image: {
        id: `sha256:${"a".repeat(64)}`,
        tags: [],
        action: "load",
        prepare: {
          present: cmd(["test", "-e", marker]),
          commands: [cmd(["sh", "-c", 'echo loaded >> "$0"', marker])],
        },
      },
      command: cmd(["true"]),
    });
    expect(bash(formatPlan(plan)).code).toBe(0);
    expect(bash(formatPlan(plan)).code).toBe(0);
    expect(readFileSync(marker, "utf8")).toBe("loaded\n");
  });

  it("refuses a word no shell can carry", () => {
    expect(() =>
      formatPlan(planOf({ command: { argv: ["a\0b"], env: {}, cwd: "/", stdin: false } })),
    ).toThrow(InvalidSpecError);
  });

  it("keeps a multi-line argument of the container's command inside comments in the header", () => {
    const argv = ["sh", "-c", "echo one\ntouch /tmp/should-not-run\r\necho three"];
    const script = formatPlan(
      planOf({
        command: { argv: ["docker", "run", "img", ...argv], env: {}, cwd: "/", stdin: false },
        process: { argv, workdir: "/", env: {} },
      }),
    );
    const header = script.split("set -u\n")[0] as string;
    for (const line of header.split("\n").filter(Boolean)) expect(line).toMatch(/^(#!|# )/);
    // The command itself carries the newlines inside one quoted word.
    expect(script).toContain("'echo one\ntouch /tmp/should-not-run\r\necho three' </dev/null\n");
  });
});
