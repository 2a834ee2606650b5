// Bench section "pull": pulls from a registry. contexec's pull + native conversion (registry ->
// SIF, no tarball on disk) against `apptainer pull`, and the Docker backend's pullImage against
// `docker pull`, of the same reference in a local registry (Debian's docker-registry on
// 127.0.0.1, started by scripts/setup-registry.sh for the section and stopped after it).
//
//   options: --pull-rounds N (default 3)  --docker-rounds N (default 3)
//            --no-docker-pull  --no-apptainer-pull
//
// The image is the sif section's (lib/sif-image.mjs) without its two cross-layer hard links,
// which Docker cannot apply; it is pushed once with gzip layers by @contexec/registry's
// pushArchive into a registry whose storage is kept under .cache/bench. Each round runs every
// tool once, the order rotating; medians are reported. The native pull runs in a child process
// (lib/pull-child.mjs) reporting the call's time and CPU, its own peak RSS and the bytes it
// fetched; the whole tree's CPU (it and its sqfstar) is measured here. "archive convert" is the
// same conversion from the docker-archive file (lib/convert-child.mjs; no network): what
// fetching costs. Each `apptainer pull` starts from an empty cache of its own, each Docker pull
// from an image the daemon does not have (the image is the benchmark's own). Where the registry,
// Apptainer or Docker is missing, that part is left out, saying so.
import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { loadAverages, measureCommand, medianOf } from "./lib/measure.mjs";
import { ensureBenchImage, IMAGE_DESCRIPTION, imageName } from "./lib/sif-image.mjs";

export const name = "pull";
export const title =
  "pull + convert from a local registry against apptainer pull; Docker's pullImage against docker pull";

const here = dirname(fileURLToPath(import.meta.url));
const pullChild = join(here, "lib/pull-child.mjs");
const convertChild = join(here, "lib/convert-child.mjs");
const setupRegistry = join(here, "../setup-registry.sh");
const exec = promisify(execFile);

// What Apptainer's pullImage does by default: 3 layers at once, blobs kept in memory between the
// passes (up to 512 MiB here).
const PREFETCH = 3;
const KEEP_IN_MEMORY = 512 * 2 ** 20;

