export {
  type ExtraOptionValue,
  INNER_RUNTIMES,
  type InnerRuntime,
  RESERVED_OPTIONS,
  type ResolvedSlurmOptions,
  resolveSlurmConfig,
  type SlurmExecutorConfig,
  type SlurmOptions,
  TRACKING_MODES,
  type TrackingMode,
} from "./config/slurm-config.js";
export { type SharedArchive, SharedImages } from "./images/shared-images.js";
export { FileFollower, type FileFollowerOptions } from "./io/file-follower.js";
export { StdinFile } from "./io/stdin-file.js";
export { type JobFiles, jobFiles } from "./job/job-files.js";
export {
  type ContainerMemoryCgroup,
  FORWARDED_SIGNALS,
  type JobScriptInput,
  renderJobScript,
} from "./job/job-script.js";
export {
  renderSbatchOptions,
  resourceOptions,
  type SbatchOptionsInput,
  sbatchDirective,
} from "./job/sbatch-options.js";
export { submitAndWaitCommand } from "./job/submit-command.js";
export { parseTimeLimit, signalLeadSeconds, timeLimitOption } from "./job/time-limit.js";
export {
  defaultNodeProbeCommand,
  type NodeProbeInput,
  nodeProfile,
  profileFromOutput,
} from "./probe/node-profile.js";
export { classifyInnerFailure } from "./run/inner-failure.js";
export { EXEC_UNSUPPORTED, SlurmContainer, type SlurmContainerContext } from "./run/slurm-container.js";
export { firstNode, SlurmService } from "./run/slurm-service.js";
export {
  type ClusterInfo,
  clusterCapabilities,
  clusterInfoOf,
  type PartitionInfo,
  parsePartitions,
  parseScontrolConfig,
} from "./scheduler/cluster-info.js";
export {
  isUnknownJobError,
  type JobReport,
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
  sacctArgs,
  squeueArgs,
} from "./scheduler/job-reports.js";
export {
  END_REASONS,
  type EndReason,
  type ExitFile,
  exitStatusOf,
  type JobView,
  parseExitFile,
  type SlurmExitStatus,
  viewOf,
} from "./scheduler/job-state.js";
export {
  SCHEDULER_COMMANDS,
  type SchedulerCallResult,
  SchedulerCli,
  type SchedulerCliOptions,
  type SchedulerCommand,
} from "./scheduler/scheduler-cli.js";
export {
  createBackend,
  createSlurmExecutor,
  SlurmExecutor,
  type SlurmRunPlan,
  validateConfig,
} from "./slurm-executor.js";
export { CancelBatcher, type CancelRequest, scancelArgs } from "./track/cancel-batcher.js";
export { JobTracker, type JobTrackerOptions, type JobUpdate, nextPollInterval } from "./track/job-tracker.js";
