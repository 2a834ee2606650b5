import { describe, expect, it } from "vitest";
import { childrenOf, descendantsOf, listProcesses, processEntry } from "./process-tree.js";

describe("descendantsOf", () => {
  it("walks the tree breadth first, without the root", () => {
    const p = (pid: number, ppid: number) => ({ pid, ppid, pgid: pid, sid: pid, startTime: 0, state: "S" });
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
