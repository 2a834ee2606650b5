import { describe, expect, it } from "vitest";
import { JobFileError } from "./job-file-error.js";
import { type ParseJobOptions, parseJob } from "./parse-job.js";

const FILE = "/jobs/demo/job.yaml";
const HOME = "/home/u";

function parse(text: string, options: Partial<ParseJobOptions> = {}) {
  return parseJob(text, { file: FILE, env: { HOME, FROM_HOST: "host value" }, ...options });
}

/** The JobFileError a text raises (fails the test when it parses). */
function errorOf(text: string, options: Partial<ParseJobOptions> = {}): JobFileError {
  try {
    parse(text, options);
  } catch (err) {
    if (err instanceof JobFileError) return err;
    throw err;
  }
  throw new Error("expected a JobFileError");
}

function lines(...l: string[]): string {
  return `${l.join("\n")}\n`;
}

describe("parseJob: a compose service", () => {
  it("maps every supported key onto the spec", () => {
    const job = parse(
      lines(
        "image: ./images/tool.tar",
        "command: sh -c 'echo \"$GREETING\" > /out/a.txt'",
        "entrypoint: [/bin/tini, --]",
        "environment:",
        "  GREETING: hello world",
        "  VERSION: 1.10",
        "  FLAG: true",
        "  FROM_HOST:",
        "  NOT_ON_HOST:",
        "volumes:",
        "  - ./out:/out",
        "  - ~/data:/data:ro",
        "  - type: bind",
        "    source: /srv/ref",
        "    target: /ref",
        "    read_only: true",
        "  - type: tmpfs",
        "    target: /scratch",
        "    tmpfs: { size: 64m }",
        "tmpfs: /run:size=1m",
        "working_dir: /work",
        "user: 1000:1000",
        "ports:",
        '  - "127.0.0.1:8080:80"',
        "  - 9000-9001:9000-9001/udp",
        "  - target: 53",
        "    published: 5353",
        "    protocol: udp",
        "network_mode: none",
        "stdin_open: true",
        "deploy:",
        "  resources:",
        "    limits: { cpus: '0.5', memory: 512M }",
        "labels: [team=hpc, stage]",
        "container_name: demo-job",
        "stop_signal: INT",
        "stop_grace_period: 1m30s",
        "x-notes: anything here is ignored",
      ),
    );
    expect(job.layout).toBe("service");
    expect(job.image).toEqual({ kind: "archive", path: "/jobs/demo/images/tool.tar" });
    expect(job.spec).toEqual({
      image: "/jobs/demo/images/tool.tar",
      command: ["sh", "-c", 'echo "$GREETING" > /out/a.txt'],
      entrypoint: ["/bin/tini", "--"],
      env: { GREETING: "hello world", VERSION: "1.10", FLAG: "true", FROM_HOST: "host value" },
      mounts: [
        { type: "bind", source: "/jobs/demo/out", target: "/out" },
        { type: "bind", source: "/home/u/data", target: "/data", readOnly: true },
        { type: "bind", source: "/srv/ref", target: "/ref", readOnly: true },
        { type: "tmpfs", target: "/scratch", sizeBytes: 64 * 1024 * 1024 },
        { type: "tmpfs", target: "/run", sizeBytes: 1024 * 1024 },
      ],
      workdir: "/work",
      user: "1000:1000",
      ports: [
        { containerPort: 80, hostPort: 8080, hostIp: "127.0.0.1" },
        { containerPort: 9000, hostPort: 9000, protocol: "udp" },
        { containerPort: 9001, hostPort: 9001, protocol: "udp" },
        { containerPort: 53, hostPort: 5353, protocol: "udp" },
      ],
      network: "none",
      stdin: true,
      resources: { cpus: 0.5, memoryBytes: 512 * 1024 * 1024 },
      labels: { team: "hpc", stage: "" },
      name: "demo-job",
    });
    // Short syntax creates missing host folders (compose does); the long syntax only when asked.
    expect(job.createHostPaths).toEqual(["/jobs/demo/out", "/home/u/data"]);
    expect(job.stopSignal).toBe("SIGINT");
    expect(job.stopGraceMs).toBe(90_000);
    expect(job.warnings).toEqual([]);
  });

  it("takes an image id or tag as a reference, and paths as archives", () => {
    expect(parse("image: busybox:1.36\n").image).toEqual({ kind: "ref", ref: "busybox:1.36" });
    expect(parse(`image: sha256:${"a".repeat(64)}\n`).image).toEqual({
      kind: "ref",
      ref: `sha256:${"a".repeat(64)}`,
    });
    expect(parse("image: tool.tar\n").image).toEqual({ kind: "archive", path: "/jobs/demo/tool.tar" });
    expect(parse("image: ../shared/tool.tar\n").image).toEqual({
      kind: "archive",
      path: "/jobs/shared/tool.tar",
    });
    expect(parse("image: docker-archive://img/x\n").image).toEqual({
      kind: "archive",
      path: "/jobs/demo/img/x",
    });
  });

  it("splits string commands as compose does, and an empty entrypoint clears the image's", () => {
    const job = parse(lines("image: x:1", "command: python3 -c \"print('a b')\"", 'entrypoint: ""'));
    expect(job.spec.command).toEqual(["python3", "-c", "print('a b')"]);
    expect(job.spec.entrypoint).toEqual([]);
  });

  it("reads environment lists, env files, and lets environment win over env_file", () => {
    const files = new Map([
      ["/jobs/demo/base.env", "A=from file\nB='kept $literal'\n# comment\nFROM_HOST\n"],
      ["/jobs/other.env", "A=second file\n"],
    ]);
    const job = parse(
      lines(
        "image: x:1",
        "env_file: [base.env, ../other.env, { path: missing.env, required: false }]",
        "environment:",
        "  - C=see=saw",
        "  - FROM_HOST",
        "  - ABSENT_ON_HOST",
        "  - B=overridden",
      ),
      { readFile: (p) => files.get(p) },
    );
    expect(job.spec.env).toEqual({
      A: "second file",
      B: "overridden",
      C: "see=saw",
      FROM_HOST: "host value",
    });
  });

  it("reads runtime: and slurm: chapters", () => {
    const job = parse(
      lines(
        "image: x:1",
        "runtime:",
        "  name: apptainer",
        "  options: { userns: true, cacheDir: /scratch/sif }",
        "  unsupported: ignore",
        "slurm:",
        "  nodes: 1",
        "  cpus-per-task: 4",
        "  exclusive: true",
        "  requeue: false",
      ),
    );
    expect(job.runtime).toEqual({ name: "apptainer", options: { userns: true, cacheDir: "/scratch/sif" } });
    expect(job.spec.unsupported).toBe("ignore");
    expect(job.slurm).toEqual({ options: { nodes: "1", "cpus-per-task": "4", exclusive: true } });
    expect(parse(lines("image: x:1", "runtime: docker")).runtime).toEqual({ name: "docker", options: {} });
  });

  it("reads a GPU reservation", () => {
    const job = parse(
      lines(
        "image: x:1",
        "deploy:",
        "  resources:",
        "    reservations:",
        "      devices:",
        "        - { driver: nvidia, count: 2, capabilities: [gpu, compute] }",
      ),
    );
    expect(job.spec.resources).toEqual({
      gpus: { vendor: "nvidia", count: 2, capabilities: ["gpu", "compute"] },
    });
  });

  it("follows anchors and merge keys", () => {
    const job = parse(
      lines(
        "x-common: &common",
        "  environment: { A: from-anchor, B: from-anchor }",
        "  working_dir: /anchor",
        "<<: *common",
        "image: x:1",
        "working_dir: /own",
      ),
    );
    expect(job.spec.workdir).toBe("/own");
    expect(job.spec.env).toEqual({ A: "from-anchor", B: "from-anchor" });
  });

  it("accepts project-level compose keys with a warning, naming the place", () => {
    const job = parse(lines("image: x:1", "restart: always", "depends_on: [db]"));
    expect(job.warnings).toEqual([
      `${FILE}:2:1: restart: ignored: contexec run runs the job once`,
      `${FILE}:3:1: depends_on: ignored: contexec run starts one service, not its dependencies`,
    ]);
  });
});

