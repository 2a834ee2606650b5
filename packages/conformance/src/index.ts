export { describeConformance } from "./describe-conformance.js";
export { configDigestOf } from "./fixture-digest.js";
export type { ConformanceFixtures, ConformanceOptions, SuiteContext } from "./suite-context.js";
