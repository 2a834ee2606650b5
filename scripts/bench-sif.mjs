#!/usr/bin/env node
// Benchmark of the native docker-archive -> SIF converter (@contexec/sif) against
// `apptainer build docker-archive://` and against `sqfstar` alone on the same flattened tar.
//
//   npm run bench                     (builds packages/sif, then runs this file)
//   node scripts/bench-sif.mjs [--rounds N] [--compressions gzip,lz4,zstd,none] [--lz4-rounds N]
//                              [--also-unverified]
//
// Plain JavaScript over packages/sif/dist because Node 20 cannot run TypeScript. The image is
// generated here, deterministically (AES-CTR keystream), and cached under .cache/bench; runs of the
// three tools are interleaved (the order rotates each round) and medians reported. The converter
// runs in a child process that reports its own peak RSS (process.resourceUsage().maxRSS) and the
// time of the conversion call; "native (call)" is that time (what a library user pays, in a
// process already running), "native (with Node's start)" the child's whole wall time. The ratios
// and target checks use the call; both are printed.
import { execFile, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { closeSync, createReadStream, createWriteStream, existsSync, openSync, statSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const dist = join(root, "packages/sif/dist/index.js");
const core = join(root, "packages/core/dist/index.js");
const cacheDir = join(root, ".cache/bench");
const IMAGE_VERSION = "v2";
const run = promisify(execFile);

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};

if (args[0] === "--convert") {
  await convertChild(args[1], args[2], args[3], args[4] !== "unverified");
} else {
  await main();
}

/** Child mode: one native conversion; prints its time and this process's peak RSS as JSON. */
async function convertChild(input, output, compression, verifyDigests) {
  const { convertArchiveToSif } = await import(dist);
  const t0 = performance.now();
  const result = await convertArchiveToSif(input, output, { compression, verifyDigests });
  const ms = performance.now() - t0;
  process.stdout.write(
    `${JSON.stringify({ ms, maxRssKb: process.resourceUsage().maxRSS, sifBytes: result.sifBytes })}\n`,
  );
}

async function main() {
  const rounds = Number(arg("rounds", "3"));
  const lz4Rounds = Number(arg("lz4-rounds", "5"));
  const compressions = arg("compressions", "gzip,lz4").split(",");
  // Also time the converter with verifyDigests: false (what the diff_id check costs).
  const alsoUnverified = args.includes("--also-unverified");
  await mkdir(cacheDir, { recursive: true });
  const image = await ensureImage();
  const flat = await ensureFlatTar(image);
  const haveApptainer = await has("apptainer");
  if (!haveApptainer)
    console.log("apptainer not found: its column is skipped (install it with scripts/setup)");
  const outDir = join(cacheDir, "out");
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const { sqfstarArgs } = await import(dist);

  const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`;
  const imageBytes = statSync(image).size;
  console.log(`machine: ${machine}`);
  console.log(`image: ${image} (${mb(imageBytes)} MB, ${describeImage()})`);

  const results = {};
  for (const compression of compressions) {
    const n = compression === "lz4" ? lz4Rounds : rounds;
    const tools = {
      native: async () => {
        const out = join(outDir, `native-${compression}.sif`);
        await rm(out, { force: true });
        const t0 = performance.now();
        const { stdout } = await run(
          process.execPath,
          [fileURLToPath(import.meta.url), "--convert", image, out, compression],
          {
            maxBuffer: 1 << 20,
          },
        );
        const wall = performance.now() - t0;
        const child = JSON.parse(stdout.trim().split("\n").pop());
        // `ms`: the conversion call, as a library user pays it in a running process; `wallMs`:
        // also starting Node and loading the modules, as a one-shot command pays it.
        return { ms: child.ms, wallMs: wall, rssKb: child.maxRssKb, bytes: statSync(out).size };
      },
      "native-unverified": async () => {
        const out = join(outDir, `native-unverified-${compression}.sif`);
        await rm(out, { force: true });
        const t0 = performance.now();
        const { stdout } = await run(
          process.execPath,
          [fileURLToPath(import.meta.url), "--convert", image, out, compression, "unverified"],
          { maxBuffer: 1 << 20 },
        );
        const wall = performance.now() - t0;
        const child = JSON.parse(stdout.trim().split("\n").pop());
        return { ms: wall, rssKb: child.maxRssKb, bytes: statSync(out).size };
      },
      apptainer: async () => {
        const out = join(outDir, `apptainer-${compression}.sif`);
        const extra =
          compression === "gzip"
            ? []
            : ["--mksquashfs-args", compression === "none" ? "-noI -noD -noF -noX" : `-comp ${compression}`];
        const t0 = performance.now();
        await run("apptainer", ["-s", "build", "--force", ...extra, out, `docker-archive://${image}`], {
          maxBuffer: 1 << 24,
        });
        return { ms: performance.now() - t0, bytes: statSync(out).size };
      },
      sqfstar: async () => {
        const out = join(outDir, `sqfstar-${compression}.sqfs`);
        await rm(out, { force: true });
        const t0 = performance.now();
        // `sqfstar ARGS out < flat.tar`: the converter's arguments minus the offset, and sqfstar's
        // own default thread count (its best when nothing else competes for the cores).
        const input = openSync(flat, "r");
        try {
          await new Promise((resolve, reject) => {
            const child = spawn("sqfstar", sqfstarArgs(out, { compression }), {
              stdio: [input, "ignore", "inherit"],
            });
            child.on("error", reject);
            child.on("close", (code) =>
              code === 0 ? resolve() : reject(new Error(`sqfstar exited ${code}`)),
            );
          });
        } finally {
          closeSync(input);
        }
        return { ms: performance.now() - t0, bytes: statSync(out).size };
      },
    };
    const names = Object.keys(tools).filter(
      (t) => (t !== "apptainer" || haveApptainer) && (t !== "native-unverified" || alsoUnverified),
    );
    const samples = Object.fromEntries(names.map((t) => [t, []]));
    for (let r = 0; r < n; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length]);
      for (const tool of order) {
        const s = await tools[tool]();
        samples[tool].push(s);
        console.log(
          `  ${compression} round ${r + 1}/${n} ${tool.padEnd(17)} ${(s.ms / 1000).toFixed(2)} s${s.wallMs ? ` (${(s.wallMs / 1000).toFixed(2)} s with Node's start)` : ""}${s.rssKb ? `, peak RSS ${(s.rssKb / 1024).toFixed(0)} MB` : ""}`,
        );
      }
    }
    const median = (t) => medianOf(samples[t].map((s) => s.ms));
    results[compression] = {
      rounds: n,
      nativeS: median("native") / 1000,
      nativeWallS: medianOf(samples.native.map((s) => s.wallMs)) / 1000,
      apptainerS: haveApptainer ? median("apptainer") / 1000 : null,
      sqfstarS: median("sqfstar") / 1000,
      nativePeakRssMb: Math.max(...samples.native.map((s) => s.rssKb)) / 1024,
      nativeSifMb: samples.native[0].bytes / 2 ** 20,
      apptainerSifMb: haveApptainer ? samples.apptainer[0].bytes / 2 ** 20 : null,
      sqfsMb: samples.sqfstar[0].bytes / 2 ** 20,
      ...(alsoUnverified && { unverifiedS: median("native-unverified") / 1000 }),
    };
  }
  printTable(results, machine, imageBytes);
  await writeFile(
    join(cacheDir, "results.json"),
    `${JSON.stringify({ date: new Date().toISOString(), machine, imageBytes, results }, null, 2)}\n`,
  );
  await rm(outDir, { recursive: true, force: true });
}