describe("parseJob: a compose file with services:", () => {
  const compose = lines(
    "version: '3.8'",
    "name: project",
    "runtime: apptainer",
    "services:",
    "  prep:",
    "    image: base:1",
    "    command: [echo, prep]",
    "  train:",
    "    image: base:1",
    "    command: echo train",
    "    runtime: { name: docker }",
    "volumes: { cache: {} }",
  );

  it("runs the named service", () => {
    const job = parse(compose, { service: "prep" });
    expect(job.layout).toBe("compose");
    expect(job.service).toBe("prep");
    expect(job.spec.command).toEqual(["echo", "prep"]);
    expect(job.runtime?.name).toBe("apptainer");
    // A chapter inside the service wins over the file's.
    expect(parse(compose, { service: "train" }).runtime?.name).toBe("docker");
  });

  it("asks for a service when there are several, and suggests a close name", () => {
    expect(errorOf(compose).message).toContain("the file has 2 services (prep, train); name the one to run");
    expect(errorOf(compose, { service: "trian" }).message).toContain(
      `no service "trian"; did you mean "train"?`,
    );
  });

  it("runs the only service without being told", () => {
    expect(parse(lines("services:", "  only:", "    image: a:1")).service).toBe("only");
  });
});

describe("parseJob: DockSing files, unchanged", () => {
  it("reads the layout of DockSing's documentation", () => {
    const job = parse(
      lines(
        "remotedir:  remote_directory",
        "slurm:",
        "  nodes: 1",
        "  cpus-per-task: 1",
        "  job-name: docksing_test",
        "container:",
        "  image:  test",
        '  commands: ["sh -c", "\'echo the $V is $W > /out/r.txt\'"]',
        "  environment:",
        "    - V: value",
        "    - W: hello__world",
        "  volumes:",
        "    - ./out:/out",
        "  ports:",
        "    - 8080:8080",
        "  working_dir: /tmp",
        "  container_name: docksing-demo",
      ),
    );
    expect(job.layout).toBe("docksing");
    expect(job.image).toEqual({ kind: "ref", ref: "test" });
    expect(job.spec).toEqual({
      image: "test",
      command: ["sh", "-c", "echo the $V is $W > /out/r.txt"],
      env: { V: "value", W: "hello__world" },
      mounts: [{ type: "bind", source: "/jobs/demo/out", target: "/out" }],
      ports: [{ containerPort: 8080, hostPort: 8080 }],
      workdir: "/tmp",
      name: "docksing-demo",
      // DockSing's ports mean nothing on Singularity: ignored where a runtime cannot publish them.
      unsupported: "ignore",
    });
    expect(job.createHostPaths).toEqual(["/jobs/demo/out"]);
    expect(job.slurm).toEqual({
      options: { nodes: "1", "cpus-per-task": "1", "job-name": "docksing_test" },
      remoteDir: "remote_directory",
    });
  });

  it("takes entrypoint as the program before the commands, and slurm as a list of single-key maps", () => {
    const job = parse(
      lines(
        "remotedir: target",
        "slurm:",
        "  - nodes: 1",
        "  - job-name: x",
        "container:",
        "  image: alpine:latest",
        "  entrypoint: python3",
        '  commands: ["-c", "\\"print(\'hello\')\\""]',
      ),
    );
    expect(job.spec.entrypoint).toEqual(["python3"]);
    expect(job.spec.command).toEqual(["-c", "print('hello')"]);
    expect(job.slurm?.options).toEqual({ nodes: "1", "job-name": "x" });
  });

  it("refuses a key DockSing does not have, with a suggestion", () => {
    const err = errorOf(lines("remotedir: r", "slurm: {}", "container:", "  image: a", "  command: [x]"));
    expect(err.issues.map((i) => [i.pos.line, i.pos.col, i.path])).toEqual([[5, 3, "container.command"]]);
    expect(err.message).toContain('unknown key "command"; did you mean "commands"?');
  });

  it("refuses unquoted shell syntax, which DockSing's host shell would have taken", () => {
    const err = errorOf(
      lines(
        "remotedir: r",
        "slurm: {}",
        "container:",
        "  image: a",
        '  commands: ["Hello!", ">", "out.txt"]',
      ),
    );
    expect(err.message).toContain('unquoted ">" is shell syntax');
    expect(err.issues[0]?.path).toBe("container.commands");
  });
});

