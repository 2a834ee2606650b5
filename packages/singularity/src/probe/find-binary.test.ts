import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binaryCandidates, findBinary, findOnPath } from "./find-binary.js";

let dir: string;
let a: string;
let b: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-find-binary-"));
  a = join(dir, "a");
  b = join(dir, "b");
  await mkdir(a);
  await mkdir(b);
  for (const [folder, name] of [
    [a, "singularity"],
    [b, "apptainer"],
    [b, "singularity"],
  ] as const) {
    await writeFile(join(folder, name), "#!/bin/sh\n");
    await chmod(join(folder, name), 0o755);
  }
  await writeFile(join(a, "apptainer"), "not executable");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("findBinary", () => {
  it("takes apptainer before singularity, first on PATH, skipping files that are not executable", async () => {
    expect(await findBinary({ env: { PATH: `${a}:${b}` } })).toBe(join(b, "apptainer"));
  });

  it("takes singularity first for runtime singularity", async () => {
    expect(await findBinary({ runtime: "singularity", env: { PATH: `${a}:${b}` } })).toBe(
      join(a, "singularity"),
    );
    expect(binaryCandidates("singularity")).toEqual(["singularity", "apptainer"]);
  });

  it("prefers the config's binary, then $CONTEXEC_APPTAINER", async () => {
    const env = { PATH: b, CONTEXEC_APPTAINER: join(a, "singularity") };
    expect(await findBinary({ env })).toBe(join(a, "singularity"));
    expect(await findBinary({ env, binary: join(b, "singularity") })).toBe(join(b, "singularity"));
    expect(await findBinary({ env: { PATH: b }, binary: "singularity" })).toBe(join(b, "singularity"));
  });

  it("says what was looked for and how to install when nothing is found", async () => {
    const err = await findBinary({ env: { PATH: join(dir, "empty") } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "E_RUNTIME_UNAVAILABLE" });
    expect(String((err as Error).message)).toMatch(/neither apptainer nor singularity was found on PATH/);
    expect(String((err as Error).message)).toMatch(/scripts\/setup-apptainer\.sh/);
    expect(String((err as Error).message)).toMatch(/apptainer\.org/);
  });

  it("names a configured binary that is not executable", async () => {
    const err = await findBinary({ env: { PATH: b, CONTEXEC_APPTAINER: join(a, "apptainer") } }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "E_RUNTIME_UNAVAILABLE" });
    expect(String((err as Error).message)).toContain(`$CONTEXEC_APPTAINER is "${join(a, "apptainer")}"`);
  });

  it("findOnPath ignores relative PATH entries", async () => {
    expect(await findOnPath("apptainer", `relative:${b}`)).toBe(join(b, "apptainer"));
    expect(await findOnPath("apptainer", "")).toBeUndefined();
  });
});
