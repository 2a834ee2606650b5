import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidSpecError, RuntimeError } from "../errors.js";
import { SUPERVISED_JOB_SH } from "../testing/side-channel-scripts.js";
import { htmlToText } from "./html-to-text.js";
import { type StatusUpdate, SupervisorFiles } from "./supervisor-files.js";

// The supervisor's side against real writers: the convention's job script and hostile writers.

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "contexec-supervision-test-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function openFiles(dir?: string) {
  const folder = dir ?? (await mkdtemp(join(work, "service-")));
  const files = await SupervisorFiles.open({
    dir: folder,
    owned: false,
    statusFile: "status.html",
    resultFile: "result.txt",
    notificationsFile: "notifications.txt",
  });
  const updates: StatusUpdate[] = [];
  files.onStatus((u) => updates.push(u));
  return { dir: folder, files, updates };
}

function startJob(
  dir: string,
  env: Record<string, string>,
): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn("sh", ["-c", SUPERVISED_JOB_SH, "job"], {
    env: { PATH: process.env.PATH, SERVICE_DIR: dir, ...env },
    stdio: "ignore",
  });
  return { child, exit: new Promise((resolve) => child.once("exit", (code) => resolve(code))) };
}

const page = (i: number, of: number) =>
  `<html><body><h1>Progress</h1><p>step ${i} of ${of}</p></body></html>`;

describe("supervisor files", () => {
  it("delivers every status of the convention's job in order, and its final result", async () => {
    const { dir, files, updates } = await openFiles();
    const iterated: string[] = [];
    const iterating = (async () => {
      for await (const u of files.statusUpdates()) iterated.push(u.content);
    })();
    const job = startJob(dir, { STEPS: "4", STEP_SECONDS: "0.5" });
    expect(await job.exit).toBe(0);
    const result = await files.finish();
    await iterating;
    expect(result).toBe("done: 4 steps\n");
    expect(updates.map((u) => u.content)).toEqual([1, 2, 3, 4].map((i) => page(i, 4)));
    expect(updates.map((u) => u.sequence)).toEqual([1, 2, 3, 4]);
    expect(iterated).toEqual(updates.map((u) => u.content));
    expect(files.status?.content).toBe(page(4, 4));
    expect(htmlToText(updates[0]?.content ?? "")).toBe("Progress\nstep 1 of 4");
    await files.close();
  });

  it("notify('ABORT') ends the job early with its own result", async () => {
    const { dir, files, updates } = await openFiles();
    const job = startJob(dir, { STEPS: "60", STEP_SECONDS: "0.3" });
    while (updates.length < 2) await delay(20);
    const started = Date.now();
    await files.notify("ABORT");
    expect(await job.exit).toBe(3);
    expect(Date.now() - started).toBeLessThan(5000);
    const result = await files.finish();
    expect(result).toMatch(/^aborted at step \d+\n$/);
    const step = result?.match(/\d+/)?.[0];
    expect(updates.at(-1)?.content).toBe(`<html><body><p>aborted at step ${step}</p></body></html>`);
    expect(await readFile(join(dir, "notifications.txt"), "utf8")).toBe("ABORT\n");
    await files.close();
  });

  it("never delivers a half-written page: a slow writer's pieces are seen only whole", async () => {
    const { dir, files, updates } = await openFiles();
    // Each version written in 10 pieces 20 ms apart into the same file, then left alone 400 ms.
    const script = `for v in 1 2 3 4; do
      exec 3>"$1/status.html"
      for p in 0 1 2 3 4 5 6 7 8 9; do printf 'v%s-piece%s;' $v $p >&3; sleep 0.02; done
      exec 3>&-
      sleep 0.4
    done`;
    const child = spawn("sh", ["-c", script, "writer", dir], { stdio: "ignore" });
    await new Promise((resolve) => child.once("exit", resolve));
    await files.finish();
    const whole = (v: number) => Array.from({ length: 10 }, (_, p) => `v${v}-piece${p};`).join("");
    expect(updates.map((u) => u.content)).toEqual([1, 2, 3, 4].map(whole));
    await files.close();
  });

  it("with a writer that renames versions into place quickly: only whole versions, in order, the last one delivered", async () => {
    const { dir, files, updates } = await openFiles();
    const script = `i=1; while [ $i -le 150 ]; do printf 'version %s' $i >"$1/.s"; mv "$1/.s" "$1/status.html"; i=$((i+1)); sleep 0.005; done`;
    const child = spawn("sh", ["-c", script, "writer", dir], { stdio: "ignore" });
    await new Promise((resolve) => child.once("exit", resolve));
    await files.finish();
    const versions = updates.map((u) => Number(/^version (\d+)$/.exec(u.content)?.[1]));
    expect(versions.every((v) => Number.isInteger(v))).toBe(true);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
    expect(versions.at(-1)).toBe(150);
    await files.close();
  });

  it("does not report a result left by an earlier run in a given folder, nor the same status twice", async () => {
    const dir = await mkdtemp(join(work, "given-"));
    await writeFile(join(dir, "result.txt"), "stale\n");
    await writeFile(join(dir, "status.html"), "old");
    const { files, updates } = await openFiles(dir);
    await delay(700);
    expect(updates).toEqual([]);
    await writeFile(join(dir, "status.html"), "same");
    await delay(700);
    await writeFile(join(dir, "status.html"), "same");
    await delay(700);
    await writeFile(join(dir, "status.html"), "new");
    expect(await files.finish()).toBeUndefined();
    expect(updates.map((u) => u.content)).toEqual(["same", "new"]);
    await files.close();
    expect(await readFile(join(dir, "result.txt"), "utf8")).toBe("stale\n");
  });

  it("refuses a notification of more than one line, and one through a link the job planted", async () => {
    const { dir, files } = await openFiles();
    await expect(files.notify("ABORT\nrm -rf /")).rejects.toBeInstanceOf(InvalidSpecError);
    const hostFile = join(work, "host-file");
    await writeFile(hostFile, "untouched\n");
    await unlink(join(dir, "notifications.txt"));
    await symlink(hostFile, join(dir, "notifications.txt"));
    await expect(files.notify("ABORT")).rejects.toBeInstanceOf(RuntimeError);
    expect(await readFile(hostFile, "utf8")).toBe("untouched\n");
    await files.close();
  });
});
