import { OWNER_LABELS } from "@contexec/core";
import { describe, expect, it } from "vitest";
import { renderCreateOptions } from "./render-create-options.js";
import { csvLine, ownerLabelsFromFile, renderDockerRunArgv } from "./render-docker-run-argv.js";

const imageId = `sha256:${"d".repeat(64)}`;
const image = { entrypoint: ["/bin/echo", "entry"], cmd: ["default"], workingDir: "/img" };

describe("renderDockerRunArgv", () => {
  it("renders the minimal body: --rm, --init, the image WORKDIR, the argv through --entrypoint", () => {
    const body = renderCreateOptions({ image: imageId }, { imageId, image });
    expect(renderDockerRunArgv(body)).toEqual([
      "docker",
      "run",
      "--rm",
      "--init",
      "--workdir",
      "/img",
      "--entrypoint",
      "/bin/echo",
      imageId,
      "entry",
      "default",
    ]);
  });

  it("renders every option of a full spec, leaving out the omitted labels", () => {
    const body = renderCreateOptions(
      {
        image: imageId,
        command: ["a b", "$X", "--flag"],
        env: { A: "1", B: "x y=z", C: "line\nbreak" },
        workdir: "/w",
        mounts: [
          { type: "bind", source: "/host/in,put", target: "/in", readOnly: true },
          { type: "bind", source: '/host/"out"', target: "/out" },
          { type: "tmpfs", target: "/scratch", sizeBytes: 1 << 20 },
        ],
        stdin: true,
        network: "none",
        resources: { memoryBytes: 64 << 20, cpus: 1.5 },
        user: "1000:100",
        labels: { app: "x" },
        name: "job-1",
        ports: [{ containerPort: 53, protocol: "udp", hostPort: 5353, hostIp: "0.0.0.0" }],
      },
      { imageId, image, labels: { "io.contexec.executor": "E", "io.contexec.managed": "true" } },
    );
    expect(renderDockerRunArgv(body, { omitLabels: ["io.contexec.executor"] })).toEqual([
      "docker",
      "run",
      "--rm",
      "--name",
      "job-1",
      "--interactive",
      "--init",
      "--label",
      "app=x",
      "--label",
      "io.contexec.managed=true",
      "--env",
      "A=1",
      "--env",
      "B=x y=z",
      "--env",
      "C=line\nbreak",
      "--workdir",
      "/w",
      "--user",
      "1000:100",
      "--network",
      "none",
      "--memory",
      `${64 << 20}b`,
      "--memory-swap",
      `${64 << 20}b`,
      "--cpus",
      "1.5",
      "--mount",
      'type=bind,"source=/host/in,put",target=/in,readonly',
      "--mount",
      'type=bind,"source=/host/""out""",target=/out',
      "--mount",
      `type=tmpfs,target=/scratch,tmpfs-size=${1 << 20}`,
      "--publish",
      "0.0.0.0:5353:53/udp",
      "--entrypoint",
      "/bin/echo",
      imageId,
      "entry",
      "a b",
      "$X",
      "--flag",
    ]);
  });

  it("renders GPUs the way the docker CLI reads --gpus and --device", () => {
    const nvidia = renderCreateOptions(
      { image: imageId, resources: { gpus: { deviceIds: ["0", "2"], capabilities: ["gpu", "utility"] } } },
      { imageId, image },
    );
    const argv = renderDockerRunArgv(nvidia);
    expect(argv[argv.indexOf("--gpus") + 1]).toBe('"device=0,2",driver=nvidia,"capabilities=gpu,utility"');
    const all = renderCreateOptions(
      { image: imageId, resources: { gpus: { count: "all" } } },
      { imageId, image },
    );
    const allArgv = renderDockerRunArgv(all);
    expect(allArgv[allArgv.indexOf("--gpus") + 1]).toBe("all,driver=nvidia,capabilities=gpu");
    const amd = renderCreateOptions(
      { image: imageId, resources: { gpus: { vendor: "amd" } } },
      { imageId, image },
    );
    expect(renderDockerRunArgv(amd).join(" ")).toContain(
      "--device /dev/kfd:/dev/kfd:rwm --device /dev/dri:/dev/dri:rwm --group-add video",
    );
  });

  it("a detached service is --detach with no stdin", () => {
    const body = renderCreateOptions({ image: imageId, stdin: true }, { imageId, image, detached: true });
    const argv = renderDockerRunArgv(body);
    expect(argv).toContain("--detach");
    expect(argv).not.toContain("--interactive");
  });
});

describe("csvLine", () => {
  it("quotes only the fields Go's CSV reader would split or strip", () => {
    expect(csvLine(["a", "b c", "d,e", 'f"g', " h"])).toBe('a,b c,"d,e","f""g"," h"');
  });
});

describe("ownerLabelsFromFile", () => {
  it("replaces the owner labels by a label file and keeps every other word, those after the image too", () => {
    const argv = [
      "docker",
      "run",
      "--rm",
      "--init",
      "--label",
      "io.contexec.managed=true",
      "--label",
      `${OWNER_LABELS.bootId}=b`,
      "--label",
      `${OWNER_LABELS.host}=login`,
      "--label",
      `${OWNER_LABELS.pid}=42`,
      "--label",
      `${OWNER_LABELS.startTime}=7`,
      "--label",
      "user=io.contexec.owner.pid=9",
      "--workdir",
      "/",
      "--entrypoint",
      "echo",
      imageId,
      "--label",
      `${OWNER_LABELS.pid}=42`,
    ];
    expect(ownerLabelsFromFile(argv, "/shared/job/owner labels")).toEqual([
      "docker",
      "run",
      "--label-file",
      "/shared/job/owner labels",
      "--rm",
      "--init",
      "--label",
      "io.contexec.managed=true",
      "--label",
      "user=io.contexec.owner.pid=9",
      "--workdir",
      "/",
      "--entrypoint",
      "echo",
      imageId,
      "--label",
      `${OWNER_LABELS.pid}=42`,
    ]);
  });

  it("refuses what is not a docker run argv", () => {
    expect(() => ownerLabelsFromFile(["apptainer", "exec", "x.sif"], "/f")).toThrow(/not a docker run argv/);
  });
});
