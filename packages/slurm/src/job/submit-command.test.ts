import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPlanCommand } from "@contexec/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobFiles } from "./job-files.js";
import { submitAndWaitCommand } from "./submit-command.js";

let root: string;
let sbatch: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "contexec submit 'cmd' "));
  // A stand-in for `sbatch --parsable --wait SCRIPT`: runs the script to its end, prints a job
  // id, exits with the script's code (as sbatch --wait does with the job's).
  sbatch = join(root, "sbatch");
  await writeFile(
    sbatch,
    '#!/bin/sh\n[ "$1" = --parsable ] && [ "$2" = --wait ] || exit 99\nbash "$3" </dev/null; code=$?\necho 4242\nexit $code\n',
    { mode: 0o755 },
  );
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function runPasted(name: string, batch: string, stdin: string | undefined) {
  const files = jobFiles(join(root, "runs", name));
  await mkdir(files.dir, { recursive: true });
  await writeFile(files.script, batch);
  if (stdin !== undefined) await writeFile(files.stdin, "");
  const command = submitAndWaitCommand({
    sbatch,
    files,
    stdin: stdin !== undefined,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  const line = formatPlanCommand(command);
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn("bash", ["-c", `cd ${JSON.stringify(files.dir)} && ${line}`]);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.stdin.end(stdin ?? "");
    child.once("close", (code) =>
      resolve({ code, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() }),
    );
  });
}

describe("submitAndWaitCommand (run through real bash)", () => {
  it("prints the container's stdout and stderr from the job's files and exits with its code", async () => {
    const r = await runPasted(
      "code",
      [
        'echo "it\'s out" > stdout',
        "echo err > stderr",
        "printf 'phase=container\\ncode=7\\noom=0\\n' > exit-status",
        "exit 7",
      ].join("\n"),
      undefined,
    );
    expect(r).toEqual({ code: 7, out: "it's out\n", err: "err\n" });
    // The job's folder is gone, and the folder above it too once empty.
    expect(existsSync(join(root, "runs", "code"))).toBe(false);
    expect(existsSync(join(root, "runs"))).toBe(false);
  });

  it("takes sbatch's code when the job left no exit status (killed before it wrote one)", async () => {
    const r = await runPasted("no-status", "echo partial > stdout\nexit 3", undefined);
    expect(r).toEqual({ code: 3, out: "partial\n", err: "" });
  });

  it("passes its own stdin to the job's stdin file and marks its end", async () => {
    const r = await runPasted(
      "stdin",
      [
        "until [ -e stdin.end ]; do sleep 0.05; done",
        "tr a-z A-Z < stdin > stdout",
        "printf 'phase=container\\ncode=0\\noom=0\\n' > exit-status",
      ].join("\n"),
      "some input\nlines\n",
    );
    expect(r).toEqual({ code: 0, out: "SOME INPUT\nLINES\n", err: "" });
  });
});
