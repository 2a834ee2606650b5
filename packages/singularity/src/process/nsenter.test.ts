import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { joinCgroupsArgv, parseCgroupFile, parseCgroupMounts, resolveInRoot } from "./nsenter.js";

// This machine's files (cgroup v1 with a v2 hierarchy beside it).
const CGROUP = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
const MOUNTINFO = [
  "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate",
  "50 31 0:40 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpuacct,cpu",
].join("\n");

describe("cgroup files", () => {
  it("parses /proc/PID/cgroup by hierarchy", () => {
    expect([...parseCgroupFile(CGROUP)]).toEqual([
      ["name=systemd", "/"],
      ["memory", "/process_api/abc"],
      ["cpu", "/"],
      ["", "/"],
    ]);
  });

  it("maps hierarchies to their mount points", () => {
    const mounts = parseCgroupMounts(MOUNTINFO);
    expect(mounts.get("memory")).toEqual({ point: "/sys/fs/cgroup/memory", root: "/" });
    expect(mounts.get("name=systemd")?.point).toBe("/sys/fs/cgroup/systemd");
    expect(mounts.get("")?.point).toBe("/sys/fs/cgroup/unified");
    expect(mounts.get("cpu,cpuacct")?.point).toBe("/sys/fs/cgroup/cpu,cpuacct");
  });
});

describe("resolveInRoot", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "contexec-root-"));
    await mkdir(join(root, "work/dir"), { recursive: true });
    await mkdir(join(root, "etc"));
    await symlink("/work", join(root, "abs-link"));
    await symlink("../work/dir", join(root, "etc/rel-link"));
    await symlink("/etc", join(root, "work/escape"));
    await symlink("loop", join(root, "loop"));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("follows symlinks inside the root, never to the host's /", async () => {
    expect(await resolveInRoot(root, "/work/dir")).toBe("/work/dir");
    expect(await resolveInRoot(root, "/abs-link/dir")).toBe("/work/dir");
    expect(await resolveInRoot(root, "/etc/rel-link")).toBe("/work/dir");
    // /work/escape -> /etc is the container's /etc, not the host's.
    expect(await resolveInRoot(root, "/work/escape")).toBe("/etc");
    expect(await resolveInRoot(root, "/../../work/./dir/")).toBe("/work/dir");
    expect(await resolveInRoot(root, "/")).toBe("/");
  });

  it("fails for missing paths and symlink loops", async () => {
    await expect(resolveInRoot(root, "/nope")).rejects.toMatchObject({ code: "ENOENT" });
    await expect(resolveInRoot(root, "/loop")).rejects.toMatchObject({ code: "ELOOP" });
  });
});

describe("joinCgroupsArgv", () => {
  it("is argv unchanged without cgroups", () => {
    expect(joinCgroupsArgv([], ["a", "b"])).toEqual(["a", "b"]);
  });

  it("runs the command after trying each file, with hostile arguments intact", () => {
    const argv = joinCgroupsArgv(
      ["/nonexistent/cgroup.procs", "/also/missing"],
      ["/bin/sh", "-c", 'printf "[%s]" "$@"', "sh", "a b", "--", "$HOME", ""],
    );
    expect(argv[0]).toBe("/bin/sh");
    expect(execFileSync(argv[0] as string, argv.slice(1), { encoding: "utf8" })).toBe("[a b][--][$HOME][]");
  });
});
