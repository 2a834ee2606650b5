// The benchmark image, generated here deterministically (AES-CTR keystream) and cached: a
// docker-archive of four layers, ~420 MB uncompressed, ~9000 files. Text-like files compress
// well, "library" files halfway, blobs not at all; upper layers replace, delete (whiteouts, an
// opaque folder) and hard-link lower files. Used by bench-sif.mjs and bench-pull.mjs.
import { createCipheriv, createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, statSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const BENCH_IMAGE_VERSION = "v2";
const IMAGE_VERSION = BENCH_IMAGE_VERSION;

export function describeBenchImage() {
  return "4 layers, ~9000 entries: text, half-compressible libraries, incompressible blobs, whiteouts, an opaque folder, hard links";
}

/** Deterministic bytes: an AES-128-CTR keystream over zeros. */
function keystream(seed) {
  const key = createHash("sha256").update(`contexec-bench-${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

function wordsFrom(random) {
  const letters = "etaoinshrdlucmfwypvbgkjqxz";
  const words = [];
  const bytes = random(4096 * 12);
  for (let i = 0; i < 4096; i++) {
    const len = 2 + (bytes[i * 12] % 9);
    let w = "";
    for (let j = 0; j < len; j++) w += letters[bytes[i * 12 + 1 + j] % 26];
    words.push(Buffer.from(w));
  }
  return words;
}

function textOf(random, words, size) {
  const out = Buffer.allocUnsafe(size + 16);
  const picks = random(Math.ceil(size / 3) * 2 + 16);
  let at = 0;
  let p = 0;
  while (at < size) {
    const w = words[(picks[p] | (picks[p + 1] << 8)) & 4095];
    p += 2;
    w.copy(out, at);
    at += w.length;
    out[at++] = picks[p - 1] % 11 === 0 ? 10 : 32;
  }
  return out.subarray(0, size);
}

function halfCompressible(random, words, size) {
  const parts = [];
  for (let at = 0; at < size; at += 8192) {
    const n = Math.min(8192, size - at);
    parts.push(((at / 8192) & 1) === 0 ? random(n) : textOf(random, words, n));
  }
  return Buffer.concat(parts);
}

/**
 * The image archive under `cacheDir`, generated the first time. With `crossLayerLinks: false`
 * the upper layer holds no hard links to lower layers' files: Docker cannot apply such a layer
 * ("failed to register layer: link ...: no such file or directory"); its own builds never make one.
 */
export async function ensureBenchImage(cacheDir, { crossLayerLinks = true } = {}) {
  const path = join(cacheDir, `image-${IMAGE_VERSION}${crossLayerLinks ? "" : "-docker"}.tar`);
  if (existsSync(path)) return path;
  await mkdir(cacheDir, { recursive: true });
  console.log(`generating the benchmark image (once) into ${path} ...`);
  const tarStream = (await import(join(root, "node_modules/tar-stream/index.js"))).default;
  const random = keystream(IMAGE_VERSION);
  const words = wordsFrom(random);
  const work = join(cacheDir, "gen");
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const mtime = new Date(1_700_000_000_000);

  /** Writes one layer tar from a generator of entries; returns its path, size and digest. */
  const writeLayer = async (name, entries) => {
    const file = join(work, `${name}.tar`);
    const pack = tarStream.pack();
    const hash = createHash("sha256");
    const writing = pipeline(
      pack,
      async function* (source) {
        for await (const chunk of source) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(file),
    );
    for (const e of entries()) {
      const header = { mtime, uid: 0, gid: 0, ...e.header };
      await new Promise((resolve, reject) => {
        const cb = (err) => (err ? reject(err) : resolve());
        if (e.data) pack.entry(header, e.data, cb);
        else pack.entry(header, cb).end();
      });
    }
    pack.finalize();
    await writing;
    return { file, digest: `sha256:${hash.digest("hex")}`, size: statSync(file).size };
  };
  const dir = (name, mode = 0o755) => ({ header: { name, type: "directory", mode: 0o40000 | mode } });
  const file = (name, data, mode = 0o644, extra = {}) => ({
    header: { name, type: "file", mode: 0o100000 | mode, ...extra },
    data,
  });
  const link = (name, target) => ({ header: { name, type: "link", linkname: target, mode: 0o100755 } });
  const symlink = (name, target) => ({ header: { name, type: "symlink", linkname: target, mode: 0o120777 } });
  const whiteout = (name) => file(name, Buffer.alloc(0), 0o600);
  const sizeAround = (bytes, lo, hi) => lo + (bytes.readUInt32LE(0) % (hi - lo));

  const base = () => {
    const out = [];
    for (const d of [
      "etc",
      "usr",
      "usr/bin",
      "usr/lib",
      "usr/lib/x86_64-linux-gnu",
      "usr/share",
      "usr/share/doc",
      "usr/share/locale",
      "var",
      "var/lib",
      "tmp",
    ])
      out.push(dir(d, d === "tmp" ? 0o1777 : 0o755));
    for (let i = 0; i < 2600; i++) {
      if (i % 20 === 0) out.push(dir(`usr/share/doc/pkg${i / 20}`));
      out.push(
        file(
          `usr/share/doc/pkg${Math.floor(i / 20)}/file${i}.txt`,
          textOf(random, words, sizeAround(random(4), 1000, 40_000)),
        ),
      );
    }
    for (let i = 0; i < 600; i++) {
      out.push(
        file(
          `usr/lib/x86_64-linux-gnu/lib${i}.so.1`,
          halfCompressible(random, words, sizeAround(random(4), 20_000, 400_000)),
          0o755,
        ),
      );
      out.push(symlink(`usr/lib/x86_64-linux-gnu/lib${i}.so`, `lib${i}.so.1`));
    }
    for (let i = 0; i < 300; i++) {
      out.push(
        file(
          `usr/bin/tool-${i}`,
          halfCompressible(random, words, sizeAround(random(4), 10_000, 200_000)),
          0o755,
        ),
      );
      if (i % 6 === 0) out.push(link(`usr/bin/tool-${i}-alias`, `usr/bin/tool-${i}`));
    }
    for (let l = 0; l < 40; l++) {
      out.push(dir(`usr/share/locale/l${l}`));
      for (let i = 0; i < 10; i++)
        out.push(file(`usr/share/locale/l${l}/m${i}.mo`, textOf(random, words, 3000)));
    }
    for (let i = 0; i < 200; i++) out.push(file(`etc/conf-${i}`, textOf(random, words, 600)));
    out.push(file("usr/bin/sudo-like", textOf(random, words, 5000), 0o4755));
    return out;
  };
  const runtime = () => {
    const out = [
      dir("opt"),
      dir("opt/runtime"),
      dir("opt/runtime/blobs"),
      dir("opt/runtime/cache"),
      dir("opt/runtime/small"),
    ];
    for (let i = 0; i < 30; i++)
      out.push(file(`opt/runtime/blobs/blob-${i}.bin`, random(sizeAround(random(4), 1_000_000, 6_000_000))));
    for (let i = 0; i < 1000; i++)
      out.push(file(`opt/runtime/small/s${i}.py`, textOf(random, words, sizeAround(random(4), 200, 20_000))));
    for (let i = 0; i < 200; i++) out.push(file(`opt/runtime/cache/c${i}`, textOf(random, words, 4000)));
    for (let i = 0; i < 100; i++) out.push(link(`opt/runtime/small/h${i}.py`, `opt/runtime/small/s${i}.py`));
    out.push(file("opt/runtime/owned", textOf(random, words, 100), 0o640, { uid: 1234, gid: 5678 }));
    return out;
  };
  const app = () => {
    const out = [
      dir("usr"),
      dir("usr/bin"),
      dir("usr/share"),
      dir("usr/share/doc"),
      dir("opt"),
      dir("opt/runtime"),
      dir("opt/runtime/cache"),
      dir("app"),
      dir("app/data"),
    ];
    // replace 200 tools, delete 300 docs and the whole locale tree, make the cache opaque
    for (let i = 0; i < 200; i++)
      out.push(file(`usr/bin/tool-${i}`, halfCompressible(random, words, 50_000), 0o755));
    for (let i = 0; i < 15; i++) {
      out.push(dir(`usr/share/doc/pkg${i}`));
      for (let j = 0; j < 20; j++) out.push(whiteout(`usr/share/doc/pkg${i}/.wh.file${i * 20 + j}.txt`));
    }
    out.push(whiteout("usr/share/.wh.locale"));
    out.push(whiteout("opt/runtime/cache/.wh..wh..opq"));
    for (let i = 0; i < 20; i++) out.push(file(`opt/runtime/cache/new${i}`, textOf(random, words, 2000)));
    // hard links to files of lower layers
    if (crossLayerLinks) {
      out.push(link("app/tool-250-link", "usr/bin/tool-250"));
      out.push(link("app/blob-link", "opt/runtime/blobs/blob-3.bin"));
    }
    for (let i = 0; i < 400; i++)
      out.push(file(`app/data/d${i}.json`, textOf(random, words, sizeAround(random(4), 1000, 100_000))));
    out.push(file("app/model.bin", random(20_000_000)));
    return out;
  };
  const config = () => [
    dir("opt"),
    dir("opt/runtime"),
    dir("opt/runtime/blobs"),
    whiteout("opt/runtime/blobs/.wh.blob-7.bin"),
    dir("etc"),
    file("etc/app.conf", textOf(random, words, 2000)),
  ];

  const layers = [];
  for (const [name, entries] of Object.entries({ base, runtime, app, config }))
    layers.push(await writeLayer(name, entries));
  const configJson = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {
        Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_HOME=/app"],
        Entrypoint: ["/usr/bin/tool-1"],
        Cmd: ["--help"],
        WorkingDir: "/app",
      },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const configName = `${createHash("sha256").update(configJson).digest("hex")}.json`;
  const manifest = [
    {
      Config: configName,
      RepoTags: [`contexec-bench/image:${IMAGE_VERSION}`],
      Layers: layers.map((l) => `${l.digest.slice(7)}/layer.tar`),
    },
  ];
  const outer = tarStream.pack();
  const tmp = `${path}.tmp`;
  const writing = pipeline(outer, createWriteStream(tmp));
  const add = (header, data) =>
    new Promise((resolve, reject) => {
      const cb = (err) => (err ? reject(err) : resolve());
      if (data) outer.entry({ mtime, ...header }, data, cb);
      else outer.entry({ mtime, ...header }, cb).end();
    });
  await add({ name: configName }, configJson);
  for (const l of layers) {
    const name = `${l.digest.slice(7)}/layer.tar`;
    await add({ name: `${l.digest.slice(7)}/`, type: "directory" });
    await new Promise((resolve, reject) => {
      const sink = outer.entry({ name, size: l.size, mtime }, (err) => (err ? reject(err) : resolve()));
      createReadStream(l.file).pipe(sink);
    });
  }
  await add({ name: "manifest.json" }, Buffer.from(JSON.stringify(manifest)));
  outer.finalize();
  await writing;
  await rename(tmp, path);
  await rm(work, { recursive: true, force: true });
  return path;
}
