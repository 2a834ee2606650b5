import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type PullProgress, RegistryAuthError, RegistryError, runContainer } from "@contexec/core";
import { RegistryClient } from "@contexec/registry";
import { pushUniqueImage, type UniqueImage } from "@contexec/registry/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { DockerExecutor } from "./docker-executor.js";

const gate = runtimeGate("docker");
const registries = inject("registries");
// The Docker backend's cases: skipped by name where Docker is not tested, then where there is no
// test registry, each saying why.
const skipReason = gate.skip
  ? ` (skipped: ${gate.reason})`
  : registries === null
    ? ` (skipped: ${inject("registriesUnavailable")})`
    : "";
const busybox = join(process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir"), "busybox.tar");
const run = randomBytes(3).toString("hex");

describe.skipIf(skipReason !== "")(`Docker's pullImage from real registries${skipReason}`, () => {
  const regs = registries as NonNullable<typeof registries>;
  let executor: DockerExecutor;
  let plain: UniqueImage;
  let token: UniqueImage;
  const tokenAuth = () => ({ username: regs.token.username, password: regs.token.password });

  beforeAll(async () => {
    executor = new DockerExecutor();
    const client = new RegistryClient({ dockerConfig: false, auth: tokenAuth() });
    try {
      plain = await pushUniqueImage(client, `${regs.plain.host}/${run}/unique:1`, busybox);
      token = await pushUniqueImage(client, `${regs.token.host}/${run}/unique:1`, busybox);
    } finally {
      client.close();
    }
  });
  afterAll(async () => {
    // These images are this run's own (a random layer): removing them touches no one else's.
    for (const image of [plain, token]) if (image) await executor.removeImage(image.id).catch(() => {});
    await executor?.close();
  });

  it("pulls by tag through the daemon: the ImageId is the config digest, and the reference names the image", async () => {
    const events: PullProgress[] = [];
    const id = await executor.pullImage(plain.reference, { onProgress: (p) => events.push(p) });
    expect(id).toBe(plain.id);
    expect(await executor.hasImage(plain.reference)).toBe(true);
    // One layer downloaded (the random one, at least), reported per layer by its short id.
    expect(events.some((e) => e.phase === "done" || e.phase === "exists")).toBe(true);
    expect(events.every((e) => /^[0-9a-f]{12}$/.test(e.layer))).toBe(true);
    const result = await runContainer(executor, { image: plain.reference });
    expect(result.stdout.toString()).toBe(`${plain.marker}\n/srv\n${plain.marker}\n`);
  });

  it("pulls by digest, and loadImage('docker://REF') pulls too", async () => {
    const byDigest = `${regs.plain.host}/${run}/unique@${plain.manifestDigest}`;
    expect(await executor.pullImage(byDigest)).toBe(plain.id);
    expect(await executor.loadImage(`docker://${plain.reference}`)).toBe(plain.id);
  });

  it("pulls from a token-auth registry with credentials, and refuses a wrong password with RegistryAuthError", async () => {
    expect(await executor.pullImage(token.reference, { auth: tokenAuth() })).toBe(token.id);
    const err = await executor
      .pullImage(token.reference, { auth: { username: regs.token.username, password: "wrong" } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err).toMatchObject({ code: "E_REGISTRY_AUTH", registry: regs.token.host });
  });

  it("says what is missing: an unknown tag is RegistryError not-found, a bad reference is refused before the daemon", async () => {
    const err = await executor.pullImage(`${regs.plain.host}/${run}/unique:nope`).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ reason: "not-found" });
    await expect(executor.pullImage("Not A Reference")).rejects.toMatchObject({
      code: "E_REGISTRY",
      reason: "reference",
    });
  });

  it("stops when the signal fires", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(executor.pullImage(plain.reference, { signal: controller.signal })).rejects.toMatchObject({
      code: "E_ABORTED",
    });
  });
});
