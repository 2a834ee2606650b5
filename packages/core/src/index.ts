export { type ByteSource, fileByteSource, streamByteSource } from "./archive/byte-source.js";
export {
  type ArchiveLayer,
  digestOf,
  type ImageArchive,
  type ImageConfigFields,
  type LayerCompression,
  normalizeMember,
  type ReadArchiveOptions,
  readImageArchive,
  readImageConfig,
} from "./archive/image-archive.js";
export {
  type ReadTarOptions,
  readTarHeaders,
  type TarEntryKind,
  type TarHeader,
} from "./archive/tar-headers.js";
export {
  CAPABILITY_NAMES,
  type Capabilities,
  type CapabilityName,
  type CapabilityStatus,
  checkCapabilities,
  requiredCapabilities,
  SUPPORTED,
  unsupported,
} from "./capabilities.js";
export {
  type BackendModule,
  createExecutor,
  type ExecutorConfig,
  knownRuntimes,
  registerBackend,
} from "./create-executor.js";
export {
  AbortedError,
  CommandNotFoundError,
  ContainerError,
  type ContainerErrorOptions,
  ContainerStateError,
  ERROR_CODES,
  type ErrorCode,
  ImageArchiveError,
  ImageNotFoundError,
  InvalidConfigError,
  InvalidSpecError,
  RegistryAuthError,
  RegistryError,
  type RegistryErrorReason,
  RuntimeError,
  RuntimeUnavailableError,
  raceAbort,
  type SpecIssue,
  TimeoutError,
  throwIfAborted,
  UnsupportedError,
} from "./errors.js";
export {
  CONTAINER_STATES,
  type Container,
  type ContainerExecutor,
  type ContainerState,
  type ExecOptions,
  type ExecResult,
  type ExitStatus,
  type KillOptions,
  type LoadOptions,
  PULL_PHASES,
  type PullOptions,
  type PullPhase,
  type PullProgress,
  type RegistryCredentials,
  type RuntimeInfo,
  registryReferenceOf,
  type WaitOptions,
} from "./executor.js";
export { exitStatusFromCode, exitStatusFromSignal, signalNumber, stopSignalOf } from "./exit-status.js";
export { DEFAULT_PATH, parseImageConfig, resolveArgv, resolveEnv, resolveWorkdir } from "./image-config.js";
export { describeCheck, findFreePort, launchService, serviceName, waitUntilReady } from "./readiness.js";
export { collect, type RunOptions, type RunResult, runContainer } from "./run.js";
export type {
  Endpoint,
  ExecProcess,
  ReadinessCheck,
  ReadinessOptions,
  Service,
  ServiceLogs,
  ServiceOptions,
  ServiceSummary,
  StopOptions,
} from "./service.js";
export {
  type BindMount,
  type ContainerSpec,
  GPU_VENDORS,
  type GpuRequest,
  type GpuVendor,
  type ImageConfig,
  type ImageId,
  type Mount,
  NETWORK_MODES,
  type NetworkMode,
  type PortMapping,
  type Resources,
  type TmpfsMount,
} from "./spec.js";
export { collectSpecIssues, type ValidateOptions, validateArgv, validateSpec } from "./validate-spec.js";
