import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  defaultStateDir,
  listOwnerFolders,
  OwnerFolder,
  readOwnerFolder,
  readResourceRecords,
} from "./owner-folder.js";
import { currentOwner } from "./owner-record.js";

const work = await mkdtemp(join(tmpdir(), "contexec-owner-"));
afterAll(() => rm(work, { recursive: true, force: true }));

describe("defaultStateDir", () => {
  it("prefers CONTEXEC_STATE_DIR, then XDG_RUNTIME_DIR, then XDG_STATE_HOME, then ~/.local/state", () => {
    expect(defaultStateDir({ CONTEXEC_STATE_DIR: "/s", XDG_RUNTIME_DIR: "/run/user/1" }, "/h")).toBe("/s");
    expect(defaultStateDir({ XDG_RUNTIME_DIR: "/run/user/1", XDG_STATE_HOME: "/x" }, "/h")).toBe(
      "/run/user/1/contexec",
    );
    expect(defaultStateDir({ XDG_STATE_HOME: "/x" }, "/h")).toBe("/x/contexec");
    expect(defaultStateDir({ XDG_RUNTIME_DIR: "relative" }, "/h")).toBe("/h/.local/state/contexec");
  });
});

describe("OwnerFolder", () => {
  it("holds this process's record and one file per resource; a listing judges each owner", async () => {
    const state = join(work, "state");
    const folder = await OwnerFolder.create(state, "apptainer", { tmpRoot: "/tmp/x" });
    await folder.record("container-abc", { kind: "container", scratch: "/tmp/x/c-abc" });
    await folder.record("service-web", { kind: "service", name: "web" });
    await folder.forget("service-web");
    expect(await readResourceRecords(folder.dir)).toEqual(
      new Map([["container-abc", { kind: "container", scratch: "/tmp/x/c-abc" }]]),
    );
    expect(await readOwnerFolder(folder.dir)).toEqual({
      dir: folder.dir,
      owner: currentOwner(),
      details: { tmpRoot: "/tmp/x" },
    });

    // A dead owner's folder (this process's pid, another start time: a reused pid) and a broken one.
    const dead = join(state, "apptainer", "dead-1");
    await mkdir(dead);
    const me = currentOwner();
    await writeFile(
      join(dead, "owner.json"),
      JSON.stringify({ schema: 1, owner: { ...me, startTime: me.startTime + 7 }, details: {} }),
    );
    await mkdir(join(state, "apptainer", "broken"));
    const listed = await listOwnerFolders(state, "apptainer");
    expect(listed.map((f) => [f.dir, f.liveness]).sort()).toEqual(
      [
        [folder.dir, "alive"],
        [dead, "dead"],
      ].sort(),
    );
    expect(await listOwnerFolders(state, "docker")).toEqual([]);
    await folder.remove();
    expect(await readdir(join(state, "apptainer"))).not.toContain(folder.dir.split("/").pop());
  });

  it("refuses names that are not plain file names", async () => {
    const folder = await OwnerFolder.create(join(work, "state2"), "apptainer", {});
    await expect(folder.record("../escape", {})).rejects.toThrow(/plain file name/);
  });
});