export async function run(ctx) {
  const { root, log } = ctx;
  const cacheDir = join(root, ".cache/bench");
  const rounds = Number(ctx.option("pull-rounds", "3"));
  const dockerRounds = Number(ctx.option("docker-rounds", "3"));
  const withApptainer = !ctx.flag("no-apptainer-pull") && (await has("apptainer"));
  const withDocker = !ctx.flag("no-docker-pull") && (await has("docker"));
  if (!(await has("sqfstar"))) {
    log("sqfstar not found (apt-get install squashfs-tools): the pull section is left out");
    return { skipped: "no sqfstar", checks: [] };
  }
  try {
    await exec(setupRegistry, [], { maxBuffer: 1 << 20 });
  } catch (err) {
    log(
      `no local registry (scripts/setup-registry.sh failed: ${err.message.trim()}): the pull section is left out`,
    );
    return { skipped: "no registry", checks: [] };
  }
  const image = await ensureBenchImage(root, cacheDir, log, { crossLayerLinks: false });
  const variant = imageName(false);
  log(
    `image ${variant}: ${mb(statSync(image).size)} MB archive; ${IMAGE_DESCRIPTION} (no hard links across layers)`,
  );

  const registryDir = join(cacheDir, `registry-${process.pid}`);
  const port = await freePort();
  await exec(setupRegistry, [
    "start",
    "--dir",
    registryDir,
    "--port",
    String(port),
    "--storage",
    join(cacheDir, `registry-storage-${variant}`),
  ]);
  const results = {};
  try {
    const reference = `127.0.0.1:${port}/contexec-bench/image:${variant}`;
    const { RegistryClient, pushArchive } = await import(join(root, "packages/registry/dist/index.js"));
    const client = new RegistryClient({ dockerConfig: false });
    const present = await client.resolveImage(reference).then(
      () => true,
      () => false,
    );
    if (!present) {
      log(`pushing the image to ${reference} (once; gzip layers) ...`);
      await pushArchive(client, image, reference);
    }
    const remote = await client.resolveImage(reference);
    client.close();
    const blobBytes = remote.layers.reduce((a, l) => a + l.size, 0);
    log(`reference: ${reference} (${remote.layers.length} gzip layers, ${mb(blobBytes)} MB of blobs)`);

    const outDir = await mkdtemp(join(cacheDir, "pull-out-"));
    try {
      results.apptainer = await timeApptainer(ctx, root, reference, image, outDir, rounds, withApptainer);
      if (withDocker) results.docker = await timeDocker(ctx, root, reference, remote.id, dockerRounds);
      else log("docker not found or --no-docker-pull: the Docker comparison is left out");
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  } finally {
    await exec(setupRegistry, ["stop", "--dir", registryDir]).catch(() => {});
    await rm(registryDir, { recursive: true, force: true });
  }
  printTables(log, results);
  return { image: variant, results, checks: checksOf(results) };
}

async function timeApptainer(ctx, root, reference, image, outDir, rounds, withApptainer) {
  const native = (out, prefetch, keep, compression) => async () => {
    await rm(out, { force: true });
    const m = await measureCommand(process.execPath, [
      pullChild,
      reference,
      out,
      String(prefetch),
      String(keep),
      compression,
    ]);
    const child = JSON.parse(m.stdout.trim().split("\n").pop());
    return {
      ...child,
      ms: child.callMs,
      wallMs: m.wallMs,
      // The tree's CPU less Node's start: the call as a library user pays it.
      cpuMs: m.cpuMs - (child.processCpuMs - child.callCpuMs),
    };
  };
  const tools = {
    native: native(join(outDir, "native.sif"), PREFETCH, KEEP_IN_MEMORY, "gzip"),
    // lz4 squashfs: what the pull costs without gzip's compression CPU.
    "native lz4": native(join(outDir, "native-lz4.sif"), PREFETCH, KEEP_IN_MEMORY, "lz4"),
    // Layers one after the other and fetched again in the writing pass: what the defaults save.
    "native serial": native(join(outDir, "native-serial.sif"), 1, 0, "gzip"),
    "archive convert": async () => {
      const out = join(outDir, "archive.sif");
      await rm(out, { force: true });
      const m = await measureCommand(process.execPath, [convertChild, image, out, "gzip"]);
      const child = JSON.parse(m.stdout.trim().split("\n").pop());
      return { ...child, ms: child.callMs, cpuMs: m.cpuMs - (child.processCpuMs - child.callCpuMs) };
    },
    ...(withApptainer && {
      "apptainer pull": async () => {
        const work = await mkdtemp(join(outDir, "apptainer-"));
        const out = join(outDir, "apptainer.sif");
        const env = {
          ...process.env,
          APPTAINER_CACHEDIR: join(work, "cache"),
          APPTAINER_TMPDIR: join(work, "tmp"),
        };
        await mkdir(env.APPTAINER_TMPDIR, { recursive: true });
        try {
          const m = await measureCommand(
            "apptainer",
            ["-s", "pull", "--force", "--no-https", out, `docker://${reference}`],
            { env },
          );
          return { ms: m.wallMs, cpuMs: m.cpuMs, sifBytes: statSync(out).size };
        } finally {
          await rm(work, { recursive: true, force: true });
        }
      },
    }),
  };
  if (!withApptainer) ctx.log("apptainer not found or --no-apptainer-pull: `apptainer pull` is left out");
  const samples = await interleave(ctx.log, tools, rounds);
  let sameContent = null;
  if (withApptainer) {
    const compared = await sameRootfs(root, join(outDir, "native.sif"), join(outDir, "apptainer.sif"));
    sameContent = compared.equal;
    ctx.log(
      `same content (native pull vs apptainer pull, unsquashfs -lln, ${compared.entries} entries): ${sameContent ? "yes" : "NO"}`,
    );
    for (const d of compared.diffs.slice(0, 10)) ctx.log(`  ${d}`);
  }
  const med = (tool, key) => medianOf(samples[tool].map((s) => s[key])) / 1000;
  const ids = new Set([...samples.native, ...samples["archive convert"]].map((s) => s.id));
  return {
    rounds,
    nativeS: med("native", "ms"),
    nativeWallS: med("native", "wallMs"),
    nativeCpuS: med("native", "cpuMs"),
    nativeSerialS: med("native serial", "ms"),
    nativeLz4S: med("native lz4", "ms"),
    archiveS: med("archive convert", "ms"),
    archiveCpuS: med("archive convert", "cpuMs"),
    apptainerS: withApptainer ? med("apptainer pull", "ms") : null,
    apptainerCpuS: withApptainer ? med("apptainer pull", "cpuMs") : null,
    nativePeakRssMb: Math.max(...samples.native.map((s) => s.peakRssKb)) / 1024,
    serialPeakRssMb: Math.max(...samples["native serial"].map((s) => s.peakRssKb)) / 1024,
    fetchedMb: samples.native[0].fetched / 2 ** 20,
    fetchedSerialMb: samples["native serial"][0].fetched / 2 ** 20,
    blobsMb: samples.native[0].blobs / 2 ** 20,
    sameId: ids.size === 1,
    sameContent,
  };
}

async function timeDocker(ctx, root, reference, id, rounds) {
  const { DockerExecutor } = await import(join(root, "packages/docker/dist/index.js"));
  const executor = new DockerExecutor();
  // Only this benchmark's image goes: its id is the benchmark's own.
  const clear = () => executor.removeImage(id).catch(() => {});
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
      const m = await measureCommand("docker", ["pull", "-q", reference]);
      if (!(await executor.hasImage(id))) throw new Error(`docker pull left no image ${id}`);
      return { ms: m.wallMs };
    },
  };
  try {
    const samples = await interleave(ctx.log, tools, rounds);
    return {
      rounds,
      contexecS: medianOf(samples["contexec pullImage"].map((s) => s.ms)) / 1000,
      dockerS: medianOf(samples["docker pull"].map((s) => s.ms)) / 1000,
    };
  } finally {
    await clear();
    await executor.close();
  }
}

