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
