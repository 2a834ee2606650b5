import { describe, expect, it } from "vitest";
import { childrenOf, descendantsOf, listProcesses, parseStat, processEntry } from "./process-tree.js";

describe("parseStat", () => {
  it("reads pid, parent, group and start time, even with spaces and parentheses in the name", () => {
    const stat = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
    expect(parseStat(stat)).toEqual({ pid: 4242, ppid: 17, pgid: 4242, startTime: 123456, state: "S" });
    expect(parseStat("garbage")).toBeUndefined();
  });
});

describe("descendantsOf", () => {
  it("walks the tree breadth first, without the root", () => {
    const p = (pid: number, ppid: number) => ({ pid, ppid, pgid: pid, startTime: 0, state: "S" });
    const all = [p(1, 0), p(10, 1), p(11, 10), p(12, 10), p(13, 11), p(20, 1)];
    expect(descendantsOf(10, all)).toEqual([11, 12, 13]);
    expect(descendantsOf(13, all)).toEqual([]);
  });
});

describe("this process in /proc", () => {
  it("is listed, and is its parent's child", async () => {
    const me = await processEntry(process.pid);
    expect(me?.ppid).toBe(process.ppid);
    expect((await listProcesses()).some((e) => e.pid === process.pid)).toBe(true);
    expect(await childrenOf(process.ppid)).toContain(process.pid);
  });
});
