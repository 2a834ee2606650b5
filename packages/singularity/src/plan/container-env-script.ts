/**
 * Where a container's environment script goes in the container: Apptainer's action script
 * sources `/.singularity.d/env/*.sh` in `sort -n` order, so this one comes after the image's,
 * after 99-base.sh (where the APPTAINERENV_* variables are injected) and after 99-runtimevars.sh.
 */
export const CONTAINER_ENV_SCRIPT_TARGET = "/.singularity.d/env/99-zz-contexec.sh";

/**
 * Variables Apptainer puts in a container's environment on its own (1.4.5, measured: `env` in a
 * container of a converted busybox image). The action script re-exports the runtime's variables
 * after the env scripts have run (APPTAINER_* and SINGULARITY_* ones, LANG=C, TERM), then sets
 * PS1, PROMPT_COMMAND and APPTAINER_ENVIRONMENT and exports PWD; 99-base.sh appends
 * /.singularity.d/libs to LD_LIBRARY_PATH. SingularityCE's action script is the same shape.
 */
export const RUNTIME_VARIABLES = [
  "APPTAINER_APPNAME",
  "APPTAINER_BIND",
  "APPTAINER_COMMAND",
  "APPTAINER_CONTAINER",
  "APPTAINER_ENVIRONMENT",
  "APPTAINER_INSTANCE",
  "APPTAINER_NAME",
  "APPTAINER_NO_EVAL",
  "LANG",
  "LD_LIBRARY_PATH",
  "PROMPT_COMMAND",
  "PS1",
  "PWD",
  "SINGULARITY_APPNAME",
  "SINGULARITY_BIND",
  "SINGULARITY_COMMAND",
  "SINGULARITY_CONTAINER",
  "SINGULARITY_ENVIRONMENT",
  "SINGULARITY_INSTANCE",
  "SINGULARITY_NAME",
  "SINGULARITY_NO_EVAL",
  "TERM",
] as const;

/**
 * The ones no script can remove: the action script makes them readonly (Apptainer 1.4.5,
 * `clear_env`). Their values are the image path the runtime was given, so the library gives it
 * a neutral one (the container's own link to the SIF, not the cache's path).
 */
export const READONLY_RUNTIME_VARIABLES = {
  apptainer: ["APPTAINER_CONTAINER", "APPTAINER_NAME"],
  singularityce: ["SINGULARITY_CONTAINER", "SINGULARITY_NAME"],
  singularity: ["SINGULARITY_CONTAINER", "SINGULARITY_NAME"],
} as const;

const LIBS = "/.singularity.d/libs";

export interface ContainerEnvScriptInput {
  /** The variables the container should have (image ENV, spec env, GPU variables), with their values. */
  env: Readonly<Record<string, string>>;
  /**
   * Apptainer binds GPU driver libraries into /.singularity.d/libs (`--nv`, `--rocm`), so
   * LD_LIBRARY_PATH keeps it; otherwise the folder is empty and is left out.
   */
  gpuLibs: boolean;
}

/**
 * The environment script bound into every container at {@link CONTAINER_ENV_SCRIPT_TARGET}, so
 * that the command's environment is the image's ENV and the spec's env, as under Docker, and
 * not Apptainer's own variables too. Apptainer runs the command with its action script's
 * `exec "$@"`, after it has re-exported its variables; a shell function named `exec` defined
 * here runs instead (a function comes before a builtin in Apptainer's interpreter, as in bash),
 * drops them, puts back the values the container set for those names, and then runs the
 * builtin with `command exec`.
 *
 * Pure. Names and emptiness come from `env`, never values: a value stays out of files (it
 * reaches the container as APPTAINERENV_*, and is saved here from the shell when the script
 * is sourced, after Apptainer has set it).
 */
export function renderContainerEnvScript(input: ContainerEnvScriptInput): string {
  const handled = RUNTIME_VARIABLES.filter((name) => !(name === "LD_LIBRARY_PATH" && input.gpuLibs));
  const kept = handled.filter((name) => Object.hasOwn(input.env, name));
  const dropped = handled.filter((name) => !Object.hasOwn(input.env, name));
  const saved = (name: string) => `__contexec_${name}`;
  const lines = [
    "# Written by contexec for one container, sourced after the image's env scripts: the",
    "# command's environment is the image's ENV and the spec's env (as under Docker), without the",
    "# variables Apptainer adds itself (see @contexec/singularity's README).",
  ];
  for (const name of kept) {
    if (input.env[name] === "") continue;
    // LD_LIBRARY_PATH comes with /.singularity.d/libs appended (99-base.sh, and the injection of
    // APPTAINERENV_LD_LIBRARY_PATH); the folder holds nothing without --nv/--rocm.
    const value = name === "LD_LIBRARY_PATH" ? `\${${name}%:${LIBS}}` : `\${${name}-}`;
    lines.push(`${saved(name)}=${value}`);
  }
  // POSIX shells (dash, busybox sh) refuse a function named after a special builtin, and a
  // syntax error would end the shell that sources this: the function is defined only where the
  // shell takes it (Apptainer's interpreter, bash), checked in a subshell first.
  lines.push("if (eval 'exec() { :; }') 2>/dev/null; then", "eval '", "exec() {");
  // A readonly variable cannot be unset, and saying so must not reach the container's stderr.
  for (const name of dropped) lines.push(`    unset ${name} 2>/dev/null`);
  for (const name of kept) {
    const value = input.env[name] === "" ? "" : `"$${saved(name)}"`;
    lines.push(`    ${name}=${value}`, `    export ${name}`);
  }
  const temporaries = kept.filter((name) => input.env[name] !== "").map(saved);
  if (temporaries.length > 0) lines.push(`    unset ${temporaries.join(" ")}`);
  lines.push('    command exec "$@"', "}'", "fi");
  return `${lines.join("\n")}\n`;
}
