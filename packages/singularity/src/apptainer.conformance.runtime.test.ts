import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeConformance } from "@contexec/conformance";
import { execa } from "execa";
import { afterAll, inject } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "./apptainer-executor.js";
import { descendantsOf, listProcesses } from "./process/process-tree.js";
import { parseInstanceList } from "./run/apptainer-service.js";

const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
// A cache of its own, so the suite starts from nothing and leaves nothing behind.
const gate = runtimeGate("apptainer");
const cacheDir = gate.skip ? "" : await mkdtemp(join(tmpdir(), "contexec-conformance-sif-"));
afterAll(async () => {
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
});

await describeConformance({
  name: "apptainer",
  ...(gate.reason !== undefined && { unavailable: gate.reason }),
  createExecutor: async () => new ApptainerExecutor({ cacheDir }),
  fixtures: { busybox: join(fixtures, "busybox.tar"), layered: join(fixtures, "layered.tar") },
  // Batch containers are this process's children: whatever is left of them is a descendant.
  // Services are instances (daemons of their own): whatever is left of them is still listed.
  leftovers: async (executor) => {
    const started = (executor as ApptainerExecutor).instancesStarted;
    const listed = await execa("apptainer", ["instance", "list", "--json"], { reject: false });
    const instances = parseInstanceList(String(listed.stdout)).filter((i) => started.has(i.name));
    const processes = await listProcesses();
    const mine = new Set(descendantsOf(process.pid, processes));
    const { readFile } = await import("node:fs/promises");
    const left: string[] = [];
    for (const p of processes) {
      if (!mine.has(p.pid)) continue;
      const comm = (await readFile(`/proc/${p.pid}/comm`, "utf8").catch(() => "")).trim();
      // vitest's own workers are descendants too; only runtime and container processes count.
      if (/^(starter|appinit|squashfuse|sleep|sh|apptainer)/.test(comm)) left.push(`${p.pid} ${comm}`);
    }
    return [...left, ...instances.map((i) => `instance ${i.name} (pid ${i.pid})`)];
  },
});
