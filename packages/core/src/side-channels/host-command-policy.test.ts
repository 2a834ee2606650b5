import { describe, expect, it } from "vitest";
import { compileHostCommandPolicy, decideHostCommand } from "./host-command-policy.js";

const policy = compileHostCommandPolicy({
  allow: ["squeue", "/opt/slurm/bin/sbatch", { command: "scancel", args: ["[0-9]+", "--signal=(TERM|INT)"] }],
});

describe("decideHostCommand", () => {
  it("allows a listed name (run by PATH lookup) with any arguments", () => {
    expect(decideHostCommand(policy, { argv: ["squeue", "--me", "; rm -rf /"] })).toEqual({
      allowed: true,
      program: "squeue",
      args: ["--me", "; rm -rf /"],
    });
  });

  it("runs an absolute rule's path for its base name and for its exact path, never another path", () => {
    expect(decideHostCommand(policy, { argv: ["sbatch", "x.sh"] })).toMatchObject({
      allowed: true,
      program: "/opt/slurm/bin/sbatch",
    });
    expect(decideHostCommand(policy, { argv: ["/opt/slurm/bin/sbatch"] })).toMatchObject({ allowed: true });
    for (const argv0 of [
      "/usr/bin/squeue",
      "/tmp/sbatch",
      "./squeue",
      "/opt/slurm/bin/../bin/sbatch",
      "bin/squeue",
    ]) {
      expect(decideHostCommand(policy, { argv: [argv0] })).toEqual({
        allowed: false,
        reason: `${JSON.stringify(argv0)} is not an allowed host command`,
      });
    }
  });

  it("reads the bin folder's link path (the C client's argv[0]) as the command's name", () => {
    expect(decideHostCommand(policy, { argv: ["/hostbin/squeue", "-a"] })).toMatchObject({
      allowed: true,
      program: "squeue",
      args: ["-a"],
    });
    expect(decideHostCommand(policy, { argv: ["/hostbin/x/squeue"] }).allowed).toBe(false);
  });

  it("checks every argument against the rule's patterns, whole", () => {
    expect(decideHostCommand(policy, { argv: ["scancel", "123", "--signal=TERM"] }).allowed).toBe(true);
    expect(decideHostCommand(policy, { argv: ["scancel", "123", "-u", "alice"] })).toEqual({
      allowed: false,
      reason: 'argument 2 of "scancel" ("-u") matches none of the allowed patterns',
    });
    expect(decideHostCommand(policy, { argv: ["scancel", "123x"] }).allowed).toBe(false);
    const none = compileHostCommandPolicy({ allow: [{ command: "hostname", args: [] }] });
    expect(decideHostCommand(none, { argv: ["hostname"] }).allowed).toBe(true);
    expect(decideHostCommand(none, { argv: ["hostname", "evil"] }).allowed).toBe(false);
  });

  it("refuses a cd unless allowCd, and a relative folder always", () => {
    expect(decideHostCommand(policy, { argv: ["squeue"], cd: "/home/u" })).toEqual({
      allowed: false,
      reason: "`cd DIR &&` is not allowed here (hostCommands.allowCd)",
    });
    const withCd = compileHostCommandPolicy({ allow: ["squeue"], allowCd: true });
    expect(decideHostCommand(withCd, { argv: ["squeue"], cd: "/home/u" })).toEqual({
      allowed: true,
      program: "squeue",
      args: [],
      cd: "/home/u",
    });
    expect(decideHostCommand(withCd, { argv: ["squeue"], cd: "-" }).allowed).toBe(false);
  });

  it("keeps a refusal on one line, whatever the client sent", () => {
    const r = decideHostCommand(policy, { argv: ["evil\nline\u0000two".repeat(20)] });
    expect(r.allowed).toBe(false);
    if (!r.allowed) {
      expect(r.reason).not.toMatch(/[\n\r\0]/);
      expect(r.reason.length).toBeLessThan(600);
    }
  });
});
