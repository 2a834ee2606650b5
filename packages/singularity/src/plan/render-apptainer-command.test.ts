import type { ContainerSpec, ImageConfig } from "@contexec/core";
import { describe, expect, it } from "vitest";
import {
  apptainerSpecChecks,
  DOCKER_DEFAULT_CAPS,
  gpuEnv,
  type RenderProbe,
  renderApptainerCommand,
  renderApptainerInstance,
  renderInstanceExec,
} from "./render-apptainer-command.js";

const IMAGE: Pick<ImageConfig, "env" | "entrypoint" | "cmd" | "workingDir"> = {
  env: ["PATH=/usr/local/bin:/bin", "GREETING=hello world"],
  entrypoint: ["/bin/echo", "entry"],
  cmd: ["default-cmd"],
  workingDir: "/work/dir",
};
const BARE: typeof IMAGE = { env: [], entrypoint: null, cmd: ["/bin/sh"], workingDir: "" };

/** This machine as root: no user namespace, Docker's capabilities. */
const ROOT: RenderProbe = {
  flavor: "apptainer",
  userns: false,
  dockerCaps: true,
  noEval: true,
  noUmask: true,
  ownCgroups: false,
};
/** An unprivileged user: --userns. */
const USERNS: RenderProbe = { ...ROOT, userns: true, dockerCaps: false };
/** What checkCapabilities leaves out for an unprivileged user here (with spec.unsupported "ignore"). */
const USERNS_GAPS = {
  ignore: new Set(["network", "resources.memoryBytes", "resources.cpus", "resources.gpus"]),
};
const SIF = "/cache/abc.sif";

const render = (spec: Partial<ContainerSpec>, probe = USERNS, image = BARE, options = {}) =>
  renderApptainerCommand({ image: "sha256:x", ...spec }, image, probe, SIF, options);
/** The flags between "exec" and the image. */
const flagsOf = (argv: string[]) => argv.slice(argv.indexOf("exec") + 1, argv.indexOf(SIF));

