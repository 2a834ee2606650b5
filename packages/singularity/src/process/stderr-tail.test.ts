import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { classifyRuntimeFailure, fatalMessage, StreamTail } from "./stderr-tail.js";

describe("StreamTail", () => {
  it("passes every byte through and keeps the last `limit` bytes", async () => {
    const tail = new StreamTail(10);
    const out: Buffer[] = [];
    tail.on("data", (b: Buffer) => out.push(b));
    const source = new PassThrough();
    source.pipe(tail);
    for (let i = 0; i < 100; i++) source.write(`line ${i}\n`);
    source.end();
    await new Promise((r) => tail.once("end", r));
    expect(Buffer.concat(out).toString()).toBe(Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(""));
    expect(tail.text()).toBe("8\nline 99\n");
  });
});

describe("fatalMessage", () => {
  it("finds the last FATAL line, colours and all", () => {
    expect(fatalMessage('out\n\x1b[31mFATAL:  \x1b[0m "x": executable file not found in $PATH\n')).toBe(
      '"x": executable file not found in $PATH',
    );
    expect(fatalMessage("FATAL:   one\nFATAL:   two\n")).toBe("two");
    expect(fatalMessage("no fatal here\n")).toBeUndefined();
  });
});

describe("classifyRuntimeFailure", () => {
  // The exact messages of Apptainer 1.4.5.
  it("reads a command that is not in the image as command-not-found", () => {
    expect(
      classifyRuntimeFailure(255, 'FATAL:   "nosuch": executable file not found in $PATH\n', "nosuch"),
    ).toMatchObject({
      kind: "command-not-found",
    });
    expect(
      classifyRuntimeFailure(255, "FATAL:   stat /bin/nosuch: no such file or directory\n", "/bin/nosuch"),
    ).toMatchObject({ kind: "command-not-found" });
    expect(classifyRuntimeFailure(255, "FATAL:   permission denied\n", "/etc/passwd")).toMatchObject({
      kind: "command-not-found",
    });
  });

  it("reads other FATAL lines with exit 255 as a runtime failure", () => {
    expect(
      classifyRuntimeFailure(
        255,
        "FATAL:   While checking container encryption: could not open image /x.sif: no such file or directory\n",
        "true",
      ),
    ).toEqual({
      kind: "runtime",
      message: "While checking container encryption: could not open image /x.sif: no such file or directory",
    });
  });

  it("reads a bad flag and the setuid capability error (exit 1) as a runtime failure", () => {
    expect(
      classifyRuntimeFailure(1, 'Error for command "exec": unknown flag: --bogus\n', "true"),
    ).toMatchObject({
      kind: "runtime",
    });
    expect(
      classifyRuntimeFailure(
        1,
        "\x1b[91mERROR  : Requesting capability set 0x000001ffffffffff while permitted capability set is 0x000001fffeffffff\n\x1b[0m",
        "true",
      ),
    ).toMatchObject({ kind: "runtime" });
  });

  it("leaves the container's own exit codes alone", () => {
    expect(classifyRuntimeFailure(0, "", "true")).toBeUndefined();
    expect(classifyRuntimeFailure(255, "my program failed\n", "x")).toBeUndefined();
    expect(classifyRuntimeFailure(1, "ERROR: my own error\n", "x")).toBeUndefined();
    expect(classifyRuntimeFailure(3, "FATAL:   x\n", "x")).toBeUndefined();
  });
});
