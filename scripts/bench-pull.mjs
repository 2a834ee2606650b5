#!/usr/bin/env node
// Benchmark of pulls from a registry: contexec's pull + native conversion (registry -> SIF, no
// tarball on disk) against `apptainer pull`, and the Docker backend's pullImage against
// `docker pull`, of the same reference in a local registry (Debian's docker-registry on
// 127.0.0.1, started here by scripts/setup-registry.sh and stopped at the end).
//
//   npm run bench:pull                (builds the packages, then runs this file)
//   node scripts/bench-pull.mjs [--rounds N] [--docker-rounds N] [--no-docker] [--no-apptainer]
//
// The image is bench-sif's (scripts/bench-image.mjs: 4 layers, ~9000 files, ~370 MB), pushed once
// with gzip layers by @contexec/registry's pushArchive into a registry whose storage is kept
// under .cache/bench/registry. Rounds are interleaved (order rotating), medians reported. The
// native pull runs in a child process reporting the call's time, its peak RSS and the bytes it
// fetched; "archive convert" is the same conversion from the docker-archive file (no network),
// which shows what fetching costs. Each apptainer pull starts from an empty cache of its own;
// each Docker pull from an image that is not there (this image is the benchmark's own).
import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BENCH_IMAGE_VERSION, describeBenchImage, ensureBenchImage } from "./bench-image.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const dist = (pkg) => join(root, `packages/${pkg}/dist/index.js`);
const cacheDir = join(root, ".cache/bench");
const run = promisify(execFile);
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};

if (args[0] === "--pull-child")
  await pullChild(args[1], args[2], Number(args[3]), Number(args[4]), args[5] ?? "gzip");
else if (args[0] === "--archive-child") await archiveChild(args[1], args[2]);
else await main();

/** Child mode: one pull + conversion into OUT; prints its time, peak RSS and bytes fetched. */
async function pullChild(reference, out, prefetch, keepInMemoryBytes, compression) {
  const { RegistryClient, remoteLayerStreams } = await import(dist("registry"));
  const { convertLayersToSif, streamLayerSource } = await import(dist("sif"));
  const client = new RegistryClient({ dockerConfig: false });
  const seen = new Map();
  const t0 = performance.now();
  const image = await client.resolveImage(reference);
  const configJson = await client.fetchConfig(image);
  const layers = remoteLayerStreams(client, image, configJson, {
    keepInMemoryBytes,
    // Bytes per layer and pass; a layer opened twice counts twice.
    onProgress: (p) =>
      seen.set(`${p.layer} ${p.phase}`, Math.max(seen.get(`${p.layer} ${p.phase}`) ?? 0, p.bytes)),
  }).map((l) => streamLayerSource(l));
  const result = await convertLayersToSif({ configJson, layers, source: reference }, out, {
    compression,
    prefetch,
    bootstrap: "docker",
  });
  const ms = performance.now() - t0;
  client.close();
  const fetched = [...seen.values()].reduce((a, b) => a + b, 0);
  const blobs = image.layers.reduce((a, l) => a + l.size, 0);
  process.stdout.write(
    `${JSON.stringify({ ms, maxRssKb: process.resourceUsage().maxRSS, fetched, blobs, sifBytes: result.sifBytes, id: result.id })}\n`,
  );
}

/** Child mode: the same conversion from the archive file. */
async function archiveChild(archive, out) {
  const { convertArchiveToSif } = await import(dist("sif"));
  const t0 = performance.now();
  const result = await convertArchiveToSif(archive, out);
  process.stdout.write(
    `${JSON.stringify({ ms: performance.now() - t0, sifBytes: result.sifBytes, id: result.id })}\n`,
  );
}

