import { describe, expect, it } from "vitest";
import { DEFAULT_PATH, parseImageConfig, resolveArgv, resolveEnv, resolveWorkdir } from "./image-config.js";

const image = `sha256:${"b".repeat(64)}`;

describe("resolveArgv follows Docker's ENTRYPOINT/CMD rules", () => {
  const cases: [string, { entrypoint: string[] | null; cmd: string[] | null }, object, string[]][] = [
    ["image ENTRYPOINT + CMD", { entrypoint: ["/e"], cmd: ["c"] }, {}, ["/e", "c"]],
    ["image CMD only", { entrypoint: null, cmd: ["/bin/sh"] }, {}, ["/bin/sh"]],
    [
      "command replaces CMD, keeps ENTRYPOINT",
      { entrypoint: ["/e"], cmd: ["c"] },
      { command: ["x", "y"] },
      ["/e", "x", "y"],
    ],
    [
      "entrypoint replaces ENTRYPOINT and drops CMD",
      { entrypoint: ["/e"], cmd: ["c"] },
      { entrypoint: ["/o"] },
      ["/o"],
    ],
    [
      "entrypoint + command",
      { entrypoint: ["/e"], cmd: ["c"] },
      { entrypoint: ["/o"], command: ["z"] },
      ["/o", "z"],
    ],
    [
      "empty entrypoint clears it, command runs alone",
      { entrypoint: ["/e"], cmd: ["c"] },
      { entrypoint: [], command: ["ls"] },
      ["ls"],
    ],
    ["empty command keeps ENTRYPOINT alone", { entrypoint: ["/e"], cmd: ["c"] }, { command: [] }, ["/e"]],
  ];
  for (const [title, img, spec, argv] of cases) {
    it(title, () => expect(resolveArgv(img, { image, ...spec })).toEqual(argv));
  }

  it("nothing to run is an InvalidSpecError", () => {
    expect(() => resolveArgv({ entrypoint: null, cmd: null }, { image })).toThrow(/must give a command/);
    expect(() => resolveArgv({ entrypoint: ["/e"], cmd: null }, { image, entrypoint: [] })).toThrow(
      /must give/,
    );
  });

  it("arguments are kept whole: nothing is split or evaluated", () => {
    const args = ["a b", "$HOME", "'q'", "*"];
    expect(resolveArgv({ entrypoint: null, cmd: null }, { image, command: args })).toEqual(args);
  });
});

describe("resolveEnv", () => {
  it("takes the image ENV, puts spec env over it, keeps values literal", () => {
    const env = resolveEnv({ env: ["PATH=/bin", "A=1", "B=x=y", "broken"] }, { A: "2", C: "$HOME" });
    expect([...env]).toEqual([
      ["PATH", "/bin"],
      ["A", "2"],
      ["B", "x=y"],
      ["C", "$HOME"],
    ]);
  });

  it("uses Docker's default PATH when neither image nor spec sets one", () => {
    expect(resolveEnv({ env: [] }).get("PATH")).toBe(DEFAULT_PATH);
  });
});

describe("resolveWorkdir", () => {
  it("spec, else image WORKDIR, else /", () => {
    expect(resolveWorkdir({ workingDir: "/img" }, { image, workdir: "/spec" })).toBe("/spec");
    expect(resolveWorkdir({ workingDir: "/img" }, { image })).toBe("/img");
    expect(resolveWorkdir({ workingDir: "" }, { image })).toBe("/");
  });
});

describe("parseImageConfig", () => {
  it("reads the run-relevant fields and tolerates missing or odd ones", () => {
    expect(
      parseImageConfig({
        config: {
          Env: ["A=1"],
          Entrypoint: ["/e"],
          Cmd: null,
          WorkingDir: "/w",
          User: "u",
          Labels: { a: "b", n: 1 },
          ExposedPorts: { "80/tcp": {} },
          StopSignal: "SIGINT",
        },
      }),
    ).toEqual({
      env: ["A=1"],
      entrypoint: ["/e"],
      cmd: null,
      workingDir: "/w",
      user: "u",
      labels: { a: "b" },
      exposedPorts: ["80/tcp"],
      stopSignal: "SIGINT",
    });
    expect(parseImageConfig({})).toMatchObject({ env: [], entrypoint: null, cmd: null, workingDir: "" });
  });
});
