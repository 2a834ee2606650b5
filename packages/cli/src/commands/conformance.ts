import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidConfigError } from "@contexec/core";
import { type Command, type CommandContext, parseCommandArgs } from "../command.js";
import { CONFORMANCE_ENV } from "../conformance/conformance-env.js";
import {
  type CaseOutcome,
  formatJunit,
  formatTable,
  formatTap,
  REPORTERS,
  type ReporterName,
  splitSkipReason,
} from "../conformance/conformance-report.js";
import { UsageError } from "../exit-codes.js";
import { chooseRuntime } from "../runtime/choose-runtime.js";

const HELP = `Usage: contexec conformance --runtime NAME [--reporter table|tap|junit] [--fixtures DIR]

Runs contexec's conformance suite (@contexec/conformance) against a runtime installed here and
prints each case: passed, skipped (with the runtime's reason) or failed (with why). Needs vitest
(npm install vitest) and the fixture images busybox.tar and layered.tar (scripts/build-fixtures.sh
in the contexec repository builds them from busybox-static and prints their folder).

Options:
  --runtime NAME       docker, apptainer, singularity, ... (default: $CONTEXEC_RUNTIME, else docker)
  --reporter NAME      table (default), tap or junit
  --fixtures DIR       the fixture folder (default: $CONTEXEC_FIXTURES)
  --filter TEXT        only the cases whose name holds TEXT
  --help, -h           this help

Exit code: 0 when no case failed, 1 when some did.`;

export const conformanceCommand: Command = {
  name: "conformance",
  help: HELP,
  async run(ctx: CommandContext): Promise<number> {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      runtime: { type: "string" },
      reporter: { type: "string" },
      fixtures: { type: "string" },
      filter: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      ctx.stdout.write(`${HELP}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
    const reporter = (values.reporter ?? "table") as ReporterName;
    if (!REPORTERS.includes(reporter))
      throw new UsageError(`--reporter must be one of ${REPORTERS.join(", ")}`);
    const runtime = chooseRuntime(values.runtime, undefined, ctx.env).name;
    const fixtures = values.fixtures ?? ctx.env.CONTEXEC_FIXTURES;
    if (!fixtures) throw new UsageError("name the fixture folder: --fixtures DIR (or CONTEXEC_FIXTURES)");
    const dir = resolve(ctx.cwd, fixtures);
    for (const f of ["busybox.tar", "layered.tar"]) {
      if (!existsSync(join(dir, f)))
        throw new InvalidConfigError(
          `${join(dir, f)} is missing: scripts/build-fixtures.sh makes the fixtures`,
        );
    }

    let vitestNode: typeof import("vitest/node");
    try {
      vitestNode = await import("vitest/node");
    } catch (err) {
      throw new InvalidConfigError("contexec conformance needs vitest: npm install vitest", { cause: err });
    }
    // The entry beside this module: .js when built, .ts when run from the sources.
    const here = dirname(fileURLToPath(import.meta.url));
    const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
    const entryDir = join(here, "..", "conformance");
    process.env[CONFORMANCE_ENV.runtime] = runtime;
    process.env[CONFORMANCE_ENV.fixtures] = dir;

    const cases: CaseOutcome[] = [];
    let suiteTitle = `conformance: ${runtime}`;
    let unhandled: string[] = [];
    const collector = {
      onTestCaseResult(testCase: import("vitest/node").TestCase) {
        const result = testCase.result();
        const names = testCase.fullName.split(" > ");
        if (names[0]?.startsWith("conformance:")) suiteTitle = names.shift() as string;
        const { name, reason } = splitSkipReason(names.join(" > "));
        const state = result.state === "passed" ? "passed" : result.state === "failed" ? "failed" : "skipped";
        const failure = result.state === "failed" ? result.errors?.[0]?.message?.split("\n")[0] : undefined;
        const why =
          state === "skipped" ? (reason ?? (result.state === "skipped" ? result.note : undefined)) : failure;
        const duration = testCase.diagnostic()?.duration;
        cases.push({
          name,
          state,
          ...(why !== undefined && { reason: why }),
          ...(duration !== undefined && { durationMs: duration }),
        });
      },
      onTestRunEnd(_modules: unknown, errors: ReadonlyArray<{ message?: string }>) {
        unhandled = errors.map((e) => e.message ?? String(e));
      },
    };
    const packages = join(here, "..", "..", "..");
    const alias =
      ext === "ts"
        ? ["core", "docker", "sif", "singularity", "conformance"].map((p) => ({
            find: new RegExp(`^@contexec/${p}$`),
            replacement: join(packages, p, "src", "index.ts"),
          }))
        : [];
    const vitest = await vitestNode.startVitest(
      "test",
      [],
      {
        watch: false,
        run: true,
        config: false,
        root: entryDir,
        dir: entryDir,
        include: [`suite-entry.${ext}`],
        exclude: [],
        reporters: [collector],
        testTimeout: 180_000,
        hookTimeout: 600_000,
        fileParallelism: false,
        ...(values.filter !== undefined && { testNamePattern: values.filter }),
      },
      { resolve: { alias } },
    );
    await vitest?.close();
    const failed = cases.some((c) => c.state === "failed") || unhandled.length > 0;
    if (reporter === "tap") ctx.stdout.write(formatTap(cases));
    else if (reporter === "junit") ctx.stdout.write(formatJunit(suiteTitle, cases));
    else ctx.stdout.write(formatTable(suiteTitle, cases));
    for (const e of unhandled) ctx.stderr.write(`contexec conformance: error outside a case: ${e}\n`);
    if (cases.length === 0) {
      ctx.stderr.write("contexec conformance: no case ran (the suite could not be set up; see above)\n");
      return 1;
    }
    return failed ? 1 : 0;
  },
};
