import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runContainer, type StatusUpdate } from "@contexec/core";
import { PYTHON_LIKE_CLIENT_SH, SUPERVISED_JOB_SH } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "./apptainer-executor.js";
import { fixtures } from "./test-support/fixtures.js";

const gate = runtimeGate("apptainer");

// The conformance suite covers side channels in the default (root) mode; in a user namespace the
// container's files are written through another uid mapping, and the folders must still serve.

let work: string;
let executor: ApptainerExecutor;
let image: string;
beforeAll(async () => {
  if (gate.skip) return;
  work = await mkdtemp(join(tmpdir(), "contexec-side-userns-"));
  executor = new ApptainerExecutor({ cacheDir: join(work, "cache"), userns: true });
  image = await executor.loadImage(fixtures().busybox);
});
afterAll(async () => {
  if (gate.skip) return;
  await executor?.close();
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(gate.skip)(gate.title("side channels under --userns"), () => {
  it("serves host commands to the Python-like client and the /hostbin links", async () => {
    const r = await runContainer(executor, {
      image,
      network: "none",
      command: [
        "sh",
        "-c",
        `sh -c "$0" client printf '%s|' 'a b' "it's"; echo; /hostbin/printf x; echo " $?"`,
        PYTHON_LIKE_CLIENT_SH,
      ],
      hostCommands: { allow: ["printf"] },
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe("a b|it's|\nx 0\n");
  });

  it("delivers the job's status updates in order and its result", async () => {
    const updates: StatusUpdate[] = [];
    const r = await runContainer(
      executor,
      {
        image,
        network: "none",
        command: ["sh", "-c", SUPERVISED_JOB_SH, "job"],
        env: { STEPS: "3", STEP_SECONDS: "0.5" },
        supervision: {},
      },
      { onStatus: (u) => updates.push(u) },
    );
    expect(r.exitCode).toBe(0);
    expect(r.result).toBe("done: 3 steps\n");
    expect(updates.map((u) => u.content.match(/step \d of 3/)?.[0])).toEqual([
      "step 1 of 3",
      "step 2 of 3",
      "step 3 of 3",
    ]);
  });
});
