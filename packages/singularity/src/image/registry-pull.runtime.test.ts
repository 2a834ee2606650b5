import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ArchiveLimits,
  ImageArchiveError,
  type PullProgress,
  RegistryAuthError,
  RegistryError,
  readImageArchive,
  runContainer,
} from "@contexec/core";
import { dockerArchiveOf, hostileLayerCases, ociArchiveOf, tarOf } from "@contexec/core/testing";
import { pushArchive, RegistryClient } from "@contexec/registry";
import {
  type FaultProxy,
  pushUniqueImage,
  startFaultProxy,
  type UniqueImage,
} from "@contexec/registry/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { runChild } from "../test-support/child-process.js";
import { fixtures } from "../test-support/fixtures.js";
import { checkSif } from "./sif-cache.js";

const gate = runtimeGate("apptainer");
const registries = inject("registries");
const has = (command: string) => {
  try {
    execFileSync("sh", ["-c", 'command -v "$1"', "sh", command], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
// The Apptainer backend's cases: skipped by name where Apptainer is not tested, then where there
// is no test registry or no sqfstar, each saying why.
const skip = gate.skip
  ? ` (skipped: ${gate.reason})`
  : registries === null
    ? ` (skipped: ${inject("registriesUnavailable")})`
    : !has("sqfstar")
      ? " (skipped: sqfstar not installed: apt-get install squashfs-tools)"
      : "";
const { busybox } = fixtures();
const run = randomBytes(3).toString("hex");

describe.skipIf(skip !== "")(
  `Apptainer's pullImage: registry -> native converter -> SIF cache${skip}`,
  () => {
    const regs = registries as NonNullable<typeof registries>;
    let work = "";
    let proxy: FaultProxy;
    let image: UniqueImage;
    let caCert = "";
    const executors: ApptainerExecutor[] = [];
    /** An executor on its own cache folder (or a given one), reaching registries as `registry` says. */
    const executor = (cache: string, registry: ConstructorParameters<typeof ApptainerExecutor>[0] = {}) => {
      const ex = new ApptainerExecutor({
        cacheDir: join(work, cache),
        tmpDir: join(work, "tmp"),
        ...registry,
        registry: { dockerConfig: false, retryDelayMs: 20, retryMaxDelayMs: 200, ...registry.registry },
      });
      executors.push(ex);
      return ex;
    };
    const cacheFiles = async (cache: string) =>
      (await readdir(join(work, cache)).catch(() => [] as string[])).sort();

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), "apptainer-pull-"));
      caCert = await readFile(regs.secure.caCert, "utf8");
      const client = new RegistryClient({ dockerConfig: false });
      image = await pushUniqueImage(client, `${regs.plain.host}/${run}/unique:1`, busybox);
      client.close();
      proxy = await startFaultProxy(regs.plain.host);
    });
    afterAll(async () => {
      await Promise.all(executors.map((e) => e.close()));
      await proxy?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });
    const viaProxy = () => image.reference.replace(regs.plain.host, proxy.host);

    it("pulls into the cache with the config digest as ImageId, reporting progress per layer", async () => {
      const ex = executor("first");
      const events: PullProgress[] = [];
      const id = await ex.pullImage(image.reference, { onProgress: (e) => events.push(e) });
      expect(id).toBe(image.id);
      const entry = await ex.image(image.reference);
      expect(entry.id).toBe(id);
      await checkSif(entry.sifPath);
      const hex = id.slice(7);
      expect(await cacheFiles("first")).toEqual([`${hex}.json`, `${hex}.sif`]);
      const layers = new Set(events.map((e) => e.layer));
      expect(layers.size).toBe(2);
      for (const layer of layers) {
        const phases = events.filter((e) => e.layer === layer).map((e) => e.phase);
        expect(phases[0]).toBe("waiting");
        expect(phases).toContain("downloading");
        expect(phases.at(-1)).toBe("done");
      }
    });

    it("runs the pulled image by its reference as Docker does", async () => {
      const ex = executor("first");
      await ex.pullImage(image.reference);
      const result = await runContainer(ex, { image: image.reference });
      expect(result.stdout.toString()).toBe(`${image.marker}\n/srv\n${image.marker}\n`);
      expect(result.exitCode).toBe(0);
    });

    it("pulls an image already converted with one manifest request and no conversion", async () => {
      const ex = executor("first");
      const before = await stat((await ex.image(image.id)).sifPath);
      proxy.reset();
      // By another name (through the proxy): the tag is added, nothing is fetched but the manifest.
      expect(await ex.pullImage(viaProxy())).toBe(image.id);
      expect(proxy.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `GET /v2/${run}/unique/manifests/1`,
      ]);
      proxy.reset();
      expect(await ex.pullImage(viaProxy())).toBe(image.id);
      expect(proxy.requests).toHaveLength(1);
      const after = await stat((await ex.image(viaProxy())).sifPath);
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    });

    it("loadImage('docker://REF') pulls", async () => {
      expect(await executor("docker-scheme").loadImage(`docker://${image.reference}`)).toBe(image.id);
    });

    it("refuses a corrupt layer with RegistryError (digest-mismatch) and leaves no cache entry", async () => {
      const ex = executor("corrupt");
      proxy.reset();
      proxy.fault = (req) =>
        req.url?.includes("/blobs/") && req.method === "GET" ? { kind: "corrupt", at: 200 } : undefined;
      const err = await ex.pullImage(viaProxy()).catch((e: unknown) => e);
      proxy.reset();
      // The config is corrupt first: it is checked against the image id before anything else.
      expect(err).toBeInstanceOf(RegistryError);
      expect(err).toMatchObject({ reason: "digest-mismatch" });
      expect(await cacheFiles("corrupt")).toEqual([]);
      // A layer corrupted while it converts: no SIF, no metadata, no temporary file.
      proxy.fault = (req) =>
        req.method === "GET" && req.url?.includes("/blobs/") && !req.url.endsWith(image.id)
          ? { kind: "corrupt", at: 1000 }
          : undefined;
      const late = await ex.pullImage(viaProxy()).catch((e: unknown) => e);
      proxy.reset();
      expect(late).toMatchObject({ code: "E_REGISTRY", reason: "digest-mismatch" });
      expect((await cacheFiles("corrupt")).filter((f) => !f.endsWith(".lock"))).toEqual([]);
      expect(await ex.hasImage(image.id)).toBe(false);
    });

    it("refuses a wrong password with RegistryAuthError after one registry and one token request", async () => {
      const client = new RegistryClient({
        dockerConfig: false,
        auth: { username: regs.token.username, password: regs.token.password },
      });
      const tokenImage = await pushUniqueImage(client, `${regs.token.host}/${run}/unique:1`, busybox);
      client.close();
      const tokenProxy = await startFaultProxy(regs.token.host);
      try {
        const ex = executor("auth");
        const ref = tokenImage.reference.replace(regs.token.host, tokenProxy.host);
        const err = await ex
          .pullImage(ref, { auth: { username: regs.token.username, password: "wrong" } })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RegistryAuthError);
        expect(tokenProxy.requests).toHaveLength(1);
        expect(await cacheFiles("auth")).toEqual([]);
        expect(
          await ex.pullImage(ref, { auth: { username: regs.token.username, password: regs.token.password } }),
        ).toBe(tokenImage.id);
      } finally {
        await tokenProxy.stop();
      }
    });

    it("pulls over HTTPS with the CA given in the executor's registry options, and says 'tls' without it", async () => {
      const auth = { username: regs.secure.username, password: regs.secure.password };
      const client = new RegistryClient({ dockerConfig: false, ca: caCert, auth });
      const secureImage = await pushUniqueImage(client, `${regs.secure.host}/${run}/unique:1`, busybox);
      client.close();
      const trusting = executor("tls", { registry: { ca: caCert, auth } });
      expect(await trusting.pullImage(secureImage.reference)).toBe(secureImage.id);
      const err = await executor("tls-untrusted", { registry: { auth } })
        .pullImage(secureImage.reference)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "E_REGISTRY", reason: "tls" });
    });

    it("8 processes pulling one image at once convert it once and all get the same SIF", async () => {
      const fresh = await pushUniqueImage(
        new RegistryClient({ dockerConfig: false }),
        `${regs.plain.host}/${run}/eight:1`,
        busybox,
      );
      proxy.reset();
      const ref = fresh.reference.replace(regs.plain.host, proxy.host);
      const cacheDir = join(work, "eight");
      const children = Array.from({ length: 8 }, () => runChild("./pull-image-child.ts", [cacheDir, ref]));
      const results = await Promise.all(children.map((c) => c.done));
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      const outputs = results.map((r) => JSON.parse(r.stdout.trim()) as { id: string; sifPath: string });
      expect(new Set(outputs.map((o) => o.id))).toEqual(new Set([fresh.id]));
      expect(new Set(outputs.map((o) => o.sifPath)).size).toBe(1);
      // One conversion: each layer was fetched by one process only (small layers are kept in
      // memory between the converter's two passes, so once).
      const layerDigests = (
        await new RegistryClient({ dockerConfig: false }).resolveImage(fresh.reference)
      ).layers.map((l) => l.digest);
      for (const digest of layerDigests) {
        expect(proxy.requests.filter((r) => r.method === "GET" && r.path.endsWith(digest))).toHaveLength(1);
      }
      expect(proxy.requests.filter((r) => r.path.includes("/manifests/"))).toHaveLength(8);
      const hex = fresh.id.slice(7);
      expect(await cacheFiles("eight")).toEqual([`${hex}.json`, `${hex}.sif`]);
    }, 180_000);
  },
);

