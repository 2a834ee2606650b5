import { readFileSync } from "node:fs";
import { ContainerError } from "@contexec/core";
import type { CommandContext, CommandEntry } from "./command.js";
import { EXIT, exitCodeOf, UsageError } from "./exit-codes.js";

/** Every command, in the order `contexec --help` lists them. A new one joins here. */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "run",
    summary: "run a job file (compose service, compose file, DockSing file), or print its plan",
    load: async () => (await import("./commands/run.js")).runCommand,
  },
  {
    name: "pull",
    summary: "pull an image from a registry into Docker or Apptainer's SIF cache, with per-layer progress",
    load: async () => (await import("./commands/pull.js")).pullCommand,
  },
  {
    name: "convert",
    summary: "convert a docker-archive or OCI tarball to a SIF image, without Apptainer",
    load: async () => (await import("./commands/convert.js")).convertCommand,
  },
  {
    name: "info",
    summary: "the runtimes found here: versions, privilege mode, capabilities with reasons",
    load: async () => (await import("./commands/info.js")).infoCommand,
  },
  {
    name: "probe",
    summary: "one runtime's profile as JSON, for planning on another machine (run --profile)",
    load: async () => (await import("./commands/info.js")).probeCommand,
  },
  {
    name: "cache",
    summary: "list or prune the SIF cache of the Apptainer backend",
    load: async () => (await import("./commands/cache.js")).cacheCommand,
  },
  {
    name: "conformance",
    summary: "run the conformance suite against an installed runtime",
    load: async () => (await import("./commands/conformance.js")).conformanceCommand,
  },
];

/** The package's version, from its package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: contexec COMMAND [options]",
    "",
    "Runs containers on Docker or Apptainer with one behaviour, from job files.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    "  --help, -h     help (contexec COMMAND --help for a command's)",
    "  --version, -V  the version",
  ].join("\n");
}

/**
 * Runs `contexec` with `args` (without the node and script names) and resolves with the exit
 * code. Errors are printed as `contexec: ...`: typed errors with their message (which says what
 * to fix), anything else with its stack.
 */
export async function runCli(args: string[], ctx: Omit<CommandContext, "args">): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    ctx.stdout.write(`${topic ? (await topic.load()).help : mainHelp()}\n`);
    return name === undefined ? EXIT.usage : 0;
  }
  if (name === "--version" || name === "-V") {
    ctx.stdout.write(`contexec ${version()}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    ctx.stderr.write(`contexec: unknown command "${name}"\n\n${mainHelp()}\n`);
    return EXIT.usage;
  }
  try {
    return await (await entry.load()).run({ ...ctx, args: rest });
  } catch (err) {
    if (err instanceof UsageError) {
      ctx.stderr.write(`contexec ${entry.name}: ${err.message}\n(contexec ${entry.name} --help for usage)\n`);
      return EXIT.usage;
    }
    if (err instanceof ContainerError) {
      ctx.stderr.write(`contexec ${entry.name}: ${err.message}\n`);
      return exitCodeOf(err);
    }
    ctx.stderr.write(
      `contexec ${entry.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return EXIT.runtime;
  }
}
