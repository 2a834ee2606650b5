import { RegistryError } from "@contexec/core";
import { describe, expect, it } from "vitest";
import {
  familiarImageReference,
  formatImageReference,
  isLoopbackRegistry,
  parseImageReference,
  registryApiHost,
} from "./image-reference.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseImageReference", () => {
  it.each([
    ["busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker://busybox:1.36", "docker.io", "library/busybox", "1.36", undefined],
    ["library/busybox", "docker.io", "library/busybox", "latest", undefined],
    ["index.docker.io/busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker.io/org/tool:2", "docker.io", "org/tool", "2", undefined],
    ["org/tool", "docker.io", "org/tool", "latest", undefined],
    ["ghcr.io/org/tool:1.2", "ghcr.io", "org/tool", "1.2", undefined],
    ["localhost/tool", "localhost", "tool", "latest", undefined],
    ["localhost:5000/a/b/c:x_y-z", "localhost:5000", "a/b/c", "x_y-z", undefined],
    ["127.0.0.1:5000/tool", "127.0.0.1:5000", "tool", "latest", undefined],
    ["[::1]:5000/tool:3", "[::1]:5000", "tool", "3", undefined],
    ["Registry/tool", "Registry", "tool", "latest", undefined],
    [`busybox@${D}`, "docker.io", "library/busybox", undefined, D],
    [`host:5000/a:1@${D}`, "host:5000", "a", "1", D],
    ["a.b/c__d/e-f.g:T", "a.b", "c__d/e-f.g", "T", undefined],
  ])("%s", (input, registry, repository, tag, digest) => {
    expect(parseImageReference(input)).toEqual({ registry, repository, tag, digest });
  });

  it.each([
    ["", /empty/],
    ["Busybox", /repository name component/],
    ["busybox:", /valid tag/],
    ["busybox:-x", /valid tag/],
    ["busybox@sha256:abc", /digest/],
    [`busybox@SHA256:${"a".repeat(64)}`, /digest/],
    ["a b", /white space/],
    ["host:5000/", /repository name is empty/],
    ["host..x:5000/a", /registry host/],
    ["a//b", /component/],
    [`x/${"a".repeat(260)}`, /255/],
  ])("refuses %j", (input, message) => {
    let err: unknown;
    try {
      parseImageReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: "E_REGISTRY", reason: "reference" });
    expect((err as Error).message).toMatch(message);
  });
});

describe("formatting", () => {
  it("writes the full and the familiar form", () => {
    const hub = parseImageReference("busybox");
    expect(formatImageReference(hub)).toBe("docker.io/library/busybox:latest");
    expect(familiarImageReference(hub)).toBe("busybox:latest");
    const other = parseImageReference(`127.0.0.1:5000/a/b@${D}`);
    expect(formatImageReference(other)).toBe(`127.0.0.1:5000/a/b@${D}`);
    expect(familiarImageReference(parseImageReference("org/tool:1"))).toBe("org/tool:1");
  });

  it("knows Docker Hub's API host and loopback registries", () => {
    expect(registryApiHost("docker.io")).toBe("registry-1.docker.io");
    expect(registryApiHost("ghcr.io")).toBe("ghcr.io");
    expect(isLoopbackRegistry("127.0.0.1:5000")).toBe(true);
    expect(isLoopbackRegistry("localhost")).toBe(true);
    expect(isLoopbackRegistry("[::1]:5000")).toBe(true);
    expect(isLoopbackRegistry("ghcr.io")).toBe(false);
    expect(isLoopbackRegistry("128.0.0.1:5000")).toBe(false);
  });
});
