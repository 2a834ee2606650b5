import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DockerExecutor } from "@contexec/docker";
import { RegistryClient } from "@contexec/registry";
import { pushUniqueImage, type UniqueImage } from "@contexec/registry/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { describeOnEachRuntime, runtimeGate } from "#test/runtimes";
import { buildCli, contexec } from "./test-support/contexec-process.js";

// `contexec pull` and `image: docker://REF` in job files, as a user runs them, against the test
// registry (test/registry-setup.ts), on each runtime this run tests.

const GATES = { docker: runtimeGate("docker"), apptainer: runtimeGate("apptainer") };
const registries = inject("registries");
const noRegistry = registries === null ? ` (skipped: ${inject("registriesUnavailable")})` : "";
// Each runtime's cases run where it is tested; elsewhere they are skipped with its reason.
const RUNTIMES = ["docker", "apptainer"] as const;
const run = randomBytes(3).toString("hex");

let work = "";
let env: NodeJS.ProcessEnv;
// Images of this run's own (a random layer each): removing them from the shared daemon touches no one's.
const pushed: UniqueImage[] = [];

/** An image only this test has, under a name of its own in the plain test registry. */
async function uniqueImage(name: string): Promise<UniqueImage> {
  const regs = registries as NonNullable<typeof registries>;
  const client = new RegistryClient({ dockerConfig: false });
  try {
    const image = await pushUniqueImage(
      client,
      `${regs.plain.host}/cli-${run}/${name}:1`,
      join(inject("fixturesDir"), "busybox.tar"),
    );
    pushed.push(image);
    return image;
  } finally {
    client.close();
  }
}

describe.skipIf(noRegistry !== "")(`contexec pull and docker:// images${noRegistry}`, () => {
  beforeAll(async () => {
    buildCli();
    work = await mkdtemp(join(tmpdir(), "contexec-cli-pull-"));
    await mkdir(join(work, "tmp"));
    // A SIF cache and scratch folder of the tests' own; no Docker credentials of the user's.
    env = {
      ...process.env,
      CONTEXEC_SIF_CACHE: join(work, "sif-cache"),
      TMPDIR: join(work, "tmp"),
      DOCKER_CONFIG: join(work, "docker-config"),
    };
  }, 300_000);
  afterAll(async () => {
    if (!GATES.docker.skip && pushed.length > 0) {
      const docker = new DockerExecutor();
      for (const image of pushed) await docker.removeImage(image.id).catch(() => {});
      await docker.close();
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  describeOnEachRuntime(RUNTIMES, "on %s", (runtime) => {
    it("pulls with per-layer progress, prints the image id, and the reference then runs as a job's image", async () => {
      const image = await uniqueImage(`pull-${runtime}`);
      const r = await contexec(["pull", image.reference, "--runtime", runtime], { cwd: work, env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${image.id}\n`);
      // Not a terminal: a line per layer and phase. Both layers, each from first sight to its end;
      // Docker may have the busybox layer already (the fixture shares it), the unique one it has not.
      const lines = r.stderr.split("\n");
      expect(lines[0]).toBe(`contexec: pulling ${image.reference} into ${runtime}`);
      const layerLines = lines.filter((l) => /^[0-9a-f]{12} {2}/.test(l));
      const phasesOf = (layer: string) =>
        layerLines.filter((l) => l.startsWith(layer)).map((l) => l.slice(14).split("  ")[0]?.trim());
      const layers = [...new Set(layerLines.map((l) => l.slice(0, 12)))];
      expect(layers).toHaveLength(2);
      for (const layer of layers) expect(["done", "already here"]).toContain(phasesOf(layer).at(-1));
      expect(layers.filter((l) => phasesOf(l).includes("downloading")).length).toBeGreaterThanOrEqual(1);
      expect(lines.at(-2)).toMatch(
        new RegExp(`^contexec: pulled ${image.reference} \\(image ${image.id}\\) in \\d+\\.\\ds$`),
      );

      const dir = join(work, `job-${runtime}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "job.yaml"), `image: ${image.reference}\n`);
      const job = await contexec(["run", "job.yaml", "--runtime", runtime, "--quiet"], { cwd: dir, env });
      expect(job.stderr).toBe("");
      expect(job.stdout).toBe(`${image.marker}\n/srv\n${image.marker}\n`);
      expect(job.code).toBe(0);

      // Pulled again: nothing to fetch, the same id.
      const again = await contexec(["pull", `docker://${image.reference}`, "--runtime", runtime, "--json"], {
        cwd: work,
        env,
      });
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ id: image.id, reference: image.reference, runtime });
      // Nothing fetched again (Docker's daemon says nothing per layer for an image it has).
      expect(again.stderr).not.toContain("downloading");
      if (runtime === "apptainer") expect(again.stderr).toContain("  already here");
    });

    it("runs a job whose image is docker://REF, pulling it first, and plans it once it is here", async () => {
      const image = await uniqueImage(`job-${runtime}`);
      const dir = join(work, `docker-scheme-${runtime}`);
      await mkdir(dir, { recursive: true });
      await writeFile(
        join(dir, "job.yaml"),
        `image: docker://${image.reference}\ncommand: [cat, /unique.txt]\n`,
      );
      // A dry run pulls nothing: the image is not here yet, and it says what to do.
      const before = await contexec(["run", "job.yaml", "--runtime", runtime, "--dry-run"], {
        cwd: dir,
        env,
      });
      expect(before.code).toBe(65);
      expect(before.stderr).toContain(`run contexec pull ${image.reference} --runtime ${runtime} first`);
      const r = await contexec(["run", "job.yaml", "--runtime", runtime], { cwd: dir, env });
      expect(r.stdout).toBe(`${image.marker}\n`);
      expect(r.stderr).toBe(`contexec: pulling ${image.reference} into ${runtime}\n`);
      expect(r.code).toBe(0);
      const plan = await contexec(["run", "job.yaml", "--runtime", runtime, "--dry-run"], {
        cwd: dir,
        env,
      });
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(/^#!\/usr\/bin\/env bash\n/);
    });

    it("a tag the registry lacks: exit 65 and the registry's not-found, nothing left in the cache", async () => {
      const regs = registries as NonNullable<typeof registries>;
      const missing = `${regs.plain.host}/cli-${run}/nothing-here:1`;
      const r = await contexec(["pull", missing, "--runtime", runtime], { cwd: work, env });
      expect(r.code).toBe(65);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^contexec pull: .*not found/m);
      const leftovers = (await readdir(join(work, "tmp"))).filter((n) => n.startsWith("contexec-sif"));
      expect(leftovers).toEqual([]);
    });
  });

  it("a reference that is not one: exit 64 with what to write, before any runtime is asked", async () => {
    const r = await contexec(["pull", "Not A Reference"], { cwd: work, env });
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('"Not A Reference" is not an image reference: it contains white space');
    expect(r.stderr).toContain("(contexec pull --help for usage)");
  });
});
