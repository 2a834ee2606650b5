export { type ArchiveFile, type ArchiveFileOptions, archiveFile } from "./archive/archive-file.js";
export {
  type ByteSource,
  bufferByteSource,
  fileByteSource,
  fileByteSourceSync,
  type SyncByteSource,
  streamByteSource,
} from "./archive/byte-source.js";
export {
  type CheckLayersOptions,
  checkImageLayers,
  type ReadLayerOptions,
  readLayerHeaders,
  readLayerHeadersSync,
} from "./archive/check-layers.js";
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
  type ArchiveLimits,
  archiveLimits,
  type ContentKind,
  classifyLayerEntry,
  DEFAULT_ARCHIVE_LIMITS,
  entryPath,
  LayerBudget,
  type LayerEntryMeaning,
  printable,
} from "./archive/layer-entries.js";
export { checkLayerDecompression, type OpenedLayer, openLayer } from "./archive/open-layer.js";
export {
  type ReadTarOptions,
  readTarHeaders,
  readTarHeadersSync,
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
  type ApptainerExecutorConfig,
  type BackendConfig,
  type BackendModule,
  createExecutor,
  type DockerExecutorConfig,
  type ExecutorConfig,
  type ExecutorConfigRegistry,
  knownRuntimes,
  registerBackend,
  type SlurmExecutorConfig,
  validateExecutorConfig,
} from "./create-executor.js";
export { debugEnabled, debugLog, logRuntimeCall, traceRuntimeCall } from "./debug-log.js";
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
  IoError,
  RuntimeError,
  RuntimeUnavailableError,
  raceAbort,
  type SpecIssue,
  TimeoutError,
  throwIfAborted,
  toIoError,
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
export { findExecutable } from "./find-executable.js";
export { DEFAULT_PATH, parseImageConfig, resolveArgv, resolveEnv, resolveWorkdir } from "./image-config.js";
export { TailBuffer } from "./io/tail-buffer.js";
export {
  defaultStateDir,
  listOwnerFolders,
  OwnerFolder,
  type OwnerFolderInfo,
  readOwnerFolder,
  readResourceRecords,
  STATE_DIR_ENV,
  type SweepReport,
} from "./owner/owner-folder.js";
export {
  currentOwner,
  type HostIdentity,
  hostIdentity,
  judgeOwner,
  OWNER_LABELS,
  type OwnerLiveness,
  type OwnerRecord,
  ownerFromLabels,
  ownerLabels,
  ownerLiveness,
  ownerLivenessSync,
  parseOwnerRecord,
} from "./owner/owner-record.js";
export { dieWithParent } from "./owner/parent-death.js";
export { type ProcStat, parseProcStat, readProcStat, readProcStatSync } from "./owner/proc-stat.js";
export {
  describePlan,
  type FormatPlanOptions,
  formatPlan,
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
export {
  collect,
  DEFAULT_MAX_BUFFER,
  type RunErrorResult,
  type RunOptions,
  type RunResult,
  runContainer,
} from "./run.js";
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
