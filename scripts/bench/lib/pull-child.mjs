// One pull + native conversion in a process of its own, for the pull benchmark:
//   node pull-child.mjs <reference> <out.sif> <prefetch> <keepInMemoryBytes> <compression>
// The same calls Apptainer's pullImage makes (resolve, config, remoteLayerStreams into
// convertLayersToSif), without the cache. Prints one JSON line: the call's wall and CPU time (this
// process; sqfstar is the parent's to measure), its own peak RSS (VmHWM, see convert-child.mjs),
// the bytes fetched (a layer fetched in both passes counts twice), the blobs' size and the id.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const [reference, output, prefetch, keepInMemoryBytes, compression] = process.argv.slice(2);
const { RegistryClient, remoteLayerStreams } = await import(join(root, "packages/registry/dist/index.js"));
const { convertLayersToSif, streamLayerSource } = await import(join(root, "packages/sif/dist/index.js"));
const client = new RegistryClient({ dockerConfig: false });
const seen = new Map();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const image = await client.resolveImage(reference);
const configJson = await client.fetchConfig(image);
const layers = remoteLayerStreams(client, image, configJson, {
  keepInMemoryBytes: Number(keepInMemoryBytes),
  // Bytes per layer and pass.
  onProgress: (p) =>
    seen.set(`${p.layer} ${p.phase}`, Math.max(seen.get(`${p.layer} ${p.phase}`) ?? 0, p.bytes)),
}).map((l) => streamLayerSource({ ...l, member: l.digest }));
const result = await convertLayersToSif({ configJson, layers, source: reference }, output, {
  compression,
  prefetch: Number(prefetch),
  bootstrap: "docker",
});
const callMs = performance.now() - t0;
const callCpu = process.cpuUsage(cpu0);
const total = process.cpuUsage();
client.close();
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
process.stdout.write(
  `${JSON.stringify({
    callMs,
    callCpuMs: (callCpu.user + callCpu.system) / 1000,
    processCpuMs: (total.user + total.system) / 1000,
    peakRssKb: hwm ? Number(hwm[1]) : null,
    fetched: [...seen.values()].reduce((a, b) => a + b, 0),
    blobs: image.layers.reduce((a, l) => a + l.size, 0),
    sifBytes: result.sifBytes,
    id: result.id,
  })}\n`,
);
