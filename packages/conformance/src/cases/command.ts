import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

const TRICKY_ARGS = [
  "a b",
  "it's",
  '"double"',
  "$HOME",
  "`id`",
  "*",
  "",
  "tab\there",
  "new\nline",
  "--flag=x y",
];

export function registerCommandCases(ctx: SuiteContext): void {
  const { test } = ctx;

  test("by default the image ENTRYPOINT runs with the image CMD", async () => {
    const r = await ctx.run({ image: ctx.images().layered });
    expect(r.out).toBe("entry default-cmd\n");
  });

  test("spec.command replaces CMD and keeps the ENTRYPOINT", async () => {
    const r = await ctx.run({ image: ctx.images().layered, command: ["one two", "three"] });
    expect(r.out).toBe("entry one two three\n");
  });

  test("spec.entrypoint replaces ENTRYPOINT and drops the image CMD", async () => {
    const r = await ctx.run({ image: ctx.images().layered, entrypoint: ["/bin/echo", "own"] });
    expect(r.out).toBe("own\n");
  });

  test("spec.entrypoint and spec.command together", async () => {
    const r = await ctx.run({ image: ctx.images().layered, entrypoint: ["/bin/echo"], command: ["x", "y"] });
    expect(r.out).toBe("x y\n");
  });

  test("arguments with spaces, quotes, $, globs and newlines arrive exactly, one per argv element", async () => {
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", `for a in "$@"; do printf '[%s]' "$a"; done`, "sh", ...TRICKY_ARGS],
    });
    expect(r.out).toBe(TRICKY_ARGS.map((a) => `[${a}]`).join(""));
  });

  test("the working folder is the image WORKDIR by default", async () => {
    const r = await ctx.run({ image: ctx.images().layered, entrypoint: ["pwd"] });
    expect(r.out).toBe("/work/dir\n");
  });

  test("spec.workdir wins over the image WORKDIR", async () => {
    const r = await ctx.run({ image: ctx.images().layered, entrypoint: ["pwd"], workdir: "/data/keep" });
    expect(r.out).toBe("/data/keep\n");
  });

  test("an image without WORKDIR starts in /, not in the host's current folder", async () => {
    const r = await ctx.run({ image: ctx.images().busybox, command: ["pwd"] });
    expect(r.out).toBe("/\n");
    expect(r.out).not.toBe(`${process.cwd()}\n`);
  });

  test("a spec.workdir that does not exist in the image is created, as Docker does", async () => {
    const r = await ctx.run({ image: ctx.images().busybox, command: ["pwd"], workdir: "/not/yet/there" });
    expect(r.exitCode).toBe(0);
    expect(r.out).toBe("/not/yet/there\n");
  });
}
