export { demuxStream } from "./demux-stream.js";
export { DockerContainer } from "./docker-container.js";
export {
  createBackend,
  DockerExecutor,
  type DockerExecutorConfig,
  type DockerExecutorOptions,
  validateConfig,
} from "./docker-executor.js";
export {
  type DockerCreateBody,
  type DockerDeviceRequest,
  type DockerHostConfig,
  type DockerMount,
  LABEL_EXECUTOR,
  LABEL_MANAGED,
  type RenderContext,
  renderCreateOptions,
  renderGpus,
} from "./render-create-options.js";
export { csvLine, ownerLabelsFromFile, renderDockerRunArgv } from "./render-docker-run-argv.js";
export { sweepLeftovers } from "./sweep-leftovers.js";
