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
  type ImageConfigFields,
  type LayerCompression,
  normalizeMember,
  type ReadArchiveOptions,
  readImageArchive,
  readImageConfig,
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
export {
  LOAD_STAGES,
  type LoadProgress,
  LoadProgressScale,
  type LoadStage,
  pullForLoad,
} from "./archive/load-progress.js";
export {
  checkLayerDecompression,
  decompressStream,
  type OpenedLayer,
  openLayer,
} from "./archive/open-layer.js";
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
  type SlurmOptions,
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
  RegistryAuthError,
  RegistryError,
  type RegistryErrorReason,
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
  PULL_PHASES,
  type PullOptions,
  type PullPhase,
  type PullProgress,
  type RegistryAccessOptions,
  type RegistryCredentials,
  type RuntimeInfo,
  registryReferenceOf,
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
  INITIAL_PID_NS,
  judgeOwner,
  type LivenessOptions,
  OWNER_LABEL_FORMS,
  OWNER_LABELS,
  type OwnerLiveness,
  type OwnerRecord,
  ownedByThisUser,
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
  formatPlanCommand,
  formatPlanHeader,
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
  plannedProfile,
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
  type ParseShellWordsOptions,
  parseShellWords,
  type ShellToken,
  type ShellWordsResult,
} from "./shell-words.js";
export { type CommandScript, parseCommandScript } from "./side-channels/command-script.js";
export {
  HOST_COMMAND_CODES,
  HostCommandBridge,
  type HostCommandBridgeOptions,
  type HostCommandEvent,
  type RequestChannel,
} from "./side-channels/host-command-bridge.js";
export {
  CLIENT_SCRIPT_NAME,
  renderClientScript,
  writeClientBin,
} from "./side-channels/host-command-client.js";
export {
  compileHostCommandPolicy,
  decideHostCommand,
  type HostCommandDecision,
  type HostCommandPolicy,
} from "./side-channels/host-command-policy.js";
export { htmlToText } from "./side-channels/html-to-text.js";
export {
  openSideChannels,
  type SideChannelOptions,
  type SideChannels,
} from "./side-channels/open-side-channels.js";
export {
  DEFAULT_BIN_PATH,
  DEFAULT_NOTIFICATIONS_FILE,
  DEFAULT_REQUEST_MOUNT,
  DEFAULT_RESULT_FILE,
  DEFAULT_STATUS_FILE,
  DEFAULT_SUPERVISION_MOUNT,
  SIDE_CHANNELS_NOTE,
  withoutSideChannels,
} from "./side-channels/side-channel-spec.js";
export {
  type StatusUpdate,
  type Supervision,
  SupervisorFiles,
  type SupervisorFilesOptions,
} from "./side-channels/supervisor-files.js";
export {
  type BindMount,
  type ContainerSpec,
  GPU_VENDORS,
  type GpuRequest,
  type GpuVendor,
  type HostCommandRule,
  type HostCommandsSpec,
  type ImageConfig,
  type ImageId,
  type Mount,
  NETWORK_MODES,
  type NetworkMode,
  type PortMapping,
  type Resources,
  type SupervisionSpec,
  type TmpfsMount,
} from "./spec.js";
export { collectSpecIssues, type ValidateOptions, validateArgv, validateSpec } from "./validate-spec.js";
