import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runContainer } from "@contexec/core";
import { ApptainerExecutor } from "@contexec/singularity";
import { afterAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";

// Runs only in the unprivileged run (scripts/test-unprivileged.sh), as an ordinary user with a
// HOME, TMPDIR and cache of its own: what an HPC user on a login node meets.
const gate = runtimeGate("apptainer");
const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const uid = process.getuid?.() ?? -1;
const gid = process.getgid?.() ?? -1;
const executors: ApptainerExecutor[] = [];
afterAll(() => Promise.all(executors.map((e) => e.close())));

describe.skipIf(gate.skip)(gate.title("Apptainer as an ordinary user"), () => {
  it("this run is an ordinary user's, with HOME, TMPDIR and cache folders of its own", async () => {
    expect(uid).not.toBe(0);
    for (const v of ["HOME", "TMPDIR", "XDG_CACHE_HOME"]) {
      const dir = process.env[v] as string;
      expect(dir, v).toBeTruthy();
      const st = await stat(dir);
      expect(st.uid, `${v}=${dir}`).toBe(uid);
      expect(st.mode & 0o077, `${v}=${dir} is private`).toBe(0);
    }
  });

  it("info() reports the user-namespace mode, measured by the probe", async () => {
    const executor = new ApptainerExecutor({ cacheDir: await mkdtemp(join(tmpdir(), "sif-")) });
    executors.push(executor);
    const info = await executor.info();
    expect(info.privilege).toBe("userns");
    expect(info.details.mode).toBe("user namespace (--userns)");
    expect(info.capabilities.user).toMatchObject({ supported: false });
  });

  it("files a container writes into a bind belong to the user, who can delete them", async () => {
    const executor = new ApptainerExecutor({ cacheDir: await mkdtemp(join(tmpdir(), "sif-")) });
    executors.push(executor);
    const image = await executor.loadImage(join(fixtures, "busybox.tar"));
    const out = await mkdtemp(join(tmpdir(), "bind-"));
    const r = await runContainer(executor, {
      image,
      command: [
        "sh",
        "-c",
        "mkdir -p /out/sub/deeper && echo x > /out/sub/deeper/f && echo y > /out/top && id -u",
      ],
      mounts: [{ type: "bind", source: out, target: "/out" }],
    });
    expect(r.exitCode).toBe(0);
    // Inside, the user is itself (mapped to its own uid), never root.
    expect(r.stdout.toString().trim()).toBe(String(uid));
    for (const p of ["top", "sub", "sub/deeper", "sub/deeper/f"]) {
      const st = await stat(join(out, p));
      expect([st.uid, st.gid], p).toEqual([uid, gid]);
    }
    await rm(join(out, "sub"), { recursive: true });
    await rm(join(out, "top"));
    expect(await readdir(out)).toEqual([]);
    await rm(out, { recursive: true });
  });

  it("the default SIF cache is the user's own, under XDG_CACHE_HOME, and its files are the user's", async () => {
    const executor = new ApptainerExecutor();
    executors.push(executor);
    expect(executor.cache.dir).toBe(join(process.env.XDG_CACHE_HOME as string, "contexec", "sif"));
    const image = await executor.loadImage(join(fixtures, "busybox.tar"));
    const entry = await executor.image(image);
    expect((await stat(entry.sifPath)).uid).toBe(uid);
    const r = await runContainer(executor, { image, command: ["echo", "from my cache"] });
    expect(r.stdout.toString()).toBe("from my cache\n");
    await executor.removeImage(image);
    expect(await executor.hasImage(image)).toBe(false);
  });
});
