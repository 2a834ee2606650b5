import { describe, expect, it } from "vitest";
import { layerCompression, MEDIA_TYPES, parseManifest } from "./parse-manifest.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe("parseManifest", () => {
  it("reads a Docker manifest list with platforms (as Docker Hub serves busybox)", () => {
    const body = json({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerManifestList,
      manifests: [
        {
          mediaType: MEDIA_TYPES.dockerManifest,
          size: 528,
          digest: d("a"),
          platform: { architecture: "amd64", os: "linux" },
        },
        {
          mediaType: MEDIA_TYPES.dockerManifest,
          size: 528,
          digest: d("b"),
          platform: { architecture: "arm", os: "linux", variant: "v7" },
        },
      ],
    });
    expect(parseManifest(body, undefined, "docker.io", "x")).toEqual({
      kind: "index",
      mediaType: MEDIA_TYPES.dockerManifestList,
      manifests: [
        {
          mediaType: MEDIA_TYPES.dockerManifest,
          size: 528,
          digest: d("a"),
          platform: { os: "linux", architecture: "amd64" },
        },
        {
          mediaType: MEDIA_TYPES.dockerManifest,
          size: 528,
          digest: d("b"),
          platform: { os: "linux", architecture: "arm", variant: "v7" },
        },
      ],
    });
  });

  it("reads an OCI manifest without a mediaType field by the header, then by its shape", () => {
    const body = json({
      schemaVersion: 2,
      config: { mediaType: MEDIA_TYPES.ociConfig, size: 10, digest: d("c") },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, size: 20, digest: d("e") }],
    });
    const byHeader = parseManifest(body, `${MEDIA_TYPES.ociManifest}; charset=utf-8`, "r", "x");
    expect(byHeader).toMatchObject({
      kind: "image",
      mediaType: MEDIA_TYPES.ociManifest,
      config: { digest: d("c") },
    });
    expect(parseManifest(body, "application/json", "r", "x")).toEqual(byHeader);
  });

  it.each([
    [{ schemaVersion: 1, name: "x", fsLayers: [] }, /schema 1/],
    [{ schemaVersion: 3 }, /schemaVersion is 3/],
    [[], /not a JSON object/],
    [
      { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: {}, layers: [] },
      /config has a malformed digest/,
    ],
    [{ schemaVersion: 2, config: { digest: d("c"), size: -1 }, layers: [] }, /config has a malformed size/],
    [{ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex }, /index without manifests/],
    [{ schemaVersion: 2 }, /unknown media type/],
  ])("refuses %j", (manifest, message) => {
    expect(() => parseManifest(json(manifest), undefined, "r", "the manifest of r/x:1")).toThrow(message);
    expect(() => parseManifest(json(manifest), undefined, "r", "x")).toThrow(
      expect.objectContaining({ code: "E_REGISTRY", reason: "protocol" }),
    );
  });

  it("refuses bytes that are not JSON", () => {
    expect(() => parseManifest(Buffer.from("<html>"), "text/html", "r", "x")).toThrow(/not JSON/);
  });
});

describe("layerCompression", () => {
  it("reads the compression from Docker's and OCI's layer media types", () => {
    expect(layerCompression(MEDIA_TYPES.dockerLayerGzip, "r")).toBe("gzip");
    expect(layerCompression(MEDIA_TYPES.ociLayerGzip, "r")).toBe("gzip");
    expect(layerCompression(MEDIA_TYPES.ociLayerZstd, "r")).toBe("zstd");
    expect(layerCompression(MEDIA_TYPES.ociLayer, "r")).toBe("none");
    expect(layerCompression("application/vnd.docker.image.rootfs.diff.tar", "r")).toBe("none");
    expect(layerCompression("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "r")).toBe(
      "gzip",
    );
    expect(() => layerCompression("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "r")).not.toThrow();
    expect(() => layerCompression("application/vnd.in-toto+json", "r")).toThrow(
      /not a container file system layer/,
    );
  });
});