function printTable(results, machine, imageBytes) {
  const rows = [
    "| compression | native (call) | native (with Node's start) | apptainer build | sqfstar alone | apptainer / native | native / sqfstar | native peak RSS | SIF size (native / apptainer) |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const [c, r] of Object.entries(results)) {
    const ratio = r.apptainerS ? `${(r.apptainerS / r.nativeS).toFixed(2)}x` : "n/a";
    rows.push(
      `| ${c} | ${r.nativeS.toFixed(2)} s | ${r.nativeWallS.toFixed(2)} s | ${r.apptainerS ? `${r.apptainerS.toFixed(2)} s` : "n/a"} | ${r.sqfstarS.toFixed(2)} s | ${ratio} | ${(r.nativeS / r.sqfstarS).toFixed(2)}x | ${r.nativePeakRssMb.toFixed(0)} MB | ${r.nativeSifMb.toFixed(0)} MB / ${r.apptainerSifMb ? `${r.apptainerSifMb.toFixed(0)} MB` : "n/a"} |`,
    );
  }
  console.log(`\nmedians; image ${mb(imageBytes)} MB; ${machine}\n`);
  console.log(rows.join("\n"));
  for (const [c, r] of Object.entries(results)) {
    if (r.unverifiedS) {
      console.log(
        `${c}: native without the diff_id check ${r.unverifiedS.toFixed(2)} s (apptainer / it ${r.apptainerS ? (r.apptainerS / r.unverifiedS).toFixed(2) : "n/a"}x, it / sqfstar ${(r.unverifiedS / r.sqfstarS).toFixed(2)}x)`,
      );
    }
  }
  const gzip = results.gzip;
  const lz4 = results.lz4;
  const checks = [
    gzip?.apptainerS && [
      `gzip: native >= 1.25x faster than apptainer build`,
      gzip.apptainerS / gzip.nativeS >= 1.25,
    ],
    lz4?.apptainerS && [`lz4: native >= 10x faster than apptainer build`, lz4.apptainerS / lz4.nativeS >= 10],
    ...Object.entries(results).map(([c, r]) => [
      `${c}: native within 1.15x of sqfstar alone`,
      r.nativeS / r.sqfstarS <= 1.15,
    ]),
    ...Object.entries(results).map(([c, r]) => [`${c}: native peak RSS < 200 MB`, r.nativePeakRssMb < 200]),
  ].filter(Boolean);
  console.log("");
  for (const [what, ok] of checks) console.log(`${ok ? "met   " : "MISSED"} ${what}`);
}