describe("renderApptainerCommand", () => {
  it("binds the container's environment script last among the env scripts, and gives HOSTNAME unless set", () => {
    const r = render({ env: { A: "1" } }, ROOT, BARE, {
      envScript: "/scratch/c-1/environment.sh",
      hostname: "node7",
    });
    const flags = flagsOf(r.argv);
    const at = flags.indexOf("/scratch/c-1/environment.sh:/.singularity.d/env/99-zz-contexec.sh:ro");
    expect(flags[at - 1]).toBe("--bind");
    expect(r.containerEnv).toEqual({
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      A: "1",
      HOSTNAME: "node7",
    });
    expect(r.env.APPTAINERENV_HOSTNAME).toBe("node7");
    const own = render({ env: { HOSTNAME: "mine" } }, ROOT, BARE, { hostname: "node7" });
    expect(own.containerEnv.HOSTNAME).toBe("mine");
    expect(
      render({}, ROOT, { ...BARE, env: ["HOSTNAME=img"] }, { hostname: "node7" }).containerEnv.HOSTNAME,
    ).toBe("img");
  });

  it("gives Docker's meaning by default: contained, clean env, writable tmpfs root, umask 022, a working folder", () => {
    const r = render({});
    expect(r.argv).toEqual([
      "apptainer",
      "--silent",
      "exec",
      "--containall",
      "--cleanenv",
      "--writable-tmpfs",
      "--no-umask",
      "--no-eval",
      "--userns",
      "--pwd",
      "/",
      SIF,
      "/bin/sh",
    ]);
    expect(r.env).toEqual({
      APPTAINERENV_PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    });
    expect(r.command).toEqual(["/bin/sh"]);
    expect(r.workdir).toBe("/");
  });

  it("uses the given binary", () => {
    expect(render({}, USERNS, BARE, { binary: "/opt/apptainer/bin/apptainer" }).argv[0]).toBe(
      "/opt/apptainer/bin/apptainer",
    );
  });

  it("as root without a user namespace, gives the container root Docker's capabilities", () => {
    const flags = flagsOf(render({}, ROOT).argv);
    expect(flags).not.toContain("--userns");
    expect(flags).toContain("--no-privs");
    expect(flags[flags.indexOf("--add-caps") + 1]).toBe(DOCKER_DEFAULT_CAPS.join(","));
  });

  it("runs as a resolved user with --security and no capabilities (root mode only)", () => {
    const flags = flagsOf(render({ user: "65534" }, ROOT, BARE, { user: { uid: 65534, gid: 65534 } }).argv);
    expect(flags).toContain("--no-privs");
    expect(flags).not.toContain("--add-caps");
    expect(flags[flags.indexOf("--security") + 1]).toBe("uid:65534,gid:65534");
    expect(flagsOf(render({}, ROOT, BARE, { user: { uid: 0, gid: 0 } }).argv)).not.toContain("--security");
    expect(flagsOf(render({}, USERNS, BARE, { user: { uid: 5, gid: 5 } }).argv)).not.toContain("--security");
  });

  it("resolves ENTRYPOINT and CMD by Docker's rules into one argv after the image", () => {
    expect(render({}, USERNS, IMAGE).command).toEqual(["/bin/echo", "entry", "default-cmd"]);
    expect(render({ command: ["a b", "c"] }, USERNS, IMAGE).command).toEqual([
      "/bin/echo",
      "entry",
      "a b",
      "c",
    ]);
    expect(render({ entrypoint: ["/bin/cat"] }, USERNS, IMAGE).command).toEqual(["/bin/cat"]);
    expect(render({ entrypoint: [], command: ["ls"] }, USERNS, IMAGE).command).toEqual(["ls"]);
    const r = render({ command: ["--flag", "$HOME", "`id`", "new\nline"] }, USERNS, IMAGE);
    expect(r.argv.slice(r.argv.indexOf(SIF) + 1)).toEqual([
      "/bin/echo",
      "entry",
      "--flag",
      "$HOME",
      "`id`",
      "new\nline",
    ]);
  });

  it("starts in spec.workdir, else the image WORKDIR, else /, never the host's folder", () => {
    const pwd = (r: { argv: string[] }) => r.argv[r.argv.indexOf("--pwd") + 1];
    expect(pwd(render({}, USERNS, IMAGE))).toBe("/work/dir");
    expect(pwd(render({ workdir: "/data" }, USERNS, IMAGE))).toBe("/data");
    expect(pwd(render({}))).toBe("/");
  });

  it("gives a missing working folder an empty private one (Docker creates it)", () => {
    const flags = flagsOf(render({ workdir: "/not/yet" }, USERNS, BARE, { createWorkdir: true }).argv);
    expect(flags.join(" ")).toContain("--scratch /not/yet");
    // ...unless a mount already provides it.
    const mounted = flagsOf(
      render({ workdir: "/t", mounts: [{ type: "tmpfs", target: "/t" }] }, USERNS, BARE, {
        createWorkdir: true,
      }).argv,
    );
    expect(mounted.filter((f) => f === "--scratch")).toHaveLength(1);
  });

  it("passes image ENV and spec env as APPTAINERENV_* values, spec winning, nothing from the host", () => {
    const r = render({ env: { GREETING: "from spec", EXTRA: "x" } }, USERNS, IMAGE);
    expect(r.env).toEqual({
      APPTAINERENV_PATH: "/usr/local/bin:/bin",
      APPTAINERENV_GREETING: "from spec",
      APPTAINERENV_EXTRA: "x",
    });
    expect(r.containerEnv).toEqual({ PATH: "/usr/local/bin:/bin", GREETING: "from spec", EXTRA: "x" });
  });

  it("keeps hostile values byte for byte (they are never put in a shell string)", () => {
    const hostile = {
      SPACES: "a  b ",
      QUOTES: `it's "q" \\ x`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal is the point
      DOLLAR: "$HOME ${PATH} $(id) `id`",
      NEWLINES: "l1\nl2\n\nl4",
      GLOB: "* ? [a-z]",
      EMPTY: "",
      EQUALS: "a=b=c",
      UNICODE: "héllo ✓",
    };
    const r = render({ env: hostile });
    for (const [k, v] of Object.entries(hostile)) expect(r.env[`APPTAINERENV_${k}`]).toBe(v);
    expect(r.argv.join("\0")).not.toContain("l1\nl2");
  });

  it("uses SINGULARITYENV_ for SingularityCE and legacy Singularity", () => {
    expect(Object.keys(render({}, { ...USERNS, flavor: "singularityce" }).env)).toEqual([
      "SINGULARITYENV_PATH",
    ]);
    expect(Object.keys(render({}, { ...USERNS, flavor: "singularity" }).env)).toEqual([
      "SINGULARITYENV_PATH",
    ]);
  });

  it("without --no-eval refuses values a shell would change (every way in is evaluated then)", () => {
    const probe = { ...USERNS, noEval: false };
    const r = render({ env: { PLAIN: "a b/c=d,e" } }, probe);
    expect(flagsOf(r.argv)).not.toContain("--no-eval");
    expect(r.env.APPTAINERENV_PLAIN).toBe("a b/c=d,e");
    let err: unknown;
    try {
      render({ env: { A: "$x", B: "ok", C: "l1\nl2" } }, probe);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "E_INVALID_SPEC" });
    expect((err as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(["env.A", "env.C"]);
  });

  it("sets HOME with --home (Apptainer refuses APPTAINERENV_HOME), not through the environment", () => {
    const r = render({ env: { HOME: "/home/app" } });
    expect(flagsOf(r.argv).join(" ")).toContain("--home /home/app");
    expect(r.env.APPTAINERENV_HOME).toBeUndefined();
    expect(r.containerEnv.HOME).toBe("/home/app");
    expect(flagsOf(render({ env: { HOME: "rel:ative" } }).argv)).not.toContain("--home");
  });

  it("renders binds, read-only binds and tmpfs mounts", () => {
    const flags = flagsOf(
      render({
        mounts: [
          { type: "bind", source: "/host/data", target: "/data" },
          { type: "bind", source: "/host/conf.ini", target: "/etc/app.ini", readOnly: true },
          { type: "tmpfs", target: "/scratch", sizeBytes: 1 << 20 },
        ],
      }).argv,
    );
    expect(flags.join(" ")).toContain(
      "--bind /host/data:/data --bind /host/conf.ini:/etc/app.ini:ro --scratch /scratch",
    );
  });

  it("renders network none and bridge; host is Apptainer's default; a network left out is not rendered", () => {
    expect(flagsOf(render({ network: "none" }).argv).join(" ")).toContain("--net --network none");
    expect(flagsOf(render({ network: "host" }).argv)).not.toContain("--net");
    expect(flagsOf(render({ network: "bridge" }).argv).join(" ")).toContain("--net --network bridge");
    // bridge not capable here: left out (the spec was refused, or "ignore"d into the gaps).
    expect(flagsOf(render({ network: "bridge" }, USERNS, BARE, USERNS_GAPS).argv)).not.toContain("--net");
  });

  it("renders --memory and --cpus unless they are left out as gaps", () => {
    const spec = { resources: { memoryBytes: 64 << 20, cpus: 1.5 } };
    expect(flagsOf(render(spec, ROOT).argv).join(" ")).toContain(`--memory ${64 << 20} --cpus 1.5`);
    expect(flagsOf(render(spec, USERNS, BARE, USERNS_GAPS).argv).join(" ")).not.toMatch(/--memory|--cpus/);
  });

  it("with the library's own cgroups, binds them over /sys/fs/cgroup instead of --memory/--cpus", () => {
    const binds = [
      { source: "/tmp/x/mount-points", target: "/sys/fs/cgroup" },
      { source: "/sys/fs/cgroup/memory/me/contexec-1", target: "/sys/fs/cgroup/memory" },
    ];
    const r = render({ resources: { memoryBytes: 64 << 20 } }, { ...ROOT, ownCgroups: true }, BARE, {
      cgroup: { binds },
    });
    const flags = flagsOf(r.argv).join(" ");
    expect(flags).not.toContain("--memory");
    expect(flags).toContain(
      "--bind /tmp/x/mount-points:/sys/fs/cgroup:ro --bind /sys/fs/cgroup/memory/me/contexec-1:/sys/fs/cgroup/memory:ro",
    );
  });

  it("renders GPUs: --nv / --rocm and the visible devices (unless left out: no GPU here)", () => {
    const gpu = USERNS;
    const nv = render(
      { resources: { gpus: { deviceIds: ["0", "GPU-abc"], capabilities: ["compute", "utility"] } } },
      gpu,
    );
    expect(flagsOf(nv.argv)).toContain("--nv");
    expect(nv.env.APPTAINERENV_CUDA_VISIBLE_DEVICES).toBe("0,GPU-abc");
    expect(nv.env.APPTAINERENV_NVIDIA_DRIVER_CAPABILITIES).toBe("compute,utility");
    const amd = render({ resources: { gpus: { vendor: "amd", count: 2 } } }, gpu);
    expect(flagsOf(amd.argv)).toContain("--rocm");
    expect(amd.env.APPTAINERENV_ROCR_VISIBLE_DEVICES).toBe("0,1");
    const all = render({ resources: { gpus: { count: "all" } } }, gpu);
    expect(flagsOf(all.argv)).toContain("--nv");
    expect(all.env.APPTAINERENV_CUDA_VISIBLE_DEVICES).toBeUndefined();
    // No GPU on this machine: nothing rendered (the spec was refused or "ignore"d before).
    expect(
      flagsOf(render({ resources: { gpus: { count: 1 } } }, USERNS, BARE, USERNS_GAPS).argv),
    ).not.toContain("--nv");
  });

  it("leaves out what Apptainer cannot do: user (in userns mode), ports, labels and name are the library's", () => {
    const r = render({
      user: "1000",
      ports: [{ containerPort: 80 }],
      labels: { a: "b" },
      name: "web",
      stdin: true,
    });
    expect(flagsOf(r.argv)).toEqual(flagsOf(render({}).argv));
  });

  it("is pure: the same input gives the same output, whatever the process environment", () => {
    const before = render({ env: { A: "1" } }, ROOT, IMAGE);
    process.env.APPTAINERENV_LEAK = "x";
    process.env.APPTAINER_BIND = "/etc";
    try {
      expect(render({ env: { A: "1" } }, ROOT, IMAGE)).toEqual(before);
    } finally {
      delete process.env.APPTAINERENV_LEAK;
      delete process.env.APPTAINER_BIND;
    }
  });
});

describe("gpuEnv", () => {
  it("picks devices by id, by count, or all", () => {
    expect(gpuEnv({ deviceIds: ["1"] })).toEqual({ CUDA_VISIBLE_DEVICES: "1", NVIDIA_VISIBLE_DEVICES: "1" });
    expect(gpuEnv({ count: 3 })).toEqual({ CUDA_VISIBLE_DEVICES: "0,1,2", NVIDIA_VISIBLE_DEVICES: "0,1,2" });
    expect(gpuEnv({ count: "all" })).toEqual({});
    expect(gpuEnv({ vendor: "amd", deviceIds: ["0"], count: 4 })).toEqual({ ROCR_VISIBLE_DEVICES: "0" });
  });
});

describe("apptainerSpecChecks", () => {
  it("refuses mount paths holding ':' or ',' (the -B and --scratch separators)", () => {
    const issues: { path: string; message: string }[] = [];
    apptainerSpecChecks(
      {
        image: "x",
        mounts: [
          { type: "bind", source: "/a:b", target: "/ok" },
          { type: "bind", source: "/ok", target: "/x,y" },
          { type: "tmpfs", target: "/t:1" },
          { type: "bind", source: "/fine", target: "/fine" },
        ],
      },
      issues,
    );
    expect(issues.map((i) => i.path)).toEqual(["mounts[0].source", "mounts[1].target", "mounts[2].target"]);
    expect(issues[0]?.message).toMatch(/link it to a plain name/);
  });
});

describe("HOME and instances", () => {
  it("mounts HOME from a private empty folder, never the host's path of the same name", () => {
    const r = render({ env: { HOME: "/root" } }, USERNS, BARE, { homeSource: "/tmp/x/home-1" });
    expect(flagsOf(r.argv)).toEqual(expect.arrayContaining(["--home", "/tmp/x/home-1:/root"]));
    expect(r.env.APPTAINERENV_HOME).toBeUndefined();
  });

  it("renders a service as instance start (no --pwd) plus exec instance:// of the resolved argv", () => {
    const spec: ContainerSpec = {
      image: "sha256:x",
      command: ["httpd", "-f"],
      mounts: [{ type: "bind", source: "/srv", target: "/www", readOnly: true }],
      env: { A: "a b" },
      workdir: "/www",
    };
    const { start, main } = renderApptainerInstance(spec, IMAGE, ROOT, SIF, "svc-1");
    expect(start.argv.slice(0, 4)).toEqual(["apptainer", "--silent", "instance", "start"]);
    expect(start.argv.slice(-2)).toEqual([SIF, "svc-1"]);
    expect(start.argv).not.toContain("--pwd");
    expect(start.argv).toEqual(
      expect.arrayContaining(["--containall", "--writable-tmpfs", "--bind", "/srv:/www:ro"]),
    );
    expect(main.argv).toEqual([
      "apptainer",
      "--silent",
      "exec",
      "--cleanenv",
      "--no-umask",
      "--no-eval",
      "--no-privs",
      "--add-caps",
      DOCKER_DEFAULT_CAPS.join(","),
      "--pwd",
      "/www",
      "instance://svc-1",
      "/bin/echo",
      "entry",
      "httpd",
      "-f",
    ]);
    expect(main.env).toMatchObject({ APPTAINERENV_A: "a b", APPTAINERENV_GREETING: "hello world" });
    expect(start.env).toEqual(main.env);
  });

  it("exec into an instance runs with the same privileges as the instance", () => {
    expect(renderInstanceExec(USERNS, "svc", ["ls"], "/")).toEqual([
      "apptainer",
      "--silent",
      "exec",
      "--cleanenv",
      "--no-umask",
      "--no-eval",
      "--userns",
      "--pwd",
      "/",
      "instance://svc",
      "ls",
    ]);
  });
});
