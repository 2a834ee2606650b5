import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runtimeGate } from "#test/runtimes";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { renderInstanceExec } from "../plan/render-apptainer-command.js";
import { parseInstanceList } from "./apptainer-service.js";

const gate = runtimeGate("apptainer");

// What only an instance gives: the runtime lists it, and other processes reach it by name.
const fixtures = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
let cacheDir: string;
let executor: ApptainerExecutor;
let image: string;

const listed = async () =>
  parseInstanceList(
    String((await execa("apptainer", ["instance", "list", "--json"], { reject: false })).stdout),
  );

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "contexec-service-sif-"));
  executor = new ApptainerExecutor({ cacheDir });
  image = await executor.loadImage(join(fixtures, "busybox.tar"));
}, 300_000);
afterAll(async () => {
  await executor?.close();
  await rm(cacheDir, { recursive: true, force: true });
});

describe.skipIf(gate.skip)(gate.title("Apptainer services are instances"), () => {
  it("is listed by `apptainer instance list` while it runs, reachable as instance://NAME, and gone after stop", async () => {
    const service = await executor.startService(
      {
        image,
        command: ["sh", "-c", "echo $ROLE > /tmp/role; sleep 1000"],
        env: { ROLE: "db" },
        name: "listed",
      },
      { ready: { exec: ["test", "-s", "/tmp/role"] }, readyOptions: { timeoutMs: 20_000 } },
    );
    expect(service.name).toMatch(/^listed-[0-9a-f]{8}$/);
    const entry = (await listed()).find((i) => i.name === service.name);
    // The runtime was given the service's own link to the cached SIF (APPTAINER_CONTAINER names it).
    expect(await realpath(entry?.image as string)).toContain(cacheDir);
    // Another process, outside this library, execs into it by name (with the privilege flags
    // this host needs, which the renderer knows).
    const argv = renderInstanceExec((await executor.probe()).render, service.name, ["cat", "/tmp/role"], "/");
    const other = await execa(argv[0] as string, argv.slice(1), { reject: false });
    expect(String(other.stdout)).toBe("db");
    await service.stop({ graceMs: 2000 });
    expect((await listed()).map((i) => i.name)).not.toContain(service.name);
    const gone = await execa("ps", ["-eo", "pid,args"]);
    expect(String(gone.stdout)).not.toContain(`[${service.name}]`);
  });

  it("exactName keeps the spec's name, and a second service of that name is refused by the runtime", async () => {
    const name = `exact-${process.pid}`;
    const first = await executor.startService(
      { image, command: ["sleep", "1000"], name },
      { exactName: true },
    );
    expect(first.name).toBe(name);
    const before = (await listed()).find((i) => i.name === name);
    await expect(
      executor.startService({ image, command: ["sleep", "1000"], name }, { exactName: true }),
    ).rejects.toMatchObject({ code: "E_RUNTIME" });
    // The refused start's clean-up must not touch the first service: same instance, still answering.
    expect((await listed()).find((i) => i.name === name)).toEqual(before);
    expect(await first.state()).toBe("running");
    expect(await first.exec(["echo", "still here"])).toMatchObject({ exitCode: 0, stdout: "still here\n" });
    await first.stop({ graceMs: 1000 });
    expect((await listed()).map((i) => i.name)).not.toContain(name);
  });
});
