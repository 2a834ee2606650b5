import { execFile, execFileSync } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ApptainerExecutor } from "@contexec/singularity";
import { afterAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";

// One SIF cache, two users: root fills it, an ordinary user (contexec-test, made by
// scripts/setup-test-user.sh) uses it read-only. Each user's default cache is its own (under its
// ~/.cache); a shared one is for images its owner loaded (an administrator's, a group's).
const gate = runtimeGate("apptainer");
const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
const user = process.env.CONTEXEC_TEST_USER ?? "contexec-test";
const repo = fileURLToPath(new URL("../", import.meta.url));
const loader = join(repo, "packages/singularity/src/test-support/ts-loader.mjs");
const child = join(repo, "test/support/shared-cache-child.ts");

function ids(name: string): { uid: number; gid: number } | undefined {
  try {
    const out = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8" }).trim());
    return { uid: out("-u"), gid: out("-g") };
  } catch {
    return undefined;
  }
}
const other = ids(user);
const asUser = (argv: string[]) => [
  "setpriv",
  `--reuid=${user}`,
  `--regid=${user}`,
  "--init-groups",
  "--",
  ...argv,
];
const userCanRead = (path: string) => {
  const argv = asUser(["test", "-r", path]);
  try {
    execFileSync(argv[0] as string, argv.slice(1));
    return true;
  } catch {
    return false;
  }
};
const isRoot = process.getuid?.() === 0;
const readable =
  isRoot && other !== undefined && userCanRead(child) && userCanRead(join(fixtures, "busybox.tar"));
const why = !isRoot
  ? "needs root, to fill the cache as one user and read it as another"
  : other === undefined
    ? `no user ${user} (scripts/setup-test-user.sh makes it)`
    : !readable
      ? `${user} cannot read ${repo} or ${fixtures}`
      : undefined;

// Nothing is made when the case is skipped: vitest runs no afterAll then.
const work = gate.skip || why !== undefined ? "" : await mkdtemp(join(tmpdir(), "contexec-shared-sif-"));
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(gate.skip || why !== undefined)(
  gate.title(why ? `a SIF cache shared by two users (skipped: ${why})` : "a SIF cache shared by two users"),
  () => {
    it("the second user runs what the first loaded, writes nothing, and gets a clear error for what is missing", async () => {
      await chmod(work, 0o755);
      const cacheDir = join(work, "cache");
      const owner = new ApptainerExecutor({ cacheDir });
      const id = await owner.loadImage(join(fixtures, "busybox.tar")).finally(() => owner.close());
      const before = (await readdir(cacheDir)).sort();

      // The second user's own HOME and TMPDIR; the cache folder stays root's (0755).
      const home = join(work, "home");
      await mkdir(home, { mode: 0o700 });
      await chown(home, other?.uid ?? -1, other?.gid ?? -1);
      const argv = asUser([
        "env",
        "-i",
        `PATH=${process.env.PATH}`,
        `HOME=${home}`,
        `TMPDIR=${home}`,
        process.execPath,
        "--import",
        loader,
        child,
        cacheDir,
        join(fixtures, "busybox.tar"),
        join(fixtures, "layered.tar"),
      ]);
      const { stdout } = await promisify(execFile)(argv[0] as string, argv.slice(1), { cwd: "/" });
      const result = JSON.parse(stdout.trim().split("\n").pop() as string);
      expect(result.error).toBeUndefined();
      expect(result.uid).toBe(other?.uid);
      expect(result.id).toBe(id);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(`ran as ${other?.uid}\n`);
      expect(result.missingError).toMatchObject({
        code: "E_INVALID_CONFIG",
        message: expect.stringMatching(
          /cannot be written by this user .* load the image into a cache of your own/,
        ),
      });
      // Read-only means read-only: no lock, no temporary file, no metadata rewritten.
      expect((await readdir(cacheDir)).sort()).toEqual(before);
    });
  },
);
