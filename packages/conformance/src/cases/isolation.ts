import { randomUUID } from "node:crypto";
import { rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerIsolationCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("/tmp is the container's own: host files are not visible, writes do not reach the host", async () => {
    const name = `contexec-sentinel-${randomUUID()}`;
    await writeFile(join("/tmp", name), "host");
    ctx.defer(() => rm(join("/tmp", name), { force: true }));
    const written = `contexec-written-${randomUUID()}`;
    ctx.defer(() => rm(join("/tmp", written), { force: true }));
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: [
        "sh",
        "-c",
        `ls /tmp/${name} 2>/dev/null && echo VISIBLE; echo x > /tmp/${written} && echo wrote`,
      ],
    });
    expect(r.out).toBe("wrote\n");
    await expect(stat(join("/tmp", written))).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("HOME is the container's own: the host's home folder is not mounted", async () => {
    const name = `.contexec-sentinel-${randomUUID()}`;
    await writeFile(join(homedir(), name), "host");
    ctx.defer(() => rm(join(homedir(), name), { force: true }));
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: [
        "sh",
        "-c",
        `echo "home=$HOME"; ls -a "$HOME" ${JSON.stringify(homedir())} 2>/dev/null | grep -c contexec-sentinel`,
      ],
    });
    expect(r.out).toMatch(/^home=\/.*\n0\n$/);
  });

  test("HOME set to a folder that exists on the host still gets the container's own, empty folder", async () => {
    const name = `.contexec-sentinel-${randomUUID()}`;
    await writeFile(join(homedir(), name), "host");
    ctx.defer(() => rm(join(homedir(), name), { force: true }));
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: [
        "sh",
        "-c",
        'echo "home=$HOME"; ls -A "$HOME" | grep -c contexec-sentinel; touch "$HOME/made-inside"',
      ],
      env: { HOME: homedir() },
    });
    expect(r.out).toBe(`home=${homedir()}\n0\n`);
    await expect(stat(join(homedir(), "made-inside"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("the root filesystem is writable, and a write does not outlive the container", async () => {
    const first = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "echo data > /written-at-root && cat /written-at-root && echo x >> /etc/passwd"],
    });
    expect(first.exitCode).toBe(0);
    expect(first.out).toBe("data\n");
    const second = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "test -e /written-at-root && echo STILL-THERE; grep -c '^x$' /etc/passwd"],
    });
    expect(second.out).toBe("0\n");
  });

  test("network none leaves only the loopback interface", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"],
      network: "none",
    });
    expect(r.out.trim().split("\n")).toEqual(["lo"]);
  }, ["network-none"]);
}
