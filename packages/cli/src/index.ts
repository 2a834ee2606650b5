export { COMMANDS, runCli, version } from "./cli.js";
export type { Command, CommandContext, CommandEntry } from "./command.js";
export { EXIT, exitCodeOf } from "./exit-codes.js";
export type { Job, JobImage, JobRuntime, JobSlurm } from "./job/job.js";
export { formatJobIssue, JobFileError, type JobIssue } from "./job/job-file-error.js";
export { type ParseJobOptions, parseJob } from "./job/parse-job.js";
export { readJobFile } from "./job/read-job-file.js";
export { splitShellWords } from "./job/shell-words.js";
