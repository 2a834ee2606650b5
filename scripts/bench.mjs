#!/usr/bin/env node
import { mkdir, readdir, writeFile } from "node:fs/promises";
// The benchmark runner: `npm run bench` builds the packages and runs every section in
// scripts/bench/*.mjs in turn (by file name), or only the ones named:
//
//   npm run bench                            every section
//   npm run bench -- sif --lz4-rounds 9      one section, with its options
//   node scripts/bench.mjs --list            the sections and their options
//
// A section is a module in scripts/bench/ exporting
//   name    short name, used to pick it on the command line
//   title   one line saying what it compares
//   run(ctx) -> { checks: [{ what, ok, value }], ...anything to record }
// where ctx = { root, log(line), option(name, fallback), flag(name) }; options are the
// command line's `--name value` / `--name`, shared by the sections (each reads the ones it knows).
// Shared helpers (measuring child processes, generated images) live in scripts/bench/lib/.
// Every check of every section is listed at the end as met / MISSED; --strict exits 1 when one is
// missed. Results go to .cache/bench/results.json. Sections run one after another, never in
// parallel: they measure CPU and wall time.
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadAverages } from "./bench/lib/measure.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const args = process.argv.slice(2);

const picked = [];
const options = new Map();
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a.startsWith("--")) {
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith("--")) {
      options.set(a.slice(2), next);
      i++;
    } else options.set(a.slice(2), true);
  } else picked.push(a);
}
const ctx = {
  root,
  log: (line = "") => console.log(line),
  option: (name, fallback) => {
    const v = options.get(name);
    return typeof v === "string" ? v : fallback;
  },
  flag: (name) => options.has(name),
};

const files = (await readdir(join(here, "bench"))).filter((f) => f.endsWith(".mjs")).sort();
const sections = [];
for (const file of files) {
  const mod = await import(pathToFileURL(join(here, "bench", file)).href);
  if (typeof mod.run !== "function" || typeof mod.name !== "string") {
    throw new Error(`scripts/bench/${file} is not a bench section: it must export name, title and run(ctx)`);
  }
  sections.push(mod);
}
if (options.has("list")) {
  for (const s of sections) console.log(`${s.name.padEnd(12)} ${s.title}`);
  process.exit(0);
}
const unknown = picked.filter((p) => !sections.some((s) => s.name === p));
if (unknown.length > 0) {
  console.error(
    `no bench section named ${unknown.join(", ")}; there are: ${sections.map((s) => s.name).join(", ")}`,
  );
  process.exit(2);
}
const chosen = picked.length > 0 ? sections.filter((s) => picked.includes(s.name)) : sections;

const machine = `${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}`;
console.log(`machine: ${machine}`);
const record = { date: new Date().toISOString(), machine, sections: {} };
const allChecks = [];
for (const section of chosen) {
  console.log(`\n## ${section.name}: ${section.title}`);
  const loadBefore = loadAverages();
  console.log(`load average before: ${loadBefore}`);
  const t0 = performance.now();
  const result = await section.run(ctx);
  const loadAfter = loadAverages();
  console.log(
    `load average after: ${loadAfter} (section took ${((performance.now() - t0) / 1000).toFixed(0)} s)`,
  );
  record.sections[section.name] = { loadBefore, loadAfter, ...result };
  for (const c of result.checks ?? []) allChecks.push({ section: section.name, ...c });
}

console.log("\n## targets");
for (const c of allChecks) console.log(`${c.ok ? "met   " : "MISSED"} ${c.section}: ${c.what} (${c.value})`);
await mkdir(join(root, ".cache/bench"), { recursive: true });
await writeFile(join(root, ".cache/bench/results.json"), `${JSON.stringify(record, null, 2)}\n`);
if (options.has("strict") && allChecks.some((c) => !c.ok)) process.exit(1);
