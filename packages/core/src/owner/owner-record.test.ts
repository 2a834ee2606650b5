import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  currentOwner,
  hostIdentity,
  INITIAL_PID_NS,
  judgeOwner,
  type OwnerRecord,
  ownedByThisUser,
  ownerFromLabels,
  ownerLabels,
  ownerLiveness,
  parseOwnerRecord,
} from "./owner-record.js";
import { parseProcStat } from "./proc-stat.js";

const HERE = { host: "node7", bootId: "b0" };
const OWNER: OwnerRecord = { pid: 4242, startTime: 1000, host: "node7", bootId: "b0" };
const stat = (startTime: number, state = "S") => ({
  pid: 4242,
  ppid: 1,
  pgid: 4242,
  sid: 4242,
  startTime,
  state,
});

describe("judgeOwner", () => {
  it("is alive while the same process runs", () => {
    expect(judgeOwner(OWNER, HERE, stat(1000))).toBe("alive");
    expect(judgeOwner(OWNER, HERE, stat(1000, "D"))).toBe("alive");
  });
  it("is dead when the pid is gone, reused, a zombie, or the host rebooted", () => {
    expect(judgeOwner(OWNER, HERE, undefined)).toBe("dead");
    expect(judgeOwner(OWNER, HERE, stat(2000))).toBe("dead");
    expect(judgeOwner(OWNER, HERE, stat(1000, "Z"))).toBe("dead");
    expect(judgeOwner(OWNER, { ...HERE, bootId: "b1" }, stat(1000))).toBe("dead");
  });
  it("never judges another host's owner, nor anything where /proc cannot be read", () => {
    expect(judgeOwner(OWNER, { ...HERE, host: "node8" }, undefined)).toBe("unknown");
    expect(judgeOwner(OWNER, { ...HERE, bootId: "" }, undefined)).toBe("unknown");
    expect(judgeOwner({ ...OWNER, bootId: "" }, HERE, undefined)).toBe("unknown");
  });
  it("judges pids of its own PID namespace only; an old record without one, from the host's", () => {
    const nested = "pid:[4026532999]";
    const hostNs = { ...HERE, pidNs: INITIAL_PID_NS };
    expect(judgeOwner({ ...OWNER, pidNs: INITIAL_PID_NS }, hostNs, undefined)).toBe("dead");
    expect(judgeOwner({ ...OWNER, pidNs: nested }, hostNs, undefined)).toBe("unknown");
    expect(judgeOwner({ ...OWNER, pidNs: nested }, { ...HERE, pidNs: nested }, undefined)).toBe("dead");
    expect(judgeOwner(OWNER, hostNs, undefined)).toBe("dead");
    expect(judgeOwner(OWNER, { ...HERE, pidNs: nested }, undefined)).toBe("unknown");
    expect(judgeOwner({ ...OWNER, pidNs: nested }, HERE, undefined)).toBe("unknown");
    // A reboot ends every namespace's processes.
    expect(judgeOwner({ ...OWNER, pidNs: nested }, { ...hostNs, bootId: "b1" }, undefined)).toBe("dead");
  });
  it("where /proc hides other users' processes, a pid not shown is unknown, a reused one still dead", () => {
    const hidden = { ...HERE, procHidden: true };
    expect(judgeOwner(OWNER, hidden, undefined)).toBe("unknown");
    expect(judgeOwner(OWNER, hidden, stat(2000))).toBe("dead");
    expect(judgeOwner(OWNER, hidden, stat(1000))).toBe("alive");
    // A record of this user's own: its processes are never hidden from it.
    expect(judgeOwner(OWNER, hidden, undefined, true)).toBe("dead");
  });
  it("tells a record of this user's own by its file's owner", async () => {
    const dir = await mkdtemp(join(tmpdir(), "contexec-owner-"));
    try {
      expect(await ownedByThisUser(dir)).toBe(process.getuid !== undefined);
      expect(await ownedByThisUser(join(dir, "missing"))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("owner records on this host", () => {
  it("this process is alive; an ended child, a reused start time and another host are not", async () => {
    const me = currentOwner();
    expect(me.pid).toBe(process.pid);
    expect(me.startTime).toBeGreaterThan(0);
    expect(me.host).toBe(hostIdentity().host);
    expect(me.pidNs).toMatch(/^pid:\[\d+\]$/);
    expect(await ownerLiveness(me)).toBe("alive");
    expect(await ownerLiveness({ ...me, startTime: me.startTime + 1 })).toBe("dead");
    expect(await ownerLiveness({ ...me, host: `${me.host}-elsewhere` })).toBe("unknown");
    // (the child is this user's: a /proc that hides other users' processes shows it, ended or not)
    const child = spawnSync("true");
    expect(await ownerLiveness({ ...me, pid: child.pid as number }, { sameUser: true })).toBe("dead");
  });
});

describe("owner labels", () => {
  it("carry the record and give it back; broken or missing labels give nothing", () => {
    const labels = ownerLabels(OWNER);
    expect(labels).toEqual({
      "io.contexec.owner.pid": "4242",
      "io.contexec.owner.start-time": "1000",
      "io.contexec.owner.host": "node7",
      "io.contexec.owner.boot-id": "b0",
    });
    expect(ownerFromLabels({ ...labels, other: "x" })).toEqual(OWNER);
    expect(ownerFromLabels({ ...labels, "io.contexec.owner.pid": "12x" })).toBeUndefined();
    // Numbers as /proc writes them, or nothing: the job scripts' sweeps read labels alike.
    for (const [key, value] of [
      ["io.contexec.owner.pid", "04242"],
      ["io.contexec.owner.pid", "0"],
      ["io.contexec.owner.pid", "+4242"],
      ["io.contexec.owner.pid", " 4242"],
      ["io.contexec.owner.pid", "12345678901"],
      ["io.contexec.owner.start-time", "01000"],
      ["io.contexec.owner.start-time", "1234567890123456"],
    ] as const) {
      expect(ownerFromLabels({ ...labels, [key]: value })).toBeUndefined();
    }
    expect(ownerFromLabels({ ...labels, "io.contexec.owner.start-time": "0" })).toEqual({
      ...OWNER,
      startTime: 0,
    });
    const withNs = ownerLabels({ ...OWNER, pidNs: "pid:[4026531836]" });
    expect(withNs["io.contexec.owner.pid-ns"]).toBe("pid:[4026531836]");
    expect(ownerFromLabels(withNs)).toEqual({ ...OWNER, pidNs: "pid:[4026531836]" });
    expect(ownerFromLabels({ ...withNs, "io.contexec.owner.pid-ns": "mnt:[1]" })).toBeUndefined();
    expect(ownerFromLabels({ ...labels, "io.contexec.owner.host": "" })).toBeUndefined();
    expect(ownerFromLabels({ "io.contexec.managed": "true" })).toBeUndefined();
    expect(ownerFromLabels(undefined)).toBeUndefined();
    expect(parseOwnerRecord({ ...OWNER, pid: -1 })).toBeUndefined();
  });
});

describe("parseProcStat", () => {
  it("reads pid, parent, group, session and start time, even with spaces and parentheses in the name", () => {
    const line = "4242 (a (weird) name) S 17 4242 4240 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
    expect(parseProcStat(line)).toEqual({
      pid: 4242,
      ppid: 17,
      pgid: 4242,
      sid: 4240,
      startTime: 123456,
      state: "S",
    });
    expect(parseProcStat("garbage")).toBeUndefined();
  });
});
