import { describe, expect, it } from "vitest";
import { UsageError } from "../exit-codes.js";
import { chooseRuntime } from "./choose-runtime.js";

describe("chooseRuntime", () => {
  const job = { name: "apptainer", options: { userns: true } };
  it("takes --runtime, else the job's, else $CONTEXEC_RUNTIME, else docker", () => {
    expect(chooseRuntime("docker", job, { CONTEXEC_RUNTIME: "singularity" }).name).toBe("docker");
    expect(chooseRuntime(undefined, job, { CONTEXEC_RUNTIME: "singularity" }).name).toBe("apptainer");
    expect(chooseRuntime(undefined, undefined, { CONTEXEC_RUNTIME: "singularity" }).name).toBe("singularity");
    expect(chooseRuntime(undefined, undefined, {}).name).toBe("docker");
  });

  it("gives the job's backend options only to the backend they were written for", () => {
    expect(chooseRuntime("singularity", job, {})).toEqual({
      name: "singularity",
      config: { runtime: "singularity", userns: true },
      ignoredOptions: false,
    });
    expect(chooseRuntime("docker", job, {})).toEqual({
      name: "docker",
      config: { runtime: "docker" },
      ignoredOptions: true,
    });
  });

  it("refuses a runtime nobody knows", () => {
    expect(() => chooseRuntime("podman", undefined, {})).toThrow(UsageError);
  });
});

describe("chooseRuntime for slurm", () => {
  const chapter = {
    options: {
      partition: "debug",
      time: "00:10:00",
      "job-name": "docksing_test",
      nodes: "1",
      exclusive: true,
    } as Record<string, string | true>,
    remoteDir: "results",
  };

  it("completes the config from the slurm: chapter, remotedir beside the job file, Apptainer inside", () => {
    const r = chooseRuntime("slurm", undefined, { HOME: "/home/u" }, { chapter, jobDir: "/jobs/a" });
    expect(r).toEqual({
      name: "slurm",
      ignoredOptions: false,
      jobName: "docksing_test",
      config: {
        runtime: "slurm",
        inner: "apptainer",
        slurm: {
          workDir: "/jobs/a/results",
          partition: "debug",
          timeLimit: "00:10:00",
          extra: { nodes: "1", exclusive: true },
        },
      },
    });
  });

  it("lets the runtime: chapter's options win, and finds a folder when nothing names one", () => {
    const job = {
      name: "slurm",
      options: { inner: "docker", slurm: { partition: "big", extra: { nodes: "2" } } },
    };
    const r = chooseRuntime(undefined, job, { XDG_STATE_HOME: "/state" }, { chapter, jobDir: "/j" });
    expect(r.config).toEqual({
      runtime: "slurm",
      inner: "docker",
      slurm: {
        workDir: "/j/results",
        partition: "big",
        timeLimit: "00:10:00",
        extra: { nodes: "2", exclusive: true },
      },
    });
    expect(chooseRuntime("slurm", undefined, { XDG_STATE_HOME: "/state" }).config).toEqual({
      runtime: "slurm",
      inner: "apptainer",
      slurm: { workDir: "/state/contexec/slurm" },
    });
    expect(
      chooseRuntime("slurm", undefined, { CONTEXEC_SLURM_WORKDIR: "/shared/me", HOME: "/home/u" }).config,
    ).toMatchObject({ slurm: { workDir: "/shared/me" } });
  });

  it("gives apptainer options of a job to slurm's inner runtime only when the job names slurm", () => {
    const r = chooseRuntime("slurm", { name: "apptainer", options: { userns: true } }, { HOME: "/h" });
    expect(r.ignoredOptions).toBe(true);
    expect(r.config).toEqual({
      runtime: "slurm",
      inner: "apptainer",
      slurm: { workDir: "/h/.local/state/contexec/slurm" },
    });
  });
});