async function main() {
  const rounds = Number(arg("rounds", "3"));
  const dockerRounds = Number(arg("docker-rounds", "3"));
  // Docker's pull must be able to apply it: no hard links across layers.
  const image = await ensureBenchImage(cacheDir, { crossLayerLinks: false });
  const haveApptainer = !args.includes("--no-apptainer") && (await has("apptainer"));
  const haveDocker = !args.includes("--no-docker") && (await has("docker"));
  const machine = `${cpus().length} cores, ${cpus()[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`;
  console.log(`machine: ${machine}`);
  console.log(`image: ${image} (${mb(statSync(image).size)} MB, ${describeBenchImage()})`);

  const registryDir = join(cacheDir, "registry");
  const port = await freePort();
  await run(join(here, "setup-registry.sh"), [
    "start",
    "--dir",
    registryDir,
    "--port",
    String(port),
    "--storage",
    join(cacheDir, `registry-storage-${BENCH_IMAGE_VERSION}-docker`),
  ]);
  const results = {};
  try {
    const reference = `127.0.0.1:${port}/contexec-bench/image:${BENCH_IMAGE_VERSION}-docker`;
    const { RegistryClient, pushArchive } = await import(dist("registry"));
    const client = new RegistryClient({ dockerConfig: false });
    const present = await client.resolveImage(reference).then(
      () => true,
      () => false,
    );
    if (!present) {
      console.log(`pushing the image to ${reference} (once; gzip layers) ...`);
      await pushArchive(client, image, reference);
    }
    const remote = await client.resolveImage(reference);
    client.close();
    const blobBytes = remote.layers.reduce((a, l) => a + l.size, 0);
    console.log(
      `reference: ${reference} (${remote.layers.length} gzip layers, ${mb(blobBytes)} MB of blobs)`,
    );

    const outDir = await mkdtemp(join(cacheDir, "pull-out-"));
    try {
      results.apptainer = await timeApptainer(reference, image, outDir, rounds, haveApptainer);
      if (haveDocker) results.docker = await timeDocker(reference, remote.id, dockerRounds);
      else console.log("docker not found: the Docker comparison is skipped");
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  } finally {
    await run(join(here, "setup-registry.sh"), ["stop", "--dir", registryDir]).catch(() => {});
  }
  report(results, machine);
  await writeFile(
    join(cacheDir, "pull-results.json"),
    `${JSON.stringify({ date: new Date().toISOString(), machine, results }, null, 2)}\n`,
  );
}

async function timeApptainer(reference, image, outDir, rounds, haveApptainer) {
  const child = async (mode, childArgs) => {
    const t0 = performance.now();
    const { stdout } = await run(process.execPath, [fileURLToPath(import.meta.url), mode, ...childArgs], {
      maxBuffer: 1 << 20,
    });
    return { ...JSON.parse(stdout.trim().split("\n").pop()), wallMs: performance.now() - t0 };
  };
  const tools = {
    // What apptainer's pullImage does by default: 3 layers at once, blobs kept in memory between
    // the passes (up to 512 MiB here), gzip like apptainer pull.
    native: () => child("--pull-child", [reference, join(outDir, "native.sif"), "3", String(512 * 2 ** 20)]),
    // The same with lz4 squashfs compression: what the conversion costs without gzip's CPU.
    "native lz4": () =>
      child("--pull-child", [reference, join(outDir, "native-lz4.sif"), "3", String(512 * 2 ** 20), "lz4"]),
    // Layers one after the other and fetched again in the writing pass: what the defaults save.
    "native-serial": () => child("--pull-child", [reference, join(outDir, "native-serial.sif"), "1", "0"]),
    "archive convert": () => child("--archive-child", [image, join(outDir, "archive.sif")]),
    ...(haveApptainer && {
      "apptainer pull": async () => {
        const work = await mkdtemp(join(outDir, "apptainer-"));
        const out = join(outDir, "apptainer.sif");
        const env = {
          ...process.env,
          APPTAINER_CACHEDIR: join(work, "cache"),
          APPTAINER_TMPDIR: join(work, "tmp"),
        };
        await mkdir(env.APPTAINER_TMPDIR, { recursive: true });
        const t0 = performance.now();
        await run("apptainer", ["-s", "pull", "--force", "--no-https", out, `docker://${reference}`], {
          env,
          maxBuffer: 1 << 24,
        });
        const ms = performance.now() - t0;
        await rm(work, { recursive: true, force: true });
        return { ms, wallMs: ms, sifBytes: statSync(out).size };
      },
    }),
  };
  if (!haveApptainer) console.log("apptainer not found: `apptainer pull` is skipped");
  const samples = await interleave(tools, rounds);
  let sameContent;
  if (haveApptainer) {
    sameContent = await sameRootfs(join(outDir, "native.sif"), join(outDir, "apptainer.sif"));
    console.log(
      `same content (native pull vs apptainer pull, unsquashfs -lln): ${sameContent.equal ? "yes" : "NO"}`,
    );
    for (const d of sameContent.diffs.slice(0, 10)) console.log(`  ${d}`);
  }
  const ids = new Set(samples.native.map((s) => s.id).concat(samples["archive convert"].map((s) => s.id)));
  return {
    rounds,
    nativeS: median(samples.native, "ms") / 1000,
    nativeWallS: median(samples.native, "wallMs") / 1000,
    nativeSerialS: median(samples["native-serial"], "ms") / 1000,
    nativeLz4S: median(samples["native lz4"], "ms") / 1000,
    archiveS: median(samples["archive convert"], "ms") / 1000,
    apptainerS: haveApptainer ? median(samples["apptainer pull"], "ms") / 1000 : null,
    nativePeakRssMb: Math.max(...samples.native.map((s) => s.maxRssKb)) / 1024,
    fetchedMb: samples.native[0].fetched / 2 ** 20,
    fetchedSerialMb: samples["native-serial"][0].fetched / 2 ** 20,
    blobsMb: samples.native[0].blobs / 2 ** 20,
    sameId: ids.size === 1,
    sameContent: sameContent?.equal ?? null,
    nativeSifMb: samples.native[0].sifBytes / 2 ** 20,
    apptainerSifMb: haveApptainer ? samples["apptainer pull"][0].sifBytes / 2 ** 20 : null,
  };
}

async function timeDocker(reference, id, rounds) {
  const { DockerExecutor } = await import(dist("docker"));
  const executor = new DockerExecutor();
  // Only this benchmark's image goes: its id is the benchmark's own.
  const clear = async () => {
    await executor.removeImage(id).catch(() => {});
  };
  const tools = {
    "contexec pullImage": async () => {
      await clear();
      const t0 = performance.now();
      const got = await executor.pullImage(reference);
      const ms = performance.now() - t0;
      if (got !== id) throw new Error(`pullImage gave ${got}, not ${id}`);
      return { ms };
    },
    "docker pull": async () => {
      await clear();
      const t0 = performance.now();
      await run("docker", ["pull", "-q", reference]);
      const ms = performance.now() - t0;
      if (!(await executor.hasImage(id))) throw new Error(`docker pull left no image ${id}`);
      return { ms };
    },
  };
  try {
    const samples = await interleave(tools, rounds);
    return {
      rounds,
      contexecS: median(samples["contexec pullImage"], "ms") / 1000,
      dockerS: median(samples["docker pull"], "ms") / 1000,
    };
  } finally {
    await clear();
    await executor.close();
  }
}

async function interleave(tools, rounds) {
  const names = Object.keys(tools);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const name of names.map((_, i) => names[(i + r) % names.length])) {
      const s = await tools[name]();
      samples[name].push(s);
      console.log(
        `  round ${r + 1}/${rounds} ${name.padEnd(20)} ${(s.ms / 1000).toFixed(2)} s${s.maxRssKb ? `, peak RSS ${(s.maxRssKb / 1024).toFixed(0)} MB` : ""}${s.fetched ? `, fetched ${mb(s.fetched)} MB` : ""}`,
      );
    }
  }
  return samples;
}

