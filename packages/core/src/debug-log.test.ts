import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// Node reads NODE_DEBUG once, at start-up: each case runs the module in a fresh Node process
// (the module imports only node:util, so its transpiled text runs as it is).
const source = ts.transpileModule(readFileSync(new URL("./debug-log.ts", import.meta.url), "utf8"), {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
}).outputText;

function stderrOf(nodeDebug: string): string {
  const script = `${source}
logRuntimeCall("apptainer", ["exec", "--pwd", "/", "with space", "x.sif"], 12, "exit 0");
await traceRuntimeCall("docker", "GET /_ping", async () => 1);
await traceRuntimeCall("docker", "POST /x", async () => { throw new Error("refused"); }).catch(() => {});
`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, NODE_DEBUG: nodeDebug },
    encoding: "utf8",
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr;
}

describe("the debug log", () => {
  it("with NODE_DEBUG=contexec shows each runtime call with its outcome and duration", () => {
    const out = stderrOf("contexec");
    expect(out).toMatch(/^CONTEXEC \d+: apptainer exec --pwd \/ 'with space' x\.sif -> exit 0 12 ms$/m);
    expect(out).toMatch(/^CONTEXEC \d+: docker GET \/_ping -> ok \d+ ms$/m);
    expect(out).toMatch(/^CONTEXEC \d+: docker POST \/x -> failed: refused \d+ ms$/m);
  });

  it("says nothing without it", () => {
    expect(stderrOf("http")).toBe("");
  });
});
