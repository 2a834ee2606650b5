import { describe, expect, it } from "vitest";
import { engineConfigCwd } from "./instance-start-folder.js";

// Recorded from an instance's appinit under Apptainer 1.4.5 (the config shortened).
const CONFIG =
  '{"engineName":"apptainer","containerID":"probe2","engineConfig":{"jsonConfig":{"unixSocketPair":[0,0],"image":"/tmp/x/bb.sif","cwd":"/tmp/contexec-apptainer-a/c-0123","instance":true},"ociConfig":{"process":{"cwd":"/root"}}},"plugin":null}';
const environ = (vars: string[]) => `${vars.join("\0")}\0`;

describe("engineConfigCwd", () => {
  it("reads the start folder from the instance's engine config", () => {
    const env = environ([
      "APPTAINER_MESSAGELEVEL=-93",
      `ENGINE_CONFIG1=${CONFIG}`,
      "ENGINE_CONFIG_CHUNKS=1",
      "_WRAPPER_ARG0=Apptainer instance: root [probe2]",
    ]);
    expect(engineConfigCwd(env)).toBe("/tmp/contexec-apptainer-a/c-0123");
  });

  it("joins a config split into chunks, in order", () => {
    const cut = [CONFIG.slice(0, 40), CONFIG.slice(40, 100), CONFIG.slice(100)];
    const env = environ([
      `ENGINE_CONFIG2=${cut[1]}`,
      `ENGINE_CONFIG3=${cut[2]}`,
      `ENGINE_CONFIG1=${cut[0]}`,
      "ENGINE_CONFIG_CHUNKS=3",
    ]);
    expect(engineConfigCwd(env)).toBe("/tmp/contexec-apptainer-a/c-0123");
  });

  it("knows nothing from a missing chunk, broken JSON or an ordinary process", () => {
    expect(
      engineConfigCwd(environ([`ENGINE_CONFIG1=${CONFIG.slice(0, 50)}`, "ENGINE_CONFIG_CHUNKS=2"])),
    ).toBe(undefined);
    expect(engineConfigCwd(environ([`ENGINE_CONFIG1=${CONFIG.slice(0, 50)}`]))).toBe(undefined);
    expect(engineConfigCwd(environ(["PATH=/bin", "HOME=/root"]))).toBe(undefined);
    expect(engineConfigCwd("")).toBe(undefined);
  });
});
