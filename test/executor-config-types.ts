/*
 * Compile-time checks (tsc -p tsconfig.tests.json) that core's ExecutorConfig, which types
 * createExecutor's argument without importing any backend, and each backend's own options stay
 * the same set of options with compatible types.
 */
import type { ApptainerExecutorConfig, DockerExecutorConfig, SlurmExecutorConfig } from "@contexec/core";
import type { DockerExecutorOptions } from "@contexec/docker";
import type { ApptainerExecutorOptions } from "@contexec/singularity";

type Assert<T extends true> = T;
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never]
  ? true
  : false;
// Options whose types are the backend's own library types (dockerode's, a SifConverter) are only named alike.
type Loose = "dockerOptions" | "converter";
type Assignable<From, To> = Omit<From, Loose> extends Omit<To, Loose> ? true : false;

export type DockerKeys = Assert<SameKeys<Omit<DockerExecutorConfig, "runtime">, DockerExecutorOptions>>;
export type DockerTypes = Assert<Assignable<Omit<DockerExecutorConfig, "runtime">, DockerExecutorOptions>>;
export type ApptainerKeys = Assert<SameKeys<ApptainerExecutorConfig, ApptainerExecutorOptions>>;
export type ApptainerTypes = Assert<Assignable<ApptainerExecutorConfig, ApptainerExecutorOptions>>;

// SLURM's innerConfig is the inner backend's options without runtime (and, for Apptainer, without
// the SIF cache, which is the shared folder's).
type InnerConfig<R> = NonNullable<Extract<SlurmExecutorConfig, { inner: R }>["innerConfig"]>;
export type SlurmApptainerKeys = Assert<
  SameKeys<InnerConfig<"apptainer">, Omit<ApptainerExecutorOptions, "runtime" | "cacheDir">>
>;
export type SlurmDockerKeys = Assert<SameKeys<InnerConfig<"docker">, DockerExecutorOptions>>;