describe("parseJob: errors name the file, line, column and key path", () => {
  it("suggests the key meant by an unknown one", () => {
    const err = errorOf(lines("image: x:1", "comand: [echo, hi]", "workdir: /w"));
    expect(err.issues.map((i) => [i.pos.line, i.pos.col, i.path])).toEqual([
      [2, 1, "comand"],
      [3, 1, "workdir"],
    ]);
    expect(err.message).toContain(`${FILE}:2:1: comand: unknown key "comand"; did you mean "command"?`);
    expect(err.message).toContain('did you mean "working_dir"?');
    // The line itself, with a caret under the column.
    expect(err.message).toContain("  2 | comand: [echo, hi]\n    | ^");
  });

  it("says what type was expected", () => {
    const err = errorOf(lines("image: x:1", "stdin_open: sometimes", "volumes: ./a:/a", "environment: 3"));
    expect(err.issues.map((i) => `${i.pos.line}:${i.pos.col} ${i.path}: ${i.message}`)).toEqual([
      '2:13 stdin_open: must be true or false, not the string "sometimes"',
      '3:10 volumes: must be a list, not the string "./a:/a"',
      "4:14 environment: must be a map (NAME: value) or a list (- NAME=value)",
    ]);
  });

  it("places core's own spec rules at the line that set the field", () => {
    const err = errorOf(lines("image: x:1", "working_dir: relative/dir", "environment:", "  1BAD: x"));
    expect(err.issues.map((i) => `${i.pos.line}:${i.pos.col} ${i.path}`)).toEqual([
      "2:14 working_dir",
      "4:3 environment.1BAD",
    ]);
  });

  it("shows a YAML syntax error at its line", () => {
    const err = errorOf(lines("image: x:1", "command: [echo, hi", "user: 1"));
    expect(err.issues[0]?.pos.source).toBe(FILE);
    expect(err.issues[0]?.pos.line).toBeGreaterThanOrEqual(2);
    expect(err.message).toMatch(/job\.yaml:\d+:\d+: /);
    const dup = errorOf(lines("image: x:1", "image: y:2"));
    expect(dup.issues[0]?.pos.line).toBe(2);
    expect(dup.message).toContain("unique");
  });

  it("refuses compose keys it cannot honour, and names volumes it does not manage", () => {
    const err = errorOf(lines("image: x:1", "privileged: true", "volumes: [data:/data, /anon]"));
    expect(err.issues.map((i) => i.path)).toEqual(["privileged", "volumes[0]", "volumes[1]"]);
    expect(err.message).toContain('the compose key "privileged" is not supported');
    expect(err.message).toContain('"data" is a named volume');
    expect(err.message).toContain('"/anon" is an anonymous volume');
  });

  it("reports an env file's bad line in the env file", () => {
    const err = errorOf(lines("image: x:1", "env_file: bad.env"), {
      readFile: (p) => (p === "/jobs/demo/bad.env" ? "OK=1\n2X=y\n" : undefined),
    });
    expect(err.issues[0]?.pos).toEqual({ source: "/jobs/demo/bad.env", line: 2, col: 1 });
    expect(err.message).toContain("  2 | 2X=y");
    expect(errorOf(lines("image: x:1", "env_file: gone.env")).message).toContain(
      "env file /jobs/demo/gone.env does not exist",
    );
  });

  it("needs an image, and a map at the top", () => {
    expect(errorOf("command: [x]\n").message).toContain("image: is required");
    expect(errorOf("- a\n- b\n").message).toContain("a job file is a map");
  });

  it("is a ContainerError with the spec code", () => {
    expect(errorOf("imag: x\n").code).toBe("E_INVALID_SPEC");
  });
});

