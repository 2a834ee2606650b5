// The converter benchmark's image, generated here (nothing is pulled) and cached under
// .cache/bench: deterministic bytes (an AES-128-CTR keystream), five layers, ~350 MB and ~20,000
// entries, shaped like a distribution image with a language runtime on it: many small text files
// (docs, sources, locale files), half-compressible "libraries" and tools, a few incompressible
// blobs, files replaced and deleted by upper layers (whiteouts, an opaque folder), symlinks, hard
// links within and across layers, a setuid file and numeric owners.
import { createCipheriv, createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, statSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";

export const IMAGE_VERSION = "v3";

export const IMAGE_DESCRIPTION =
  "5 layers: text, sources, half-compressible libraries, incompressible blobs, whiteouts, an opaque folder, symlinks, hard links";

/** The image's path, generated on first use. */
export async function ensureBenchImage(root, cacheDir, log = console.log) {
  const path = join(cacheDir, `image-${IMAGE_VERSION}.tar`);
  if (existsSync(path)) return path;
  await mkdir(cacheDir, { recursive: true });
  log(`generating the benchmark image (once) into ${path} ...`);
  const tarStream = (await import(join(root, "node_modules/tar-stream/index.js"))).default;
  const random = keystream(IMAGE_VERSION);
  const words = wordsFrom(random);
  const work = join(cacheDir, `gen-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const mtime = new Date(1_700_000_000_000);

  /** Writes one layer tar from a list of entries; returns its path, size and digest. */
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
    for (const e of entries) {
      const header = { mtime, uid: 0, gid: 0, ...e.header };
      const data = typeof e.data === "function" ? e.data() : e.data;
      await new Promise((resolve, reject) => {
        const cb = (err) => (err ? reject(err) : resolve());
        if (data) pack.entry(header, data, cb);
        else pack.entry(header, cb).end();
      });
    }
    pack.finalize();
    await writing;
    return {
      file,
      digest: `sha256:${hash.digest("hex")}`,
      size: statSync(file).size,
      entries: entries.length,
    };
  };
  const dir = (name, mode = 0o755) => ({ header: { name, type: "directory", mode: 0o40000 | mode } });
  // Data is made when the entry is written, so a layer's bytes are never all in memory at once.
  const file = (name, data, mode = 0o644, extra = {}) => ({
    header: { name, type: "file", mode: 0o100000 | mode, ...extra },
    data,
  });
  const link = (name, target) => ({ header: { name, type: "link", linkname: target, mode: 0o100755 } });
  const symlink = (name, target) => ({ header: { name, type: "symlink", linkname: target, mode: 0o120777 } });
  const whiteout = (name) => file(name, Buffer.alloc(0), 0o600);
  const sizeAround = (lo, hi) => lo + (random(4).readUInt32LE(0) % (hi - lo));
  const text = (lo, hi) => {
    const n = sizeAround(lo, hi);
    return () => textOf(random, words, n);
  };
  const half = (lo, hi) => {
    const n = sizeAround(lo, hi);
    return () => halfCompressible(random, words, n);
  };

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
      "usr/share/man",
      "var",
      "var/lib",
      "tmp",
    ])
      out.push(dir(d, d === "tmp" ? 0o1777 : 0o755));
    for (let i = 0; i < 4000; i++) {
      if (i % 20 === 0) out.push(dir(`usr/share/doc/pkg${i / 20}`));
      out.push(file(`usr/share/doc/pkg${Math.floor(i / 20)}/file${i}.txt`, text(500, 12_000)));
    }
    for (let i = 0; i < 2000; i++) {
      if (i % 50 === 0) out.push(dir(`usr/share/man/man${i / 50}`));
      out.push(file(`usr/share/man/man${Math.floor(i / 50)}/page${i}.1.gz`, text(300, 4000)));
    }
    for (let i = 0; i < 560; i++) {
      out.push(file(`usr/lib/x86_64-linux-gnu/lib${i}.so.1`, half(20_000, 400_000), 0o755));
      out.push(symlink(`usr/lib/x86_64-linux-gnu/lib${i}.so`, `lib${i}.so.1`));
    }
    for (let i = 0; i < 300; i++) {
      out.push(file(`usr/bin/tool-${i}`, half(10_000, 150_000), 0o755));
      if (i % 6 === 0) out.push(link(`usr/bin/tool-${i}-alias`, `usr/bin/tool-${i}`));
    }
    for (let l = 0; l < 40; l++) {
      out.push(dir(`usr/share/locale/l${l}`));
      for (let i = 0; i < 10; i++) out.push(file(`usr/share/locale/l${l}/m${i}.mo`, text(3000, 3001)));
    }
    for (let i = 0; i < 300; i++) out.push(file(`etc/conf-${i}`, text(100, 1200)));
    out.push(file("usr/bin/sudo-like", text(5000, 5001), 0o4755));
    return out;
  };
  const runtime = () => {
    const out = [
      dir("opt"),
      dir("opt/runtime"),
      dir("opt/runtime/blobs"),
      dir("opt/runtime/cache"),
      dir("opt/runtime/lib"),
    ];
    for (let i = 0; i < 22; i++)
      out.push(file(`opt/runtime/blobs/blob-${i}.bin`, () => random(sizeAround(1_000_000, 6_000_000))));
    // A package tree: many folders of small sources, as a language's standard library has.
    for (let p = 0; p < 300; p++) {
      out.push(dir(`opt/runtime/lib/pkg${p}`));
      for (let i = 0; i < 30; i++) out.push(file(`opt/runtime/lib/pkg${p}/m${i}.py`, text(200, 12_000)));
    }
    for (let i = 0; i < 200; i++) out.push(file(`opt/runtime/cache/c${i}`, text(4000, 4001)));
    for (let i = 0; i < 100; i++)
      out.push(link(`opt/runtime/lib/pkg${i}/alias.py`, `opt/runtime/lib/pkg${i}/m0.py`));
    out.push(file("opt/runtime/owned", text(100, 101), 0o640, { uid: 1234, gid: 5678 }));
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
    for (let i = 0; i < 200; i++) out.push(file(`usr/bin/tool-${i}`, half(50_000, 50_001), 0o755));
    for (let i = 0; i < 15; i++) {
      out.push(dir(`usr/share/doc/pkg${i}`));
      for (let j = 0; j < 20; j++) out.push(whiteout(`usr/share/doc/pkg${i}/.wh.file${i * 20 + j}.txt`));
    }
    out.push(whiteout("usr/share/.wh.locale"));
    out.push(whiteout("opt/runtime/cache/.wh..wh..opq"));
    for (let i = 0; i < 20; i++) out.push(file(`opt/runtime/cache/new${i}`, text(2000, 2001)));
    // hard links to files of lower layers
    out.push(link("app/tool-250-link", "usr/bin/tool-250"));
    out.push(link("app/blob-link", "opt/runtime/blobs/blob-3.bin"));
    for (let i = 0; i < 400; i++) out.push(file(`app/data/d${i}.json`, text(1000, 60_000)));
    out.push(file("app/model.bin", () => random(20_000_000)));
    return out;
  };
  // The application's own dependencies: another deep tree of small files.
  const deps = () => {
    const out = [dir("app"), dir("app/node_modules")];
    for (let p = 0; p < 200; p++) {
      out.push(dir(`app/node_modules/dep${p}`), dir(`app/node_modules/dep${p}/lib`));
      out.push(file(`app/node_modules/dep${p}/package.json`, text(300, 1500)));
      for (let i = 0; i < 12; i++) out.push(file(`app/node_modules/dep${p}/lib/f${i}.js`, text(200, 8000)));
    }
    return out;
  };
  const config = () => [
    dir("opt"),
    dir("opt/runtime"),
    dir("opt/runtime/blobs"),
    whiteout("opt/runtime/blobs/.wh.blob-7.bin"),
    dir("etc"),
    file("etc/app.conf", text(2000, 2001)),
  ];

  const layers = [];
  for (const [name, entries] of Object.entries({ base, runtime, app, deps, config }))
    layers.push(await writeLayer(name, entries()));
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
  const tmp = `${path}.${process.pid}.tmp`;
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
