import { RuntimeUnavailableError } from "@contexec/core";

export const RUNTIME_FLAVORS = ["apptainer", "singularityce", "singularity"] as const;
/** What is installed: Apptainer (Linux Foundation), SingularityCE (Sylabs), or a legacy Singularity. */
export type RuntimeFlavor = (typeof RUNTIME_FLAVORS)[number];

export interface RuntimeVersion {
  flavor: RuntimeFlavor;
  /** The version as printed, without a leading "v" ("1.4.5", "4.1.2-jammy", "3.7.1"). */
  version: string;
  major: number;
  minor: number;
  patch: number;
}

/**
 * Reads the output of `apptainer --version` / `singularity --version`:
 * "apptainer version 1.4.5", "singularity-ce version 4.1.2-jammy", "singularity version 3.7.1",
 * or the bare "2.6.1-dist" of Singularity 2.
 */
export function parseRuntimeVersion(output: string, binary = "apptainer"): RuntimeVersion {
  const text = output.trim();
  const m =
    /^(?:(apptainer|singularity-ce|singularityce|singularity)\s+version\s+)?v?(\d+)\.(\d+)(?:\.(\d+))?(\S*)/im.exec(
      text.split("\n").find((l) => /\d+\.\d+/.test(l)) ?? "",
    );
  if (!m) {
    throw new RuntimeUnavailableError(
      "apptainer",
      `cannot read the version of ${binary} from "${text.slice(0, 200)}"; is it Apptainer or SingularityCE?`,
    );
  }
  const name = (m[1] ?? "").toLowerCase();
  const flavor: RuntimeFlavor =
    name === "apptainer"
      ? "apptainer"
      : name === "singularity-ce" || name === "singularityce"
        ? "singularityce"
        : "singularity";
  const major = Number(m[2]);
  const minor = Number(m[3]);
  const patch = Number(m[4] ?? 0);
  return {
    flavor,
    version: `${m[2]}.${m[3]}${m[4] !== undefined ? `.${m[4]}` : ""}${m[5] ?? ""}`,
    major,
    minor,
    patch,
  };
}

/** True when `v` is at least major.minor. */
export function versionAtLeast(
  v: Pick<RuntimeVersion, "major" | "minor">,
  major: number,
  minor: number,
): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/**
 * The prefix of the variables that carry the container's environment through the runtime's own
 * environment: APPTAINERENV_ for Apptainer, SINGULARITYENV_ for SingularityCE and Singularity.
 */
export function envPrefixOf(flavor: RuntimeFlavor): "APPTAINERENV_" | "SINGULARITYENV_" {
  return flavor === "apptainer" ? "APPTAINERENV_" : "SINGULARITYENV_";
}

/** The prefix of the runtime's own settings (cache and temp folders): APPTAINER_ or SINGULARITY_. */
export function configPrefixOf(flavor: RuntimeFlavor): "APPTAINER_" | "SINGULARITY_" {
  return flavor === "apptainer" ? "APPTAINER_" : "SINGULARITY_";
}
