export { type ByteSource, fileByteSource, streamByteSource } from "./archive/byte-source.js";
export {
  type ArchiveLayer,
  digestOf,
  type ImageArchive,
  type LayerCompression,
  normalizeMember,
  type ReadArchiveOptions,
  readImageArchive,
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
  type RuntimeInfo,
  type WaitOptions,
} from "./executor.js";
export { exitStatusFromCode, exitStatusFromSignal, signalNumber, stopSignalOf } from "./exit-status.js";
export { DEFAULT_PATH, parseImageConfig, resolveArgv, resolveEnv, resolveWorkdir } from "./image-config.js";
export {
  describePlan,
  type FormatPlanOptions,
  formatPlan,
  formatPlanCommand,
  formatPlanStep,
  PLAN_SETUP_FAILED_EXIT,
} from "./plan/format-plan.js";
export { hostFacts } from "./plan/host-facts.js";
export {
  type HostFacts,
  type PlannedCommand,
  type PlannedImage,
  type PlannedProcess,
  type PlanOptions,
  type PlanStep,
  PRIVILEGE_MODES,
  type PrivilegeMode,
  type RunPlan,
  type RuntimeProfile,
} from "./plan/run-plan.js";
export { runCleanupSteps, runPlanSteps } from "./plan/run-plan-steps.js";
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
export { shellJoin, shellQuote } from "./shell-quote.js";
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
