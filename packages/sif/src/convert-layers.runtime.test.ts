import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryError, readImageArchive } from "@contexec/core";
import { pushArchive, RegistryClient, remoteLayerStreams } from "@contexec/registry";
import { type FaultProxy, startFaultProxy } from "@contexec/registry/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { convertArchiveToSif } from "./convert-archive.js";
import { convertLayersToSif } from "./convert-layers.js";
import { streamLayerSource } from "./layer-source.js";
import { inspectSif } from "./sif-format.js";
import { compareRootfs, listSifRootfs } from "./testing/rootfs-listing.js";

const registries = inject("registries");
const fixturesDir = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const has = (command: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const skip =
  registries === null
    ? ` (skipped: ${inject("registriesUnavailable")})`
    : !has("sqfstar") || !has("unsquashfs")
      ? " (skipped: squashfs-tools not installed)"
      : "";
const run = randomBytes(3).toString("hex");

/**
 * What differs on purpose between a SIF from a pull and one from the archive: the definition
 * file names its source ("bootstrap: docker, from: REF" against "bootstrap: docker-archive, from:
 * FILE"), and labels.json carries those and the build date. Everything else is compared in full.
 */
const SOURCE_NAMING = (path: string) =>
  path === "/.singularity.d/Singularity" || path === "/.singularity.d/labels.json";

describe.skipIf(skip !== "")(`registry images streamed into the SIF converter${skip}`, () => {
  const regs = registries as NonNullable<typeof registries>;
  let work = "";
  let proxy: FaultProxy;
  const client = new RegistryClient({ dockerConfig: false, retryDelayMs: 20, retryMaxDelayMs: 200 });
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "sif-pull-"));
    proxy = await startFaultProxy(regs.plain.host);
    await Promise.all(
      ["busybox", "layered"].map((f) =>
        pushArchive(client, join(fixturesDir, `${f}.tar`), `${regs.plain.host}/${run}/${f}:1`),
      ),
    );
  });
  afterAll(async () => {
    client.close();
    await proxy?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Pulls REF through the proxy into a SIF: headers of 3 layers read at once, nothing on disk but the SIF. */
  async function pullToSif(fixture: string, out: string, keepInMemoryBytes?: number) {
    const ref = `${proxy.host}/${run}/${fixture}:1`;
    const image = await client.resolveImage(ref);
    const configJson = await client.fetchConfig(image);
    const layers = remoteLayerStreams(client, image, configJson, { keepInMemoryBytes }).map((l) =>
      streamLayerSource(l),
    );
    const result = await convertLayersToSif({ configJson, layers, source: ref }, out, {
      prefetch: 3,
      bootstrap: "docker",
    });
    return { image, result };
  }

  it.each(["busybox", "layered"])(
    "turns the %s fixture pulled from a registry into the SIF its archive gives, with the same ImageId",
    async (fixture) => {
      const archivePath = join(fixturesDir, `${fixture}.tar`);
      const archive = await readImageArchive(archivePath);
      const fromArchive = await convertArchiveToSif(archivePath, join(work, `${fixture}.archive.sif`));
      proxy.reset();
      const pulled = await pullToSif(fixture, join(work, `${fixture}.pulled.sif`));
      expect(pulled.result.id).toBe(archive.id);
      expect(pulled.image.id).toBe(fromArchive.id);

      const [a, b] = await Promise.all([
        listSifRootfs(join(work, `${fixture}.archive.sif`)),
        listSifRootfs(join(work, `${fixture}.pulled.sif`)),
      ]);
      expect(compareRootfs(a, b, { ignoreContent: SOURCE_NAMING })).toEqual([]);
      expect(a.size).toBeGreaterThan(20);
      const [infoA, infoB] = await Promise.all([
        inspectSif(join(work, `${fixture}.archive.sif`)),
        inspectSif(join(work, `${fixture}.pulled.sif`)),
      ]);
      expect(infoB.descriptors.map((d) => [d.dataType, d.name])).toEqual(
        infoA.descriptors.map((d) => [d.dataType, d.name]),
      );

      // Every blob fetched at most twice (once per pass); those kept in memory once.
      const blobGets = proxy.requests.filter((r) => r.method === "GET" && r.path.includes("/blobs/"));
      for (const layer of pulled.image.layers) {
        const gets = blobGets.filter((r) => r.path.endsWith(layer.digest)).length;
        expect(gets).toBe(1);
      }
    },
  );

  it("fetches a layer twice when it is not kept in memory, and only layers the writing pass copies from", async () => {
    proxy.reset();
    const { image } = await pullToSif("layered", join(work, "layered.twice.sif"), 0);
    const gets = image.layers.map(
      (layer) => proxy.requests.filter((r) => r.method === "GET" && r.path.endsWith(layer.digest)).length,
    );
    expect(gets.every((n) => n === 1 || n === 2)).toBe(true);
    // The bottom layer (busybox) holds files that win: it is read in both passes.
    expect(gets[0]).toBe(2);
  });

  it("refuses a layer whose bytes do not match its digest, leaving no SIF", async () => {
    proxy.reset();
    proxy.fault = (req) =>
      req.url?.includes("/blobs/") && req.method === "GET" ? { kind: "corrupt", at: 100 } : undefined;
    const out = join(work, "corrupt.sif");
    const err = await pullToSif("busybox", out).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ reason: "digest-mismatch" });
    expect(existsSync(out)).toBe(false);
    proxy.reset();
  });

  it("refuses a layer corrupted only on its second fetch (the writing pass), leaving no SIF", async () => {
    proxy.reset();
    const bottom = (await client.resolveImage(`${regs.plain.host}/${run}/busybox:1`)).layers[0]?.digest ?? "";
    proxy.fault = (req, n) =>
      req.url?.endsWith(bottom) && n === 2 ? { kind: "corrupt", at: 500_000 } : undefined;
    const out = join(work, "corrupt-late.sif");
    const err = await pullToSif("busybox", out, 0).catch((e) => e);
    expect(err).toMatchObject({ code: "E_REGISTRY", reason: "digest-mismatch" });
    expect(existsSync(out)).toBe(false);
    proxy.reset();
  });

  it("resumes layers whose connection drops in either pass, and the SIF is whole", async () => {
    proxy.reset();
    const bottom = (await client.resolveImage(`${regs.plain.host}/${run}/busybox:1`)).layers[0]?.digest ?? "";
    proxy.fault = (req, n) =>
      req.url?.endsWith(bottom) && (n === 1 || n === 3) ? { kind: "drop-after", bytes: 300_000 } : undefined;
    const out = join(work, "dropped.sif");
    const { result } = await pullToSif("busybox", out, 0);
    const ranged = proxy.requests.filter((r) => r.path.endsWith(bottom) && r.range !== undefined);
    expect(ranged.map((r) => r.status)).toEqual([206, 206]);
    const fromArchive = join(work, "busybox.archive.sif");
    const diffs = compareRootfs(await listSifRootfs(fromArchive), await listSifRootfs(out), {
      ignoreContent: SOURCE_NAMING,
    });
    expect(diffs).toEqual([]);
    expect(result.sifBytes).toBeGreaterThan(0);
    proxy.reset();
  });
});
