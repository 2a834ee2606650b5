import { describe, expect, it } from "vitest";
import { renderSbatchOptions, resourceOptions, sbatchDirective } from "./sbatch-options.js";

const base = {
  jobName: "contexec-1a2b",
  logFile: "/shared/run/1a2b/slurm.log",
  chdir: "/shared/run/1a2b",
  signalBeforeLimitSec: 60,
  stopSignal: "SIGTERM" as const,
};

describe("renderSbatchOptions", () => {
  it("renders name, placement, time limit with the stop signal before it, files and extras in order", () => {
    expect(
      renderSbatchOptions({
        ...base,
        partition: "gpu",
        account: "proj-42",
        qos: "short",
        timeLimit: "1:30:00",
        resources: { cpus: 1.5, memoryBytes: 100 * 1024 * 1024 + 1 },
        extra: { constraint: "haswell&ib", exclusive: true, "mail-type": "END", nice: 10 },
      }),
    ).toEqual([
      "--job-name=contexec-1a2b",
      "--partition=gpu",
      "--account=proj-42",
      "--qos=short",
      "--time=1:30:00",
      "--signal=B:TERM@60",
      "--cpus-per-task=2",
      "--mem=101M",
      "--nodes=1",
      "--ntasks=1",
      "--chdir=/shared/run/1a2b",
      "--output=/shared/run/1a2b/slurm.log",
      "--error=/shared/run/1a2b/slurm.log",
      "--open-mode=append",
      "--constraint=haswell&ib",
      "--exclusive",
      "--mail-type=END",
      "--nice=10",
    ]);
  });

  it("signals at most half the time limit before it, with the image's stop signal", () => {
    const options = renderSbatchOptions({ ...base, timeLimit: 1, stopSignal: "SIGINT" });
    expect(options).toContain("--time=1");
    expect(options).toContain("--signal=B:INT@30");
  });
});

describe("resourceOptions", () => {
  it("maps cpus to whole CPUs, memory to MiB, GPUs to gres", () => {
    expect(resourceOptions({ cpus: 0.25 })).toEqual(["--cpus-per-task=1"]);
    expect(resourceOptions({ cpus: 4 })).toEqual(["--cpus-per-task=4"]);
    expect(resourceOptions({ memoryBytes: 64 * 1024 * 1024 })).toEqual(["--mem=64M"]);
    expect(resourceOptions({ memoryBytes: 1 })).toEqual(["--mem=1M"]);
    expect(resourceOptions({ gpus: { count: 2 } })).toEqual(["--gres=gpu:2"]);
    expect(resourceOptions({ gpus: { deviceIds: ["0", "3", "5"], vendor: "nvidia" } })).toEqual([
      "--gres=gpu:3",
    ]);
    expect(resourceOptions(undefined)).toEqual([]);
  });

  it('refuses gpus "all": SLURM allocates a number', () => {
    expect(() => resourceOptions({ gpus: { count: "all" } })).toThrow(
      expect.objectContaining({ code: "E_INVALID_SPEC" }),
    );
  });
});

describe("sbatchDirective", () => {
  it("quotes a value with what sbatch's directive reader treats specially, escaping quotes and backslashes", () => {
    expect(sbatchDirective("--job-name=plain")).toBe("#SBATCH --job-name=plain");
    expect(sbatchDirective("--exclusive")).toBe("#SBATCH --exclusive");
    expect(sbatchDirective(`--comment=a b\t"c" 'd' \\e #f`)).toBe(
      `#SBATCH --comment="a b\t\\"c\\" 'd' \\\\e #f"`,
    );
    expect(() => sbatchDirective("--comment=two\nlines")).toThrow(/line break/);
  });
});