function medianOf(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function mb(n) {
  return (n / 2 ** 20).toFixed(0);
}

async function has(command) {
  try {
    await run("sh", ["-c", `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The benchmark image: four layers, ~420 MB uncompressed, ~9000 files. Text-like files compress
// well, "library" files halfway, blobs not at all; upper layers replace, delete (whiteouts, an
// opaque folder) and hard-link lower files.

function describeImage() {
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

async function ensureImage() {
  const path = join(cacheDir, `image-${IMAGE_VERSION}.tar`);
  if (existsSync(path)) return path;
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
    out.push(link("app/tool-250-link", "usr/bin/tool-250"));
    out.push(link("app/blob-link", "opt/runtime/blobs/blob-3.bin"));
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

/** The flattened tar exactly as the converter pipes it to sqfstar, for "sqfstar alone". */
async function ensureFlatTar(image) {
  const path = join(cacheDir, `flat-${IMAGE_VERSION}.tar`);
  if (existsSync(path)) return path;
  const sif = await import(dist);
  const { readImageArchive } = await import(core);
  const tarStream = (await import(join(root, "node_modules/tar-stream/index.js"))).default;
  const archive = await readImageArchive(image);
  const metadata = await sif.singularityMetadata(archive, { source: image, buildTime: 1_700_000_000 });
  const layers = [
    sif.bufferLayerSource("mount points", metadata.bottom),
    ...archive.layers.map((l) => sif.archiveLayerSource(image, l)),
    sif.bufferLayerSource("metadata", metadata.top),
  ];
  const plan = await sif.planFlatten(layers);
  const pack = tarStream.pack();
  const writing = pipeline(pack, createWriteStream(`${path}.tmp`));
  await sif.writeFlattened(plan, layers, pack);
  await writing;
  await rename(`${path}.tmp`, path);
  return path;
}
