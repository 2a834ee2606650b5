import { userInfo } from "node:os";
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

/**
 * Variables a backend's containers have that Docker's do not, by runtime flavor; nothing else may
 * differ. Apptainer (1.4.5, measured) marks these two readonly in its action script, so no
 * environment script can take them out; the backend gives them the container's own link to its
 * image as a value, so they name no host path of the image cache.
 */
const RUNTIME_OWN_VARIABLES: Readonly<Record<string, readonly string[]>> = {
  apptainer: ["APPTAINER_CONTAINER", "APPTAINER_NAME"],
};

/** Parses /proc/PID/environ: NUL-separated NAME=value entries (values may hold newlines). */
function parseEnviron(raw: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of raw.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

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

  test("the whole environment is the image ENV, the spec env, HOME and HOSTNAME, and nothing else", async () => {
    // Names the runtimes use themselves, given by the spec: they must arrive as given, too.
    const specEnv = { ...HOSTILE_VALUES, LANG: "", PS1: "mine> ", LD_LIBRARY_PATH: "/opt/lib", TERM: "dumb" };
    const r = await ctx.run({
      image: ctx.images().busybox,
      command: ["cat", "/proc/self/environ"],
      env: specEnv,
    });
    expect(r.exitCode).toBe(0);
    const env = parseEnviron(r.out);
    const { HOSTNAME, ...rest } = env;
    // A backend running another runtime's containers (SLURM) gives that runtime's profile as
    // planner.nodeProfile: its containers have that runtime's variables.
    const inner = (ctx.info.planner as { nodeProfile?: { flavor?: unknown } }).nodeProfile?.flavor;
    const own =
      RUNTIME_OWN_VARIABLES[ctx.info.flavor] ??
      (typeof inner === "string" ? RUNTIME_OWN_VARIABLES[inner] : []) ??
      [];
    const ownValues = Object.fromEntries(own.map((name) => [name, rest[name]]));
    for (const name of own) delete rest[name];
    // The image's user is root: HOME is root's. A runtime that runs containers as the caller (an
    // ordinary user's Apptainer: setuid or a user namespace) gives the caller's home folder
    // (private and empty there), as the caller's passwd entry names it.
    const home =
      ctx.info.privilege === "root" || ctx.info.privilege === "rootless" ? "/root" : userInfo().homedir;
    expect(rest).toEqual({ PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, ...specEnv });
    // Docker sets HOSTNAME to the container's host name; Apptainer's containers share the host's.
    expect(HOSTNAME).toMatch(/^[A-Za-z0-9][A-Za-z0-9.-]*$/);
    for (const name of own) expect(ownValues[name], `${name} is set`).toEqual(expect.any(String));
    const cacheDir = ctx.info.details.cacheDir;
    if (typeof cacheDir === "string") {
      for (const value of Object.values(env)) expect(value).not.toContain(cacheDir);
    }
  });
}
