import type { HostCommandsSpec } from "../spec.js";
import { commandName, DEFAULT_BIN_PATH, ruleParts } from "./side-channel-spec.js";

/** An allow-list, compiled once: rules by the name they have in the container. */
export interface HostCommandPolicy {
  readonly rules: ReadonlyMap<string, CompiledRule>;
  /** The container folder of the command links: `/hostbin/squeue` counts as `squeue`. */
  readonly binPath: string;
  readonly allowCd: boolean;
}

interface CompiledRule {
  /** What runs: a name looked up on the host's PATH, or an absolute path. */
  program: string;
  args: RegExp[] | undefined;
}

export type HostCommandDecision =
  | { allowed: true; program: string; args: string[]; cd?: string }
  | { allowed: false; reason: string };

/** Compiles `spec.hostCommands` (already validated) into a policy. */
export function compileHostCommandPolicy(
  spec: Pick<HostCommandsSpec, "allow" | "binPath" | "allowCd">,
): HostCommandPolicy {
  const rules = new Map<string, CompiledRule>();
  for (const rule of spec.allow) {
    const { command, args } = ruleParts(rule);
    rules.set(commandName(command), {
      program: command,
      args: args?.map((p) => new RegExp(`^(?:${p})$`, "u")),
    });
  }
  return { rules, binPath: spec.binPath ?? DEFAULT_BIN_PATH, allowCd: spec.allowCd ?? false };
}

/**
 * Decides whether a request may run. `argv[0]` is a plain name (or the path of its link under
 * the bin folder, as the C client sends it) that names an allowed command, or exactly an allowed
 * absolute path; any other path is refused, so nothing the container wrote can be run. With
 * argument patterns, every argument must match one. A `cd` is allowed only with `allowCd` and an
 * absolute folder.
 */
export function decideHostCommand(
  policy: HostCommandPolicy,
  request: { argv: string[]; cd?: string },
): HostCommandDecision {
  const [given = "", ...args] = request.argv;
  const inBin = `${policy.binPath}/`;
  const name =
    given.startsWith(inBin) && !given.slice(inBin.length).includes("/") ? given.slice(inBin.length) : given;
  const rule = name.includes("/") ? undefined : policy.rules.get(name);
  const byPath = name.startsWith("/")
    ? [...policy.rules.values()].find((r) => r.program === name)
    : undefined;
  const chosen = rule ?? byPath;
  if (!chosen) return { allowed: false, reason: `${showClientText(given)} is not an allowed host command` };
  if (chosen.args) {
    const patterns = chosen.args;
    const bad = args.findIndex((a) => !patterns.some((p) => p.test(a)));
    if (bad >= 0)
      return {
        allowed: false,
        reason: `argument ${bad + 1} of ${showClientText(name)} (${showClientText(args[bad] as string)}) matches none of the allowed patterns`,
      };
  }
  if (request.cd !== undefined) {
    if (!policy.allowCd)
      return { allowed: false, reason: "`cd DIR &&` is not allowed here (hostCommands.allowCd)" };
    if (!request.cd.startsWith("/"))
      return { allowed: false, reason: `cd ${showClientText(request.cd)}: the folder must be absolute` };
    return { allowed: true, program: chosen.program, args, cd: request.cd };
  }
  return { allowed: true, program: chosen.program, args };
}

/** A client's text in a one-line message: quoted, control characters escaped, cut at 80 characters. */
export function showClientText(s: string): string {
  const cut = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(cut);
}
