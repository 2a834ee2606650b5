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
import { closeSync, createWriteStream, existsSync, openSync, statSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BENCH_IMAGE_VERSION, describeBenchImage, ensureBenchImage } from "./bench-image.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const dist = join(root, "packages/sif/dist/index.js");
const core = join(root, "packages/core/dist/index.js");
const cacheDir = join(root, ".cache/bench");
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
  const image = await ensureBenchImage(cacheDir);
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
  console.log(`image: ${image} (${mb(imageBytes)} MB, ${describeBenchImage()})`);

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

/** The flattened tar exactly as the converter pipes it to sqfstar, for "sqfstar alone". */
async function ensureFlatTar(image) {
  const path = join(cacheDir, `flat-${BENCH_IMAGE_VERSION}.tar`);
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
