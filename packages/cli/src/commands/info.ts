import { CAPABILITY_NAMES, createExecutor, knownRuntimes, type RuntimeInfo } from "@contexec/core";
import { type Command, type CommandContext, parseCommandArgs } from "../command.js";
import { EXIT, exitCodeOf, UsageError } from "../exit-codes.js";
import { chooseRuntime } from "../runtime/choose-runtime.js";

/** What `contexec info` found for one runtime. */
export type RuntimeReport =
  | { runtime: string; available: true; info: RuntimeInfo }
  | { runtime: string; available: false; error: string; code?: string };

// "singularity" is the Apptainer backend under its other name: probing it twice says nothing new.
const ALIASES = new Set(["singularity"]);

async function probe(runtime: string, env: NodeJS.ProcessEnv): Promise<RuntimeReport> {
  try {
    // A name from the command line: the backend checks it at run time (an unknown one is E_INVALID_CONFIG).
    const executor = await createExecutor(chooseRuntime(runtime, undefined, env).config);
    try {
      return { runtime, available: true, info: await executor.info() };
    } finally {
      await executor.close().catch(() => {});
    }
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      runtime,
      available: false,
      error: (err as Error).message,
      ...(typeof code === "string" && { code }),
    };
  }
}

/** A runtime's report for people: version, mode, each capability with its reason. */
export function formatReport(r: RuntimeReport): string {
  if (!r.available) return `${r.runtime}: not available: ${r.error}\n`;
  const { info } = r;
  const width = Math.max(...CAPABILITY_NAMES.map((c) => c.length));
  const lines = [
    `${r.runtime}: ${info.flavor} ${info.version}, ${info.privilege} mode, on ${info.host.hostname} (${info.host.arch}, kernel ${info.host.kernel}) as uid ${info.host.uid}`,
    "  capabilities:",
    ...CAPABILITY_NAMES.map((c) => {
      const s = info.capabilities[c];
      return `    ${c.padEnd(width)}  ${s.supported ? "yes" : `no   ${s.reason}`}`;
    }),
  ];
  const details = Object.entries(info.details);
  if (details.length > 0) lines.push("  details:", ...details.map(([k, v]) => `    ${k}: ${v}`));
  return `${lines.join("\n")}\n`;
}

export const infoCommand: Command = {
  name: "info",
  help: `Usage: contexec info [--runtime NAME] [--json]

Probes every runtime contexec knows (or only --runtime NAME) and prints what it found: flavor and
version, the privilege mode containers run in, and each capability with the reason when it is
missing here. A runtime that cannot be reached is listed as not available, with why.

Options:
  --runtime NAME  only this runtime (docker, apptainer, singularity, ...)
  --json          a JSON array: { runtime, available, info } or { runtime, available, error }
  --help, -h      this help

Exit code: 0 when at least one runtime is available, else 125.`,
  async run(ctx: CommandContext): Promise<number> {
    const values = runtimeOptions(ctx, this.help);
    if (values === undefined) return 0;
    const names =
      values.runtime !== undefined
        ? [chooseRuntime(values.runtime, undefined, ctx.env).name]
        : knownRuntimes().filter((n) => !ALIASES.has(n));
    const reports = await Promise.all(names.map((n) => probe(n, ctx.env)));
    if (values.json) ctx.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
    else ctx.stdout.write(reports.map(formatReport).join("\n"));
    return reports.some((r) => r.available) ? 0 : EXIT.runtime;
  },
};

export const probeCommand: Command = {
  name: "probe",
  help: `Usage: contexec probe [--runtime NAME] [--json]

Probes one runtime (default: $CONTEXEC_RUNTIME, else docker) and prints its profile as JSON:
flavor, version, privilege mode, capabilities with reasons, the planner's facts and the host.
Save it on a compute node and give it to contexec run --dry-run --profile FILE elsewhere:
the plan is made for that node, without the runtime installed where it is made.

  contexec probe --runtime apptainer --json > node.json

Options:
  --runtime NAME  the runtime to probe
  --json          JSON output (the only format; accepted for clarity)
  --help, -h      this help`,
  async run(ctx: CommandContext): Promise<number> {
    const values = runtimeOptions(ctx, this.help);
    if (values === undefined) return 0;
    const { config } = chooseRuntime(values.runtime, undefined, ctx.env);
    const executor = await createExecutor(config);
    try {
      ctx.stdout.write(`${JSON.stringify(await executor.info(), null, 2)}\n`);
      return 0;
    } catch (err) {
      ctx.stderr.write(`contexec probe: ${(err as Error).message}\n`);
      return exitCodeOf(err);
    } finally {
      await executor.close().catch(() => {});
    }
  },
};

/** The options info and probe share (--runtime, --json, --help); undefined once help is printed. */
function runtimeOptions(ctx: CommandContext, help: string): { runtime?: string; json?: boolean } | undefined {
  const { values, positionals } = parseCommandArgs(ctx.args, {
    runtime: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.stdout.write(`${help}\n`);
    return undefined;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
  return values;
}
