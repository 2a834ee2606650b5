import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

/** Values a shell would mangle if anything on the way evaluated them. */
const HOSTILE_VALUES: Record<string, string> = {
  SPACES: "a  b   c ",
  QUOTES: `it's "quoted" \\ back\\slash`,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal ${PATH} is the point.
  DOLLAR: "$HOME ${PATH} $(echo no) `echo no`",
  NEWLINES: "line1\nline2\n\nline4",
  GLOB: "* ? [a-z]",
  EMPTY: "",
  EQUALS: "a=b=c",
  UNICODE: "héllo wörld ✓",
};

export function registerEnvCases(ctx: SuiteContext): void {
  const { test } = ctx;
  const printVar = (name: string) => ["sh", "-c", `printf '%s' "$${name}"`];

  test("the image ENV is present", async () => {
    const r = await ctx.run({ image: ctx.images().layered, entrypoint: printVar("GREETING") });
    expect(r.out).toBe("hello world");
  });

  test("spec env is present and wins over the image ENV", async () => {
    const r = await ctx.run({
      image: ctx.images().layered,
      entrypoint: ["sh", "-c", `printf '%s|%s|%s' "$GREETING" "$FIXTURE" "$EXTRA"`],
      env: { GREETING: "from spec", EXTRA: "extra" },
    });
    expect(r.out).toBe("from spec|layered|extra");
  });

  test("PATH comes from the image", async () => {
    const r = await ctx.run({ image: ctx.images().layered, entrypoint: printVar("PATH") });
    expect(r.out).toBe("/usr/local/bin:/bin");
  });

  test("the host environment does not leak in", async () => {
    const name = `CONTEXEC_HOST_SENTINEL_${process.pid}`;
    process.env[name] = "leaked";
    try {
      const r = await ctx.run({ image: ctx.images().busybox, command: ["env"] });
      expect(r.exitCode).toBe(0);
      expect(r.out).not.toContain(name);
      expect(r.out).not.toContain("leaked");
    } finally {
      delete process.env[name];
    }
  });

  test("values with spaces, quotes, $, backticks, globs and newlines arrive literally", async () => {
    const names = Object.keys(HOSTILE_VALUES);
    const script = `printf '%s\\0' ${names.map((n) => `"$${n}"`).join(" ")}`;
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["sh", "-c", script],
      env: HOSTILE_VALUES,
    });
    const got = r.out.split("\0").slice(0, -1);
    expect(Object.fromEntries(names.map((n, i) => [n, got[i]]))).toEqual(HOSTILE_VALUES);
  });
}
