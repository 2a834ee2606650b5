import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "./exit-codes.js";

/** What a command gets: its arguments and the process's streams and environment. */
export interface CommandContext {
  args: string[];
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** One `contexec` command. */
export interface Command {
  name: string;
  /** The whole help text, for `contexec NAME --help`. */
  help: string;
  /** Runs the command; resolves with the process's exit code. */
  run(ctx: CommandContext): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
>;

/**
 * A command as `contexec --help` lists it: its module is loaded only when it runs (or its help is
 * asked for), so a run does not pay for the converter, the registry client or the test runner.
 */
export interface CommandEntry {
  name: string;
  /** One line, for `contexec --help`. */
  summary: string;
  load(): Promise<Command>;
}

/** node:util's parseArgs, strict, positionals allowed, with its errors turned into {@link UsageError}s. */
export function parseCommandArgs<T extends Options>(args: string[], options: T): Parsed<T> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^TypeError \[\w+\]: /, ""));
  }
}
