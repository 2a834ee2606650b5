import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runtimeGate } from "#test/runtimes";

// Node reads NODE_DEBUG at start-up, so the Docker executor runs in a child Node process, on the
// TypeScript sources (through the test loader that maps @contexec/* to packages/*/src).
const loader = fileURLToPath(
  new URL("../packages/singularity/src/test-support/ts-loader.mjs", import.meta.url),
);
const script = `
import { DockerExecutor } from "@contexec/docker";
const executor = new DockerExecutor();
await executor.info();
await executor.hasImage("contexec-no-such-image");
await executor.info();
await executor.close();
`;

const gate = runtimeGate("docker");

describe.skipIf(gate.skip)(gate.title("NODE_DEBUG=contexec on the Docker backend"), () => {
  it("logs every Engine API request with its outcome and duration", () => {
    const r = spawnSync(process.execPath, ["--import", loader, "--input-type=module", "-e", script], {
      env: { ...process.env, NODE_DEBUG: "contexec" },
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("CONTEXEC "));
    expect(lines).toHaveLength(4);
    // info()'s first probe asks for /version and /info at once: they finish in either order.
    const shape = (line: string) => line.replace(/^CONTEXEC \d+: /, "").replace(/ \d+ ms$/, " N ms");
    expect(lines.slice(0, 2).map(shape).sort()).toEqual([
      "docker GET /info -> ok N ms",
      "docker GET /version -> ok N ms",
    ]);
    expect(lines.slice(2)).toEqual([
      expect.stringMatching(
        /^CONTEXEC \d+: docker GET \/images\/contexec-no-such-image\/json -> failed: 404 .*no such image.* \d+ ms$/,
      ),
      // A second info() checks that the daemon is still there before answering from what it knows.
      expect.stringMatching(/^CONTEXEC \d+: docker GET \/_ping -> ok \d+ ms$/),
    ]);
  });
});
