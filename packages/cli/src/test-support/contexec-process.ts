import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../../../", import.meta.url));
/** The built CLI the tests run as a user would (built from the sources by {@link buildCli}). */
export const CLI = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/**
 * Builds the CLI and what it imports (tsc -b: quick when up to date). Tests run `node
 * dist/main.js` as a subprocess: a TypeScript loader in every child costs seconds per start.
 */
export function buildCli(): void {
  execFileSync(fileURLToPath(new URL("node_modules/.bin/tsc", `file://${repo}`)), ["-b", "packages/cli"], {
    cwd: repo,
    stdio: ["ignore", "inherit", "inherit"],
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

/** A running `contexec`, its output so far, and a way to wait for a line of it. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout holds `text`; rejects when the process ends first or after `timeoutMs`. */
  waitForStdout(text: string, timeoutMs?: number): Promise<void>;
  done: Promise<CliResult>;
}

export function startContexec(args: string[], options: CliOptions): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on("data", (b: Buffer) => {
    err += b.toString();
  });
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  const done = new Promise<CliResult>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal, stdout: out, stderr: err })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    done,
    waitForStdout: async (text, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs;
      let ended = false;
      void done.then(() => {
        ended = true;
      });
      while (!out.includes(text)) {
        if (ended) throw new Error(`contexec ended before printing ${JSON.stringify(text)}:\n${out}\n${err}`);
        if (Date.now() > deadline)
          throw new Error(`no ${JSON.stringify(text)} after ${timeoutMs} ms:\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Runs `contexec ARGS` to its end. */
export function contexec(args: string[], options: CliOptions): Promise<CliResult> {
  return startContexec(args, options).done;
}

/** Runs a bash script (a printed plan) to its end. */
export function bash(script: string, options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-s"], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    child.stdin.end(script);
    child.once("close", (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
}
