import {
  CAPABILITY_NAMES,
  type Capabilities,
  type Container,
  type ContainerExecutor,
  hostFacts,
  type ImageId,
  type RuntimeInfo,
  unsupported,
} from "@contexec/core";
import { afterAll, beforeAll, describe } from "vitest";
import { registerCommandCases } from "./cases/command.js";
import { registerEnvCases } from "./cases/env.js";
import { registerExecCases } from "./cases/exec.js";
import { registerExitCases } from "./cases/exit.js";
import { registerImageCases } from "./cases/image.js";
import { registerIsolationCases } from "./cases/isolation.js";
import { registerKillCases } from "./cases/kill.js";
import { registerLayerCases } from "./cases/layers.js";
import { registerLifecycleCases } from "./cases/lifecycle.js";
import { registerMountCases } from "./cases/mounts.js";
import { registerPlanCases } from "./cases/plan.js";
import { registerResourceCases } from "./cases/resources.js";
import { registerRunCases } from "./cases/run.js";
import { registerServiceCases } from "./cases/services.js";
import { registerSideChannelCases } from "./cases/side-channels.js";
import { registerStdioCases } from "./cases/stdio.js";
import {
  type ConformanceOptions,
  decode,
  makeTestRegistrar,
  runContainer,
  type SuiteContext,
} from "./suite-context.js";

/**
 * Registers the conformance suite for one backend, as vitest cases. Call it at the top level of
 * a test file, awaited (it asks the backend for its capabilities first, so that a case the
 * backend cannot run is registered as skipped with the reason in its name):
 *
 * ```ts
 * await describeConformance({ name: "docker", createExecutor: async () => new DockerExecutor(), fixtures });
 * ```
 */
export async function describeConformance(options: ConformanceOptions): Promise<void> {
  const unavailable = options.unavailable;
  let info: RuntimeInfo;
  if (unavailable === undefined) {
    const probe = await options.createExecutor();
    info = await probe.info().finally(() => probe.close());
  } else {
    info = unavailableInfo(options.name, unavailable);
  }
  const timeoutMs = options.timeoutMs ?? 120_000;

  let executor: ContainerExecutor | undefined;
  let images: { busybox: ImageId; layered: ImageId } | undefined;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const runCleanups = async () => {
    const pending = cleanups.splice(0).reverse();
    for (const fn of pending) await fn();
  };

  const register = makeTestRegistrar(info, options.name, timeoutMs, runCleanups);
  const ctx: SuiteContext = {
    options,
    info,
    executor: () => {
      if (!executor) throw new Error("the conformance executor is not ready (beforeAll failed?)");
      return executor;
    },
    images: () => {
      if (!images) throw new Error("the fixture images are not loaded (beforeAll failed?)");
      return images;
    },
    test:
      unavailable === undefined ? register : (title, fn, needs) => register(title, fn, needs, unavailable),
    run: async (spec, input) =>
      decode(await runContainer(ctx.executor(), spec, input !== undefined ? { input } : {})),
    start: async (spec) => {
      const container: Container = await ctx.executor().create(spec);
      cleanups.push(() => container.remove());
      // Nobody reads these in most cases; keep them flowing so a full pipe never blocks the process.
      container.stdout.resume();
      container.stderr.resume();
      await container.start();
      return container;
    },
    startService: (spec, serviceOptions) => ctx.executor().startService(spec, serviceOptions),
    defer: (fn) => {
      cleanups.push(fn);
    },
  };

  describe(`conformance: ${options.name} (${info.flavor} ${info.version})`, () => {
    beforeAll(async () => {
      if (unavailable !== undefined) return;
      executor = await options.createExecutor();
      images = {
        busybox: await executor.loadImage(options.fixtures.busybox),
        layered: await executor.loadImage(options.fixtures.layered),
      };
    }, 600_000);
    afterAll(async () => {
      await executor?.close();
    }, 120_000);

    describe("image", () => registerImageCases(ctx));
    describe("lifecycle", () => registerLifecycleCases(ctx));
    describe("exit", () => registerExitCases(ctx));
    describe("stdio", () => registerStdioCases(ctx));
    describe("env", () => registerEnvCases(ctx));
    describe("command and workdir", () => registerCommandCases(ctx));
    describe("layers", () => registerLayerCases(ctx));
    describe("mounts", () => registerMountCases(ctx));
    describe("kill", () => registerKillCases(ctx));
    describe("runContainer", () => registerRunCases(ctx));
    describe("isolation", () => registerIsolationCases(ctx));
    describe("exec", () => registerExecCases(ctx));
    describe("resources and concurrency", () => registerResourceCases(ctx));
    describe("services", () => registerServiceCases(ctx));
    describe("plan", () => registerPlanCases(ctx));
    describe("side channels", () => registerSideChannelCases(ctx));
  });
}

/** A stand-in for the info of a runtime that is not there: every capability off, for `reason`. */
function unavailableInfo(name: string, reason: string): RuntimeInfo {
  const capabilities = Object.fromEntries(
    CAPABILITY_NAMES.map((c) => [c, unsupported(reason)]),
  ) as Capabilities;
  return {
    runtime: name,
    flavor: name,
    version: "not available",
    privilege: "userns",
    capabilities,
    planner: {},
    host: hostFacts(),
    probedAt: new Date().toISOString(),
    details: {},
  };
}
