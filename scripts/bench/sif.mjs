// Bench section "sif": the native docker-archive -> SIF converter (@contexec/sif) against
// `sqfstar` alone on the same flattened tar (and, with --apptainer, against
// `apptainer build docker-archive://`).
//
//   options: --rounds N (gzip rounds, default 3)  --lz4-rounds N (default 5)
//            --compressions gzip,lz4[,zstd,none]  --apptainer  --also-unverified
//
// Each round runs every tool once, the order rotating; medians are reported. The converter runs
// in a child process (lib/convert-child.mjs) that reports the conversion call's time and CPU and
// its own peak RSS; the whole tree's CPU (the converter and its sqfstar) is measured here from the
// reaped children's times. "sqfstar alone" reads the flattened tar the converter writes, from a
// file, with sqfstar's own default thread count: the floor the converter is held against.
import { closeSync, createWriteStream, openSync, statSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadAverages, measureCommand, medianOf } from "./lib/measure.mjs";
import { ensureBenchImage, IMAGE_DESCRIPTION, IMAGE_VERSION } from "./lib/sif-image.mjs";

export const name = "sif";
export const title = "native docker-archive -> SIF converter against sqfstar alone";

const here = dirname(fileURLToPath(import.meta.url));
const childScript = join(here, "lib/convert-child.mjs");

/** Targets: the conversion (call) against sqfstar alone on the same tar, by compression. */
const TARGETS = { lz4: 1.5, gzip: 1.05 };
const RSS_LIMIT_MB = 200;

