import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderContainerEnvScript } from "./container-env-script.js";

const work = mkdtempSync(join(tmpdir(), "contexec-env-script-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * Runs the script the way Apptainer's action script does, in bash (which, like Apptainer's
 * interpreter, lets a function named `exec` stand in for the builtin): the runtime's
 * variables set (two of them readonly), the script sourced, late variables set after it, then
 * `exec env -0`. Returns the environment the command would get, and what the shell said.
 */
function runAsActionScript(script: string, shell = "bash"): Record<string, string> {
  const file = join(work, `script-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, script);
  const harness = [
    "export APPTAINER_NAME=image.sif APPTAINER_CONTAINER=/scratch/image.sif",
    "readonly APPTAINER_NAME APPTAINER_CONTAINER",
    "export LANG=C APPTAINER_BIND= SINGULARITY_NAME=image.sif APPTAINER_COMMAND=exec",
    "export LD_LIBRARY_PATH=/opt/lib:/.singularity.d/libs KEEP='a b' EMPTY=",
    `. ${file}`,
    // What the action script sets after the env scripts.
    'export PS1="Apptainer> " PROMPT_COMMAND="PS1=x; unset PROMPT_COMMAND" APPTAINER_ENVIRONMENT=/e.sh PWD',
    'exec env -0 "$@"',
  ].join("\n");
  // HOME elsewhere: bash started by a non-terminal may read ~/.bashrc.
  const r = spawnSync(shell, ["-c", harness], {
    env: { PATH: "/usr/bin:/bin", HOME: work },
    encoding: "utf8",
  });
  // Nothing may reach the container's stderr (a readonly variable that cannot be unset is quiet).
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const out = r.stdout;
  const env: Record<string, string> = {};
  for (const entry of out.split("\0").filter(Boolean)) {
    const eq = entry.indexOf("=");
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  // bash's own and the harness's, not the script's.
  delete env.SHLVL;
  delete env.HOME;
  return env;
}

describe("renderContainerEnvScript", () => {
  it("leaves the container's own variables and takes out the runtime's, except the readonly two", () => {
    const script = renderContainerEnvScript({
      env: { KEEP: "a b", EMPTY: "", LD_LIBRARY_PATH: "/opt/lib", PATH: "/bin" },
      gpuLibs: false,
    });
    const env = runAsActionScript(script);
    expect(env).toEqual({
      KEEP: "a b",
      EMPTY: "",
      LD_LIBRARY_PATH: "/opt/lib",
      PATH: "/usr/bin:/bin",
      APPTAINER_NAME: "image.sif",
      APPTAINER_CONTAINER: "/scratch/image.sif",
    });
  });

  it("keeps a runtime-named variable the container sets, with its value, even an empty one", () => {
    const script = renderContainerEnvScript({ env: { LANG: "", PS1: "mine> " }, gpuLibs: false });
    const file = join(work, "set-ps1.sh");
    // The spec's PS1 arrives before the script is sourced (APPTAINERENV_PS1 is injected after 99-base.sh).
    writeFileSync(file, `export PS1="mine> "\n${script}`);
    const env = runAsActionScript(`. ${file}\n`);
    expect(env.LANG).toBe("");
    expect(env.PS1).toBe("mine> ");
    expect(env.PROMPT_COMMAND).toBeUndefined();
    expect(env.APPTAINER_BIND).toBeUndefined();
  });

  it("with GPU libraries LD_LIBRARY_PATH stays as Apptainer made it", () => {
    const env = runAsActionScript(renderContainerEnvScript({ env: {}, gpuLibs: true }));
    expect(env.LD_LIBRARY_PATH).toBe("/opt/lib:/.singularity.d/libs");
    const without = runAsActionScript(renderContainerEnvScript({ env: {}, gpuLibs: false }));
    expect(without.LD_LIBRARY_PATH).toBeUndefined();
  });

  it("a POSIX sh that refuses a function named exec sources it without a word and changes nothing", () => {
    const script = renderContainerEnvScript({ env: { KEEP: "a b" }, gpuLibs: false });
    const file = join(work, "posix.sh");
    writeFileSync(file, script);
    const r = spawnSync("dash", ["-c", `export PS1=x\n. ${file}\necho sourced; exec env`], {
      env: { PATH: "/usr/bin:/bin" },
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("sourced\n");
    expect(r.stdout).toContain("PS1=x\n");
  });

  it("carries names and emptiness only, never a value", () => {
    const script = renderContainerEnvScript({ env: { LANG: "secret-value", KEEP: "other" }, gpuLibs: false });
    expect(script).not.toContain("secret-value");
    expect(script).not.toContain("other");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell expansion is the point.
    expect(script).toContain("__contexec_LANG=${LANG-}");
  });
});
