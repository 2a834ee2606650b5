import { basename } from "node:path";
import { type ImageArchive, shellQuote } from "@contexec/core";
import type { FlatEntry } from "./flatten-layers.js";
import { encodeTar } from "./tar-writer.js";

/**
 * What Apptainer expects inside an image it runs natively, generated from the image config the
 * way `apptainer build docker-archive://...` lays it out (checked against Apptainer 1.4): the
 * `/.singularity.d` tree (environment scripts, runscript from ENTRYPOINT/CMD, action scripts,
 * labels), the compatibility links at the root (`/singularity`, `/.exec`, `/.run`, `/.shell`,
 * `/.test`, `/environment`), empty `/etc/hosts` and `/etc/resolv.conf` for Apptainer to bind over,
 * and mount points (`/dev`, `/proc`, `/sys`, `/home`, `/tmp`, `/var/tmp`) when the image lacks
 * them. Script texts are this project's own; their behaviour follows Apptainer's.
 *
 * The entries come as two small tar layers: `top` goes over the image (replacing what the image
 * has at those paths), `bottom` under it (used only where the image has nothing).
 */

export interface SingularityMetadata {
  top: Buffer;
  bottom: Buffer;
  /** The definition file: SIF descriptor and `/.singularity.d/Singularity`. */
  deffile: string;
  /** `oci-config.json`: the image config's `config` object, as Apptainer stores it. */
  ociConfig: Buffer;
  /** `inspect-metadata.json`: what `apptainer inspect` shows without mounting the image. */
  inspectMetadata: Buffer;
  /** Paths the metadata adds or replaces (for the equivalence checks and the README). */
  paths: string[];
}

export interface MetadataOptions {
  /** Where the image came from, for the definition file ("from:"); its base name is used. */
  source: string;
  /** Seconds since the epoch: file times and the build-date label. */
  buildTime: number;
}

const SCRIPT = 0o755;
const DATA = 0o644;

