import { execFileSync } from "node:child_process";
import { parseImageConfig, shellQuote } from "@contexec/core";
import { listTar } from "@contexec/core/testing";
import { describe, expect, it } from "vitest";
import {
  dockerEnvironmentScript,
  labelDate,
  runscriptFor,
  singularityMetadata,
} from "./singularity-metadata.js";

/** Runs a script with the system's POSIX shell. */
function sh(script: string, args: string[] = [], env: Record<string, string> = {}): string {
  return execFileSync("sh", ["-c", script, "sh", ...args], {
    encoding: "utf8",
    env: { PATH: "/usr/bin:/bin", ...env },
  });
}

const hostile = [
  "plain",
  "it's",
  'a"b',
  "$HOME",
  "`id`",
  "back\\slash",
  "new\nline",
  "",
  " spaced  out ",
  "*",
];

describe("shell quoting", () => {
  it.each(hostile)("keeps %j literal", (value) => {
    expect(sh(`printf %s ${shellQuote(value)}`)).toBe(value);
  });
});

describe("10-docker2singularity.sh", () => {
  const script = dockerEnvironmentScript([
    "PATH=/opt/bin:/bin",
    ...hostile.map((v, i) => `V${i}=${v}`),
    "NOVALUE",
    "bad.name=x",
  ]);

  it("sets every image variable literally", () => {
    const out = sh(
      `. /dev/stdin <<'EOF'\n${script}EOF\nfor i in 0 1 2 3 4 5 6 7 8 9; do eval "printf '%s|' \\"\\$V$i\\""; done`,
    );
    expect(out).toBe(`${hostile.join("|")}|`);
  });

  it("sets PATH outright but leaves variables the caller set (as Apptainer's does)", () => {
    const out = sh(`. /dev/stdin <<'EOF'\n${script}EOF\nprintf '%s %s' "$PATH" "$V0"`, [], {
      V0: "from-caller",
    });
    expect(out).toBe("/opt/bin:/bin from-caller");
  });

  it("skips names a shell cannot hold", () => {
    expect(script).toMatch(/# skipped "bad.name"/);
    expect(script).toMatch(/NOVALUE=''/);
  });
});

describe("runscript", () => {
  const run = (entrypoint: string[], cmd: string[], args: string[], noEval = false) =>
    sh(`${runscriptFor(entrypoint, cmd).replace(/^( *)exec "\$@"$/gm, '$1printf "[%s]" "$@"; exit')}`, args, {
      HOME: "/home/u",
      ...(noEval && { SINGULARITY_NO_EVAL: "1" }),
    });

  it("runs ENTRYPOINT then CMD, arguments replacing CMD", () => {
    expect(run(["/bin/echo", "entry"], ["default-cmd"], [])).toBe("[/bin/echo][entry][default-cmd]");
    expect(run(["/bin/echo", "entry"], ["default-cmd"], ["a", "b c"])).toBe("[/bin/echo][entry][a][b c]");
    expect(run([], ["/bin/sh", "-c", "true"], [])).toBe("[/bin/sh][-c][true]");
    expect(run([], ["/bin/sh"], ["/bin/ls", "-l"])).toBe("[/bin/ls][-l]");
  });

  it("keeps ENTRYPOINT and CMD literal, quotes and dollars included", () => {
    const entrypoint = ["/bin/sh", "-c", `echo "$0" '$1'`, "it's"];
    expect(run(entrypoint, ["a b", "$HOME"], [])).toBe(`[/bin/sh][-c][echo "$0" '$1'][it's][a b][$HOME]`);
  });

  it("expands the run's own arguments once, as Apptainer's runscripts do, unless --no-eval", () => {
    expect(run(["/bin/echo"], [], ["$HOME"])).toBe("[/bin/echo][/home/u]");
    expect(run(["/bin/echo"], [], ["$HOME"], true)).toBe("[/bin/echo][$HOME]");
    expect(run(["/bin/echo", "it's"], ["a b"], [], true)).toBe("[/bin/echo][it's][a b]");
  });
});

describe("singularityMetadata", () => {
  const configJson = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      config: {
        Hostname: "",
        Env: ["PATH=/bin", "GREETING=hello world"],
        Entrypoint: ["/bin/echo", "entry"],
        Cmd: ["default-cmd"],
        WorkingDir: "/work",
        Volumes: null,
        Labels: { "org.example": "1" },
        OnBuild: null,
        Tty: false,
      },
    }),
  );
  const archive = {
    config: parseImageConfig(JSON.parse(configJson.toString())),
    configJson,
    architecture: "amd64",
  };

  it("lays out /.singularity.d and the root links as apptainer build does", async () => {
    const m = await singularityMetadata(archive, {
      source: "/some/where/image.tar",
      buildTime: 1_790_000_000,
    });
    const top = await listTar(m.top);
    const byName = new Map(top.map((e) => [e.name, e]));
    for (const f of [
      "runscript",
      "startscript",
      "env/10-docker2singularity.sh",
      "env/90-environment.sh",
      "env/99-base.sh",
      "actions/exec",
      "actions/run",
      "actions/shell",
      "actions/start",
      "actions/test",
    ]) {
      expect(byName.get(`.singularity.d/${f}`)?.mode, f).toBe(0o755);
    }
    expect(byName.get(".singularity.d/labels.json")?.mode).toBe(0o644);
    expect(byName.get("singularity")).toMatchObject({
      type: "symlink",
      linkname: ".singularity.d/runscript",
    });
    expect(byName.get("environment")).toMatchObject({
      type: "symlink",
      linkname: ".singularity.d/env/90-environment.sh",
    });
    for (const l of ["exec", "run", "shell", "test"])
      expect(byName.get(`.${l}`)?.linkname).toBe(`.singularity.d/actions/${l}`);
    expect(byName.get("etc/hosts")).toMatchObject({ size: 0, mode: 0o644 });
    // instance start waits for PID 1 to be told to go on
    expect(byName.get(".singularity.d/actions/start")?.content).toMatch(/^kill -CONT 1$/m);
    expect((await listTar(m.bottom)).map((e) => e.name)).toEqual([
      "dev",
      "home",
      "proc",
      "root",
      "sys",
      "tmp",
      "var",
      "var/tmp",
    ]);
    expect(m.deffile).toBe("bootstrap: docker-archive\nfrom: image.tar\n\n");
    expect(byName.get(".singularity.d/Singularity")?.content).toBe(m.deffile);
  });

  it("writes labels, the OCI config and the inspect metadata in Apptainer's shapes", async () => {
    const m = await singularityMetadata(archive, { source: "image.tar", buildTime: 1_790_000_000 });
    const labels = JSON.parse(
      (await listTar(m.top)).find((e) => e.name === ".singularity.d/labels.json")?.content ?? "",
    );
    expect(labels).toEqual({
      "org.example": "1",
      "org.label-schema.build-arch": "amd64",
      "org.label-schema.build-date": labelDate(1_790_000_000),
      "org.label-schema.schema-version": "1.0",
      "org.label-schema.usage.singularity.deffile.bootstrap": "docker-archive",
      "org.label-schema.usage.singularity.deffile.from": "image.tar",
    });
    expect(JSON.parse(m.ociConfig.toString())).toEqual({
      Cmd: ["default-cmd"],
      Entrypoint: ["/bin/echo", "entry"],
      Env: ["PATH=/bin", "GREETING=hello world"],
      Labels: { "org.example": "1" },
      WorkingDir: "/work",
    });
    const inspect = JSON.parse(m.inspectMetadata.toString());
    expect(inspect.type).toBe("container");
    expect(Object.keys(inspect.data.attributes).sort()).toEqual([
      "deffile",
      "environment",
      "labels",
      "runscript",
      "startscript",
    ]);
  });

  it("formats the build date as Apptainer's label does", () => {
    expect(labelDate(Date.UTC(2026, 10, 21, 19, 30, 30) / 1000)).toBe(
      "Saturday_21_November_2026_19:30:30_UTC",
    );
  });
});