/** Entries of both SIFs' squashfs (type, mode, owner, size, path, link target), /.singularity.d aside. */
async function sameRootfs(a, b) {
  const { inspectSif } = await import(dist("sif"));
  const list = async (sif) => {
    const offset = (await inspectSif(sif)).primaryPartition.offset;
    const { stdout } = await run("unsquashfs", ["-lln", "-o", String(offset), sif], { maxBuffer: 1 << 26 });
    const entries = new Map();
    for (const line of stdout.split("\n")) {
      // drwxr-xr-x 0/0  27 2024-01-01 00:00 squashfs-root/usr [-> target]
      const m = /^(\S+) (\d+)\/(\d+) +(\d+) \S+ \S+ squashfs-root(\S*)(?: -> (.*))?$/.exec(line);
      if (!m || m[5] === "" || m[5].startsWith("/.singularity.d")) continue;
      // Folder sizes are squashfs bookkeeping, not content.
      entries.set(m[5], `${m[1]} ${m[2]}/${m[3]} ${m[1].startsWith("d") ? "" : m[4]} ${m[6] ?? ""}`);
    }
    return entries;
  };
  const [x, y] = await Promise.all([list(a), list(b)]);
  const diffs = [];
  for (const [p, v] of x) if (y.get(p) !== v) diffs.push(`${p}: ${v} != ${y.get(p) ?? "missing"}`);
  for (const p of y.keys()) if (!x.has(p)) diffs.push(`unexpected ${p}`);
  return { equal: diffs.length === 0 && x.size > 1000, diffs, entries: x.size };
}

