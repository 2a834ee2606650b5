import { RegistryAuthError, RegistryError } from "@contexec/core";
import { parseImageReference } from "@contexec/registry";
import { describe, expect, it } from "vitest";
import { pullErrorOf, pullProgressOf, renderPullRequest } from "./docker-pull.js";

const D = `sha256:${"c".repeat(64)}`;

describe("renderPullRequest", () => {
  it("names the repository with its registry, the tag or digest, and the credentials for the daemon", () => {
    expect(
      renderPullRequest(parseImageReference("127.0.0.1:5000/org/tool:2"), {
        credentials: { username: "u", password: "p" },
        platform: "linux/aarch64",
      }),
    ).toEqual({
      fromImage: "127.0.0.1:5000/org/tool",
      tag: "2",
      platform: "linux/arm64/v8",
      auth: { username: "u", password: "p", serveraddress: "127.0.0.1:5000" },
      name: "127.0.0.1:5000/org/tool:2",
    });
    expect(
      renderPullRequest(parseImageReference(`busybox:1@${D}`), { credentials: { identityToken: "t" } }),
    ).toEqual({
      fromImage: "docker.io/library/busybox",
      tag: D,
      auth: { identitytoken: "t", serveraddress: "https://index.docker.io/v1/" },
      name: `docker.io/library/busybox@${D}`,
    });
    expect(renderPullRequest(parseImageReference("ghcr.io/a/b"), {}).auth).toBeUndefined();
  });
});

describe("pullProgressOf", () => {
  it("maps the daemon's progress lines (recorded from dockerd 20.10) to per-layer phases", () => {
    const lines = [
      { status: "Pulling from org/tool", id: "1" },
      { status: "Pulling fs layer", progressDetail: {}, id: "0f8b424aa0b9" },
      { status: "Waiting", progressDetail: {}, id: "0f8b424aa0b9" },
      { status: "Downloading", progressDetail: { current: 32768, total: 1170841 }, id: "0f8b424aa0b9" },
      { status: "Verifying Checksum", progressDetail: {}, id: "0f8b424aa0b9" },
      { status: "Download complete", progressDetail: {}, id: "0f8b424aa0b9" },
      { status: "Extracting", progressDetail: { current: 1170841, total: 1170841 }, id: "0f8b424aa0b9" },
      { status: "Pull complete", progressDetail: {}, id: "0f8b424aa0b9" },
      { status: "Already exists", progressDetail: {}, id: "a1b2c3d4e5f6" },
      { status: `Digest: ${D}` },
      { status: "Status: Downloaded newer image for 127.0.0.1:5000/org/tool:2" },
    ];
    expect(lines.map(pullProgressOf).filter(Boolean)).toEqual([
      { layer: "0f8b424aa0b9", phase: "waiting", bytes: 0 },
      { layer: "0f8b424aa0b9", phase: "waiting", bytes: 0 },
      { layer: "0f8b424aa0b9", phase: "downloading", bytes: 32768, totalBytes: 1170841 },
      { layer: "0f8b424aa0b9", phase: "downloading", bytes: 0 },
      { layer: "0f8b424aa0b9", phase: "downloading", bytes: 0 },
      { layer: "0f8b424aa0b9", phase: "extracting", bytes: 1170841, totalBytes: 1170841 },
      { layer: "0f8b424aa0b9", phase: "done", bytes: 0 },
      { layer: "a1b2c3d4e5f6", phase: "exists", bytes: 0 },
    ]);
  });
});

describe("pullErrorOf", () => {
  it.each([
    [
      'Head "http://127.0.0.1:5000/v2/x/manifests/1": unauthorized: authentication required',
      RegistryAuthError,
      undefined,
    ],
    ['Get "http://127.0.0.1:5000/token": incorrect username or password', RegistryAuthError, undefined],
    [
      "pull access denied for x, repository does not exist or may require 'docker login'",
      RegistryAuthError,
      undefined,
    ],
    [
      "manifest for 127.0.0.1:5000/x:9 not found: manifest unknown: manifest unknown",
      RegistryError,
      "not-found",
    ],
    ["no matching manifest for linux/s390x in the manifest list entries", RegistryError, "platform"],
    ['Get "https://127.0.0.1:5000/v2/": x509: certificate signed by unknown authority', RegistryError, "tls"],
    [
      'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
      RegistryError,
      "unreachable",
    ],
  ])("%s", (message, type, reason) => {
    const err = pullErrorOf(message, "127.0.0.1:5000");
    expect(err).toBeInstanceOf(type);
    if (reason) expect(err).toMatchObject({ reason });
  });

  it("leaves other failures to the caller", () => {
    expect(pullErrorOf("failed to register layer: no space left on device", "r")).toBeUndefined();
  });
});
