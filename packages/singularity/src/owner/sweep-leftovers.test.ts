import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { currentOwner, type OwnerRecord, readProcStat } from "@contexec/core";
import { afterAll, describe, expect, it } from "vitest";
import type { ContainerRecord } from "./leftover-records.js";
import { sweepLeftovers } from "./sweep-leftovers.js";

// The sweep's decisions, with plain processes standing in for a runtime (no Apptainer needed).
const work = await mkdtemp(join(tmpdir(), "contexec-sweep-"));
const spawned: number[] = [];
afterAll(async () => {
  for (const pid of spawned) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await rm(work, { recursive: true, force: true });
});

/** A detached `sh` leading its own session with a `sleep` in it, as a runtime leads its container's. */
async function fakeRuntime(): Promise<{ pid: number; startTime: number }> {
  const child = spawn("sh", ["-c", "sleep 1000 & sleep 1001"], { detached: true, stdio: "ignore" });
  child.unref();
  const pid = child.pid as number;
  spawned.push(pid);
  await delay(100);
  return { pid, startTime: (await readProcStat(pid))?.startTime as number };
}

async function ownerFolder(
  stateDir: string,
  name: string,
  owner: OwnerRecord,
  tmpRoot: string,
  record: ContainerRecord,
) {
  const dir = join(stateDir, "apptainer", name);
  await mkdir(join(dir, "resources"), { recursive: true });
  await writeFile(join(dir, "owner.json"), JSON.stringify({ schema: 1, owner, details: { tmpRoot } }));
  await writeFile(join(dir, "resources", `container-${record.id}.json`), JSON.stringify(record));
  return dir;
}

const alive = async (ref: { pid: number; startTime: number }) => {
  const now = await readProcStat(ref.pid);
  return now !== undefined && now.startTime === ref.startTime && now.state !== "Z";
};

describe("sweepLeftovers", () => {
  it("ends a dead owner's container session and removes its scratch folders and records", async () => {
    const stateDir = join(work, "dead");
    const tmpRoot = join(work, "contexec-apptainer-dead");
    const scratch = join(tmpRoot, "c-1");
    await mkdir(scratch, { recursive: true });
    const runtime = await fakeRuntime();
    const me = currentOwner();
    // This process's pid with another start time: a process that died and whose pid came back.
    const dir = await ownerFolder(stateDir, "vm-1-dead", { ...me, startTime: me.startTime - 1 }, tmpRoot, {
      kind: "container",
      id: "1",
      scratch,
      cgroups: [],
      runtime,
    });
    const report = await sweepLeftovers({ stateDir });
    expect(report.failed).toEqual([]);
    expect(report.removed.some((r) => r.startsWith("container 1: processes"))).toBe(true);
    expect(await alive(runtime)).toBe(false);
    expect(existsSync(tmpRoot)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });

  it("leaves a live owner's and another host's resources alone", async () => {
    const stateDir = join(work, "live");
    const tmpRoot = join(work, "contexec-apptainer-live");
    await mkdir(join(tmpRoot, "c-2"), { recursive: true });
    const runtime = await fakeRuntime();
    const me = currentOwner();
    const record: ContainerRecord = {
      kind: "container",
      id: "2",
      scratch: join(tmpRoot, "c-2"),
      cgroups: [],
      runtime,
    };
    const live = await ownerFolder(stateDir, "vm-live", me, tmpRoot, record);
    const elsewhere = await ownerFolder(
      stateDir,
      "other-host",
      { ...me, host: `${me.host}-other`, startTime: 1 },
      tmpRoot,
      record,
    );
    const report = await sweepLeftovers({ stateDir });
    expect(report).toEqual({ removed: [], failed: [] });
    expect(await alive(runtime)).toBe(true);
    expect(existsSync(join(tmpRoot, "c-2"))).toBe(true);
    expect(existsSync(live) && existsSync(elsewhere)).toBe(true);
  });
});