/*
 * A pulled image is hostile input as much as an archive: its layers go through the same entry
 * checks and limits, and each is refused with the error loading the image's archive gives (the
 * archive's layer member replaced by the blob's digest, which is how a registry names a layer),
 * with nothing left in the cache. The archives are OCI layouts with gzip layers, pushed as they
 * are: the pull then reads the very blobs the load reads (a docker-archive's uncompressed layers
 * would be gzipped on the way, and their offsets in messages counted from the archive's start).
 */
const hostileCases = await hostileLayerCases();
describe.skipIf(skip !== "")(`a pulled image is checked as an archive is${skip}`, () => {
  const regs = registries as NonNullable<typeof registries>;
  let work = "";
  let ex: ApptainerExecutor;
  let client: RegistryClient;
  let n = 0;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "apptainer-pull-hostile-"));
    ex = new ApptainerExecutor({
      cacheDir: join(work, "cache"),
      tmpDir: join(work, "tmp"),
      registry: { dockerConfig: false },
    });
    client = new RegistryClient({ dockerConfig: false });
  });
  afterAll(async () => {
    client?.close();
    await ex?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  interface Refusal {
    code: string;
    message: string;
    member: string | undefined;
    entry: string | undefined;
    limit: string | undefined;
  }
  const refusalOf = (err: unknown): Refusal => {
    expect(err).toBeInstanceOf(ImageArchiveError);
    const e = err as ImageArchiveError;
    return { code: e.code, message: e.message, member: e.member, entry: e.entry, limit: e.limit };
  };

  /** The archive's refusal by loadImage and the pull's of the same image pushed, as the registry names its layers. */
  async function bothRefusals(
    archive: Buffer,
    layer: number,
    options: { limits?: Partial<ArchiveLimits> } = {},
  ) {
    const path = join(work, `archive-${n}.tar`);
    await writeFile(path, archive);
    const reference = `${regs.plain.host}/${run}/hostile-${n++}:1`;
    await pushArchive(client, path, reference);
    const member = (await readImageArchive(path)).layers[layer]?.member as string;
    const digest = (await client.resolveImage(reference)).layers[layer]?.digest as string;
    const fromArchive = refusalOf(await ex.loadImage(path, options).catch((e: unknown) => e));
    const fromPull = refusalOf(await ex.pullImage(reference, options).catch((e: unknown) => e));
    const asPulled = (r: Refusal) => ({
      ...r,
      message: r.message.replaceAll(member, digest),
      member: r.member === member ? digest : r.member,
      entry: r.entry === member ? digest : r.entry,
    });
    expect(await readdir(join(work, "cache")).catch(() => [])).toEqual([]);
    return { fromArchive: asPulled(fromArchive), fromPull, digest };
  }

  it.each(hostileCases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
    const { fromArchive, fromPull, digest } = await bothRefusals(
      await ociArchiveOf({ layers: c.layers, tag: "x" }),
      c.layer,
    );
    expect(fromPull).toEqual(fromArchive);
    expect(fromPull).toMatchObject({ code: "E_IMAGE_ARCHIVE", entry: c.entry, member: digest });
    expect(fromPull.message).toMatch(c.message);
  });

  it("a decompression bomb past maxLayerBytes stops the pull as it stops a load, naming the limit", async () => {
    const bomb = await tarOf([{ name: "zeros", content: Buffer.alloc(8 * 1024 * 1024) }]);
    const { fromArchive, fromPull } = await bothRefusals(
      await ociArchiveOf({ layers: [bomb], tag: "bomb" }),
      0,
      {
        limits: { maxLayerBytes: 1024 * 1024 },
      },
    );
    expect(fromPull).toEqual(fromArchive);
    expect(fromPull).toMatchObject({ limit: "maxLayerBytes" });
    expect(fromPull.message).toMatch(/more than 1 MiB once uncompressed/);
  });

  it("more entries than maxEntries, as for a load", async () => {
    const many = await tarOf(Array.from({ length: 100 }, (_, i) => ({ name: `f${i}`, content: "" })));
    const { fromArchive, fromPull } = await bothRefusals(await ociArchiveOf({ layers: [many] }), 0, {
      limits: { maxEntries: 50 },
    });
    expect(fromPull).toEqual(fromArchive);
    expect(fromPull.limit).toBe("maxEntries");
  });

  it("a config past maxMetadataBytes is refused before it is fetched", async () => {
    const layer = await tarOf([{ name: "a", content: "a" }]);
    const path = join(work, "small.tar");
    await writeFile(path, await dockerArchiveOf({ layers: [layer] }));
    const reference = `${regs.plain.host}/${run}/metadata:1`;
    await pushArchive(client, path, reference);
    const err = await ex.pullImage(reference, { limits: { maxMetadataBytes: 10 } }).catch((e: unknown) => e);
    expect(refusalOf(err)).toMatchObject({ limit: "maxMetadataBytes" });
    expect((err as Error).message).toMatch(/larger than 10 bytes \(the maxMetadataBytes limit\)/);
  });
});
