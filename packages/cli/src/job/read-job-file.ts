import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ContainerError } from "@contexec/core";
import type { Job } from "./job.js";
import { parseJob } from "./parse-job.js";

/** Reads and parses a job file from disk (env files too), with the host's environment. */
export function readJobFile(
  path: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; service?: string; set?: readonly string[] },
): Job {
  const file = resolve(options.cwd, path);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ContainerError(
      "E_INVALID_SPEC",
      `cannot read the job file ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return parseJob(text, {
    file,
    env: options.env,
    ...(options.service !== undefined && { service: options.service }),
    ...(options.set && { set: options.set }),
    readFile: (p) => {
      try {
        return readFileSync(p, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
    },
  });
}
