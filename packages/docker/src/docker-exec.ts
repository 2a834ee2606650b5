import type { Readable, Writable } from "node:stream";
import {
  CommandNotFoundError,
  collect,
  type ExecOptions,
  type ExecProcess,
  type ExecResult,
  validateArgv,
} from "@contexec/core";
import type Dockerode from "dockerode";
import { demuxStream } from "./demux-stream.js";

export interface StartExecOptions extends Omit<ExecOptions, "input"> {
  stdin?: boolean;
}

/** Starts a command in a running container; its streams are live, its exit code comes at the end. */
export async function startExec(
  container: Dockerode.Container,
  argv: string[],
  options: StartExecOptions = {},
): Promise<ExecProcess> {
  validateArgv(argv);
  const stdin = options.stdin === true;
  const exec = await container.exec({
    Cmd: argv,
    AttachStdin: stdin,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    ...(options.env && { Env: Object.entries(options.env).map(([k, v]) => `${k}=${v}`) }),
    ...(options.workdir && { WorkingDir: options.workdir }),
    ...(options.signal && { abortSignal: options.signal }),
  });
  const stream = (await exec.start({ hijack: true, stdin })) as NodeJS.ReadWriteStream;
  const { stdout, stderr, done } = demuxStream(stream as unknown as Readable);
  const exitCode = done.then(async () => (await exec.inspect()).ExitCode ?? -1);
  exitCode.catch(() => {});
  return { stdin: stdin ? (stream as unknown as Writable) : null, stdout, stderr, exitCode };
}

/** Runs a command in a running container to its end and collects its output. */
export async function runExec(
  container: Dockerode.Container,
  argv: string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const { input, ...rest } = options;
  const process = await startExec(container, argv, { ...rest, stdin: input !== undefined });
  if (input !== undefined) process.stdin?.end(input);
  const [out, err, exitCode] = await Promise.all([
    collect(process.stdout),
    collect(process.stderr),
    process.exitCode,
  ]);
  const result = { exitCode, stdout: out.toString("utf8"), stderr: err.toString("utf8") };
  // runc reports an exec it could not perform as output plus exit code 126/127.
  if (
    (exitCode === 126 || exitCode === 127) &&
    /OCI runtime exec failed/.test(result.stdout + result.stderr)
  ) {
    throw new CommandNotFoundError(argv[0] as string, (result.stdout + result.stderr).trim());
  }
  return result;
}
