export type { Job, JobImage, JobRuntime, JobSlurm } from "./job/job.js";
export { formatJobIssue, JobFileError, type JobIssue } from "./job/job-file-error.js";
export { type ParseJobOptions, parseJob } from "./job/parse-job.js";
export { splitShellWords } from "./job/shell-words.js";
