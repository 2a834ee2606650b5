import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidSpecError } from "./errors.js";
import type { ContainerSpec } from "./spec.js";
import { collectSpecIssues, validateArgv, validateSpec } from "./validate-spec.js";

const image = `sha256:${"a".repeat(64)}`;
const paths = (spec: unknown) => collectSpecIssues(spec).map((i) => i.path);

describe("validateSpec", () => {
  it("accepts a full valid spec", async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-spec-"));
    try {
      const spec: ContainerSpec = {
        image,
        command: ["echo", "a b"],
        entrypoint: [],
        env: { A: "1", _B: "" },
        workdir: "/w",
        mounts: [
          { type: "bind", source: dir, target: "/in", readOnly: true },
          { type: "tmpfs", target: "/scratch", sizeBytes: 1024 },
        ],
        stdin: true,
        network: "none",
        resources: { memoryBytes: 64 << 20, cpus: 1.5, gpus: { vendor: "nvidia", count: "all" } },
        user: "1000:1000",
        labels: { a: "b" },
        name: "job-1.x",
        ports: [{ containerPort: 80, hostPort: 0, protocol: "tcp" }],
        unsupported: "ignore",
      };
      await expect(validateSpec(spec)).resolves.toBe(spec);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it("lists every problem at once, each by its field path", () => {
    expect(
      paths({
        image: "",
        command: "echo hi",
        entrypoint: [1],
        env: { "1X": "a", "A-B": "b", OK: 5, NUL: "a\0b" },
        workdir: "rel",
        mounts: [
          { type: "bind", source: "rel", target: "/a" },
          { type: "volume", target: "/b" },
          { type: "tmpfs", target: "/a", sizeBytes: -1 },
          { type: "tmpfs", target: "/" },
        ],
        stdin: "yes",
        network: "wifi",
        resources: { memoryBytes: 1000, cpus: 0, gpus: { vendor: "intel", count: 0 }, disk: 1 },
        user: "a b",
        name: "-bad",
        ports: [{ containerPort: 0 }, { containerPort: 80, protocol: "sctp" }],
        unsupported: "maybe",
        colour: "red",
      }).sort(),
    ).toEqual(
      [
        "image",
        "command",
        "entrypoint[0]",
        "env.1X",
        "env.A-B",
        "env.OK",
        "env.NUL",
        "workdir",
        "mounts[0].source",
        "mounts[1].type",
        "mounts[2].sizeBytes",
        "mounts[2].target",
        "mounts[3].target",
        "stdin",
        "network",
        "resources.memoryBytes",
        "resources.cpus",
        "resources.gpus.vendor",
        "resources.gpus.count",
        "resources.disk",
        "user",
        "name",
        "ports[0].containerPort",
        "ports[1].protocol",
        "unsupported",
        "colour",
      ].sort(),
    );
  });

  it("rejects a spec that is not an object, and an empty program", () => {
    expect(paths(null)).toEqual(["spec"]);
    expect(paths([])).toEqual(["spec"]);
    expect(paths({ image, command: [""] })).toEqual(["command[0]"]);
  });

  it("refuses a bind mount whose host path is missing, naming the path, before anything runs", async () => {
    const missing = join(tmpdir(), `contexec-no-such-${process.pid}`);
    const err = await validateSpec({
      image,
      mounts: [{ type: "bind", source: missing, target: "/x" }],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidSpecError);
    expect((err as InvalidSpecError).issues).toEqual([
      { path: "mounts[0].source", message: expect.stringContaining(missing) },
    ]);
    expect((err as InvalidSpecError).code).toBe("E_INVALID_SPEC");
  });

  it("runs backend-specific checks after the common ones", async () => {
    await expect(
      validateSpec(
        { image, env: { A: "x,y" } },
        {
          extraChecks: (s, issues) =>
            s.env?.A?.includes(",") && issues.push({ path: "env.A", message: "no commas" }),
        },
      ),
    ).rejects.toThrow(/env\.A: no commas/);
  });
});

describe("validateArgv", () => {
  it("needs a non-empty array of strings", () => {
    expect(validateArgv(["ls", "-l"])).toEqual(["ls", "-l"]);
    expect(() => validateArgv([])).toThrow(InvalidSpecError);
    expect(() => validateArgv("ls -l")).toThrow(/nothing is split on spaces/);
  });
});
