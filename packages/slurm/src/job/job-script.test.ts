import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  hostIdentity,
  INITIAL_PID_NS,
  OWNER_LABELS,
  ownerFromLabels,
  ownerLiveness,
  type PlannedCommand,
  type ProcStat,
  type RunPlan,
  readProcStat,
} from "@contexec/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobFiles, jobFiles } from "./job-files.js";
import { renderJobScript } from "./job-script.js";
import { renderSbatchOptions } from "./sbatch-options.js";

const run = promisify(execFile);

const HOSTILE = [
  "a b",
  "it's",
  '"double"',
  "$HOME $(id) `id`",
  "*",
  "",
  "tab\there",
  "new\nline",
  "back\\slash",
  "--flag=x y",
  "; rm -rf / #",
  "héllo ✓",
];

let root: string;
beforeAll(async () => {
  // A folder whose name itself needs quoting.
  root = await mkdtemp(join(tmpdir(), "contexec job 'script' $x "));
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A plan whose "runtime" is /bin/sh running `script` with HOSTILE as its arguments. */
function shellPlan(script: string, options: { stdin?: boolean; env?: Record<string, string> } = {}): RunPlan {
  const command: PlannedCommand = {
    argv: ["/bin/sh", "-c", script, "sh", ...HOSTILE],
    env: { PATH: "/usr/bin:/bin", ...options.env },
    cwd: "/",
    stdin: options.stdin === true,
  };
  return {
    planVersion: 1,
    runtime: "test",
    profile: {
      runtime: "test",
      flavor: "sh",
      version: "1",
      privilege: "root",
      host: { hostname: "node", uid: 0, gid: 0, kernel: "x", arch: "x64" },
    },
    spec: { image: "sha256:0" },
    image: { id: `sha256:${"0".repeat(64)}`, tags: [], action: "present" },
    before: [{ op: "mkdir", path: join(root, "scratch dir"), mode: 0o700, why: "test" }],
    command,
    process: { argv: command.argv, workdir: "/", env: {} },
    after: [{ op: "remove", path: join(root, "scratch dir"), why: "test" }],
    ignored: [],
    notes: [],
  };
}

/** A command of a plan's image preparation: `argv` with a plain PATH, in /. */
function at(argv: string[]): PlannedCommand {
  return { argv, env: { PATH: "/usr/bin:/bin" }, cwd: "/", stdin: false };
}

async function jobFolder(name: string): Promise<JobFiles> {
  const files = jobFiles(join(root, name));
  await mkdir(files.dir, { recursive: true });
  return files;
}

function script(plan: RunPlan, files: JobFiles, stopSignal: NodeJS.Signals = "SIGTERM"): string {
  const options = renderSbatchOptions({
    jobName: "hostile-name",
    logFile: files.log,
    chdir: files.dir,
    signalBeforeLimitSec: 60,
    stopSignal,
    extra: { comment: `a "quoted" #comment with \\ and 'single'` },
  });
  return renderJobScript({ plan, options, files, stopSignal });
}

async function start(plan: RunPlan, files: JobFiles, stopSignal?: NodeJS.Signals) {
  await writeFile(files.script, script(plan, files, stopSignal), { mode: 0o755 });
  const child = spawn("bash", [files.script], { cwd: files.dir, stdio: "ignore" });
  const done = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, done };
}

describe("renderJobScript (run through real bash)", () => {
  it("passes hostile arguments and environment values to the command exactly", async () => {
    const files = await jobFolder("args");
    const env = Object.fromEntries(HOSTILE.map((v, i) => [`V${i}`, v]));
    const plan = shellPlan(
      `for a in "$@"; do printf '[%s]' "$a"; done; printf '\\n'; for i in ${HOSTILE.map((_, i) => i).join(" ")}; do eval "printf '<%s>' \\"\\$V$i\\""; done; echo err >&2; exit 7`,
      { env },
    );
    const { done } = await start(plan, files);
    expect(await done).toBe(7);
    expect(await readFile(files.stdout, "utf8")).toBe(
      `${HOSTILE.map((a) => `[${a}]`).join("")}\n${HOSTILE.map((a) => `<${a}>`).join("")}`,
    );
    expect(await readFile(files.stderr, "utf8")).toBe("err\n");
    expect(await readFile(files.exit, "utf8")).toBe("phase=container\ncode=7\noom=0\n");
  });

  it("runs the steps before and after, and writes only the finished status file", async () => {
    const files = await jobFolder("steps");
    const scratch = join(root, "scratch dir");
    const plan = shellPlan(
      'test -d "$SCRATCH" && echo scratch-there; cat "$SCRATCH/env it\'s.sh"; readlink "$SCRATCH/image"; test -d "$SCRATCH/empty" && echo empty-there',
      { env: { SCRATCH: scratch } },
    );
    // Every kind of step (Apptainer's plans write an environment script and link the image).
    plan.before.push(
      { op: "write", path: join(scratch, "env it's.sh"), content: HOSTILE.join("\n"), why: "test" },
      { op: "symlink", path: join(scratch, "image"), target: "/some where/it's.sif", why: "test" },
      { op: "mkdir", path: join(scratch, "empty"), mode: 0o755, why: "test" },
      { op: "write", path: join(root, "no such dir", "x"), content: "x", optional: true, why: "test" },
    );
    plan.after.unshift({ op: "rmdir", path: join(scratch, "empty"), why: "test" });
    const { done } = await start(plan, files);
    expect(await done).toBe(0);
    expect(await readFile(files.stdout, "utf8")).toBe(
      `scratch-there\n${HOSTILE.join("\n")}/some where/it's.sif\nempty-there\n`,
    );
    await expect(readFile(scratch)).rejects.toMatchObject({ code: "ENOENT" });
    const { stdout } = await run("ls", ["-A", files.dir]);
    expect(stdout.split("\n").filter(Boolean).sort()).toEqual(["exit-status", "job.sh", "stderr", "stdout"]);
  });

  it("passes the signal it gets on to the container, waits, and reports the container's own code", async () => {
    const files = await jobFolder("signal");
    const plan = shellPlan("trap 'echo trapped; exit 3' INT; echo ready; while :; do sleep 0.1; done");
    const { child, done } = await start(plan, files, "SIGINT");
    await waitFor(async () => (await readFile(files.stdout, "utf8").catch(() => "")) === "ready\n");
    child.kill("SIGINT");
    expect(await done).toBe(3);
    expect(await readFile(files.stdout, "utf8")).toBe("ready\ntrapped\n");
    expect(await readFile(files.exit, "utf8")).toBe("phase=container\ncode=3\noom=0\n");
  });

  it("a container ended by a forwarded signal reports 128+n", async () => {
    const files = await jobFolder("term");
    const plan = shellPlan("echo ready; exec sleep 100");
    const { child, done } = await start(plan, files);
    await waitFor(async () => (await readFile(files.stdout, "utf8").catch(() => "")) === "ready\n");
    child.kill("SIGTERM");
    expect(await done).toBe(143);
    expect(await readFile(files.exit, "utf8")).toBe("phase=container\ncode=143\noom=0\n");
  });

  it("stopped before its container starts (while the image is prepared), never starts it and reports the signal", async () => {
    const files = await jobFolder("early");
    const plan = shellPlan("echo ran");
    plan.image = {
      ...plan.image,
      action: "convert",
      path: join(root, "early.sif"),
      // The preparation sends the job script its stop signal, as scancel --batch would mid-way.
      prepare: { present: at(["false"]), commands: [at(["sh", "-c", 'kill -TERM "$PPID"; sleep 0.2'])] },
    };
    const { done } = await start(plan, files);
    expect(await done).toBe(143);
    expect(await readFile(files.exit, "utf8")).toBe("phase=container\ncode=143\noom=0\n");
    expect(await readFile(files.stdout, "utf8").catch(() => "")).toBe("");
  });

  it("stopped during a long preparation holding the lock, ends it at once and frees the lock for the others", async () => {
    const files = await jobFolder("early-lock");
    const plan = shellPlan("echo ran");
    const image = join(root, "slow.sif");
    const lock = `${image}.prepare-lock`;
    plan.image = {
      ...plan.image,
      action: "convert",
      path: image,
      prepare: { present: at(["test", "-s", image]), commands: [at(["sleep", "60"])] },
    };
    const text = renderJobScript({ plan, options: [], files, stopSignal: "SIGTERM", prepareLock: lock });
    await writeFile(files.script, text, { mode: 0o755 });
    const child = spawn("bash", [files.script], { cwd: files.dir, stdio: "ignore" });
    const done = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await waitFor(async () => existsSync(lock));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    child.kill("SIGTERM");
    expect(await done).toBe(143);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(existsSync(lock)).toBe(false);
    expect(await readFile(files.exit, "utf8")).toBe("phase=container\ncode=143\noom=0\n");
    expect(await readFile(files.stdout, "utf8").catch(() => "")).toBe("");
  });

  it("feeds stdin from the job's file as it grows, binary-safe, until the end marker", async () => {
    const files = await jobFolder("stdin");
    await writeFile(files.stdin, "");
    const plan = shellPlan("cat; echo eof-seen >&2", { stdin: true });
    const { done } = await start(plan, files);
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await appendFile(files.stdin, bytes);
    await new Promise((r) => setTimeout(r, 300));
    await appendFile(files.stdin, "second part\n");
    await writeFile(files.stdinEnd, "");
    expect(await done).toBe(0);
    expect((await readFile(files.stdout)).equals(Buffer.concat([bytes, Buffer.from("second part\n")]))).toBe(
      true,
    );
    expect(await readFile(files.stderr, "utf8")).toBe("eof-seen\n");
  });

  it("keeps every line of the plan's description a comment (a note with line breaks runs nothing)", async () => {
    const files = await jobFolder("header");
    const marker = join(root, "header-marker");
    const plan = shellPlan("echo ran");
    plan.notes.push(`two\ntouch '${marker}'\rtouch '${marker}'\r\ntouch '${marker}'`);
    plan.process.argv = ["sh", "-c", `line one\ntouch '${marker}'`];
    const text = script(plan, files);
    const head = text.slice(0, text.indexOf("\nset -u\n")).split("\n");
    expect(head.every((l) => l.startsWith("#"))).toBe(true);
    const { done } = await start(plan, files);
    expect(await done).toBe(0);
    expect(await readFile(files.stdout, "utf8")).toBe("ran\n");
    await expect(readFile(marker)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a failed step before the command writes phase=setup and exits 125", async () => {
    const files = await jobFolder("setup");
    const plan = shellPlan("echo never");
    plan.before = [{ op: "write", path: join(root, "no such dir", "file"), content: "x", why: "test" }];
    const { done } = await start(plan, files);
    expect(await done).toBe(125);
    expect(await readFile(files.exit, "utf8")).toBe("phase=setup\ncode=125\noom=0\n");
    expect(await readFile(files.stdout, "utf8").catch(() => "")).toBe("");
  });

  it("prepares the image once when concurrent jobs need it, the lock's folder made first", async () => {
    const image = join(root, "not yet", "image.sif");
    const count = join(root, "prepared-count");
    const jobs = await Promise.all(
      [1, 2, 3].map(async (n) => {
        const files = await jobFolder(`prepare-${n}`);
        const plan = shellPlan('test -s "$IMAGE" && echo ran', { env: { IMAGE: image } });
        plan.image = {
          ...plan.image,
          action: "convert",
          path: image,
          prepare: {
            present: at(["test", "-s", image]),
            commands: [
              at(["mkdir", "-p", join(root, "not yet")]),
              at(["sh", "-c", 'echo x >> "$0"; sleep 0.5; echo sif > "$1"', count, image]),
            ],
          },
        };
        const text = renderJobScript({
          plan,
          options: [],
          files,
          stopSignal: "SIGTERM",
          prepareLock: `${image}.prepare-lock`,
        });
        await writeFile(files.script, text, { mode: 0o755 });
        return { files, child: spawn("bash", [files.script], { cwd: files.dir, stdio: "ignore" }) };
      }),
    );
    const codes = await Promise.all(jobs.map(({ child }) => new Promise((r) => child.once("exit", r))));
    expect(codes).toEqual([0, 0, 0]);
    for (const { files } of jobs) expect(await readFile(files.stdout, "utf8")).toBe("ran\n");
    expect(await readFile(count, "utf8")).toBe("x\n");
  });

  it("writes the sbatch options as #SBATCH directives that read back exactly", async () => {
    const files = await jobFolder("directives");
    const text = script(shellPlan("true"), files);
    const directives = text.split("\n").filter((l) => l.startsWith("#SBATCH "));
    expect(directives[0]).toBe("#SBATCH --job-name=hostile-name");
    expect(directives.at(-1)).toBe(`#SBATCH --comment="a \\"quoted\\" #comment with \\\\ and 'single'"`);
    expect(text).not.toMatch(/^[^#].*--comment/m);
  });
});

describe("renderJobScript with Docker inside: the owner labels and the node's sweep (real bash, a stub docker)", () => {
  /** A `docker` that lists what ps-output holds (or fails when ps-fails exists) and logs what it is asked to remove. */
  const stubDocker = async (dir: string): Promise<PlannedCommand> => {
    const stub = join(dir, "docker");
    await writeFile(
      stub,
      [
        "#!/bin/sh",
        'case "$1" in',
        '  ps) [ ! -e "$STUB_DIR/ps-fails" ] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; }',
        '      printf "%s\\n" "$*" > "$STUB_DIR/ps-args"; cat "$STUB_DIR/ps-output" ;;',
        '  rm) shift; echo "$@" >> "$STUB_DIR/removed" ;;',
        "esac",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    return { argv: [stub], env: { PATH: "/usr/bin:/bin", STUB_DIR: dir }, cwd: "/", stdin: false };
  };
  const runWith = async (files: JobFiles, docker: PlannedCommand) => {
    const options = renderSbatchOptions({
      jobName: "j",
      logFile: files.log,
      chdir: files.dir,
      signalBeforeLimitSec: 60,
      stopSignal: "SIGTERM",
    });
    const text = renderJobScript({
      plan: shellPlan("true"),
      options,
      files,
      stopSignal: "SIGTERM",
      dockerOwner: docker,
    });
    await writeFile(files.script, text, { mode: 0o755 });
    const child = spawn("bash", [files.script], {
      cwd: files.dir,
      env: { ...process.env, SLURM_JOB_ID: "4242" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    return { code, stderr };
  };

  it("removes this node's containers whose owner is gone (ended, pid reused, zombie, earlier boot) and nothing else", async () => {
    const files = await jobFolder("docker-sweep");
    const docker = await stubDocker(files.dir);
    const { bootId } = hostIdentity();
    const alive = spawn("sleep", ["30"], { stdio: "ignore" });
    // A zombie: the shell's first child ended, and the sleep it became never reaps it.
    const parent = spawn("sh", ["-c", "sleep 0 & echo $!; exec sleep 30"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const zombiePid = Number((await firstChunk(parent.stdout)).trim());
      await waitFor(async () => (await readProcStat(zombiePid))?.state === "Z");
      const live = (await readProcStat(alive.pid as number)) as ProcStat;
      const zombie = (await readProcStat(zombiePid)) as ProcStat;
      const ended = spawn("true");
      await new Promise((r) => ended.once("exit", r));
      const { pidNs = "" } = hostIdentity();
      const rows: [string, string | number, string | number, string, string][] = [
        ["live", live.pid, live.startTime, bootId, pidNs],
        ["live-no-ns", live.pid, live.startTime, bootId, ""],
        ["live-zero-padded", live.pid, `00${live.startTime}`, bootId, pidNs],
        ["reused", live.pid, live.startTime + 1, bootId, pidNs],
        ["ended", ended.pid as number, 12345, bootId, pidNs],
        ["ended-no-ns", ended.pid as number, 12345, bootId, ""],
        ["ended-other-ns", ended.pid as number, 12345, bootId, "pid:[1]"],
        ["ended-zero-padded-pid", `0${ended.pid}`, 12345, bootId, pidNs],
        ["ended-no-boot", ended.pid as number, 12345, "", pidNs],
        ["zombie", zombie.pid, zombie.startTime, bootId, pidNs],
        ["earlier-boot", live.pid, live.startTime, "another-boot", "pid:[1]"],
        ["not-a-pid", "self", live.startTime, bootId, pidNs],
        ["no-labels", "", "", "", ""],
      ];
      await writeFile(join(files.dir, "ps-output"), `${rows.map((r) => r.join("|")).join("\n")}\n`);
      expect(await runWith(files, docker)).toMatchObject({ code: 0 });
      const removed = (await readFile(join(files.dir, "removed"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => l.replace("--force --volumes ", ""));
      // The rule is core's: exactly what its sweeps would judge dead (labels as ownerFromLabels reads them).
      const coreRemoves: string[] = [];
      for (const [name, pid, startTime, boot, ns] of rows) {
        const owner = ownerFromLabels({
          [OWNER_LABELS.pid]: String(pid),
          [OWNER_LABELS.startTime]: String(startTime),
          [OWNER_LABELS.host]: hostname(),
          [OWNER_LABELS.bootId]: boot,
          ...(ns && { [OWNER_LABELS.pidNs]: ns }),
        });
        if (owner && (await ownerLiveness(owner)) === "dead") coreRemoves.push(name);
      }
      expect(removed).toEqual(coreRemoves);
      // On a host's own PID namespace (this machine's), that is:
      if (pidNs === INITIAL_PID_NS) {
        expect(removed).toEqual(["reused", "ended", "ended-no-ns", "zombie", "earlier-boot"]);
      }
      // Only contexec's containers of this host were asked for.
      expect(await readFile(join(files.dir, "ps-args"), "utf8")).toContain(
        `--filter label=io.contexec.managed=true --filter label=io.contexec.owner.host=${hostname()}`,
      );
      // The labels name the batch shell (ended now) on this node, and the job.
      const labels = Object.fromEntries(
        (await readFile(files.ownerLabels, "utf8"))
          .trim()
          .split("\n")
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      expect(ownerFromLabels(labels)).toMatchObject({ host: hostname(), bootId });
      expect(labels["io.contexec.slurm.job"]).toBe("4242");
    } finally {
      alive.kill("SIGKILL");
      parent.kill("SIGKILL");
    }
  });

  it("a docker ps that fails is said in the job's log; the job still runs its container", async () => {
    const files = await jobFolder("docker-sweep-fails");
    const docker = await stubDocker(files.dir);
    await writeFile(join(files.dir, "ps-fails"), "");
    const r = await runWith(files, docker);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/Cannot connect to the Docker daemon/);
    expect(r.stderr).toMatch(/no sweep of this node's leftover containers: docker ps failed/);
    expect(existsSync(join(files.dir, "removed"))).toBe(false);
  });
});

async function firstChunk(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => stream.once("data", (d: Buffer) => resolve(d.toString())));
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
