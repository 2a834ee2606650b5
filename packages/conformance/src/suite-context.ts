import {
  type CapabilityName,
  type Container,
  type ContainerExecutor,
  type ContainerSpec,
  type ImageId,
  type RunResult,
  type RuntimeInfo,
  runContainer,
  type Service,
  type ServiceOptions,
} from "@contexec/core";
import { it } from "vitest";

/**
 * The fixture archives the suite loads: `writeFixtures` of `@contexec/conformance/fixtures` writes
 * both from a static busybox, without Docker (the project's scripts/build-fixtures.sh calls it).
 */
export interface ConformanceFixtures {
  /**
   * One layer of busybox-static with an applet link per command, /tmp, /root and /etc/passwd;
   * `ENV PATH=/usr/local/bin:/usr/bin:/bin`, `CMD ["/bin/sh"]`, no WORKDIR, no ENTRYPOINT.
   */
  busybox: string;
  /**
   * Built FROM busybox: /data/gone.txt and /data/gone-dir deleted (whiteouts), /data/replaced
   * removed and re-created holding only new.txt (opaque), /data/keep/hardlink.txt a hard link to
   * the lower layer's /data/keep/file.txt ("hello"), /data/keep/link.txt a symlink to
   * ../keep/file.txt, /data/keep/suid.sh mode 4755; `ENV GREETING="hello world" FIXTURE=layered`,
   * `WORKDIR /work/dir`, `STOPSIGNAL SIGINT`, `ENTRYPOINT ["/bin/echo", "entry"]`, `CMD ["default-cmd"]`.
   */
  layered: string;
}

export interface ConformanceOptions {
  /** Shown in the suite's name: "docker", "apptainer", "my-runtime". */
  name: string;
  /** Makes a fresh executor. The suite calls close() on every one it makes. */
  createExecutor: () => Promise<ContainerExecutor>;
  fixtures: ConformanceFixtures;
  /**
   * Lists what the runtime still holds for an executor after close(): containers, instances,
   * processes. Used to prove nothing is left behind; omit when the runtime cannot tell.
   */
  leftovers?: (executor: ContainerExecutor) => Promise<string[]>;
  /** Per-case timeout; default 120 s. */
  timeoutMs?: number;
  /**
   * Why this runtime is not tested here (not installed, left out by configuration). Every case
   * is then registered as skipped, by name, with this reason; no executor is made.
   */
  unavailable?: string;
}

/** What every case module gets. */
export interface SuiteContext {
  readonly options: ConformanceOptions;
  readonly info: RuntimeInfo;
  /** The executor shared by the cases (made in beforeAll). */
  executor(): ContainerExecutor;
  /** Ids of the loaded fixture images. */
  images(): { busybox: ImageId; layered: ImageId };
  /**
   * Registers one case. With `needs`, the case runs only when the backend declares those
   * capabilities, and is otherwise reported as skipped with the backend's reason in its name.
   */
  test(title: string, fn: () => Promise<void>, needs?: CapabilityName[], skipReason?: string): void;
  /** Runs a container of `spec` to its end and collects its output. */
  run(spec: ContainerSpec, input?: string | Uint8Array): Promise<RunResult & { out: string; err: string }>;
  /** Creates and starts a container, removed after the case. */
  start(spec: ContainerSpec): Promise<Container>;
  /** Starts a service with the shared executor (the case stops it). */
  startService(spec: ContainerSpec, options?: ServiceOptions): Promise<Service>;
  /** Registers a cleanup for the current case. */
  defer(fn: () => Promise<unknown> | unknown): void;
}

export function makeTestRegistrar(
  info: RuntimeInfo,
  name: string,
  timeoutMs: number,
  runCleanups: () => Promise<void>,
): SuiteContext["test"] {
  return (title, fn, needs = [], skipReason) => {
    const missing = needs.filter((c) => !info.capabilities[c].supported);
    const reasons =
      skipReason ??
      `needs ${missing
        .map((c) => {
          const status = info.capabilities[c];
          return `${c}: ${status.supported ? "" : status.reason}`;
        })
        .join("; ")}`;
    const skipped = missing.length > 0 || skipReason !== undefined;
    // Printed at collection, and kept in the case's name so every report shows why.
    if (skipped) console.log(`[conformance ${name}] skipping "${title}": ${reasons}`);
    it.skipIf(skipped)(
      skipped ? `${title} (skipped: ${reasons})` : title,
      async () => {
        try {
          await fn();
        } finally {
          await runCleanups();
        }
      },
      timeoutMs,
    );
  };
}

export function decode(result: RunResult): RunResult & { out: string; err: string } {
  return { ...result, out: result.stdout.toString("utf8"), err: result.stderr.toString("utf8") };
}

export { runContainer };
