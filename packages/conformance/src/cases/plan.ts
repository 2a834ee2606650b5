import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CapabilityName, type ContainerSpec, formatPlan, type ImageId } from "@contexec/core";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

const HOSTILE_ARGS = [
  "",
  "two words",
  "it's",
  '"double"',
  "$(echo pwned)",
  "`echo pwned`",
  "${HOME}",
  "*",
  "-n",
  "--help",
  "line\nbreak",
  "back\\slash",
  "ünïcödé ✓",
  "A=b",
];

/** One spec run both ways; `out` is a host folder bound at /out in the container. */
interface PlanCase {
  title: string;
  needs?: CapabilityName[];
  spec: (images: { busybox: ImageId; layered: ImageId }, out: string, input: string) => ContainerSpec;
}

const CASES: PlanCase[] = [
  { title: "the image's own ENTRYPOINT, CMD, ENV and WORKDIR", spec: (i) => ({ image: i.layered }) },
  {
    title: "hostile arguments arrive exactly",
    spec: (i) => ({ image: i.busybox, command: ["printf", "[%s]\\n", ...HOSTILE_ARGS] }),
  },
  {
    title: "hostile environment values arrive literally",
    spec: (i) => ({
      image: i.busybox,
      command: ["sh", "-c", 'printf "[%s]\\n" "$A" "$B" "$C" "$D" "$E"'],
      env: { A: "$(echo pwned)", B: "`id`", C: 'it\'s "q"', D: "line\nbreak", E: "" },
    }),
  },
  {
    title: "an exit code",
    spec: (i) => ({ image: i.busybox, command: ["sh", "-c", "echo out; echo err >&2; exit 7"] }),
  },
  { title: "death by a signal", spec: (i) => ({ image: i.busybox, command: ["sh", "-c", "kill -TERM $$"] }) },
  {
    title: "a working folder the image lacks, created empty",
    spec: (i) => ({ image: i.layered, entrypoint: ["sh", "-c", "pwd; ls -A"], workdir: "/new/work dir" }),
  },
  {
    title: "files written into a bind mount, and a read-only one refused",
    spec: (i, out, input) => ({
      image: i.busybox,
      command: [
        "sh",
        "-c",
        "cat /in/data.txt > /out/copy.txt; echo 'new file' > '/out/a file'; echo x > /in/other 2>/dev/null || echo refused",
      ],
      mounts: [
        { type: "bind", source: out, target: "/out" },
        { type: "bind", source: input, target: "/in", readOnly: true },
      ],
    }),
  },
  {
    title: "a tmpfs mount",
    spec: (i) => ({
      image: i.busybox,
      command: ["sh", "-c", "echo t > /scratch/x && cat /scratch/x"],
      mounts: [{ type: "tmpfs", target: "/scratch" }],
    }),
  },
  {
    title: "an entrypoint override with arguments",
    spec: (i) => ({
      image: i.layered,
      entrypoint: ["/bin/sh", "-c", 'echo "$0|$1|$2"'],
      command: ["zero", "one", "two"],
    }),
  },
  {
    title: "stdin reads EOF at once",
    spec: (i) => ({ image: i.busybox, command: ["sh", "-c", "cat; echo done"] }),
  },
  {
    title: "HOME is private and empty",
    spec: (i) => ({ image: i.busybox, command: ["sh", "-c", 'echo "$HOME"; ls -A "$HOME"; echo end'] }),
  },
  {
    title: "no network but loopback",
    needs: ["network-none"],
    spec: (i) => ({
      image: i.busybox,
      command: ["sh", "-c", "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '"],
      network: "none",
    }),
  },
  {
    title: "another user owns the files it writes",
    needs: ["user"],
    spec: (i, out) => ({
      image: i.busybox,
      command: ["sh", "-c", "id -u; id -g; touch /out/mine"],
      user: "65534:65534",
      mounts: [{ type: "bind", source: out, target: "/out" }],
    }),
  },
  {
    title: "a memory limit the container can read",
    needs: ["memory-limit"],
    spec: (i) => ({
      image: i.busybox,
      command: [
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
      ],
      resources: { memoryBytes: 64 * 1024 * 1024 },
    }),
  },
];

/**
 * The plan a backend prints is what it runs: for a dozen specs, the script `formatPlan` makes of
 * `executor.plan(spec)`, run by bash, gives the same stdout, stderr, exit code and files as the
 * executor's own run.
 */
export function registerPlanCases(ctx: SuiteContext): void {
  for (const c of CASES) {
    ctx.test(
      `its printed plan, run by bash, does what its run does: ${c.title}`,
      async () => {
        const work = await mkdtemp(join(tmpdir(), "contexec-plan-"));
        ctx.defer(() => rm(work, { recursive: true, force: true }));
        const input = join(work, "in");
        await mkdir(input);
        await writeFile(join(input, "data.txt"), "input data\n");
        const outs = { run: join(work, "out-run"), script: join(work, "out-script") };
        await Promise.all([mkdir(outs.run), mkdir(outs.script)]);
        // A user other than the caller must be able to write there (the umask would take 0o777 apart).
        await Promise.all([chmod(outs.run, 0o777), chmod(outs.script, 0o777)]);

        const images = ctx.images();
        const viaRun = await ctx.run(c.spec(images, outs.run, input));
        const plan = await ctx.executor().plan(c.spec(images, outs.script, input));
        expect(plan.image.action).toBe("present");
        const viaScript = await runBash(formatPlan(plan));

        expect({ exitCode: viaScript.exitCode, out: viaScript.stdout, err: viaScript.stderr }).toEqual({
          exitCode: viaRun.exitCode,
          out: viaRun.out,
          err: viaRun.err,
        });
        expect(await listFiles(outs.script)).toEqual(await listFiles(outs.run));
      },
      c.needs,
    );
  }
}

/** Every file under a folder with its content and owner, for comparing two runs' outputs. */
async function listFiles(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const st = await stat(join(dir, name));
    files[name] = `${st.uid}:${st.gid} ${st.isFile() ? await readFile(join(dir, name), "utf8") : "(folder)"}`;
  }
  return files;
}

function runBash(script: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { stdio: ["ignore", "pipe", "pipe"], cwd: "/" });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", reject);
    child.once("close", (code, signal) =>
      resolve({
        exitCode: code ?? 128 + (signal ? 15 : 0),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}
