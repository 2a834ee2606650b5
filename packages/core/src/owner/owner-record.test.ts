import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  currentOwner,
  hostIdentity,
  judgeOwner,
  type OwnerRecord,
  ownedByThisUser,
  ownerFromLabels,
  ownerLabels,
  ownerLiveness,
  parseOwnerRecord,
  procHidesOthers,
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

describe("procHidesOthers", () => {
  it("reads hidepid from /proc's line in /proc/mounts, in every spelling; root and the exempt group see all", () => {
    const mounts = (options: string) =>
      `sysfs /sys sysfs rw,nosuid 0 0\nproc /proc proc ${options} 0 0\ntmpfs /run tmpfs rw 0 0\n`;
    const user = { uid: 1000, groups: [1000, 100] };
    expect(procHidesOthers(mounts("rw,nosuid,nodev,noexec,relatime"), user)).toBe(false);
    expect(procHidesOthers(mounts("rw,relatime,hidepid=0"), user)).toBe(false);
    expect(procHidesOthers(mounts("rw,relatime,hidepid=off"), user)).toBe(false);
    for (const v of ["1", "2", "noaccess", "invisible", "ptraceable"]) {
      expect(procHidesOthers(mounts(`rw,relatime,hidepid=${v},gid=27`), user)).toBe(true);
    }
    expect(procHidesOthers(mounts("rw,hidepid=2"), { uid: 0, groups: [0] })).toBe(false);
    expect(procHidesOthers(mounts("rw,hidepid=2,gid=100"), user)).toBe(false);
    // A container's own /proc elsewhere does not count.
    expect(procHidesOthers("proc /srv/chroot/proc proc rw,hidepid=2 0 0\n", user)).toBe(false);
  });
});

describe("owner records on this host", () => {
  it("this process is alive; an ended child, a reused start time and another host are not", async () => {
    const me = currentOwner();
    expect(me.pid).toBe(process.pid);
    expect(me.startTime).toBeGreaterThan(0);
    expect(me.host).toBe(hostIdentity().host);
    expect(await ownerLiveness(me)).toBe("alive");
    expect(await ownerLiveness({ ...me, startTime: me.startTime + 1 })).toBe("dead");
    expect(await ownerLiveness({ ...me, host: `${me.host}-elsewhere` })).toBe("unknown");
    const child = spawnSync("true");
    expect(await ownerLiveness({ ...me, pid: child.pid as number })).toBe("dead");
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
