/** How `contexec conformance` tells its suite entry what to test (vitest workers inherit the environment). */
export const CONFORMANCE_ENV = {
  runtime: "CONTEXEC_CONFORMANCE_RUNTIME",
  fixtures: "CONTEXEC_CONFORMANCE_FIXTURES",
} as const;
