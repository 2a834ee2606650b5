export { ApptainerContainer, type ContainerPlan } from "./apptainer-container.js";
export {
  ApptainerExecutor,
  type ApptainerExecutorOptions,
  CONVERTER_NAMES,
  type ConverterName,
  createApptainerExecutor,
  createBackend,
} from "./apptainer-executor.js";
export { ApptainerService, LogBuffer, parseInstanceList, type ServicePlan } from "./apptainer-service.js";
export {
  BINARY_ENV,
  binaryCandidates,
  type FindBinaryOptions,
  findBinary,
  findOnPath,
} from "./find-binary.js";
export { NativeSifConverter } from "./native-converter.js";
export { interfacesOf, type ProbeOptions, parseLimits, probeRuntime, type RuntimeProbe } from "./probe.js";
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
} from "./render-apptainer-command.js";
export { runtimeProcessEnv } from "./runtime-env.js";
export {
  configPrefixOf,
  envPrefixOf,
  parseRuntimeVersion,
  RUNTIME_FLAVORS,
  type RuntimeFlavor,
  type RuntimeVersion,
  versionAtLeast,
} from "./runtime-version.js";
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
} from "./sif-cache.js";
export {
  ApptainerBuildConverter,
  type ApptainerBuildConverterOptions,
  FallbackConverter,
  type SifConverter,
  type SifConvertInput,
  type SifConvertOptions,
} from "./sif-converter.js";
export { classifyRuntimeFailure, fatalMessage, type RuntimeFailure, StreamTail } from "./stderr-tail.js";