export async function run(ctx) {
  const { root, log } = ctx;
  const cacheDir = join(root, ".cache/bench");
  const rounds = Number(ctx.option("rounds", "3"));
  const lz4Rounds = Number(ctx.option("lz4-rounds", "5"));
  const compressions = ctx.option("compressions", "gzip,lz4").split(",");
  const withApptainer = ctx.flag("apptainer");
  const alsoUnverified = ctx.flag("also-unverified");
  const sif = await import(join(root, "packages/sif/dist/index.js"));

  const image = await ensureBenchImage(root, cacheDir, log);
  const outDir = join(cacheDir, `out-${process.pid}`);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  try {
    const flat = join(outDir, "flat.tar");
    const shape = await writeFlatTar(root, sif, image, flat);
    const imageBytes = statSync(image).size;
    log(
      `image ${IMAGE_VERSION}: ${mb(imageBytes)} MB archive, ${shape.layerEntries} layer entries in ${shape.layers} layers, flattened to ${shape.entries} entries (${mb(statSync(flat).size)} MB tar); ${IMAGE_DESCRIPTION}`,
    );

    const results = {};
    for (const compression of compressions) {
      const n = compression === "lz4" ? lz4Rounds : rounds;
      const tools = {
        native: async () => {
          const out = join(outDir, `native-${compression}.sif`);
          await rm(out, { force: true });
          const m = await measureCommand(process.execPath, [childScript, image, out, compression]);
          const child = JSON.parse(m.stdout.trim().split("\n").pop());
          const startCpuMs = child.processCpuMs - child.callCpuMs;
          return {
            ms: child.callMs,
            wallMs: m.wallMs,
            // The tree's CPU less Node's start: the call as a library user pays it.
            cpuMs: m.cpuMs - startCpuMs,
            treeCpuMs: m.cpuMs,
            ownCpuMs: child.callCpuMs,
            rssKb: child.peakRssKb,
            bytes: statSync(out).size,
          };
        },
        "native-unverified": async () => {
          const out = join(outDir, `native-unverified-${compression}.sif`);
          await rm(out, { force: true });
          const m = await measureCommand(process.execPath, [
            childScript,
            image,
            out,
            compression,
            "unverified",
          ]);
          const child = JSON.parse(m.stdout.trim().split("\n").pop());
          return {
            ms: child.callMs,
            cpuMs: m.cpuMs - (child.processCpuMs - child.callCpuMs),
            ownCpuMs: child.callCpuMs,
            rssKb: child.peakRssKb,
          };
        },
        sqfstar: async () => {
          const out = join(outDir, `sqfstar-${compression}.sqfs`);
          await rm(out, { force: true });
          // `sqfstar ARGS out < flat.tar`: the converter's arguments minus the offset, with
          // sqfstar's own default thread count (its best when nothing else competes for the cores).
          const input = openSync(flat, "r");
          try {
            const m = await measureCommand("sqfstar", sif.sqfstarArgs(out, { compression }), {
              stdin: input,
            });
            return { ms: m.wallMs, cpuMs: m.cpuMs, bytes: statSync(out).size };
          } finally {
            closeSync(input);
          }
        },
        apptainer: async () => {
          const out = join(outDir, `apptainer-${compression}.sif`);
          const extra =
            compression === "gzip"
              ? []
              : [
                  "--mksquashfs-args",
                  compression === "none" ? "-noI -noD -noF -noX" : `-comp ${compression}`,
                ];
          const m = await measureCommand("apptainer", [
            "-s",
            "build",
            "--force",
            ...extra,
            out,
            `docker-archive://${image}`,
          ]);
          return { ms: m.wallMs, cpuMs: m.cpuMs, bytes: statSync(out).size };
        },
      };
      const names = Object.keys(tools).filter(
        (t) => (t !== "apptainer" || withApptainer) && (t !== "native-unverified" || alsoUnverified),
      );
      const samples = Object.fromEntries(names.map((t) => [t, []]));
      const loads = [];
      for (let r = 0; r < n; r++) {
        const order = names.map((_, i) => names[(i + r) % names.length]);
        loads.push(loadAverages());
        for (const tool of order) {
          const s = await tools[tool]();
          samples[tool].push(s);
          log(
            `  ${compression} ${r + 1}/${n} ${tool.padEnd(17)} ${sec(s.ms)}${s.wallMs ? ` (${sec(s.wallMs)} with Node's start)` : ""}, CPU ${sec(s.cpuMs)}${s.ownCpuMs !== undefined ? ` (converter's own ${sec(s.ownCpuMs)})` : ""}${s.rssKb ? `, peak RSS ${(s.rssKb / 1024).toFixed(0)} MB` : ""}  [load ${loadAverages()}]`,
          );
        }
      }
      const med = (tool, key) => medianOf(samples[tool].map((s) => s[key]));
      results[compression] = {
        rounds: n,
        loads,
        native: {
          callS: med("native", "ms") / 1000,
          withStartS: med("native", "wallMs") / 1000,
          cpuS: med("native", "cpuMs") / 1000,
          treeCpuS: med("native", "treeCpuMs") / 1000,
          ownCpuS: med("native", "ownCpuMs") / 1000,
          peakRssMb: Math.max(...samples.native.map((s) => s.rssKb)) / 1024,
          sifMb: samples.native[0].bytes / 2 ** 20,
        },
        sqfstar: {
          s: med("sqfstar", "ms") / 1000,
          cpuS: med("sqfstar", "cpuMs") / 1000,
          mb: samples.sqfstar[0].bytes / 2 ** 20,
        },
        ...(withApptainer && {
          apptainer: {
            s: med("apptainer", "ms") / 1000,
            cpuS: med("apptainer", "cpuMs") / 1000,
            sifMb: samples.apptainer[0].bytes / 2 ** 20,
          },
        }),
        ...(alsoUnverified && {
          unverified: {
            callS: med("native-unverified", "ms") / 1000,
            ownCpuS: med("native-unverified", "ownCpuMs") / 1000,
          },
        }),
      };
    }
    printTable(log, results);
    return {
      image: { version: IMAGE_VERSION, bytes: imageBytes, ...shape },
      results,
      checks: checksOf(results),
    };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

function printTable(log, results) {
  const rows = [
    "| compression | converter (call) | with Node's start | sqfstar alone | **call / sqfstar** | CPU: converter + its sqfstar | converter's own CPU | sqfstar alone CPU | **CPU ratio** | peak RSS | SIF / squashfs size |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const [c, r] of Object.entries(results)) {
    rows.push(
      `| ${c} | ${r.native.callS.toFixed(2)} s | ${r.native.withStartS.toFixed(2)} s | ${r.sqfstar.s.toFixed(2)} s | **${(r.native.callS / r.sqfstar.s).toFixed(2)}x** | ${r.native.cpuS.toFixed(2)} s | ${r.native.ownCpuS.toFixed(2)} s | ${r.sqfstar.cpuS.toFixed(2)} s | **${(r.native.cpuS / r.sqfstar.cpuS).toFixed(2)}x** | ${r.native.peakRssMb.toFixed(0)} MB | ${r.native.sifMb.toFixed(0)} / ${r.sqfstar.mb.toFixed(0)} MB |`,
    );
  }
  log("");
  log(rows.join("\n"));
  for (const [c, r] of Object.entries(results)) {
    if (r.apptainer)
      log(
        `${c}: apptainer build ${r.apptainer.s.toFixed(2)} s (CPU ${r.apptainer.cpuS.toFixed(2)} s, SIF ${r.apptainer.sifMb.toFixed(0)} MB): ${(r.apptainer.s / r.native.callS).toFixed(2)}x the converter's time`,
      );
    if (r.unverified)
      log(
        `${c}: without the diff_id check ${r.unverified.callS.toFixed(2)} s, converter's own CPU ${r.unverified.ownCpuS.toFixed(2)} s`,
      );
  }
  log(
    "medians; CPU: user + system of every process and thread; the call excludes Node's start (Node, module loading)",
  );
}

function checksOf(results) {
  const checks = [];
  for (const [c, r] of Object.entries(results)) {
    const target = TARGETS[c];
    if (target !== undefined) {
      const wall = r.native.callS / r.sqfstar.s;
      const cpu = r.native.cpuS / r.sqfstar.cpuS;
      checks.push({
        what: `${c}: conversion within ${target}x of sqfstar alone, wall time`,
        ok: wall <= target,
        value: `${wall.toFixed(2)}x`,
      });
      checks.push({
        what: `${c}: conversion within ${target}x of sqfstar alone, CPU time`,
        ok: cpu <= target,
        value: `${cpu.toFixed(2)}x`,
      });
    }
    checks.push({
      what: `${c}: converter peak RSS < ${RSS_LIMIT_MB} MB`,
      ok: r.native.peakRssMb < RSS_LIMIT_MB,
      value: `${r.native.peakRssMb.toFixed(0)} MB`,
    });
  }
  return checks;
}

/**
 * Writes the flattened tar exactly as the converter pipes it to sqfstar (same parts, same
 * generated metadata), for "sqfstar alone"; returns the image's shape.
 */
async function writeFlatTar(root, sif, image, path) {
  const { readImageArchive, fileByteSource, readTarHeaders } = await import(
    join(root, "packages/core/dist/index.js")
  );
  const archive = await readImageArchive(image);
  let layerEntries = 0;
  for (const l of archive.layers) {
    const source = await fileByteSource(image, { start: l.dataOffset, end: l.dataOffset + l.size });
    for await (const _ of readTarHeaders(source, { what: l.member })) layerEntries++;
    await source.close();
  }
  const metadata = await sif.singularityMetadata(archive, { source: image, buildTime: 1_700_000_000 });
  const layers = [
    sif.bufferLayerSource("mount points", metadata.bottom),
    ...archive.layers.map((l) => sif.archiveLayerSource(image, l)),
    sif.bufferLayerSource("metadata", metadata.top),
  ];
  const plan = await sif.planFlatten(layers);
  await sif.writeFlattened(plan, layers, createWriteStream(`${path}.tmp`));
  await rename(`${path}.tmp`, path);
  return { layers: archive.layers.length, layerEntries, entries: plan.entryCount };
}

const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (n) => (n / 2 ** 20).toFixed(0);
