import { chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerMountCases(ctx: SuiteContext): void {
  const { test } = ctx;
  const hostDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-mount-"));
    ctx.defer(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };

  test("a read-write bind mount: files written inside reach the host, host files are seen inside", async () => {
    const dir = await hostDir();
    await writeFile(join(dir, "from-host.txt"), "host data\n");
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "cat /mnt/rw/from-host.txt; echo written > /mnt/rw/from-container.txt"],
      mounts: [{ type: "bind", source: dir, target: "/mnt/rw" }],
    });
    expect(r.exitCode).toBe(0);
    expect(r.out).toBe("host data\n");
    expect(await readFile(join(dir, "from-container.txt"), "utf8")).toBe("written\n");
  });

  test("a read-only bind mount refuses writes and the host folder stays unchanged", async () => {
    const dir = await hostDir();
    await writeFile(join(dir, "data.txt"), "original\n");
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: [
        "sh",
        "-c",
        "cat /mnt/ro/data.txt; echo changed > /mnt/ro/data.txt || exit 9; echo new > /mnt/ro/new.txt",
      ],
      mounts: [{ type: "bind", source: dir, target: "/mnt/ro", readOnly: true }],
    });
    expect(r.out).toBe("original\n");
    expect(r.exitCode).toBe(9);
    expect(await readFile(join(dir, "data.txt"), "utf8")).toBe("original\n");
    await expect(stat(join(dir, "new.txt"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("a single file can be bind-mounted", async () => {
    const dir = await hostDir();
    await writeFile(join(dir, "config.ini"), "[x]\n");
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["cat", "/etc/app.ini"],
      mounts: [{ type: "bind", source: join(dir, "config.ini"), target: "/etc/app.ini", readOnly: true }],
    });
    expect(r.out).toBe("[x]\n");
  });

  test("a bind mount whose host path is missing is refused before anything starts", async () => {
    const missing = join(tmpdir(), `contexec-missing-${process.pid}-${Date.now()}`);
    const err = await ctx
      .executor()
      .create({
        image: ctx.images().busybox,
        command: ["true"],
        mounts: [{ type: "bind", source: missing, target: "/mnt/x" }],
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: "E_INVALID_SPEC" });
    expect(String((err as Error).message)).toContain(missing);
  });

  test("a tmpfs mount is an empty writable folder private to the container", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "ls -A /scratch | wc -l; echo x > /scratch/f && cat /scratch/f"],
      mounts: [{ type: "tmpfs", target: "/scratch" }],
    });
    expect(r.exitCode).toBe(0);
    expect(r.out.trim().split("\n")).toEqual(["0", "x"]);
  });

  // A container runs as the image's user (root, mostly), so what it writes into a bind is root's,
  // and a caller who is not root (a docker group member) cannot delete it. spec.user with the
  // caller's own uid:gid makes the files the caller's. As root the caller stands in for an
  // ordinary user (4321:4321) that owns the folder, as a user owns its own.
  test('files a container run as user "<uid>:<gid>" writes into a bind are that user\'s, and it can delete them', async () => {
    const self = process.getuid?.() ?? 0;
    const [uid, gid] = self === 0 ? [4321, 4321] : [self, process.getgid?.() ?? self];
    const dir = await hostDir();
    if (self === 0) await chown(dir, uid, gid);
    const spec = {
      image: ctx.images().busybox,
      user: `${uid}:${gid}`,
      mounts: [{ type: "bind" as const, source: dir, target: "/out" }],
    };
    const r = await ctx.run({
      ...spec,
      command: [
        "sh",
        "-c",
        "mkdir -p /out/sub/deeper && echo x > /out/sub/deeper/f && echo y > /out/top && id -u && id -g",
      ],
    });
    expect(r.exitCode, r.err).toBe(0);
    expect(r.out).toBe(`${uid}\n${gid}\n`);
    for (const p of ["top", "sub", "sub/deeper", "sub/deeper/f"]) {
      const st = await stat(join(dir, p));
      expect([st.uid, st.gid], p).toEqual([uid, gid]);
    }
    // Deleted by that user: by this process when it is the user, else by a container run as it.
    if (self !== 0) await rm(join(dir, "sub"), { recursive: true }).then(() => rm(join(dir, "top")));
    else expect((await ctx.run({ ...spec, command: ["rm", "-r", "/out/sub", "/out/top"] })).exitCode).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  }, ["user"]);
}
