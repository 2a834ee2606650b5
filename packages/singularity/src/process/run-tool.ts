import { execa } from "execa";

export interface RunToolOptions {
  /** The whole environment of the command: nothing of the caller's is added. */
  env: Record<string, string>;
  /**
   * Killed (SIGKILL) after this long; default 30 s; 0 for none (a build, bounded by `signal`). A
   * late command is a result with `timedOut`, never a hang.
   */
  timeoutMs?: number;
  /** Default "/": nothing of the caller's folder reaches the command. */
  cwd?: string;
  /** Bytes kept of stdout and of stderr; default 16 MiB. */
  maxBuffer?: number;
  signal?: AbortSignal;
  /** Keep a final newline of the output (probe runs compare it); default false. */
  keepFinalNewline?: boolean;
}

/** How a short tool command ended. */
export interface ToolResult {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

/**
 * The one way the Apptainer backend runs a short command of its toolchain (`apptainer
 * --version`, `instance list`, `build`, `unsquashfs`): exactly the given environment, stdin
 * closed, a deadline, SIGKILL when it passes, and a result instead of a rejection, so each
 * caller decides what a failure means.
 */
export async function runTool(argv: readonly string[], options: RunToolOptions): Promise<ToolResult> {
  const started = performance.now();
  const r = await execa(argv[0] as string, argv.slice(1), {
    env: options.env,
    extendEnv: false,
    cwd: options.cwd ?? "/",
    stdin: "ignore",
    reject: false,
    timeout: options.timeoutMs ?? 30_000,
    killSignal: "SIGKILL",
    maxBuffer: options.maxBuffer ?? 16 * 1024 * 1024,
    stripFinalNewline: options.keepFinalNewline !== true,
    ...(options.signal && { cancelSignal: options.signal }),
  });
  return {
    exitCode: r.exitCode,
    signal: r.signal ?? undefined,
    stdout: String(r.stdout ?? ""),
    stderr: String(r.stderr ?? ""),
    timedOut: r.timedOut === true,
    durationMs: Math.round(performance.now() - started),
  };
}
