import { ContainerError, PLAN_SETUP_FAILED_EXIT } from "@contexec/core";

/**
 * `contexec`'s own exit codes. Any other code is the job's: its process's exit code, 128+n when
 * signal n ended it. Docker's codes are kept where they mean the same (125, 126, 127).
 */
export const EXIT = {
  /** The command line is wrong (unknown option, missing argument): sysexits' EX_USAGE. */
  usage: 64,
  /**
   * The job was refused before anything started: the job file, the spec, a capability the
   * runtime lacks here, an image that is missing or not an image (in an archive or a registry,
   * or credentials the registry refused): sysexits' EX_DATAERR.
   */
  refused: 65,
  /** The runtime failed (not reachable, or it broke): `docker run`'s 125, a formatted plan's too. */
  runtime: PLAN_SETUP_FAILED_EXIT,
  /** The command exists in the image but cannot be executed (`docker run`'s 126). */
  cannotExecute: 126,
  /** The command is not in the image (`docker run`'s 127). */
  notFound: 127,
} as const;

/** The exit code for an error that ended a command. */
export function exitCodeOf(err: unknown): number {
  if (!(err instanceof ContainerError)) return EXIT.runtime;
  switch (err.code) {
    case "E_INVALID_SPEC":
    case "E_INVALID_CONFIG":
    case "E_UNSUPPORTED":
    case "E_IMAGE_NOT_FOUND":
    case "E_IMAGE_ARCHIVE":
    case "E_REGISTRY_AUTH":
      return EXIT.refused;
    case "E_REGISTRY":
      // The image is not there or not what it claims: refused, as a missing or bad archive is.
      // A registry that cannot be reached or does not speak the protocol: as a runtime failure.
      return ["reference", "not-found", "platform", "digest-mismatch"].includes(
        (err as { reason?: unknown }).reason as string,
      )
        ? EXIT.refused
        : EXIT.runtime;
    case "E_COMMAND_NOT_FOUND":
      return /permission denied|not executable|is a directory/i.test(err.message)
        ? EXIT.cannotExecute
        : EXIT.notFound;
    case "E_ABORTED":
      return 130;
    default:
      return EXIT.runtime;
  }
}

/** An error in how contexec was called: shown with the command's usage, exit {@link EXIT.usage}. */
export class UsageError extends Error {}

/** The environment variable a detached run's own process gets: its state folder, where main leaves the exit code. */
export const RUN_STATE_ENV = "CONTEXEC_RUN_STATE";
