#!/usr/bin/env node
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./cli.js";
import { RUN_STATE_ENV } from "./exit-codes.js";

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
});
// A detached run (contexec run --detach) leaves its exit code beside its output.
const state = process.env[RUN_STATE_ENV];
if (state) writeFileSync(join(state, "exit"), `${code}\n`);
process.exitCode = code;
// Output still in flight to a pipe is flushed by a normal exit; a handle left open (a terminal's
// stdin, a keep-alive socket) must not keep the process alive after the job has ended.
setTimeout(() => process.exit(code), 2000).unref();
