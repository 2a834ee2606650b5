export {
  ApptainerExecutor,
  type ApptainerExecutorOptions,
  CONVERTER_NAMES,
  type ConverterName,
  createApptainerExecutor,
  createBackend,
  validateConfig,
} from "./apptainer-executor.js";
export { NativeSifConverter } from "./image/native-converter.js";
export {
  checkSif,
  defaultCacheDir,
  type EnsureOptions,
  type ImageRef,
  normalizeTag,
  parseImageRef,
  SIF_CACHE_ENV,
  SifCache,
  type SifCacheEntry,
  type SifCacheOptions,
} from "./image/sif-cache.js";
export {
  ApptainerBuildConverter,
  type ApptainerBuildConverterOptions,
  FallbackConverter,
  type SifConverter,
  type SifConvertInput,
  type SifConvertOptions,
} from "./image/sif-converter.js";
export { type SweepOptions, sweepLeftovers } from "./owner/sweep-leftovers.js";
export {
  CONTAINER_ENV_SCRIPT_TARGET,
  type ContainerEnvScriptInput,
  READONLY_RUNTIME_VARIABLES,
  RUNTIME_VARIABLES,
  renderContainerEnvScript,
} from "./plan/container-env-script.js";
export {
  type ApptainerCommand,
  apptainerSpecChecks,
  DOCKER_DEFAULT_CAPS,
  gpuEnv,
  type InstanceCommands,
  type RenderOptions,
  type RenderProbe,
  renderApptainerCommand,
  renderApptainerInstance,
  renderInstanceExec,
} from "./plan/render-apptainer-command.js";
export { runtimeProcessEnv } from "./plan/runtime-env.js";
export {
  BINARY_ENV,
  binaryCandidates,
  type FindBinaryOptions,
  findBinary,
  findOnPath,
} from "./probe/find-binary.js";
export {
  chooseStartMode,
  type ExecObservation,
  interfacesOf,
  interpretProbe,
  type OwnCgroupsObservation,
  type ProbeObservations,
  parseLimits,
  type RunRecord,
  type RuntimeProbe,
} from "./probe/interpret-probe.js";
export { observeRuntime, type ProbeOptions, probeRuntime } from "./probe/probe.js";
export {
  configPrefixOf,
  envPrefixOf,
  parseRuntimeVersion,
  RUNTIME_FLAVORS,
  type RuntimeFlavor,
  type RuntimeVersion,
  versionAtLeast,
} from "./probe/runtime-version.js";
export {
  classifyRuntimeFailure,
  fatalMessage,
  type RuntimeFailure,
  StreamTail,
} from "./process/stderr-tail.js";
export { ApptainerContainer, type ContainerPlan } from "./run/apptainer-container.js";
export { ApptainerService, LogBuffer, parseInstanceList, type ServicePlan } from "./run/apptainer-service.js";
