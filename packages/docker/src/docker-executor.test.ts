import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend, DockerExecutor } from "./docker-executor.js";

// No daemon needed: these cases are about a daemon that is not there, or does not answer.
let dir: string;
let silent: Server;
const held: Socket[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "contexec-docker-"));
  silent = createServer((socket) => held.push(socket)); // accepts connections, never answers
  await new Promise<void>((resolve) => silent.listen(join(dir, "silent.sock"), resolve));
});
afterAll(async () => {
  for (const socket of held) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe("DockerExecutor without a working daemon", () => {
  it("a missing socket is RuntimeUnavailableError naming the socket and what to do", async () => {
    const socket = join(dir, "nothing-here.sock");
    const executor = new DockerExecutor({ socketPath: socket });
    const err = await executor.info().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "E_RUNTIME_UNAVAILABLE", runtime: "docker" });
    expect(String((err as Error).message)).toContain(socket);
    expect(String((err as Error).message)).toMatch(/setup-docker\.sh|dockerd/);
    await expect(executor.hasImage("busybox")).rejects.toMatchObject({ code: "E_RUNTIME_UNAVAILABLE" });
  });

  it("a daemon that accepts but never answers gives TimeoutError, not a hang", async () => {
    const executor = new DockerExecutor({ socketPath: join(dir, "silent.sock"), requestTimeoutMs: 300 });
    const started = Date.now();
    await expect(executor.hasImage("busybox")).rejects.toMatchObject({ code: "E_TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("createBackend refuses unknown options", () => {
    expect(() => createBackend({ runtime: "docker", sockePath: "/x" })).toThrow(
      /invalid docker executor config: unknown option "sockePath"/,
    );
    expect(createBackend({ runtime: "docker", socketPath: "/x" })).toBeInstanceOf(DockerExecutor);
  });
});
