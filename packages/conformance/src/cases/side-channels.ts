import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collect, HOST_COMMAND_CODES, runContainer, type StatusUpdate } from "@contexec/core";
import { PYTHON_LIKE_CLIENT_SH, SUPERVISED_JOB_SH } from "@contexec/core/testing";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

/** Arguments a shell would mangle: they must reach the host command exactly. */
const HOSTILE_ARGS = [
  "with space",
  "it's",
  "\"double\" 'single'",
  "$(touch /tmp/contexec-pwned)",
  "`id`",
  "$HOME",
  "line1\nline2\n",
  "back\\slash",
  "*",
  "; rm -rf /",
  "ünïcødé ✓ 日本語",
  "",
  "-n",
];

const page = (i: number, of: number) =>
  `<html><body><h1>Progress</h1><p>step ${i} of ${of}</p></body></html>`;

export function registerSideChannelCases(ctx: SuiteContext): void {
  // Side channels are files: they need no network, and run here without one.
  const test: SuiteContext["test"] = (title, fn, needs = [], skipReason) =>
    ctx.test(title, fn, ["network-none", ...needs], skipReason);
  const network = "none" as const;
  const hostDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-side-case-"));
    ctx.defer(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  /** The Python-like client, run inside the container as `sh -c CLIENT client ARGS...`. */
  const client = (args: string[]) => ["sh", "-c", PYTHON_LIKE_CLIENT_SH, "client", ...args];

  test("host commands: a client like singreqrun's Python one gets exact answers from inside", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      network,
      command: client(["printf", "%s\\0", ...HOSTILE_ARGS]),
      hostCommands: { allow: ["printf"] },
    });
    expect(r.err).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.out.split("\0").slice(0, -1)).toEqual(HOSTILE_ARGS);
    expect(existsSync("/tmp/contexec-pwned")).toBe(false);
  });

  test("host commands: an allowed command's link in /hostbin runs the host's program, first on PATH", async () => {
    const dir = await hostDir();
    const secret = randomBytes(8).toString("hex");
    await writeFile(join(dir, "host-only.txt"), `${secret}\n`);
    const probe = join(dir, "host-probe");
    await writeFile(probe, `#!/bin/sh\necho "args:$#:$1"\ncat ${dir}/host-only.txt\nexit 5\n`);
    await chmod(probe, 0o755);
    const r = await ctx.run({
      image: ctx.images().busybox,
      network,
      command: ["sh", "-c", 'echo "$PATH"; command -v host-probe; host-probe "a b"; echo "code $?"'],
      hostCommands: { allow: [probe] },
    });
    expect(r.out).toBe(
      `/hostbin:/usr/local/bin:/usr/bin:/bin\n/hostbin/host-probe\nargs:1:a b\n${secret}\ncode 5\n`,
    );
  });

  test("host commands: a refused command runs nothing and answers 126 with a one-line reason", async () => {
    const dir = await hostDir();
    const marker = join(dir, "marker");
    const r = await ctx.run({
      image: ctx.images().busybox,
      network,
      command: [
        "sh",
        "-c",
        `${[
          `contexec-host-command touch ${marker}; echo "code $?"`,
          `sh -c "$0" client sh -c 'touch ${marker}'; echo "code $?"`,
        ].join("; ")}`,
        PYTHON_LIKE_CLIENT_SH,
      ],
      hostCommands: { allow: ["printf"] },
    });
    expect(r.out).toBe(`code ${HOST_COMMAND_CODES.refused}\ncode ${HOST_COMMAND_CODES.refused}\n`);
    expect(r.err).toBe(
      'contexec host-command: refused: "touch" is not an allowed host command\n' +
        'contexec host-command: refused: "sh" is not an allowed host command\n',
    );
    expect(existsSync(marker)).toBe(false);
  });

  test("host commands: 20 clients at once in one container each get their own answer", async () => {
    const script = `i=1
      while [ $i -le 20 ]; do sh -c "$0" client printf '%s|' "client $i" >/tmp/out.$i 2>&1 & i=$((i + 1)); done
      wait
      i=1; while [ $i -le 20 ]; do cat /tmp/out.$i; echo; i=$((i + 1)); done`;
    const r = await ctx.run({
      image: ctx.images().busybox,
      network,
      command: ["sh", "-c", script, PYTHON_LIKE_CLIENT_SH],
      hostCommands: { allow: ["printf"], concurrency: 4 },
    });
    expect(r.exitCode).toBe(0);
    expect(r.out).toBe(Array.from({ length: 20 }, (_, i) => `client ${i + 1}|\n`).join(""));
  });

  test("host commands: 10 MB of a host command's stdout arrive intact", async () => {
    const dir = await hostDir();
    const data = randomBytes(10 * 1024 * 1024);
    await writeFile(join(dir, "ten-mb"), data);
    const r = await ctx.run({
      image: ctx.images().busybox,
      network,
      command: client(["cat", join(dir, "ten-mb")]),
      hostCommands: { allow: ["cat"] },
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.length).toBe(data.length);
    expect(createHash("sha256").update(r.stdout).digest("hex")).toBe(
      createHash("sha256").update(data).digest("hex"),
    );
  });

  test("host commands: a client running as another user (nobody) is served", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      network,
      user: "65534:65534",
      command: ["sh", "-c", 'id -u; contexec-host-command printf "%s" "as nobody"'],
      hostCommands: { allow: ["printf"] },
    });
    expect(r.err).toBe("");
    expect(r.out).toBe("65534\nas nobody");
  }, ["user"]);

  test("supervision: every status of the job arrives in order, and its result comes with the exit status", async () => {
    const updates: StatusUpdate[] = [];
    const r = await runContainer(
      ctx.executor(),
      {
        image: ctx.images().busybox,
        network,
        command: ["sh", "-c", SUPERVISED_JOB_SH, "job"],
        env: { STEPS: "4", STEP_SECONDS: "1" },
        supervision: {},
      },
      { onStatus: (u) => updates.push(u) },
    );
    expect(r.exitCode).toBe(0);
    expect(r.result).toBe("done: 4 steps\n");
    expect(updates.map((u) => u.content)).toEqual([1, 2, 3, 4].map((i) => page(i, 4)));
  });

  test("supervision: notify('ABORT') ends the job early with its own result; the private folder goes with the container", async () => {
    const c = await ctx.executor().create({
      image: ctx.images().busybox,
      network,
      command: ["sh", "-c", SUPERVISED_JOB_SH, "job"],
      env: { STEPS: "120", STEP_SECONDS: "0.5" },
      supervision: {},
    });
    ctx.defer(() => c.remove());
    const output = Promise.all([collect(c.stdout), collect(c.stderr)]);
    const supervision = c.supervision;
    if (!supervision) throw new Error("a container with spec.supervision has no supervision");
    const updates: string[] = [];
    const iterating = (async () => {
      for await (const u of supervision.statusUpdates()) updates.push(u.content);
    })();
    await c.start();
    while (updates.length < 2) await new Promise((resolve) => setTimeout(resolve, 50));
    await supervision.notify("ABORT");
    const status = await c.wait();
    await iterating;
    await output;
    expect(status.exitCode).toBe(3);
    expect(status.result).toMatch(/^aborted at step \d+\n$/);
    const step = Number(status.result?.match(/\d+/)?.[0]);
    expect(step).toBeLessThan(20);
    expect(updates.at(-1)).toBe(`<html><body><p>aborted at step ${step}</p></body></html>`);
    expect(updates.slice(0, -1)).toEqual(Array.from({ length: step - 1 }, (_, i) => page(i + 1, 120)));
    expect(existsSync(supervision.hostDir)).toBe(true);
    await c.remove();
    expect(existsSync(supervision.hostDir)).toBe(false);
  });
}
