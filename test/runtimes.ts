import { describe, inject } from "vitest";

/** The runtimes this repository's tests run against ("slurm": the test cluster, Apptainer inside its jobs). */
export const RUNTIME_NAMES = ["docker", "apptainer", "slurm"] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];

/** Whether a runtime is tested in this run, and why not (set by test/global-setup.ts). */
export type RuntimeAvailability = { available: true } | { available: false; reason: string };

/**
 * The runtimes CONTEXEC_RUNTIMES names ("docker,apptainer,slurm", "apptainer", ...), or undefined when
 * it is unset (every runtime this machine has is tested). Throws on a name it does not know.
 */
export function selectedRuntimes(env: NodeJS.ProcessEnv = process.env): RuntimeName[] | undefined {
  const value = env.CONTEXEC_RUNTIMES?.trim();
  if (!value) return undefined;
  const names = value.split(",").map((n) => n.trim());
  for (const n of names) {
    if (!(RUNTIME_NAMES as readonly string[]).includes(n)) {
      throw new Error(`CONTEXEC_RUNTIMES names "${n}"; known: ${RUNTIME_NAMES.join(", ")} (comma-separated)`);
    }
  }
  return names as RuntimeName[];
}

/**
 * For a runtime test file: whether to skip its cases and the title that says why, so that a
 * runtime this run does not test shows up as skipped cases, each by name, with the reason.
 */
export function runtimeGate(name: RuntimeName): {
  skip: boolean;
  reason: string | undefined;
  title: (title: string) => string;
} {
  const status = inject("runtimes")[name];
  const reason = status.available ? undefined : `${name} is not tested here: ${status.reason}`;
  if (reason) console.log(`[runtimes] skipping ${name} tests: ${reason}`);
  return { skip: !status.available, reason, title: (t) => (reason ? `${t} (skipped: ${reason})` : t) };
}

/**
 * One describe block per runtime, `%s` in the title naming it: a runtime this run does not test
 * is skipped (describe.skipIf) with its reason in the title, the reason printed once.
 */
export function describeOnEachRuntime<R extends RuntimeName>(
  runtimes: readonly R[],
  title: string,
  body: (runtime: R) => void,
): void {
  for (const runtime of runtimes) {
    const gate = runtimeGate(runtime);
    describe.skipIf(gate.skip)(gate.title(title.replace("%s", runtime)), () => body(runtime));
  }
}
