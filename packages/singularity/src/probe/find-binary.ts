import { findExecutable, RuntimeUnavailableError } from "@contexec/core";

/** Environment variable naming the Apptainer/Singularity binary (a path or a name on PATH). */
export const BINARY_ENV = "CONTEXEC_APPTAINER";

export interface FindBinaryOptions {
  /** The executor config's `binary`: wins over everything. */
  binary?: string | undefined;
  /** "singularity" looks for `singularity` before `apptainer`. */
  runtime?: "apptainer" | "singularity";
  /** The environment to read CONTEXEC_APPTAINER and PATH from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The names looked for on PATH, in order, when no binary is configured. */
export function binaryCandidates(runtime: "apptainer" | "singularity" = "apptainer"): string[] {
  return runtime === "singularity" ? ["singularity", "apptainer"] : ["apptainer", "singularity"];
}

/**
 * Finds the runtime's binary: config `binary`, else $CONTEXEC_APPTAINER, else `apptainer` then
 * `singularity` on PATH. Returns an absolute path. Throws {@link RuntimeUnavailableError} naming
 * everything that was tried and how to install Apptainer.
 */
export async function findBinary(options: FindBinaryOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const path = env.PATH ?? "";
  const configured = options.binary ?? (env[BINARY_ENV] || undefined);
  const source = options.binary !== undefined ? "the executor config's binary" : `$${BINARY_ENV}`;
  const tried: string[] = [];
  if (configured !== undefined) {
    const found = await findExecutable(configured, path, tried);
    if (found) return found;
    throw new RuntimeUnavailableError(
      "apptainer",
      `${source} is "${configured}", which is not an executable file (tried ${tried.join(", ")}). ` +
        `Fix the path, or unset it to look for apptainer/singularity on PATH. ${INSTALL_HINT}`,
    );
  }
  for (const name of binaryCandidates(options.runtime)) {
    const found = await findExecutable(name, path, tried);
    if (found) return found;
  }
  throw new RuntimeUnavailableError(
    "apptainer",
    `neither apptainer nor singularity was found on PATH (${path || "empty"}). ${INSTALL_HINT} ` +
      `Or point ${BINARY_ENV} (or the config's binary) at the binary.`,
  );
}

const INSTALL_HINT =
  "Install Apptainer with scripts/setup-apptainer.sh from the contexec repository, or as described at https://apptainer.org/docs/admin/main/installation.html.";

/** The first executable file called `name` in the folders of `path` (a PATH value): core's one `which`. */
export async function findOnPath(name: string, path: string): Promise<string | undefined> {
  return findExecutable(name, path);
}
