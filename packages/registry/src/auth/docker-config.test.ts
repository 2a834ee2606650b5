import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  credentialSourceFor,
  dockerConfigCredentials,
  dockerConfigPath,
  parseHelperOutput,
} from "./docker-config.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("credentialSourceFor", () => {
  it("finds inline auths under host or URL keys, Docker Hub under its v1 URL", () => {
    const config = {
      auths: {
        "https://index.docker.io/v1/": { auth: b64("hubuser:hub:pass") },
        "https://ghcr.io": { auth: b64("gh:token") },
        "127.0.0.1:5000": { username: "u", password: "p" },
        "quay.io": { identitytoken: "refresh" },
      },
    };
    expect(credentialSourceFor(config, "docker.io")).toEqual({
      kind: "inline",
      key: "https://index.docker.io/v1/",
      credentials: { username: "hubuser", password: "hub:pass" },
    });
    expect(credentialSourceFor(config, "ghcr.io")).toMatchObject({
      credentials: { username: "gh", password: "token" },
    });
    expect(credentialSourceFor(config, "127.0.0.1:5000")).toMatchObject({
      credentials: { username: "u", password: "p" },
    });
    expect(credentialSourceFor(config, "quay.io")).toMatchObject({
      credentials: { identityToken: "refresh" },
    });
    expect(credentialSourceFor(config, "example.com")).toBeUndefined();
  });

  it("prefers a registry's helper, then the default store, over inline entries", () => {
    const config = {
      credHelpers: { "gcr.io": "gcloud" },
      credsStore: "pass",
      auths: { "ghcr.io": { auth: b64("a:b") }, "gcr.io": { auth: b64("c:d") } },
    };
    expect(credentialSourceFor(config, "gcr.io")).toEqual({
      kind: "helper",
      helper: "gcloud",
      serverUrl: "gcr.io",
    });
    expect(credentialSourceFor(config, "ghcr.io")).toEqual({
      kind: "helper",
      helper: "pass",
      serverUrl: "ghcr.io",
    });
    expect(credentialSourceFor(config, "docker.io")).toEqual({
      kind: "helper",
      helper: "pass",
      serverUrl: "https://index.docker.io/v1/",
    });
  });

  it("reads a helper's answer, <token> meaning an identity token", () => {
    expect(parseHelperOutput('{"ServerURL":"x","Username":"u","Secret":"s"}')).toEqual({
      username: "u",
      password: "s",
    });
    expect(parseHelperOutput('{"Username":"<token>","Secret":"t"}')).toEqual({ identityToken: "t" });
    expect(parseHelperOutput('{"Username":"u","Secret":""}')).toBeUndefined();
  });

  it("finds the config under DOCKER_CONFIG or the home folder", () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: "/etc/dc" }, "/home/u")).toBe("/etc/dc/config.json");
    expect(dockerConfigPath({}, "/home/u")).toBe("/home/u/.docker/config.json");
  });
});

describe("dockerConfigCredentials", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docker-config-"));
    // A credential helper is any program on PATH named docker-credential-<name>.
    const helper = join(dir, "docker-credential-fake");
    await writeFile(
      helper,
      '#!/bin/sh\nread server\ncase "$server" in\n  reg.example) echo \'{"Username":"helper-user","Secret":"helper-secret"}\' ;;\n  *) echo "credentials not found in native keychain" >&2; exit 1 ;;\nesac\n',
    );
    await chmod(helper, 0o755);
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        credHelpers: { "reg.example": "fake", "other.example": "fake", "gone.example": "missing" },
      }),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const env = () => ({ PATH: `${dir}:/usr/bin:/bin`, DOCKER_CONFIG: dir });

  it("runs the helper the config names", async () => {
    expect(await dockerConfigCredentials("reg.example", { env: env() })).toEqual({
      credentials: { username: "helper-user", password: "helper-secret" },
      from: "docker-credential-fake",
    });
  });

  it("treats the helper's 'not found' as anonymous, and a missing helper as a noted problem", async () => {
    expect(await dockerConfigCredentials("other.example", { env: env() })).toEqual({
      credentials: undefined,
      from: "docker-credential-fake",
    });
    const missing = await dockerConfigCredentials("gone.example", { env: env() });
    expect(missing.credentials).toBeUndefined();
    expect(missing.problem).toMatch(/docker-credential-missing is not installed/);
  });

  it("is anonymous without a config file", async () => {
    expect(
      await dockerConfigCredentials("reg.example", { env: { DOCKER_CONFIG: join(dir, "nothing") } }),
    ).toEqual({
      credentials: undefined,
      from: undefined,
    });
  });
});
