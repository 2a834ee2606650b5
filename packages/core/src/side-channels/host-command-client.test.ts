import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostCommandBridge } from "./host-command-bridge.js";
import { CLIENT_SCRIPT_NAME, writeClientBin } from "./host-command-client.js";
import { compileHostCommandPolicy } from "./host-command-policy.js";

// The shipped sh client against a real bridge, under the shells images have: dash, busybox, bash.

let work: string;
let bin: string;
let bridge: HostCommandBridge;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "contexec-client-test-"));
  bin = join(work, "bin");
  bridge = await HostCommandBridge.open({
    dir: work,
    policy: compileHostCommandPolicy({ allow: ["printf", "sh", "touch"], binPath: bin }),
    cwd: work,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    timeoutMs: 30_000,
    maxOutputBytes: 1 << 20,
    concurrency: 4,
  });
  await writeClientBin(bin, work, ["printf", "sh", "refused"]);
});
afterAll(async () => {
  await bridge?.close();
  await rm(work, { recursive: true, force: true });
});

function run(
  shell: string[],
  argv: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(shell[0] as string, [...shell.slice(1), ...argv], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const ARGS = ["it's", "a b", "$(id)", "`id`", "x\ny\n", "ünï ✓", "", "'\"'\"'", "\\", "-n"];

describe.each([
  ["dash", ["dash"]],
  ["busybox sh", ["busybox", "sh"]],
  ["bash", ["bash"]],
])("the sh client under %s", (_name, shell) => {
  it("sends the arguments exactly and passes stdout, stderr and the exit code back", async () => {
    const r = await run(shell, [join(bin, "printf"), "%s\\0", ...ARGS]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\0").slice(0, -1)).toEqual(ARGS);
    const failing = await run(shell, [join(bin, "sh"), "-c", "echo out; echo err >&2; exit 42"]);
    expect(failing).toEqual({ code: 42, stdout: "out\n", stderr: "err\n" });
  });

  it("is callable by its own name with the command first, and exits 126 with the reason when refused", async () => {
    const r = await run(shell, [join(bin, CLIENT_SCRIPT_NAME), "printf", "%s", "direct"]);
    expect(r).toEqual({ code: 0, stdout: "direct", stderr: "" });
    const marker = join(work, "marker");
    const refused = await run(shell, [join(bin, "refused"), marker]);
    expect(refused.code).toBe(126);
    expect(refused.stderr).toBe('contexec host-command: refused: "refused" is not an allowed host command\n');
    expect(existsSync(marker)).toBe(false);
  });
});

it("links every allowed name to the client script", async () => {
  expect(await readlink(join(bin, "printf"))).toBe(CLIENT_SCRIPT_NAME);
  expect(existsSync(join(bin, "touch"))).toBe(false);
});