describe("parseJob: --set overrides", () => {
  it("replaces and adds keys, splitting a command string as the file would", () => {
    const job = parse(lines("image: x:1", "command: [echo, a]", "environment: [A=1, B=2]"), {
      set: [
        "command=echo from set",
        "environment.B=two",
        "environment.C=3",
        "deploy.resources.limits.memory=1g",
        "stdin_open=true",
      ],
    });
    expect(job.spec.command).toEqual(["echo", "from", "set"]);
    expect(job.spec.env).toEqual({ A: "1", B: "two", C: "3" });
    expect(job.spec.resources).toEqual({ memoryBytes: 1024 ** 3 });
    expect(job.spec.stdin).toBe(true);
  });

  it("sets inside the chosen service of a compose file, and inside DockSing's container chapter", () => {
    const compose = parse(lines("services:", "  a:", "    image: x:1"), {
      set: ["user=42", "runtime=apptainer"],
    });
    expect(compose.spec.user).toBe("42");
    expect(compose.runtime?.name).toBe("apptainer");
    const docksing = parse(lines("remotedir: r", "slurm: {}", "container:", "  image: a"), {
      set: ["working_dir=/w"],
    });
    expect(docksing.spec.workdir).toBe("/w");
  });

  it("names the override in errors", () => {
    const err = errorOf("image: x:1\n", { set: ["stdin_open=maybe"] });
    expect(err.message).toBe(
      '--set stdin_open=maybe: stdin_open: must be true or false, not the string "maybe"',
    );
    expect(errorOf("image: x:1\n", { set: ["novalue"] }).message).toContain("expected KEY=VALUE");
  });
});
