import { describe, expect, it } from "vitest";
import { daemonAddress } from "./exit-cleanup.js";

describe("daemonAddress", () => {
  it("reads dockerode's modem: a socket path (or docker-modem's finder of the default one), or plain HTTP(S)", async () => {
    expect(await daemonAddress({ socketPath: "/run/docker.sock" })).toEqual({
      socketPath: "/run/docker.sock",
    });
    expect(await daemonAddress({ socketPath: async () => "/var/run/docker.sock" })).toEqual({
      socketPath: "/var/run/docker.sock",
    });
    expect(await daemonAddress({ host: "10.0.0.5", port: 2375, protocol: "http" })).toEqual({
      host: "10.0.0.5",
      port: 2375,
      protocol: "http",
    });
    expect(
      await daemonAddress({
        host: "d",
        port: "2376",
        protocol: "https",
        ca: Buffer.from("CA"),
        cert: "C",
        key: "K",
      }),
    ).toEqual({ host: "d", port: 2376, protocol: "https", ca: "CA", cert: "C", key: "K" });
  });

  it("gives nothing for what the exit helper cannot reach (ssh)", async () => {
    expect(await daemonAddress({ host: "d", protocol: "ssh", username: "u" })).toBeUndefined();
    expect(await daemonAddress({})).toBeUndefined();
  });
});