export async function singularityMetadata(
  archive: Pick<ImageArchive, "config" | "configJson" | "architecture">,
  options: MetadataOptions,
): Promise<SingularityMetadata> {
  const from = basename(options.source);
  const deffile = `bootstrap: docker-archive\nfrom: ${from}\n\n`;
  const labels = buildLabels(archive.config.labels, archive.architecture, from, options.buildTime);
  const environment = dockerEnvironmentScript(archive.config.env);
  const runscript = runscriptFor(archive.config.entrypoint ?? [], archive.config.cmd ?? []);
  const labelsJson = `${JSON.stringify(labels, null, "\t")}\n`;

  const files: [string, number, string][] = [
    [".singularity.d/Singularity", DATA, deffile],
    [".singularity.d/labels.json", DATA, labelsJson],
    [".singularity.d/runscript", SCRIPT, runscript],
    [".singularity.d/startscript", SCRIPT, STARTSCRIPT],
    [".singularity.d/env/01-base.sh", SCRIPT, BASE_ENV],
    [".singularity.d/env/10-docker2singularity.sh", SCRIPT, environment],
    [".singularity.d/env/90-environment.sh", SCRIPT, CUSTOM_ENV],
    [".singularity.d/env/94-appsbase.sh", SCRIPT, ""],
    [".singularity.d/env/95-apps.sh", SCRIPT, APPS_ENV],
    [".singularity.d/env/99-base.sh", SCRIPT, LIBS_ENV],
    [".singularity.d/env/99-runtimevars.sh", SCRIPT, RUNTIME_VARS_ENV],
    [".singularity.d/actions/exec", SCRIPT, actionScript('exec "$@"')],
    [".singularity.d/actions/run", SCRIPT, actionScript(RUN_ACTION)],
    [".singularity.d/actions/shell", SCRIPT, actionScript(SHELL_ACTION)],
    [".singularity.d/actions/start", SCRIPT, START_ACTION],
    [".singularity.d/actions/test", SCRIPT, actionScript(TEST_ACTION)],
    // Apptainer binds the host's versions over these; the image's own are replaced by empty files.
    ["etc/hosts", DATA, ""],
    ["etc/resolv.conf", DATA, ""],
  ];
  const links: [string, string][] = [
    ["singularity", ".singularity.d/runscript"],
    [".exec", ".singularity.d/actions/exec"],
    [".run", ".singularity.d/actions/run"],
    [".shell", ".singularity.d/actions/shell"],
    [".test", ".singularity.d/actions/test"],
    ["environment", ".singularity.d/env/90-environment.sh"],
  ];
  const t = options.buildTime;
  const entry = (
    path: string,
    kind: FlatEntry["kind"],
    mode: number,
    size = 0,
    linkname = "",
  ): FlatEntry => ({
    path,
    kind,
    mode,
    uid: 0,
    gid: 0,
    mtime: t,
    size,
    linkname,
  });
  const topEntries: [FlatEntry, string?][] = [
    ...[".singularity.d", ".singularity.d/actions", ".singularity.d/env", ".singularity.d/libs"].map(
      (p): [FlatEntry] => [entry(p, "directory", 0o755)],
    ),
    ...files.map(([path, mode, text]): [FlatEntry, string] => [
      entry(path, "file", mode, Buffer.byteLength(text)),
      text,
    ]),
    ...links.map(([path, target]): [FlatEntry] => [entry(path, "symlink", 0o777, 0, target)]),
  ];
  const bottomEntries: [FlatEntry][] = ["dev", "home", "proc", "sys", "tmp", "var", "var/tmp"].map((p) => [
    entry(p, "directory", 0o755),
  ]);

  const inspectMetadata = {
    data: {
      attributes: {
        environment: {
          "/.singularity.d/env/10-docker2singularity.sh": environment.trimEnd(),
          "/.singularity.d/env/90-environment.sh": CUSTOM_ENV.trimEnd(),
        },
        labels,
        runscript: runscript.trimEnd(),
        deffile: deffile.trimEnd(),
        startscript: STARTSCRIPT.trimEnd(),
      },
    },
    type: "container",
  };
  return {
    top: tarOf(topEntries),
    bottom: tarOf(bottomEntries),
    deffile,
    ociConfig: Buffer.from(JSON.stringify(ociConfigOf(archive.configJson))),
    inspectMetadata: Buffer.from(JSON.stringify(inspectMetadata)),
    paths: [...topEntries, ...bottomEntries].map(([e]) => `/${e.path}`),
  };
}

/** A small tar of the given entries, held in memory. */
function tarOf(entries: [FlatEntry, string?][]): Buffer {
  return encodeTar(
    entries.map(([entry, text]) =>
      entry.kind === "file" ? { entry, data: Buffer.from(text ?? "") } : { entry },
    ),
  );
}

/**
 * The image config's `config` object without empty members, keys sorted: what Apptainer writes
 * as `oci-config.json` (a docker-archive's config has Hostname "", Volumes null and so on).
 */
function ociConfigOf(configJson: Buffer): Record<string, unknown> {
  const raw = JSON.parse(configJson.toString("utf8")) as { config?: Record<string, unknown> };
  const config = raw.config ?? {};
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(config).sort()) {
    const v = config[key];
    if (v === null || v === false || v === "" || v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0) continue;
    out[key] = v;
  }
  return out;
}

function buildLabels(
  imageLabels: Record<string, string>,
  arch: string,
  from: string,
  buildTime: number,
): Record<string, string> {
  const all: Record<string, string> = {
    ...imageLabels,
    "org.label-schema.build-arch": arch,
    "org.label-schema.build-date": labelDate(buildTime),
    "org.label-schema.schema-version": "1.0",
    "org.label-schema.usage.singularity.deffile.bootstrap": "docker-archive",
    "org.label-schema.usage.singularity.deffile.from": from,
  };
  return Object.fromEntries(
    Object.keys(all)
      .sort()
      .map((k) => [k, all[k] as string]),
  );
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** Apptainer's build-date label format: "Saturday_21_November_2026_19:30:30_UTC". */
export function labelDate(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]}_${two(d.getUTCDate())}_${MONTHS[d.getUTCMonth()]}_${d.getUTCFullYear()}_${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}_UTC`;
}

/** A double-quoted word for `eval`: evaluates to the value exactly. */
function evalQuote(value: string): string {
  return `"${value.replace(/[\\"$`]/g, "\\$&")}"`;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `10-docker2singularity.sh`: the image ENV. As in Apptainer's, PATH is set outright and every
 * other variable only when the caller has not set it (non-empty); unlike Apptainer's, values are
 * single-quoted, so they arrive literally (quotes, `$`, backslashes and newlines included).
 */
