export { type Fault, type FaultProxy, type SeenRequest, startFaultProxy } from "./fault-proxy.js";
export { pushForPull } from "./pull-reference.js";
export {
  type RegistryProcessOptions,
  type RunningRegistry,
  SETUP_REGISTRY_SCRIPT,
  startRegistry,
  sweepStaleRegistries,
} from "./registry-process.js";
export { makeTestCertificates, type TestCertificates } from "./test-certificates.js";
export { type StartedTestRegistries, startTestRegistries, type TestRegistries } from "./test-registries.js";
export {
  type RunningTokenServer,
  startTokenServer,
  type TokenServerOptions,
  type TokenServerStats,
} from "./token-server.js";
export { pushUniqueImage, type UniqueImage } from "./unique-image.js";
