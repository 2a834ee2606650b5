import { stopSignalOf } from "@contexec/core";
import { describe, expect, it } from "vitest";
import { ApptainerExecutor, createBackend } from "./apptainer-executor.js";
import { LogBuffer } from "./run/apptainer-service.js";

describe("createBackend", () => {
  it("makes an executor for apptainer and singularity", async () => {
    const a = await createBackend({ runtime: "apptainer", cacheDir: "/tmp/x", converter: "apptainer-build" });
    expect(a).toBeInstanceOf(ApptainerExecutor);
    expect(a.runtime).toBe("apptainer");
    expect(a.cache.dir).toBe("/tmp/x");
    expect((await createBackend({ runtime: "singularity" })).runtime).toBe("singularity");
  });

  it("refuses unknown options and bad values with InvalidConfigError naming them", async () => {
    const err = await createBackend({
      runtime: "apptainer",
      bogus: 1,
      binary: "",
      converter: "magic",
      lockStaleMs: -1,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "E_INVALID_CONFIG" });
    const message = String((err as Error).message);
    for (const part of [
      'unknown option "bogus"',
      "binary must be",
      "converter must be",
      "lockStaleMs must be",
    ]) {
      expect(message).toContain(part);
    }
    await expect(createBackend({ runtime: "docker" })).rejects.toMatchObject({ code: "E_INVALID_CONFIG" });
  });

  it("reads $CONTEXEC_SIF_CACHE for the cache folder", () => {
    expect(new ApptainerExecutor({ env: { CONTEXEC_SIF_CACHE: "/cache/sif" } }).cache.dir).toBe("/cache/sif");
  });

  it("reports a missing runtime as RuntimeUnavailableError from info()", async () => {
    const ex = new ApptainerExecutor({ env: { PATH: "/nonexistent" } });
    await expect(ex.info()).rejects.toMatchObject({ code: "E_RUNTIME_UNAVAILABLE" });
    await ex.close();
  });
});

describe("stopSignalOf", () => {
  it("reads STOPSIGNAL as a name, without SIG, or as a number", () => {
    expect(stopSignalOf("SIGQUIT")).toBe("SIGQUIT");
    expect(stopSignalOf("quit")).toBe("SIGQUIT");
    expect(stopSignalOf("15")).toBe("SIGTERM");
    expect(stopSignalOf("SIGNOPE")).toBeUndefined();
    expect(stopSignalOf(undefined)).toBeUndefined();
  });
});

describe("LogBuffer", () => {
  it("keeps the last bytes and returns the last lines", () => {
    const log = new LogBuffer(1000);
    for (let i = 0; i < 10; i++) log.push(Buffer.from(`line ${i}\n`));
    expect(log.text(2)).toBe("line 8\nline 9\n");
    expect(log.text()).toContain("line 0\n");
    const small = new LogBuffer(8);
    small.push(Buffer.from("0123456789"));
    small.push(Buffer.from("abcdefgh"));
    expect(small.text()).toBe("abcdefgh");
  });
});
