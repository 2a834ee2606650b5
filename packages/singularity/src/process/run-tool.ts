import { spawn } from "node:child_process";

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
 * caller decides what a failure means. On node:child_process itself: a fresh process pays no
 * module load for it (execa's was most of a first run's cost here).
 */
export function runTool(argv: readonly string[], options: RunToolOptions): Promise<ToolResult> {
  const started = performance.now();
  const maxBuffer = options.maxBuffer ?? 16 * 1024 * 1024;
  return new Promise((resolve) => {
    const finish = (r: Omit<ToolResult, "durationMs">) =>
      resolve({ ...r, durationMs: Math.round(performance.now() - started) });
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0] as string, argv.slice(1), {
        env: options.env,
        cwd: options.cwd ?? "/",
        stdio: ["ignore", "pipe", "pipe"],
        ...(options.signal && { signal: options.signal, killSignal: "SIGKILL" }),
      });
    } catch (err) {
      finish({
        exitCode: undefined,
        signal: undefined,
        stdout: "",
        stderr: (err as Error).message,
        timedOut: false,
      });
      return;
    }
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], size: { stdout: 0, stderr: 0 } };
    const keep = (which: "stdout" | "stderr") => (chunk: Buffer) => {
      if (out.size[which] >= maxBuffer) return;
      out[which].push(chunk);
      out.size[which] += chunk.length;
    };
    child.stdout?.on("data", keep("stdout"));
    child.stderr?.on("data", keep("stderr"));
    let timedOut = false;
    const timeoutMs = options.timeoutMs ?? 30_000;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, timeoutMs)
        : undefined;
    const text = (which: "stdout" | "stderr") => {
      const t = Buffer.concat(out[which]).toString("utf8");
      return options.keepFinalNewline === true ? t : t.replace(/\r?\n$/, "");
    };
    // A program that cannot be started (ENOENT, EACCES) is a result too, with the reason as stderr.
    child.once("error", (err) => {
      if (child.pid !== undefined) return;
      clearTimeout(timer);
      finish({ exitCode: undefined, signal: undefined, stdout: "", stderr: err.message, timedOut: false });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      finish({
        exitCode: code ?? undefined,
        signal: signal ?? undefined,
        stdout: text("stdout"),
        stderr: text("stderr"),
        timedOut,
      });
    });
  });
}
