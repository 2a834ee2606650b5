import { describe, expect, it } from "vitest";
import { didYouMean, editDistance } from "./did-you-mean.js";
import { parseEnvFile } from "./env-file.js";
import { parseByteSize, parseCpus, parseDuration } from "./units.js";

describe("parseByteSize", () => {
  it.each([
    ["512m", 512 * 1024 ** 2],
    ["1g", 1024 ** 3],
    ["1.5G", 1.5 * 1024 ** 3],
    ["64MiB", 64 * 1024 ** 2],
    ["100", 100],
    ["10kb", 10240],
    [2048, 2048],
  ])("%j", (text, bytes) => expect(parseByteSize(text)).toBe(bytes));
  it.each(["lots", "1x", "-1m", "", 1.5])("refuses %j", (text) =>
    expect(parseByteSize(text)).toBeUndefined(),
  );
});

describe("parseDuration", () => {
  it.each([
    ["10s", 10_000],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    ["500ms", 500],
    ["2.5s", 2500],
    ["3", 3000],
    [5, 5000],
  ])("%j", (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(["soon", "10 s", "1m30", "s"])("refuses %j", (text) => expect(parseDuration(text)).toBeUndefined());
});

describe("parseCpus", () => {
  it.each([
    ["0.5", 0.5],
    [2, 2],
    [".25", 0.25],
  ])("%j", (v, n) => expect(parseCpus(v)).toBe(n));
  it.each(["0", "two", -1, 0])("refuses %j", (v) => expect(parseCpus(v)).toBeUndefined());
});

describe("didYouMean", () => {
  const keys = ["image", "command", "entrypoint", "environment", "volumes", "working_dir", "stdin_open"];
  it.each([
    ["imgae", "image"],
    ["comand", "command"],
    ["env", "environment"],
    ["volume", "volumes"],
  ])("%s -> %s", (typo, key) => expect(didYouMean(typo, keys)).toBe(key));
  it("suggests nothing for a word far from every key", () => {
    expect(didYouMean("frobnicate", keys)).toBeUndefined();
  });
  it("counts a swap as one edit", () => expect(editDistance("ab", "ba")).toBe(1));
});

describe("parseEnvFile", () => {
  it("reads compose's env file format", () => {
    const text = [
      "# a comment",
      "",
      "PLAIN=value with spaces  ",
      "export EXPORTED=yes",
      "SINGLE='literal $HOME \\n'",
      'DOUBLE="line1\\nline2 \\"q\\""',
      "COMMENTED=value # trailing comment",
      "HASH=a#b",
      "EMPTY=",
      "FROM_HOST",
      'MULTI="first',
      'second"',
    ].join("\n");
    const { entries, issues } = parseEnvFile(text);
    expect(issues).toEqual([]);
    expect(entries).toEqual([
      { name: "PLAIN", value: "value with spaces", line: 3 },
      { name: "EXPORTED", value: "yes", line: 4 },
      { name: "SINGLE", value: "literal $HOME \\n", line: 5 },
      { name: "DOUBLE", value: 'line1\nline2 "q"', line: 6 },
      { name: "COMMENTED", value: "value", line: 7 },
      { name: "HASH", value: "a#b", line: 8 },
      { name: "EMPTY", value: "", line: 9 },
      { name: "FROM_HOST", value: undefined, line: 10 },
      { name: "MULTI", value: "first\nsecond", line: 11 },
    ]);
  });
  it("reports bad lines with their line and column", () => {
    const { issues } = parseEnvFile("OK=1\n  9BAD=x\nQ='open\n");
    expect(issues).toEqual([
      { line: 2, col: 3, message: '"9BAD" is not a variable name (NAME=value expected)' },
      { line: 3, col: 3, message: "unterminated ' quote" },
    ]);
  });
});
