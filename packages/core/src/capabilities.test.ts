import { describe, expect, it } from "vitest";
import {
  CAPABILITY_NAMES,
  type Capabilities,
  checkCapabilities,
  SUPPORTED,
  unsupported,
} from "./capabilities.js";
import { UnsupportedError } from "./errors.js";
import { exitStatusFromCode, exitStatusFromSignal, signalNumber } from "./exit-status.js";

const image = `sha256:${"c".repeat(64)}`;
const all = Object.fromEntries(CAPABILITY_NAMES.map((c) => [c, SUPPORTED])) as Capabilities;

describe("checkCapabilities", () => {
  it("passes a spec the runtime can honour", () => {
    expect(
      checkCapabilities({ image, network: "none", resources: { memoryBytes: 1 << 30 } }, all, "x"),
    ).toEqual([]);
  });

  it("refuses a spec field the runtime lacks, naming the field, the reason and the way out", () => {
    const caps = { ...all, "memory-limit": unsupported("cgroups are not delegated") };
    const run = () => checkCapabilities({ image, resources: { memoryBytes: 1 << 30 } }, caps, "apptainer");
    expect(run).toThrow(UnsupportedError);
    expect(run).toThrow(
      /resources\.memoryBytes cannot be honoured by apptainer here: cgroups are not delegated.*"ignore"/,
    );
  });

  it('returns the gaps instead when the spec says unsupported: "ignore"', () => {
    const caps = { ...all, user: unsupported("runs as the caller"), "network-none": unsupported("no") };
    expect(
      checkCapabilities({ image, user: "1", network: "none", unsupported: "ignore" }, caps, "x"),
    ).toEqual([
      { capability: "network-none", field: "network", reason: "no" },
      { capability: "user", field: "user", reason: "runs as the caller" },
    ]);
  });
});

describe("exit status", () => {
  it("reads 128+n as signal n, and plain codes as codes", () => {
    expect(exitStatusFromCode(0)).toEqual({ exitCode: 0, oomKilled: false });
    expect(exitStatusFromCode(42)).toEqual({ exitCode: 42, oomKilled: false });
    expect(exitStatusFromCode(137, true)).toEqual({ exitCode: 137, signal: "SIGKILL", oomKilled: true });
    expect(exitStatusFromCode(143)).toMatchObject({ signal: "SIGTERM" });
    expect(exitStatusFromCode(255)).toEqual({ exitCode: 255, oomKilled: false });
  });

  it("turns a signal into 128+n", () => {
    expect(exitStatusFromSignal("SIGKILL")).toEqual({ exitCode: 137, signal: "SIGKILL", oomKilled: false });
    expect(signalNumber("SIGTERM")).toBe(15);
    expect(signalNumber("SIGNOPE")).toBeUndefined();
  });
});
