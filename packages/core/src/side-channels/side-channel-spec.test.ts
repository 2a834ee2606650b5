import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidSpecError } from "../errors.js";
import type { ContainerSpec } from "../spec.js";
import { collectSpecIssues, validateSpec } from "../validate-spec.js";

const image = `sha256:${"a".repeat(64)}`;
const issues = (spec: unknown) => collectSpecIssues(spec).map((i) => `${i.path}: ${i.message}`);

describe("spec.hostCommands and spec.supervision", () => {
  it("accepts full valid fields, and the defaults alone", async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-side-spec-"));
    try {
      const spec: ContainerSpec = {
        image,
        hostCommands: {
          allow: ["squeue", "/usr/bin/sbatch", { command: "scancel", args: ["[0-9]+"] }],
          mountPath: "/var/run/req_run",
          binPath: "/hostbin",
          cwd: dir,
          env: { SLURM_CONF: "/etc/slurm/slurm.conf" },
          timeoutMs: 30_000,
          maxOutputBytes: 1 << 20,
          concurrency: 2,
          allowCd: true,
        },
        supervision: {
          mountPath: "/service",
          hostDir: dir,
          statusFile: "status.html",
          resultFile: "result.txt",
          notificationsFile: "notifications.txt",
        },
      };
      await expect(validateSpec(spec)).resolves.toBe(spec);
      expect(issues({ image, hostCommands: { allow: [] }, supervision: {} })).toEqual([]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it("reports every bad field with its path", () => {
    expect(
      issues({
        image,
        mounts: [{ type: "tmpfs", target: "/service" }],
        hostCommands: {
          allow: [
            "ok",
            "two words",
            "/usr/bin/../bin/x",
            { command: "x", args: ["(unclosed"], extra: 1 },
            { args: [] },
            7,
            "/opt/ok",
          ],
          mountPath: "relative",
          binPath: "/has space",
          cwd: "here",
          env: { "1BAD": "x", GOOD: 3 },
          timeoutMs: 0,
          maxOutputBytes: 1.5,
          concurrency: "4",
          allowCd: "yes",
          shell: true,
        },
        supervision: {
          hostDir: "/a:b",
          statusFile: "sub/status.html",
          resultFile: "same.txt",
          notificationsFile: "same.txt",
          typo: 1,
        },
      }),
    ).toEqual([
      "hostCommands.shell: unknown field; known fields are allow, mountPath, binPath, cwd, env, timeoutMs, maxOutputBytes, concurrency, allowCd",
      "hostCommands.allow[1]: must be a plain name (letters, digits, _ . + -) or an absolute host path",
      "hostCommands.allow[2]: must be a normalized absolute path (no //, . or .. parts, no trailing /)",
      "hostCommands.allow[3].extra: unknown field; known fields are command, args",
      expect.stringMatching(/^hostCommands\.allow\[3\]\.args\[0\]: is not a valid regular expression: /),
      'hostCommands.allow[3].command: same command name "x" as hostCommands.allow[2]',
      "hostCommands.allow[4].command: must be a command name or an absolute host path",
      "hostCommands.allow[5]: must be a command name, an absolute path, or { command, args }",
      'hostCommands.allow[6]: same command name "ok" as hostCommands.allow[0]',
      "hostCommands.mountPath: must be an absolute container path of letters, digits and _ . + - (no .., not /)",
      "hostCommands.binPath: must be an absolute container path of letters, digits and _ . + - (no .., not /)",
      "hostCommands.cwd: must be an absolute host path",
      "hostCommands.env.1BAD: name must be letters, digits and _, not starting with a digit",
      "hostCommands.env.GOOD: value must be a string without NUL bytes",
      "hostCommands.timeoutMs: must be a positive integer",
      "hostCommands.maxOutputBytes: must be a positive integer",
      "hostCommands.concurrency: must be a positive integer",
      "hostCommands.allowCd: must be a boolean",
      "supervision.typo: unknown field; known fields are mountPath, hostDir, statusFile, resultFile, notificationsFile",
      "supervision.mountPath: same container path as mounts[0]",
      "supervision.hostDir: must not contain ':', ',' or a newline (Apptainer cannot bind such a path)",
      "supervision.statusFile: must be a file name of letters, digits and _ . + - (no folder)",
      "supervision.notificationsFile: same file as supervision.resultFile",
    ]);
  });

  it("refuses side channels that share a container path with each other or a mount", () => {
    expect(
      issues({
        image,
        mounts: [{ type: "tmpfs", target: "/hostbin/" }],
        hostCommands: { allow: ["a"], mountPath: "/x" },
        supervision: { mountPath: "/x" },
      }),
    ).toEqual([
      "hostCommands.binPath: same container path as mounts[0]",
      "supervision.mountPath: same container path as hostCommands.mountPath",
    ]);
  });

  it("checks that the host folders exist, before anything runs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-side-spec-"));
    try {
      await writeFile(join(dir, "file"), "");
      const err = await validateSpec({
        image,
        hostCommands: { allow: ["a"], cwd: join(dir, "missing") },
        supervision: { hostDir: join(dir, "file") },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidSpecError);
      expect((err as InvalidSpecError).issues).toEqual([
        {
          path: "hostCommands.cwd",
          message: `host folder ${join(dir, "missing")} does not exist; create it or fix the path`,
        },
        { path: "supervision.hostDir", message: `${join(dir, "file")} is not a folder` },
      ]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
