import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerExecCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("exec runs a command inside the running container and sees its files", async () => {
    const c = await ctx.start({
      image: ctx.images().layered,
      entrypoint: ["sh", "-c", "echo made-by-main > /tmp/main.txt; sleep 1000"],
    });
    let seen = "";
    for (let i = 0; i < 50 && seen === ""; i++) {
      seen = (await c.exec(["sh", "-c", "cat /tmp/main.txt 2>/dev/null; true"])).stdout;
      if (seen === "") await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toBe("made-by-main\n");
    const r = await c.exec(["cat", "/data/keep/file.txt"]);
    expect(r).toEqual({ exitCode: 0, stdout: "hello\n", stderr: "" });
    const w = await c.exec(["sh", "-c", "echo from-exec > /tmp/exec.txt; echo err >&2; exit 4"]);
    expect(w).toEqual({ exitCode: 4, stdout: "", stderr: "err\n" });
    expect((await c.exec(["cat", "/tmp/exec.txt"])).stdout).toBe("from-exec\n");
  }, ["exec"]);

  test("exec passes input, env and workdir", async () => {
    const c = await ctx.start({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    const r = await c.exec(["sh", "-c", 'printf "%s|%s|" "$X" "$(pwd)"; cat'], {
      env: { X: "a $b c" },
      workdir: "/tmp",
      input: "piped",
    });
    expect(r.stdout).toBe("a $b c|/tmp|piped");
  }, ["exec"]);

  test("exec into a container that has exited gives ContainerStateError", async () => {
    const c = await ctx.start({ image: ctx.images().busybox, command: ["true"] });
    await c.wait();
    await expect(c.exec(["true"])).rejects.toMatchObject({ code: "E_CONTAINER_STATE" });
  }, ["exec"]);

  test("exec of a program that does not exist gives CommandNotFoundError", async () => {
    const c = await ctx.start({ image: ctx.images().busybox, command: ["sleep", "1000"] });
    await expect(c.exec(["no-such-program"])).rejects.toMatchObject({ code: "E_COMMAND_NOT_FOUND" });
  }, ["exec"]);
}
