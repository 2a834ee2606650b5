import type { ContainerSpec } from "@contexec/core";
import { describe, expect, it } from "vitest";
import { renderCreateOptions, renderGpus } from "./render-create-options.js";

const imageId = `sha256:${"d".repeat(64)}`;
const image = { entrypoint: ["/bin/echo", "entry"], cmd: ["default"], workingDir: "/img" };
const render = (spec: Partial<ContainerSpec>, ignore?: string[]) =>
  renderCreateOptions(
    { image: imageId, ...spec },
    { imageId, image, labels: { "io.contexec.executor": "E" }, ...(ignore && { ignore: new Set(ignore) }) },
  );

describe("renderCreateOptions", () => {
  it("renders the minimal spec: resolved argv as Entrypoint, image WORKDIR, init, no stdin", () => {
    expect(render({})).toEqual({
      Image: imageId,
      Entrypoint: ["/bin/echo", "entry", "default"],
      Cmd: [],
      Env: [],
      WorkingDir: "/img",
      Labels: { "io.contexec.executor": "E" },
      AttachStdin: false,
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: false,
      StdinOnce: false,
      Tty: false,
      HostConfig: { Init: true, AutoRemove: false, Mounts: [] },
    });
  });

  it("renders every option of a full spec", () => {
    const body = render({
      command: ["a b", "$X"],
      env: { A: "1", B: "x y=z" },
      workdir: "/w",
      mounts: [
        { type: "bind", source: "/host/in", target: "/in", readOnly: true },
        { type: "bind", source: "/host/out", target: "/out" },
        { type: "tmpfs", target: "/scratch", sizeBytes: 1 << 20 },
        { type: "tmpfs", target: "/t" },
      ],
      stdin: true,
      network: "none",
      resources: { memoryBytes: 64 << 20, cpus: 1.5 },
      user: "1000:100",
      labels: { app: "x" },
      name: "job-1",
      ports: [
        { containerPort: 80 },
        { containerPort: 53, protocol: "udp", hostPort: 5353, hostIp: "0.0.0.0" },
      ],
    });
    expect(body).toMatchObject({
      name: "job-1",
      Entrypoint: ["/bin/echo", "entry", "a b", "$X"],
      Env: ["A=1", "B=x y=z"],
      WorkingDir: "/w",
      User: "1000:100",
      Labels: { app: "x", "io.contexec.executor": "E" },
      AttachStdin: true,
      OpenStdin: true,
      StdinOnce: true,
      ExposedPorts: { "80/tcp": {}, "53/udp": {} },
      HostConfig: {
        NetworkMode: "none",
        Memory: 64 << 20,
        MemorySwap: 64 << 20,
        NanoCpus: 1_500_000_000,
        Mounts: [
          { Type: "bind", Source: "/host/in", Target: "/in", ReadOnly: true },
          { Type: "bind", Source: "/host/out", Target: "/out", ReadOnly: false },
          { Type: "tmpfs", Target: "/scratch", TmpfsOptions: { SizeBytes: 1 << 20 } },
          { Type: "tmpfs", Target: "/t" },
        ],
        PortBindings: {
          "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }],
          "53/udp": [{ HostIp: "0.0.0.0", HostPort: "5353" }],
        },
      },
    });
  });

  it("leaves out the fields the caller chose to ignore as unsupported", () => {
    const body = render(
      { network: "none", user: "1", resources: { memoryBytes: 64 << 20, cpus: 1, gpus: { count: 1 } } },
      ["network", "user", "resources.memoryBytes", "resources.gpus"],
    );
    expect(body.User).toBeUndefined();
    expect(body.HostConfig).toEqual({ Init: true, AutoRemove: false, Mounts: [], NanoCpus: 1e9 });
  });

  it("refuses a spec with nothing to run", () => {
    expect(() =>
      renderCreateOptions(
        { image: imageId },
        { imageId, image: { entrypoint: null, cmd: null, workingDir: "" } },
      ),
    ).toThrow(/must give a command/);
  });
});

describe("renderGpus", () => {
  it("NVIDIA: all GPUs, a count, or given devices, through device requests", () => {
    expect(renderGpus({ count: "all" })).toEqual({
      DeviceRequests: [{ Driver: "nvidia", Count: -1, Capabilities: [["gpu"]] }],
    });
    expect(renderGpus({ vendor: "nvidia", count: 2, capabilities: ["gpu", "utility"] })).toEqual({
      DeviceRequests: [{ Driver: "nvidia", Count: 2, Capabilities: [["gpu", "utility"]] }],
    });
    expect(renderGpus({ deviceIds: ["0", "GPU-abc"] })).toEqual({
      DeviceRequests: [{ Driver: "nvidia", Count: 0, DeviceIDs: ["0", "GPU-abc"], Capabilities: [["gpu"]] }],
    });
  });

  it("AMD: the kfd and dri device nodes and the video group", () => {
    expect(renderGpus({ vendor: "amd" })).toEqual({
      Devices: [
        { PathOnHost: "/dev/kfd", PathInContainer: "/dev/kfd", CgroupPermissions: "rwm" },
        { PathOnHost: "/dev/dri", PathInContainer: "/dev/dri", CgroupPermissions: "rwm" },
      ],
      GroupAdd: ["video"],
    });
  });
});