function report(results, machine) {
  const a = results.apptainer;
  const d = results.docker;
  console.log(`\nmedians; ${machine}\n`);
  if (a) {
    console.log(
      "| pull + convert (native, gzip) | with Node's start | native, serial, no reuse | native, lz4 | archive convert (no network) | apptainer pull | apptainer / native (gzip, lz4) | fetched (native / serial / blobs) | native peak RSS | SIF (native / apptainer) |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|");
    const ratio = (x) => (a.apptainerS ? `${(a.apptainerS / x).toFixed(2)}x` : "n/a");
    console.log(
      `| ${a.nativeS.toFixed(2)} s | ${a.nativeWallS.toFixed(2)} s | ${a.nativeSerialS.toFixed(2)} s | ${a.nativeLz4S.toFixed(2)} s | ${a.archiveS.toFixed(2)} s | ${a.apptainerS ? `${a.apptainerS.toFixed(2)} s` : "n/a"} | ${ratio(a.nativeS)}, ${ratio(a.nativeLz4S)} | ${a.fetchedMb.toFixed(0)} / ${a.fetchedSerialMb.toFixed(0)} / ${a.blobsMb.toFixed(0)} MB | ${a.nativePeakRssMb.toFixed(0)} MB | ${a.nativeSifMb.toFixed(0)} / ${a.apptainerSifMb ? a.apptainerSifMb.toFixed(0) : "n/a"} MB |`,
    );
  }
  if (d) {
    console.log("\n| Docker backend pullImage | docker pull | pullImage / docker pull |\n|---|---|---|");
    console.log(
      `| ${d.contexecS.toFixed(2)} s | ${d.dockerS.toFixed(2)} s | ${(d.contexecS / d.dockerS).toFixed(2)}x |`,
    );
  }
  const checks = [
    a?.apptainerS && [
      "pull + convert (gzip, as apptainer pull) >= 2x faster than apptainer pull",
      a.apptainerS / a.nativeS >= 2,
    ],
    a?.apptainerS && [
      "pull + convert (lz4) >= 2x faster than apptainer pull",
      a.apptainerS / a.nativeLz4S >= 2,
    ],
    a?.sameContent !== null && a && ["same content as apptainer pull", a.sameContent],
    a && ["same ImageId from the pull and from the archive", a.sameId],
    d && ["Docker backend pullImage within 1.1x of docker pull", d.contexecS / d.dockerS <= 1.1],
  ].filter(Boolean);
  console.log("");
  for (const [what, ok] of checks) console.log(`${ok ? "met   " : "MISSED"} ${what}`);
}

function median(samples, key) {
  const s = samples.map((x) => x[key]).sort((a, b) => a - b);
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

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
