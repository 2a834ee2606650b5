import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// Tests run on the sources: each @contexec package resolves to its src/index.ts, no build needed.
// Exact matches, so that "@contexec/core/testing" is not read as "@contexec/core" + "/testing".
const alias = [
  {
    find: /^@contexec\/core\/testing$/,
    replacement: fileURLToPath(new URL("./packages/core/src/testing/index.ts", import.meta.url)),
  },
  {
    find: /^@contexec\/registry\/testing$/,
    replacement: fileURLToPath(new URL("./packages/registry/src/testing/index.ts", import.meta.url)),
  },
  {
    find: /^@contexec\/conformance\/fixtures$/,
    replacement: fileURLToPath(new URL("./packages/conformance/src/fixtures/index.ts", import.meta.url)),
  },
  {
    find: /^@contexec\/sif\/format$/,
    replacement: fileURLToPath(new URL("./packages/sif/src/sif-format.ts", import.meta.url)),
  },
  {
    find: /^@contexec\/registry\/reference$/,
    replacement: fileURLToPath(
      new URL("./packages/registry/src/reference/image-reference.ts", import.meta.url),
    ),
  },
  { find: /^#test\/runtimes$/, replacement: fileURLToPath(new URL("./test/runtimes.ts", import.meta.url)) },
  ...["core", "docker", "conformance", "sif", "singularity", "slurm", "cli", "registry"].map((pkg) => ({
    find: new RegExp(`^@contexec/${pkg}$`),
    replacement: src(pkg),
  })),
];

export default defineConfig({
  resolve: { alias },
  test: {
    // Conformance cases start real containers; a slow machine must not turn them into failures.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ["default"],
    projects: [
      {
        resolve: { alias },
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts"],
          exclude: ["**/*.runtime.test.ts", "**/node_modules/**"],
        },
      },
      {
        resolve: { alias },
        test: {
          name: "runtime",
          include: ["packages/*/src/**/*.runtime.test.ts", "test/**/*.test.ts"],
          exclude: ["test/unprivileged/**", "**/*.exclusive.runtime.test.ts", "**/node_modules/**"],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          globalSetup: ["test/global-setup.ts", "test/registry-setup.ts"],
        },
      },
      {
        // Tests that disturb a shared runtime (stopping the SLURM controller): one file at a
        // time, after every other project has finished.
        resolve: { alias },
        test: {
          name: "exclusive",
          include: ["packages/*/src/**/*.exclusive.runtime.test.ts"],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          globalSetup: ["test/global-setup.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      // What also runs as an ordinary user (scripts/test-unprivileged.sh): the Apptainer suite and
      // probe, every test of the CLI, the owner rules and the SLURM job script through real bash
      // (jobs run as their users), and the checks of test/unprivileged/. Only in that run.
      ...(process.env.CONTEXEC_UNPRIVILEGED_RUN === "1"
        ? [
            {
              resolve: { alias },
              test: {
                name: "unprivileged",
                include: [
                  "packages/singularity/src/**/apptainer.conformance.runtime.test.ts",
                  "packages/singularity/src/**/probe.runtime.test.ts",
                  "packages/cli/src/**/*.test.ts",
                  "packages/core/src/owner/*.test.ts",
                  "packages/slurm/src/job/job-script.test.ts",
                  "test/unprivileged/**/*.test.ts",
                ],
                testTimeout: 180_000,
                hookTimeout: 600_000,
                globalSetup: ["test/global-setup.ts", "test/registry-setup.ts"],
              },
            },
          ]
        : []),
    ],
  },
});
