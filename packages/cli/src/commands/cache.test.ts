import type { SifCacheEntry } from "@contexec/singularity";
import { describe, expect, it } from "vitest";
import { choosePrunable } from "./cache.js";

const hex = (c: string) => c.repeat(64);
function entry(c: string, loadedAt: string): SifCacheEntry {
  return {
    id: `sha256:${hex(c)}`,
    sifPath: `/cache/${hex(c)}.sif`,
    config: {
      env: [],
      entrypoint: null,
      cmd: null,
      workingDir: "",
      user: "",
      labels: {},
      exposedPorts: [],
      stopSignal: undefined,
    },
    repoTags: [],
    architecture: "amd64",
    os: "linux",
    sifBytes: 1,
    converter: "native",
    createdAt: loadedAt,
    loadedAt,
  };
}

describe("choosePrunable", () => {
  const now = Date.parse("2026-12-01T00:00:00Z");
  const entries = [entry("a", "2026-11-30T00:00:00Z"), entry("b", "2026-10-01T00:00:00Z")];
  const files = [
    { name: `${hex("a")}.sif`, mtimeMs: now - 86_400_000 },
    { name: `${hex("a")}.json`, mtimeMs: now - 86_400_000 },
    { name: `.${hex("c")}.sif.tmp-111-abcd`, mtimeMs: now },
    { name: `.${hex("c")}.json.tmp-222-abcd`, mtimeMs: now },
    { name: `${hex("d")}.sif`, mtimeMs: now - 3_600_000 },
    { name: `${hex("e")}.sif`, mtimeMs: now - 1000 },
    { name: `${hex("a")}.lock`, mtimeMs: now },
  ];
  const isAlive = (pid: number) => pid === 222;

  it("removes only leftovers by default: dead processes' conversions, SIFs long without metadata", () => {
    expect(choosePrunable(entries, files, { now, isAlive })).toEqual({
      images: [],
      leftovers: [`.${hex("c")}.sif.tmp-111-abcd`, `${hex("d")}.sif`],
    });
  });

  it("adds the images not loaded for a while, or all of them", () => {
    expect(
      choosePrunable(entries, files, { now, isAlive, olderThanMs: 30 * 86_400_000 }).images.map((e) => e.id),
    ).toEqual([`sha256:${hex("b")}`]);
    expect(choosePrunable(entries, files, { now, isAlive, all: true }).images).toHaveLength(2);
  });
});
