import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";

// The set-up scripts' answers where they cannot install: each is run for real, with what is
// missing hidden in a private mount namespace (scripts/hide-runtime.sh), another distribution's
// os-release, or as the ordinary test user. Nothing is installed or started by these runs.
const repo = fileURLToPath(new URL("../", import.meta.url));
const script = (name: string) => join(repo, "scripts", name);
const isRoot = process.getuid?.() === 0;
const testUser = process.env.CONTEXEC_TEST_USER ?? "contexec-test";
const hasUser = spawnSync("id", ["-u", testUser]).status === 0;
const docker = runtimeGate("docker");
const apptainer = runtimeGate("apptainer");
const work = await mkdtemp(join(tmpdir(), "contexec-setup-test-"));
afterAll(() => rm(work, { recursive: true, force: true }));

function run(argv: string[], env: Record<string, string> = {}) {
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}
async function osRelease(id: string, version: string): Promise<string> {
  const file = join(work, `os-release-${id}-${version}`);
  await writeFile(file, `ID=${id}\nVERSION_ID="${version}"\nID_LIKE=debian\n`);
  return file;
}

describe.skipIf(!isRoot)(
  isRoot ? "set-up scripts" : "set-up scripts (skipped: need root for a private mount namespace)",
  () => {
    it.each(["22.04", "24.04"])(
      "without Apptainer, Ubuntu %s is told to use the Apptainer PPA",
      async (version) => {
        const r = run([script("hide-runtime.sh"), "apptainer", script("setup-apptainer.sh")], {
          CONTEXEC_OS_RELEASE: await osRelease("ubuntu", version),
        });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`On ubuntu ${version} install it from the Apptainer PPA`);
        expect(r.stderr).toContain("sudo add-apt-repository -y ppa:apptainer/ppa");
        if (version === "24.04") expect(r.stderr).toContain("AppArmor");
      },
    );

    it("without Apptainer, another distribution is told where to get it", async () => {
      const r = run([script("hide-runtime.sh"), "apptainer", script("setup-apptainer.sh")], {
        CONTEXEC_OS_RELEASE: await osRelease("fedora", "40"),
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /this is fedora 40, not Debian; install Apptainer >= 1\.1 from https:\/\/apptainer\.org/,
      );
    });

    it.skipIf(apptainer.skip)(
      apptainer.title("setuid mode is refused with the reason: Debian's package has no setuid support"),
      () => {
        const r = run([script("setup-apptainer.sh"), "--setuid"]);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/APPTAINER_SUID_INSTALL=0.*no setuid-root starter-suid/);
      },
    );

    it("a DOCKER_HOST that does not answer is reported, never started", () => {
      const r = run([script("setup-docker.sh")], { DOCKER_HOST: "unix:///nonexistent/contexec-test.sock" });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        "no Docker daemon answers at DOCKER_HOST=unix:///nonexistent/contexec-test.sock",
      );
    });

    it.skipIf(!hasUser)(
      hasUser
        ? "an ordinary user without Apptainer is told that installing needs root"
        : `an ordinary user without Apptainer is told that installing needs root (skipped: no user ${testUser})`,
      () => {
        const r = run([
          script("hide-runtime.sh"),
          "apptainer",
          "setpriv",
          `--reuid=${testUser}`,
          `--regid=${testUser}`,
          "--init-groups",
          "--",
          "env",
          `HOME=${work}`,
          script("setup-apptainer.sh"),
        ]);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("installing needs root (apt); run this as root");
      },
    );

    it.skipIf(!hasUser || docker.skip)(
      hasUser
        ? docker.title("an ordinary user outside the docker group is told to join it")
        : `an ordinary user outside the docker group is told to join it (skipped: no user ${testUser})`,
      () => {
        const r = run([
          "setpriv",
          `--reuid=${testUser}`,
          `--regid=${testUser}`,
          "--init-groups",
          "--",
          script("setup-docker.sh"),
        ]);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(
          /may not use the Docker daemon at \/var\/run\/docker\.sock .*join its group/,
        );
      },
    );
  },
);
