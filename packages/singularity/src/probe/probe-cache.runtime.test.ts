import { chmod, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { findBinary } from "./find-binary.js";

const gate = runtimeGate("apptainer");

/**
 * A fresh process must not pay for the probe again: the findings are kept on disk, and reused
 * only while what they depend on is unchanged. Every call of the runtime goes through a wrapper
 * that counts them, so "no probe" means "no call".
 */
describe.skipIf(gate.skip)(gate.title("probe cache (real Apptainer)"), () => {
  let work: string;
  let wrapper: string;
  let calls: string;
  let cacheDir: string;
  const executors: ApptainerExecutor[] = [];
  const fresh = (options: { probeCache?: string | false } = {}) => {
    const e = new ApptainerExecutor({ binary: wrapper, probeCache: cacheDir, ...options });
    executors.push(e);
    return e;
  };
  const count = async () =>
    (await readFile(calls, "utf8").catch(() => "")).split("\n").filter(Boolean).length;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "contexec-probe-cache-"));
    wrapper = join(work, "apptainer");
    calls = join(work, "calls.log");
    cacheDir = join(work, "probe-cache");
    await writeFile(wrapper, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${await findBinary()}' "$@"\n`);
    await chmod(wrapper, 0o755);
  });
  afterAll(async () => {
    await Promise.all(executors.map((e) => e.close()));
    await rm(work, { recursive: true, force: true });
  });

  it("a second executor (a fresh process) reuses the findings without calling the runtime", async () => {
    const first = await fresh().probe();
    const probing = await count();
    expect(probing).toBeGreaterThan(3);
    expect(await readdir(cacheDir)).toHaveLength(1);
    const second = await fresh().probe();
    expect(await count()).toBe(probing);
    expect(second.capabilities).toEqual(first.capabilities);
    expect(second.render).toEqual(first.render);
    expect(second.privilege).toBe(first.privilege);
  });

  it("probes again when the binary changes, on refresh, after forgetProbe, and never trusts a broken file", async () => {
    await fresh().probe();
    let before = await count();
    const later = new Date(Date.now() + 60_000);
    await utimes(wrapper, later, later);
    await fresh().probe();
    expect(await count()).toBeGreaterThan(before);

    before = await count();
    await fresh().probe({ refresh: true });
    expect(await count()).toBeGreaterThan(before);

    const e = fresh();
    await e.probe();
    await e.forgetProbe();
    before = await count();
    await fresh().probe();
    expect(await count()).toBeGreaterThan(before);

    for (const f of await readdir(cacheDir)) await writeFile(join(cacheDir, f), "{ not json");
    before = await count();
    const probe = await fresh().probe();
    expect(await count()).toBeGreaterThan(before);
    expect(probe.version).toMatch(/^\d+\.\d+/);
  });

  it("by default the findings go to the user's cache folder; probeCache: false keeps nothing", async () => {
    const env = (home: string) => ({ PATH: process.env.PATH ?? "", XDG_CACHE_HOME: join(work, home) });
    const kept = new ApptainerExecutor({ binary: wrapper, env: env("cache-a") });
    const none = new ApptainerExecutor({ binary: wrapper, env: env("cache-b"), probeCache: false });
    executors.push(kept, none);
    await Promise.all([kept.probe(), none.probe()]);
    expect(await readdir(join(work, "cache-a", "contexec", "probe"))).toHaveLength(1);
    await expect(readdir(join(work, "cache-b"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
