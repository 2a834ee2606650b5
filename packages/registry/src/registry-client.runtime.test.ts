import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createGunzip, gzipSync } from "node:zlib";
import { RegistryAuthError, RegistryError, readImageArchive } from "@contexec/core";
import { imageConfigOf, sha256, tarOf } from "@contexec/core/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { MEDIA_TYPES } from "./manifest/parse-manifest.js";
import { pushArchive, pushImage, pushIndex } from "./push/push-image.js";
import { parseImageReference } from "./reference/image-reference.js";
import { hostPlatform } from "./reference/platform.js";
import { RegistryClient, type RemoteImage } from "./registry-client.js";
import { type FaultProxy, startFaultProxy } from "./testing/fault-proxy.js";

const registries = inject("registries");
const skipReason = registries === null ? ` (skipped: ${inject("registriesUnavailable")})` : "";
const fixturesDir = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const run = randomBytes(3).toString("hex");

// Retries quick enough for a test, as many as the default.
const fast = { retryDelayMs: 20, retryMaxDelayMs: 200 };

/** Reads a blob stream to its end; sha256 of the bytes (decompressed when asked). */
async function digestOfStream(stream: Readable, gunzip = false): Promise<string> {
  const hash = createHash("sha256");
  const source = gunzip ? stream.pipe(createGunzip()) : stream;
  if (gunzip) stream.on("error", (err) => source.destroy(err));
  for await (const chunk of source as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest("hex")}`;
}

/** The uncompressed digest of every layer of a pulled image, in order. */
async function pulledDiffIds(client: RegistryClient, image: RemoteImage): Promise<string[]> {
  const out: string[] = [];
  for (const layer of image.layers)
    out.push(await digestOfStream(client.openBlob(image.reference, layer), true));
  return out;
}

/** A one-layer image holding `size` bytes of random data (incompressible, so the blob is that big). */
async function bigImage(size: number) {
  const layer = await tarOf([
    { name: "data", type: "directory" },
    { name: "data/random.bin", content: randomBytes(size) },
  ]);
  const config = imageConfigOf({ layers: [layer], cmd: ["/bin/true"] });
  return { layer, config, gz: gzipSync(layer, { level: 1 }) };
}

describe.skipIf(registries === null)(`the registry client against real registries${skipReason}`, () => {
  const regs = registries as NonNullable<typeof registries>;
  let work = "";
  let caCert = "";
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "registry-runtime-"));
    caCert = await readFile(regs.secure.caCert, "utf8");
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  describe("pushing the fixture archives and pulling them back", () => {
    const client = new RegistryClient({ dockerConfig: false, ...fast });
    afterAll(() => client.close());

    it.each(["busybox", "layered"])(
      "pulls the %s fixture by tag and by digest, as the archive holds it",
      async (fixture) => {
        const archivePath = join(fixturesDir, `${fixture}.tar`);
        const archive = await readImageArchive(archivePath);
        const ref = `${regs.plain.host}/${run}/${fixture}:1`;
        const pushed = await pushArchive(client, archivePath, ref);
        expect(pushed.id).toBe(archive.id);

        const byTag = await client.resolveImage(ref);
        expect(byTag.id).toBe(archive.id);
        expect(byTag.manifestDigest).toBe(pushed.manifestDigest);
        expect(byTag.layers.map((l) => l.mediaType)).toEqual(
          archive.layers.map(() => MEDIA_TYPES.dockerLayerGzip),
        );
        expect(await client.fetchConfig(byTag)).toEqual(archive.configJson);
        expect(await pulledDiffIds(client, byTag)).toEqual(archive.layers.map((l) => l.diffId));

        const byDigest = await client.resolveImage(
          `docker://${regs.plain.host}/${run}/${fixture}@${pushed.manifestDigest}`,
        );
        expect(byDigest).toMatchObject({ id: archive.id, manifestDigest: pushed.manifestDigest });
        expect(byDigest.reference.tag).toBeUndefined();
      },
    );

    it("gives every connection back to its pool: 20 layers push and pull in well under the idle timeout", async () => {
      // A response not read to its end keeps its socket; 16 of those stall the next request for a minute.
      const layers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => tarOf([{ name: `f${i}`, content: `layer ${i}` }])),
      );
      const config = imageConfigOf({ layers });
      const ref = `${regs.plain.host}/${run}/many:1`;
      const started = Date.now();
      await pushImage(client, ref, {
        config,
        layers: layers.map((l) => ({
          mediaType: MEDIA_TYPES.dockerLayerGzip,
          open: () => Readable.from([gzipSync(l)]),
        })),
      });
      const image = await client.resolveImage(ref);
      expect(await pulledDiffIds(client, image)).toEqual(layers.map((l) => sha256(l)));
      expect(Date.now() - started).toBeLessThan(20_000);
    });

    it("pushes uncompressed OCI layers too, and pulls them", async () => {
      const archivePath = join(fixturesDir, "busybox.tar");
      const archive = await readImageArchive(archivePath);
      const ref = `${regs.plain.host}/${run}/busybox-oci:1`;
      await pushArchive(client, archivePath, ref, { compression: "none", format: "oci" });
      const image = await client.resolveImage(ref);
      expect(image.manifestMediaType).toBe(MEDIA_TYPES.ociManifest);
      expect(image.layers.map((l) => l.digest)).toEqual(archive.layers.map((l) => l.diffId));
      expect(await digestOfStream(client.openBlob(image.reference, image.layers[0] as never))).toBe(
        archive.layers[0]?.diffId,
      );
    });

    it("says what is missing: an unknown tag or repository is not-found, not retried", async () => {
      const proxy = await startFaultProxy(regs.plain.host);
      try {
        const err = await client.resolveImage(`${proxy.host}/${run}/nothing-here:1`).catch((e) => e);
        expect(err).toBeInstanceOf(RegistryError);
        expect(err).toMatchObject({ code: "E_REGISTRY", reason: "not-found", status: 404 });
        expect(err.message).toMatch(/nothing-here:1: not found \(HTTP 404: (MANIFEST|NAME)_UNKNOWN/);
        expect(proxy.requests).toHaveLength(1);
      } finally {
        await proxy.stop();
      }
    });
  });

  describe("multi-platform images", () => {
    const client = new RegistryClient({ dockerConfig: false, ...fast });
    afterAll(() => client.close());

    it("picks the image for this machine, or for the platform asked for, from an index", async () => {
      const archivePath = join(fixturesDir, "busybox.tar");
      const ref = parseImageReference(`${regs.plain.host}/${run}/multi:1`);
      const here = hostPlatform();
      const native = await pushArchive(client, archivePath, { ...ref, tag: "native" });
      // The same layers under a config for another platform: a different image id.
      const archive = await readImageArchive(archivePath);
      const otherConfig = Buffer.from(
        JSON.stringify({ ...JSON.parse(archive.configJson.toString()), architecture: "s390x" }),
      );
      const layerBlob = gzipSync(
        await readFile(archivePath).then((b) =>
          b.subarray(
            archive.layers[0]?.dataOffset,
            (archive.layers[0]?.dataOffset ?? 0) + (archive.layers[0]?.size ?? 0),
          ),
        ),
      );
      const other = await pushImage(
        client,
        { ...ref, tag: "s390x" },
        {
          config: otherConfig,
          layers: [{ mediaType: MEDIA_TYPES.dockerLayerGzip, open: () => Readable.from([layerBlob]) }],
          platform: { os: "linux", architecture: "s390x" },
        },
      );
      const indexDigest = await pushIndex(client, ref, [
        { ...other.descriptor, platform: { os: "linux", architecture: "s390x" } },
        { ...native.descriptor, platform: here },
      ]);

      const mine = await client.resolveImage(ref);
      expect(mine).toMatchObject({ id: native.id, indexDigest, manifestDigest: native.manifestDigest });
      expect(mine.platform).toMatchObject({ os: here.os, architecture: here.architecture });
      const theirs = await client.resolveImage(ref, { platform: "linux/s390x" });
      expect(theirs).toMatchObject({ id: other.id, indexDigest, manifestDigest: other.manifestDigest });
      expect(await client.fetchConfig(theirs)).toEqual(otherConfig);

      const err = await client.resolveImage(ref, { platform: "linux/riscv64" }).catch((e) => e);
      expect(err).toMatchObject({ code: "E_REGISTRY", reason: "platform" });
      expect(err.message).toMatch(/no image for linux\/riscv64; it has linux\/s390x, linux\/amd64/);
    });
  });

  describe("credentials", () => {
    let secureImage = "";
    let tokenImage = "";
    beforeAll(async () => {
      const busybox = join(fixturesDir, "busybox.tar");
      const secure = new RegistryClient({
        dockerConfig: false,
        ca: caCert,
        auth: { username: regs.secure.username, password: regs.secure.password },
      });
      const token = new RegistryClient({
        dockerConfig: false,
        auth: { username: regs.token.username, password: regs.token.password },
      });
      secureImage = `${regs.secure.host}/${run}/busybox:1`;
      tokenImage = `${regs.token.host}/${run}/busybox:1`;
      await Promise.all([pushArchive(secure, busybox, secureImage), pushArchive(token, busybox, tokenImage)]);
      secure.close();
      token.close();
    });

    it("pulls over HTTPS with the test's CA and Basic auth (htpasswd)", async () => {
      const client = new RegistryClient({
        dockerConfig: false,
        ca: caCert,
        auth: { username: regs.secure.username, password: regs.secure.password },
      });
      try {
        const image = await client.resolveImage(secureImage);
        expect(await client.fetchConfig(image)).toEqual(
          (await readImageArchive(join(fixturesDir, "busybox.tar"))).configJson,
        );
      } finally {
        client.close();
      }
    });

    it("pulls with a Bearer token from the registry's token service, and from credentials in a Docker config file", async () => {
      const config = join(work, "docker-config.json");
      await writeFile(
        config,
        JSON.stringify({
          auths: {
            [`http://${regs.token.host}`]: {
              auth: Buffer.from(`${regs.token.username}:${regs.token.password}`).toString("base64"),
            },
          },
        }),
      );
      const client = new RegistryClient({ dockerConfig: config, ...fast });
      try {
        const image = await client.resolveImage(tokenImage);
        const ids = await pulledDiffIds(client, image);
        expect(ids).toEqual(
          (await readImageArchive(join(fixturesDir, "busybox.tar"))).layers.map((l) => l.diffId),
        );
      } finally {
        client.close();
      }
    });

    it("refuses a wrong password with RegistryAuthError after two requests (Basic), no retries", async () => {
      const proxy = await startFaultProxy(regs.secure.host, { upstreamCa: caCert });
      const client = new RegistryClient({
        dockerConfig: false,
        plainHttp: [proxy.host],
        auth: { username: regs.secure.username, password: "wrong" },
        ...fast,
      });
      try {
        const ref = secureImage.replace(regs.secure.host, proxy.host);
        const err = await client.resolveImage(ref).catch((e) => e);
        expect(err).toBeInstanceOf(RegistryAuthError);
        expect(err).toMatchObject({ code: "E_REGISTRY_AUTH", status: 401 });
        expect(err.message).toMatch(
          /refused the user name and password of user "contexec" \(from the auth option\)/,
        );
        // The request that met the challenge, and the one that presented the password.
        expect(proxy.requests.map((r) => [r.authorization, r.status])).toEqual([
          [false, 401],
          [true, 401],
        ]);
      } finally {
        client.close();
        await proxy.stop();
      }
    });

    it("refuses a wrong password with RegistryAuthError after one registry and one token request (Bearer)", async () => {
      const proxy = await startFaultProxy(regs.token.host);
      const stats = async () =>
        (await fetch(regs.token.tokenStatsUrl)).json() as Promise<{ requests: number; refused: number }>;
      const before = await stats();
      const client = new RegistryClient({
        dockerConfig: false,
        auth: { username: regs.token.username, password: "wrong" },
        ...fast,
      });
      try {
        const err = await client
          .resolveImage(tokenImage.replace(regs.token.host, proxy.host))
          .catch((e) => e);
        expect(err).toBeInstanceOf(RegistryAuthError);
        expect(err.message).toMatch(
          /token service http:\/\/127\.0\.0\.1:\d+\/token refused the credentials of user "contexec"/,
        );
        expect(proxy.requests).toHaveLength(1);
        const after = await stats();
        expect([after.requests - before.requests, after.refused - before.refused]).toEqual([1, 1]);
      } finally {
        client.close();
        await proxy.stop();
      }
    });

    it("without credentials, says the registry needs some and where they were looked for", async () => {
      const basic = new RegistryClient({ dockerConfig: false, ca: caCert, ...fast });
      const bearer = new RegistryClient({ dockerConfig: join(work, "no-such-config.json"), ...fast });
      try {
        const e1 = await basic.resolveImage(secureImage).catch((e) => e);
        expect(e1).toBeInstanceOf(RegistryAuthError);
        expect(e1.message).toMatch(
          /needs a user name and password \(Basic\) and none were given: pass auth, or run `docker login/,
        );
        // Anonymous tokens grant nothing on this registry: the token is refused.
        const e2 = await bearer.resolveImage(tokenImage).catch((e) => e);
        expect(e2).toBeInstanceOf(RegistryAuthError);
        expect(e2.message).toMatch(
          /refused a token just issued for repository:.*:pull.*anonymous access may not access it/,
        );
      } finally {
        basic.close();
        bearer.close();
      }
    });

    it("refuses an HTTPS registry whose CA it was not given (reason tls, not retried)", async () => {
      const client = new RegistryClient({
        dockerConfig: false,
        auth: { username: regs.secure.username, password: regs.secure.password },
        ...fast,
      });
      try {
        const started = Date.now();
        const err = await client.resolveImage(secureImage).catch((e) => e);
        expect(err).toBeInstanceOf(RegistryError);
        expect(err).toMatchObject({ reason: "tls" });
        expect(err.message).toMatch(/certificate is not trusted \(\w+\); give its CA certificate/);
        expect(Date.now() - started).toBeLessThan(2000);
      } finally {
        client.close();
      }
    });
  });

  describe("faults between client and registry", () => {
    let proxy: FaultProxy;
    let image: Awaited<ReturnType<typeof bigImage>>;
    const repo = `${run}/big`;
    const blobPath = () => `/v2/${repo}/blobs/${sha256(image.gz)}`;
    beforeAll(async () => {
      image = await bigImage(3 * 1024 * 1024);
      const client = new RegistryClient({ dockerConfig: false });
      await pushImage(client, `${regs.plain.host}/${repo}:1`, {
        config: image.config,
        layers: [{ mediaType: MEDIA_TYPES.dockerLayerGzip, open: () => Readable.from([image.gz]) }],
      });
      client.close();
      proxy = await startFaultProxy(regs.plain.host);
    });
    afterAll(async () => {
      await proxy?.stop();
    });
    const fresh = (options = {}) => {
      proxy.reset();
      return new RegistryClient({ dockerConfig: false, ...fast, ...options });
    };
    const ref = () => `${proxy.host}/${repo}:1`;

    it("resumes a blob whose connection drops mid-way with a Range request, every byte once", async () => {
      const client = fresh();
      proxy.fault = (req, n) =>
        req.url === blobPath() && n === 1 ? { kind: "drop-after", bytes: 1024 * 1024 + 123 } : undefined;
      try {
        const pulled = await client.resolveImage(ref());
        let bytes = 0;
        const digest = await digestOfStream(
          client.openBlob(pulled.reference, pulled.layers[0] as never, { onBytes: (n) => (bytes += n) }),
        );
        expect(digest).toBe(sha256(image.gz));
        expect(bytes).toBe(image.gz.length);
        const blobRequests = proxy.requests.filter((r) => r.path === blobPath());
        expect(blobRequests.map((r) => r.range)).toEqual([undefined, `bytes=${1024 * 1024 + 123}-`]);
        expect(blobRequests[1]?.status).toBe(206);
      } finally {
        client.close();
      }
    });

    it("resumes from a registry that ignores ranges by skipping what it already has", async () => {
      const client = fresh();
      proxy.fault = (req, n) =>
        req.url !== blobPath()
          ? undefined
          : n === 1
            ? { kind: "drop-after", bytes: 700_000 }
            : { kind: "ignore-range" };
      try {
        const pulled = await client.resolveImage(ref());
        expect(await digestOfStream(client.openBlob(pulled.reference, pulled.layers[0] as never), true)).toBe(
          sha256(image.layer),
        );
        expect(proxy.requests.filter((r) => r.path === blobPath()).map((r) => r.status)).toEqual([200, 200]);
      } finally {
        client.close();
      }
    });

    it("retries 503 and 429 (after Retry-After) and then succeeds", async () => {
      const client = fresh();
      proxy.fault = (req, n) => {
        if (!req.url?.includes("/manifests/")) return undefined;
        if (n === 1) return { kind: "status", status: 503 };
        if (n === 2) return { kind: "status", status: 429, headers: { "retry-after": "1" } };
        return undefined;
      };
      try {
        const started = Date.now();
        const pulled = await client.resolveImage(ref());
        expect(pulled.id).toBe(sha256(image.config));
        expect(Date.now() - started).toBeGreaterThanOrEqual(950);
        expect(proxy.requests.map((r) => r.status)).toEqual([503, 429, 200]);
      } finally {
        client.close();
      }
    });

    it("gives up on a registry that keeps failing after its retries, with reason unreachable", async () => {
      const client = fresh({ retries: 2 });
      proxy.fault = () => ({ kind: "status", status: 502 });
      try {
        const err = await client.resolveImage(ref()).catch((e) => e);
        expect(err).toMatchObject({ code: "E_REGISTRY", reason: "unreachable", status: 502 });
        expect(err.message).toMatch(/HTTP 502.*still after 2 retries/);
        expect(proxy.requests).toHaveLength(3);
      } finally {
        client.close();
      }
    });

    it("follows a redirect to blob storage without sending the registry's credentials there", async () => {
      const secureProxy = await startFaultProxy(regs.secure.host, {
        upstreamCa: caCert,
        // The storage authorises itself, as a pre-signed URL does.
        storageAuthorization: `Basic ${Buffer.from(`${regs.secure.username}:${regs.secure.password}`).toString("base64")}`,
      });
      const client = new RegistryClient({
        dockerConfig: false,
        plainHttp: [secureProxy.host],
        auth: { username: regs.secure.username, password: regs.secure.password },
        ...fast,
      });
      try {
        const pulledRef = `${secureProxy.host}/${run}/busybox:1`;
        const archive = await readImageArchive(join(fixturesDir, "busybox.tar"));
        await pushArchive(client, join(fixturesDir, "busybox.tar"), pulledRef);
        secureProxy.requests.length = 0;
        secureProxy.fault = (req) =>
          req.url?.includes("/blobs/") && req.method === "GET" ? { kind: "redirect" } : undefined;
        const pulled = await client.resolveImage(pulledRef);
        expect(await pulledDiffIds(client, pulled)).toEqual(archive.layers.map((l) => l.diffId));
        const blobs = secureProxy.requests.filter((r) => r.path.includes("/blobs/"));
        expect(blobs.filter((r) => !r.storage).every((r) => r.authorization && r.status === 307)).toBe(true);
        expect(blobs.filter((r) => r.storage).map((r) => [r.authorization, r.status])).toEqual([
          [false, 200],
        ]);
      } finally {
        client.close();
        await secureProxy.stop();
      }
    });

    it("refuses a blob with a corrupt byte (digest-mismatch): the stream errors instead of ending", async () => {
      const client = fresh();
      proxy.fault = (req) => (req.url === blobPath() ? { kind: "corrupt", at: 2_000_000 } : undefined);
      try {
        const pulled = await client.resolveImage(ref());
        let ended = false;
        const stream = client.openBlob(pulled.reference, pulled.layers[0] as never);
        stream.on("end", () => {
          ended = true;
        });
        const err = await digestOfStream(stream).catch((e) => e);
        expect(err).toBeInstanceOf(RegistryError);
        expect(err).toMatchObject({ reason: "digest-mismatch" });
        expect(err.message).toMatch(new RegExp(`blob ${sha256(image.gz)} does not match its digest`));
        expect(ended).toBe(false);
        // Not retried: one request for the blob.
        expect(proxy.requests.filter((r) => r.path === blobPath())).toHaveLength(1);
      } finally {
        client.close();
      }
    });

    it("refuses a manifest whose bytes do not match its digest, by digest and by tag", async () => {
      const client = fresh();
      const manifestDigest = (await client.resolveImage(ref())).manifestDigest;
      proxy.fault = (req) => (req.url?.includes("/manifests/") ? { kind: "corrupt", at: 40 } : undefined);
      try {
        const byDigest = await client.resolveImage(`${proxy.host}/${repo}@${manifestDigest}`).catch((e) => e);
        expect(byDigest).toMatchObject({ code: "E_REGISTRY", reason: "digest-mismatch" });
        expect(byDigest.message).toMatch(/does not match its digest/);
        // By tag, the registry's Docker-Content-Digest header names what the bytes must hash to.
        const byTag = await client.resolveImage(ref()).catch((e) => e);
        expect(byTag).toMatchObject({ code: "E_REGISTRY", reason: "digest-mismatch" });
      } finally {
        client.close();
      }
    });

    it("stops at once when the signal fires mid-blob", async () => {
      const client = fresh();
      try {
        const pulled = await client.resolveImage(ref());
        const controller = new AbortController();
        const stream = client.openBlob(pulled.reference, pulled.layers[0] as never, {
          signal: controller.signal,
          onBytes: () => controller.abort(),
        });
        const err = await digestOfStream(stream).catch((e) => e);
        expect(err).toMatchObject({ code: "E_ABORTED" });
      } finally {
        client.close();
      }
    });
  });
});
