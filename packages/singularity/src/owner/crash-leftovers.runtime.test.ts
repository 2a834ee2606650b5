import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { readProcStat, readResourceRecords } from "@contexec/core";
import { execa } from "execa";
import * as tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { listProcesses } from "../process/process-tree.js";
import { parseInstanceList } from "../run/apptainer-service.js";
import { runChild } from "../test-support/child-process.js";
import { fixtures } from "../test-support/fixtures.js";
import type { ContainerRecord, ProcessRef, ServiceRecord } from "./leftover-records.js";

const gate = runtimeGate("apptainer");

// After a SIGKILL nothing of the killed process may stay once a new executor has started:
// no container process, no instance, no cgroup, no scratch folder, no partial SIF, no sqfstar.
let work: string;
let cacheDir: string;
let tmpDir: string;
let stateDir: string;
let big: string;
beforeAll(async () => {
  if (gate.skip) return;
  work = await mkdtemp(join(tmpdir(), "contexec-crash-"));
  cacheDir = join(work, "cache");
  tmpDir = join(work, "tmp");
  stateDir = join(work, "state");
  big = join(work, "big.tar");
  await writeBigArchive(big, 96 * 1024 * 1024);
}, 120_000);
afterAll(async () => {
  if (!gate.skip) await rm(work, { recursive: true, force: true });
});

/** A docker-archive of one layer holding `bytes` of random data: sqfstar works on it for seconds. */
async function writeBigArchive(path: string, bytes: number): Promise<void> {
  const layerPath = `${path}.layer`;
  const layer = tar.pack();
  const entry = layer.entry({ name: "big.bin", size: bytes, mode: 0o644 });
  const written = pipeline(layer, createWriteStream(layerPath));
  for (let done = 0; done < bytes; done += 1 << 20) {
    if (!entry.write(randomBytes(Math.min(1 << 20, bytes - done)))) {
      await new Promise<void>((r) => entry.once("drain", () => r()));
    }
  }
  (entry as unknown as { end(): void }).end();
  layer.finalize();
  await written;
  const layerBytes = await readFile(layerPath);
  const diffId = `sha256:${createHash("sha256").update(layerBytes).digest("hex")}`;
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/true"] },
      rootfs: { type: "layers", diff_ids: [diffId] },
    }),
  );
  const archive = tar.pack();
  const out = pipeline(archive, createWriteStream(path));
  archive.entry({ name: "config.json" }, config);
  archive.entry({ name: "layer.tar" }, layerBytes);
  archive.entry(
    { name: "manifest.json" },
    JSON.stringify([{ Config: "config.json", RepoTags: ["crash/big:1"], Layers: ["layer.tar"] }]),
  );
  archive.finalize();
  await out;
  await rm(layerPath);
}

const instances = async () =>
  parseInstanceList(
    String((await execa("apptainer", ["instance", "list", "--json"], { reject: false })).stdout),
  );

/** The processes of the session a recorded process leads (what a runtime spawned detached started). */
async function sessionOf(ref: ProcessRef) {
  return (await listProcesses()).filter(
    (p) => p.sid === ref.pid && p.startTime >= ref.startTime && p.state !== "Z" && p.state !== "X",
  );
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(gate.skip)(gate.title("a SIGKILLed process on Apptainer"), () => {
  it("leaves containers, an instance, cgroups, scratch folders and a partial SIF that the next executor removes; sqfstar dies with it", async () => {
    let converting: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      converting = resolve;
    });
    const child = runChild("./crash-child.ts", [cacheDir, tmpDir, fixtures().busybox, big], {
      env: { CONTEXEC_STATE_DIR: stateDir },
      onStdoutLine: (line) => line === "converting" && converting(),
    });
    await Promise.race([
      started,
      child.done.then((r) => {
        throw new Error(`the child ended early: ${r.code ?? r.signal}\n${r.stderr}`);
      }),
    ]);
    // sqfstar runs as the child's child once the conversion has started.
    const sqfstar = await until(
      "sqfstar",
      async () => {
        const all = await listProcesses();
        for (const p of all.filter((p) => p.ppid === child.pid)) {
          const comm = await readFile(`/proc/${p.pid}/comm`, "utf8").catch(() => "");
          if (comm.trim() === "sqfstar") return p;
        }
        return undefined;
      },
      120_000,
    );

    // What the child holds, from its owner folders (one per executor).
    const folders = (await readdir(join(stateDir, "apptainer"))).filter((n) => n.includes(`-${child.pid}-`));
    expect(folders).toHaveLength(2);
    const records = (
      await Promise.all(folders.map((f) => readResourceRecords(join(stateDir, "apptainer", f))))
    ).flatMap((m) => [...m.values()]);
    const containers = records.filter((r) => r.kind === "container") as unknown as ContainerRecord[];
    const services = records.filter((r) => r.kind === "service") as unknown as ServiceRecord[];
    expect(containers).toHaveLength(2);
    expect(services).toHaveLength(1);
    const sessions = [...containers.map((c) => c.runtime), ...services.map((s) => s.main)] as ProcessRef[];
    expect(sessions.every((s) => s !== undefined)).toBe(true);
    const cgroups = containers.flatMap((c) => c.cgroups);
    expect(cgroups.length).toBeGreaterThan(0);
    const tmpRoots = (await readdir(tmpDir)).filter((n) => n.startsWith("contexec-apptainer-"));
    const service = services[0] as ServiceRecord;

    process.kill(child.pid, "SIGKILL");
    await child.done;

    // sqfstar dies with its parent (setpriv's parent-death signal), at once.
    await until(
      "sqfstar to die",
      async () => {
        const now = await readProcStat(sqfstar.pid);
        return now === undefined || now.startTime !== sqfstar.startTime || now.state === "Z"
          ? true
          : undefined;
      },
      5000,
    );
    // The rest is still there: the crash left it.
    expect((await instances()).map((i) => i.name)).toContain(service.name);
    for (const s of sessions) expect((await sessionOf(s)).length).toBeGreaterThan(0);
    for (const dir of cgroups) expect(existsSync(dir)).toBe(true);
    expect((await readdir(cacheDir)).some((n) => n.includes(".sif.tmp-"))).toBe(true);

    // A new executor, on its first use, sweeps what dead owners left.
    const next = new ApptainerExecutor({ cacheDir, tmpDir, stateDir });
    try {
      await next.info();
      expect((await instances()).map((i) => i.name)).not.toContain(service.name);
      for (const s of sessions) expect(await sessionOf(s)).toEqual([]);
      // Not even orphans of those sessions (squashfuse_ll); zombies have ended (this sandbox's
      // pid 1 is slow to reap them).
      const orphans = (await listProcesses()).filter(
        (p) => sessions.some((s) => s.pid === p.sid) && p.state !== "Z" && p.state !== "X",
      );
      expect(orphans).toEqual([]);
      for (const dir of cgroups) expect(existsSync(dir), dir).toBe(false);
      const rootsLeft = (await readdir(tmpDir)).filter((n) => tmpRoots.includes(n));
      expect(rootsLeft).toEqual([]);
      expect(
        (await readdir(join(stateDir, "apptainer"))).filter((n) => n.includes(`-${child.pid}-`)),
      ).toEqual([]);
      expect((await readdir(cacheDir)).filter((n) => n.includes(".tmp-") || n.endsWith(".lock"))).toEqual([]);
    } finally {
      await next.close();
    }
  }, 240_000);
});