async function interleave(log, tools, rounds) {
  const names = Object.keys(tools);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const tool of names.map((_, i) => names[(i + r) % names.length])) {
      const s = await tools[tool]();
      samples[tool].push(s);
      log(
        `  ${r + 1}/${rounds} ${tool.padEnd(18)} ${sec(s.ms)}${s.wallMs ? ` (${sec(s.wallMs)} with Node's start)` : ""}${s.cpuMs !== undefined ? `, CPU ${sec(s.cpuMs)}` : ""}${s.peakRssKb ? `, peak RSS ${(s.peakRssKb / 1024).toFixed(0)} MB` : ""}${s.fetched ? `, fetched ${mb(s.fetched)} MB` : ""}  [load ${loadAverages()}]`,
      );
    }
  }
  return samples;
}

/** Entries of both SIFs' squashfs (type, mode, owner, size, path, link target), /.singularity.d aside. */
async function sameRootfs(root, a, b) {
  const { inspectSif } = await import(join(root, "packages/sif/dist/index.js"));
  const list = async (sif) => {
    const offset = (await inspectSif(sif)).primaryPartition.offset;
    const { stdout } = await exec("unsquashfs", ["-lln", "-o", String(offset), sif], { maxBuffer: 1 << 26 });
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

function printTables(log, results) {
  const a = results.apptainer;
  const d = results.docker;
  if (a) {
    const ratio = (x) => (a.apptainerS ? `${(a.apptainerS / x).toFixed(2)}x` : "n/a");
    log("");
    log(
      "| pull + convert (gzip) | with Node's start | CPU (tree) | serial, no reuse | lz4 | archive convert (no network) | apptainer pull | apptainer / pull (gzip, lz4) | fetched (pull / serial / blobs) | peak RSS (pull / serial) |",
    );
    log("|---|---|---|---|---|---|---|---|---|---|");
    log(
      `| ${a.nativeS.toFixed(2)} s | ${a.nativeWallS.toFixed(2)} s | ${a.nativeCpuS.toFixed(2)} s | ${a.nativeSerialS.toFixed(2)} s | ${a.nativeLz4S.toFixed(2)} s | ${a.archiveS.toFixed(2)} s (CPU ${a.archiveCpuS.toFixed(2)} s) | ${a.apptainerS ? `${a.apptainerS.toFixed(2)} s (CPU ${a.apptainerCpuS.toFixed(2)} s)` : "n/a"} | ${ratio(a.nativeS)}, ${ratio(a.nativeLz4S)} | ${a.fetchedMb.toFixed(0)} / ${a.fetchedSerialMb.toFixed(0)} / ${a.blobsMb.toFixed(0)} MB | ${a.nativePeakRssMb.toFixed(0)} / ${a.serialPeakRssMb.toFixed(0)} MB |`,
    );
  }
  if (d) {
    log("");
    log("| Docker backend pullImage | docker pull | pullImage / docker pull |\n|---|---|---|");
    log(
      `| ${d.contexecS.toFixed(2)} s | ${d.dockerS.toFixed(2)} s | ${(d.contexecS / d.dockerS).toFixed(2)}x |`,
    );
  }
  log("medians; CPU: user + system of every process and thread; the call excludes Node's start");
}

function checksOf(results) {
  const a = results.apptainer;
  const d = results.docker;
  const checks = [];
  if (a?.apptainerS) {
    for (const [c, s] of [
      ["gzip, as apptainer pull", a.nativeS],
      ["lz4", a.nativeLz4S],
    ]) {
      checks.push({
        what: `pull + convert (${c}) at least 2x faster than apptainer pull`,
        ok: a.apptainerS / s >= 2,
        value: `${(a.apptainerS / s).toFixed(2)}x`,
      });
    }
  }
  if (a && a.sameContent !== null)
    checks.push({
      what: "the same content as apptainer pull",
      ok: a.sameContent,
      value: String(a.sameContent),
    });
  if (a)
    checks.push({
      what: "the same ImageId from the pull and from the archive",
      ok: a.sameId,
      value: String(a.sameId),
    });
  if (d) {
    const r = d.contexecS / d.dockerS;
    checks.push({
      what: "Docker backend pullImage within 1.1x of docker pull",
      ok: r <= 1.1,
      value: `${r.toFixed(2)}x`,
    });
  }
  return checks;
}

async function has(command) {
  try {
    await exec("sh", ["-c", 'command -v "$1"', "sh", command]);
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

const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (n) => (n / 2 ** 20).toFixed(0);