export function dockerEnvironmentScript(env: readonly string[]): string {
  const lines = ["#!/bin/sh", "# The image's ENV, written by contexec when it converted the image."];
  for (const item of env) {
    const eq = item.indexOf("=");
    const name = eq === -1 ? item : item.slice(0, eq);
    const value = eq === -1 ? "" : item.slice(eq + 1);
    if (!NAME.test(name)) {
      // A shell cannot hold this name; leaving it out keeps the other variables working.
      lines.push(`# skipped ${JSON.stringify(name)}: not a valid shell variable name`);
      continue;
    }
    if (name === "PATH") lines.push(`PATH=${shellQuote(value)}`, "export PATH");
    else lines.push(`if [ -z "\${${name}:-}" ]; then ${name}=${shellQuote(value)}; fi`, `export ${name}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The runscript: ENTRYPOINT followed by the run's arguments, or by CMD when there are none
 * (Docker's rule). With SINGULARITY_NO_EVAL set (`--no-eval`) everything is passed literally;
 * otherwise, as with Apptainer-built images, the line is evaluated once by the shell, ENTRYPOINT
 * and CMD escaped so that only the run's own arguments are expanded.
 */
export function runscriptFor(entrypoint: readonly string[], cmd: readonly string[]): string {
  const literal = (words: readonly string[]) => words.map((w) => shellQuote(w)).join(" ");
  const forEval = (words: readonly string[]) => words.map(evalQuote).join(" ");
  const lines = [
    "#!/bin/sh",
    "# Runs the image's ENTRYPOINT and CMD; written by contexec when it converted the image.",
    `OCI_ENTRYPOINT=${shellQuote(forEval(entrypoint))}`,
    `OCI_CMD=${shellQuote(forEval(cmd))}`,
    "",
    `if [ -n "\${SINGULARITY_NO_EVAL:-}" ]; then`,
  ];
  if (cmd.length > 0) lines.push(`    if [ $# -eq 0 ]; then set -- ${literal(cmd)}; fi`);
  if (entrypoint.length > 0) lines.push(`    set -- ${literal(entrypoint)} "$@"`);
  lines.push('    exec "$@"', "fi", "", EVAL_RUN);
  return `${lines.join("\n")}\n`;
}

// Apptainer's evaluating mode: the run's arguments are joined in double quotes, unescaped, so
// the shell expands them once; ENTRYPOINT and CMD were escaped when written above.
const EVAL_RUN = `CMDLINE_ARGS=""
for arg in "$@"; do
    CMDLINE_ARGS="\${CMDLINE_ARGS} \\"$arg\\""
done
if [ $# -gt 0 ]; then
    SINGULARITY_OCI_RUN="\${OCI_ENTRYPOINT} \${CMDLINE_ARGS}"
else
    SINGULARITY_OCI_RUN="\${OCI_ENTRYPOINT} \${OCI_CMD}"
fi
eval "set \${SINGULARITY_OCI_RUN}"
exec "$@"`;

const SOURCE_ENV = `for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
`;

function actionScript(body: string): string {
  return `#!/bin/sh\n# Apptainer action script (written by contexec): load the environment, then act.\n${SOURCE_ENV}\n${body.trim()}\n`;
}

const RUN_ACTION = `if [ -n "\${SINGULARITY_APPNAME:-}" ]; then
    for runscript in "/scif/apps/\${SINGULARITY_APPNAME}/scif/runscript" /scif/apps/singularity/scif/runscript; do
        if [ -x "$runscript" ]; then exec "$runscript" "$@"; fi
    done
    echo "No Apptainer runscript for contained app: \${SINGULARITY_APPNAME}"
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "No Apptainer runscript found, executing /bin/sh"
exec /bin/sh "$@"`;

const SHELL_ACTION = `if [ -n "\${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then
    exec $SINGULARITY_SHELL "$@"
    echo "ERROR: Failed running shell as defined by '\\$SINGULARITY_SHELL'" 1>&2
    exit 1
elif [ -x /bin/bash ]; then
    SHELL=/bin/bash
    PS1="Apptainer \${APPTAINER_NAME:-}:\\\\w> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
elif [ -x /bin/sh ]; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
fi
echo "ERROR: /bin/sh does not exist in container" 1>&2
exit 1`;

const TEST_ACTION = `if [ -n "\${SINGULARITY_APPNAME:-}" ]; then
    for test in "/scif/apps/\${SINGULARITY_APPNAME}/scif/test" /scif/apps/singularity/scif/test; do
        if [ -x "$test" ]; then exec "$test" "$@"; fi
    done
    echo "No tests for contained app: \${SINGULARITY_APPNAME}"
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "No test found in container, executing /bin/sh -c true"
exec /bin/sh -c true`;

// An instance's PID 1 waits for SIGCONT before the start script may run: the first line matters.
const START_ACTION = `#!/bin/sh
# Apptainer instance start action (written by contexec).
# Tell the instance's PID 1 to go on; Apptainer's instance start waits for this.
kill -CONT 1

${SOURCE_ENV}
if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript
fi
`;

const STARTSCRIPT = "#!/bin/sh\n# Instance start script: a docker image defines none.\n";

const BASE_ENV = "#!/bin/sh\n# Base environment (contexec): nothing to set for a converted docker image.\n";

const CUSTOM_ENV = "#!/bin/sh\n# Custom environment shell code should follow\n";

const APPS_ENV = `#!/bin/sh
# SCIF apps (contexec): a converted docker image has none, but --app must fail the same way.
if [ -n "\${SINGULARITY_APPNAME:-}" ]; then
    export SINGULARITY_APPNAME
    if [ -d "/scif/apps/\${SINGULARITY_APPNAME}/" ]; then
        SCIF_APPS=/scif/apps
        SCIF_APPROOT="/scif/apps/\${SINGULARITY_APPNAME}"
        export SCIF_APPS SCIF_APPROOT
        PATH="/scif/apps/\${SINGULARITY_APPNAME}:/scif/apps/singularity:$PATH"
        if [ -d "/scif/apps/\${SINGULARITY_APPNAME}/bin" ]; then
            PATH="/scif/apps/\${SINGULARITY_APPNAME}/bin:$PATH"
        fi
        if [ -d "/scif/apps/\${SINGULARITY_APPNAME}/lib" ]; then
            LD_LIBRARY_PATH="/scif/apps/\${SINGULARITY_APPNAME}/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            export LD_LIBRARY_PATH
        fi
        for env in 01-base.sh 90-environment.sh; do
            if [ -f "/scif/apps/\${SINGULARITY_APPNAME}/scif/env/$env" ]; then
                . "/scif/apps/\${SINGULARITY_APPNAME}/scif/env/$env"
            fi
        done
        export PATH
    else
        echo "Could not locate the container application: \${SINGULARITY_APPNAME}"
        exit 1
    fi
fi
`;

const LIBS_ENV = `#!/bin/sh
# Libraries Apptainer binds in (--nv, --rocm) live in /.singularity.d/libs.
if [ -z "\${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi
if [ -z "\${PS1:-}" ]; then
    PS1="Apptainer> "
fi
export LD_LIBRARY_PATH PS1
`;

// --env PATH=..., --env PREPEND_PATH=... and APPEND_PATH arrive in these variables; they must be
// applied after the image's own PATH is set.
const RUNTIME_VARS_ENV = `#!/bin/sh
# PATH changes asked for on Apptainer's command line, applied after the image's PATH.
if [ -n "\${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="\${SING_USER_DEFINED_PREPEND_PATH}:\${PATH}"
fi
if [ -n "\${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="\${PATH}:\${SING_USER_DEFINED_APPEND_PATH}"
fi
if [ -n "\${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="\${SING_USER_DEFINED_PATH}"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
`;
