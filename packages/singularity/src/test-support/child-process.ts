import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const LOADER = fileURLToPath(new URL("./ts-loader.mjs", import.meta.url));

/** Runs one of the scripts beside this file in a fresh Node process (TypeScript run as is). */
export function runChild(
  script: string,
  args: string[],
  options: { onStdoutLine?: (line: string) => void; env?: Record<string, string> } = {},
): {
  pid: number;
  stdin: NodeJS.WritableStream;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
} {
  const child = spawn(
    process.execPath,
    ["--import", LOADER, fileURLToPath(new URL(script, import.meta.url)), ...args],
    {
      stdio: ["pipe", "pipe", "pipe"],
      ...(options.env && { env: { ...process.env, ...options.env } }),
    },
  );
  let stdout = "";
  let stderr = "";
  let partial = "";
  child.stdout.on("data", (b: Buffer) => {
    stdout += b.toString();
    partial += b.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) options.onStdoutLine?.(l);
  });
  child.stderr.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const done = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) => child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { pid: child.pid as number, stdin: child.stdin, done };
}
