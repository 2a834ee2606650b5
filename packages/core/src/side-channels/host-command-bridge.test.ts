import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { constants, existsSync } from "node:fs";
import {
  appendFile,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { HostCommandsSpec } from "../spec.js";
import {
  HOST_COMMAND_CODES,
  HostCommandBridge,
  type HostCommandEvent,
  type RequestChannel,
} from "./host-command-bridge.js";
import { writeClientBin } from "./host-command-client.js";
import { compileHostCommandPolicy } from "./host-command-policy.js";

// The answers the bridge gives are checked from the client's side, with a client that does what
// singreqrun's Python client does, system call for system call.

/** Python's `shlex.quote`. */
function shlexQuote(s: string): string {
  if (s === "") return "''";
  if (!/[^\w@%+=:,./-]/.test(s)) return s;
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

const SLEEP_TIMES = [10, 10, 30, 50, 100, 200];

interface Answer {
  id: string;
  code: number;
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * singreqrun's Python client: `<id>.cmd` created O_CREAT|O_WRONLY mode 0755 holding `#!/bin/bash\n`
 * and the shlex-quoted words joined by spaces (no trailing newline), then `<id>\n` appended to
 * `reqs` in one write, then `.code` polled with growing sleeps, then `.stdout`/`.stderr` read whole.
 */
async function pythonClient(
  dir: string,
  args: string[],
  options: { cd?: string; id?: string } = {},
): Promise<Answer> {
  const id = options.id ?? randomBytes(16).toString("base64url").padEnd(24, "=");
  const cmd = await open(join(dir, `${id}.cmd`), constants.O_CREAT | constants.O_WRONLY, 0o755);
  await cmd.write("#!/bin/bash\n");
  await cmd.write((options.cd ? `cd ${shlexQuote(options.cd)} && ` : "") + args.map(shlexQuote).join(" "));
  await cmd.close();
  await appendFile(join(dir, "reqs"), `${id}\n`);
  return awaitAnswer(dir, id);
}

async function awaitAnswer(dir: string, id: string, timeoutMs = 60_000): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  let i = 0;
  while (!existsSync(join(dir, `${id}.code`))) {
    if (Date.now() > deadline) throw new Error(`no answer to ${id}`);
    await delay(SLEEP_TIMES[Math.min(i++, SLEEP_TIMES.length - 1)]);
  }
  const code = Number((await readFile(join(dir, `${id}.code`), "utf8")).trim());
  const stdout = await readFile(join(dir, `${id}.stdout`));
  const stderr = await readFile(join(dir, `${id}.stderr`));
  return { id, code, stdout, stderr };
}

const nulSplit = (b: Buffer) => b.toString("utf8").split("\0").slice(0, -1);

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "contexec-bridge-test-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const bridges: HostCommandBridge[] = [];
afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.close()));
});

async function startBridge(
  spec: Partial<HostCommandsSpec> & Pick<HostCommandsSpec, "allow">,
  channel: RequestChannel = "fifo",
) {
  const dir = await mkdtemp(join(work, "req-"));
  const events: HostCommandEvent[] = [];
  const bridge = await HostCommandBridge.open({
    dir,
    policy: compileHostCommandPolicy(spec),
    channel,
    cwd: spec.cwd ?? work,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...spec.env },
    timeoutMs: spec.timeoutMs ?? 60_000,
    maxOutputBytes: spec.maxOutputBytes ?? 64 * 1024 * 1024,
    concurrency: spec.concurrency ?? 4,
    pollMs: 50,
    onEvent: (e) => events.push(e),
  });
  bridges.push(bridge);
  return { dir, bridge, events };
}

const HOSTILE_ARGS = [
  "with space",
  "it's",
  "\"double\" 'single'",
  "$(touch /tmp/contexec-pwned)",
  "`id`",
  "$HOME",
  "line1\nline2\n",
  "tab\there",
  "back\\slash",
  "*",
  "~",
  "; rm -rf /",
  "ünïcødé ✓ 日本語 🙂",
  "",
  "-n",
];

describe.each(["fifo", "file"] as const)("host-command bridge over a %s", (channel) => {
  it("runs an allowed command; arguments with spaces, quotes, $(), newlines and unicode arrive exactly", async () => {
    const { dir } = await startBridge({ allow: ["printf"] }, channel);
    const answer = await pythonClient(dir, ["printf", "%s\\0", ...HOSTILE_ARGS]);
    expect(answer.code).toBe(0);
    expect(nulSplit(answer.stdout)).toEqual(HOSTILE_ARGS);
    expect(answer.stderr.length).toBe(0);
    expect(existsSync("/tmp/contexec-pwned")).toBe(false);
  });

  it("passes on the command's exit code, stderr, and 128+n for signal n", async () => {
    const { dir } = await startBridge({ allow: ["sh"] }, channel);
    const failed = await pythonClient(dir, ["sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(failed).toMatchObject({ code: 3 });
    expect(failed.stdout.toString()).toBe("out\n");
    expect(failed.stderr.toString()).toBe("err\n");
    expect((await pythonClient(dir, ["sh", "-c", "kill -TERM $$"])).code).toBe(143);
  });

  it("serves 20 concurrent clients, each its own answer", async () => {
    const { dir, events } = await startBridge({ allow: ["printf"], concurrency: 4 }, channel);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pythonClient(dir, ["printf", "%s|%s", `client ${i}`, "x".repeat(i)]),
      ),
    );
    answers.forEach((a, i) => {
      expect(a.code).toBe(0);
      expect(a.stdout.toString()).toBe(`client ${i}|${"x".repeat(i)}`);
    });
    expect(events.filter((e) => e.kind === "ran")).toHaveLength(20);
  });
});

describe("host-command bridge: nothing runs unless allowed", () => {
  it.each([
    ["a command not on the list", ["printf", "true"], ["touch", "MARKER"]],
    ["a shell given a script", ["printf", "true"], ["sh", "-c", "touch MARKER"]],
    ["another path than a listed name's", ["touch"], ["/usr/bin/touch", "MARKER"]],
  ])("refuses %s: code 126, one line on stderr, no marker", async (_what, allow, argv) => {
    const { dir, events } = await startBridge({ allow });
    const marker = join(dir, `marker-${randomBytes(4).toString("hex")}`);
    const answer = await pythonClient(
      dir,
      argv.map((a) => a.replace("MARKER", marker)),
    );
    expect(answer.code).toBe(HOST_COMMAND_CODES.refused);
    expect(answer.stdout.length).toBe(0);
    expect(answer.stderr.toString()).toMatch(
      /^contexec host-command: refused: [^\n]+ is not an allowed host command\n$/,
    );
    expect(existsSync(marker)).toBe(false);
    expect(events).toContainEqual(expect.objectContaining({ kind: "refused", id: answer.id }));
  });

  it("refuses command lines a shell would expand, chain or redirect, and runs none of them", async () => {
    const { dir } = await startBridge({ allow: ["printf", "true"] });
    const marker = join(dir, "marker");
    const lines = [
      `printf x; touch ${marker}`,
      `printf x && touch ${marker}`,
      `printf $(touch ${marker})`,
      `printf \`touch ${marker}\``,
      `printf x > ${marker}`,
      `printf x | tee ${marker}`,
      `true\ntouch ${marker}`,
      `PATH=/x printf "$(touch ${marker})"`,
    ];
    for (const line of lines) {
      const id = randomBytes(16).toString("base64url");
      await writeFile(join(dir, `${id}.cmd`), `#!/bin/bash\n${line}`, { mode: 0o755 });
      await appendFile(join(dir, "reqs"), `${id}\n`);
      const answer = await awaitAnswer(dir, id);
      expect(answer.code, line).toBe(126);
      expect(answer.stderr.toString(), line).toMatch(/^contexec host-command: refused: [^\n]+\n$/);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it("never runs a program the container wrote, even named like an allowed one", async () => {
    const { dir } = await startBridge({ allow: ["printf"], env: { PATH: `.:${process.env.PATH}` } });
    const marker = join(dir, "marker");
    // A client-made "printf" in the request folder, which is also where a cd could lead.
    await writeFile(join(dir, "printf"), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const byPath = await pythonClient(dir, [join(dir, "printf"), "x"]);
    expect(byPath.code).toBe(126);
    const { dir: cdDir } = await startBridge({
      allow: ["printf"],
      allowCd: true,
      env: { PATH: `.:${process.env.PATH}` },
    });
    await writeFile(join(cdDir, "printf"), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const viaCd = await pythonClient(cdDir, ["printf", "ok"], { cd: cdDir });
    expect(viaCd).toMatchObject({ code: 0 });
    expect(viaCd.stdout.toString()).toBe("ok");
    expect(existsSync(marker)).toBe(false);
  });
});

describe("host-command bridge: bad input never stops it", () => {
  it("skips or answers malformed ids, paths, garbage, missing and hostile .cmd files, then serves the next client", async () => {
    const { dir, events } = await startBridge({ allow: ["printf"] });
    const hostFile = join(work, "host-secret");
    await writeFile(hostFile, "secret\n");
    const reqs = join(dir, "reqs");
    // Lines that are not ids at all.
    for (const line of [
      "../../etc/passwd",
      "a/b",
      "..",
      ".",
      "",
      "id with space",
      "x".repeat(200),
      "\u00e9\u00e9",
    ])
      await appendFile(reqs, `${line}\n`);
    await appendFile(reqs, `${"g".repeat(10_000)}\n`);
    // Ids whose .cmd is missing, a link to a host file, a FIFO, a folder, not UTF-8, empty.
    await symlink(hostFile, join(dir, "link.cmd"));
    await promisify(execFile)("mkfifo", [join(dir, "fifo.cmd")]);
    await mkdir(join(dir, "folder.cmd"));
    await writeFile(join(dir, "latin1.cmd"), Buffer.from("#!/bin/bash\nprintf '\xe9'", "latin1"));
    await writeFile(join(dir, "empty.cmd"), "");
    // An answer file the client made a link to a host file: the bridge must not write through it.
    await writeFile(join(dir, "trap.cmd"), "#!/bin/bash\nprintf owned");
    await symlink(hostFile, join(dir, "trap.stdout"));
    const ids = ["missing", "link", "fifo", "folder", "latin1", "empty", "trap"];
    for (const id of ids) await appendFile(reqs, `${id}\n`);
    const answers = Object.fromEntries(
      await Promise.all(ids.map(async (id) => [id, await awaitAnswer(dir, id)])),
    );
    expect(answers.missing.stderr.toString()).toMatch(/refused: no missing\.cmd file/);
    expect(answers.link.stderr.toString()).toMatch(/refused: link\.cmd is a symbolic link/);
    expect(answers.fifo.stderr.toString()).toMatch(/refused: fifo\.cmd is not a regular file/);
    expect(answers.folder.stderr.toString()).toMatch(/refused: folder\.cmd is not a regular file/);
    expect(answers.latin1.stderr.toString()).toMatch(/refused: latin1\.cmd is not valid UTF-8/);
    expect(answers.empty.stderr.toString()).toMatch(/refused: the file must start with a #! line/);
    for (const id of ids.slice(0, -1)) expect(answers[id].code, id).toBe(126);
    expect(answers.trap).toMatchObject({ code: 0 });
    expect(answers.trap.stdout.toString()).toBe("owned");
    expect(await readFile(hostFile, "utf8")).toBe("secret\n");
    expect((await lstat(join(dir, "trap.stdout"))).isSymbolicLink()).toBe(false);
    // The same id again is not run twice.
    await appendFile(reqs, "trap\n");
    const next = await pythonClient(dir, ["printf", "still serving"]);
    expect(next.stdout.toString()).toBe("still serving");
    const ignored = events
      .filter((e) => e.kind === "ignored")
      .map((e) => (e.kind === "ignored" ? e.reason : ""));
    // The 10 000-byte line is "too long" when it arrives in pieces, else "not a request id": one event.
    expect(ignored.filter((r) => r === "not a request id" || r === "line too long")).toHaveLength(9);
    expect(ignored.filter((r) => r === "request id already seen")).toHaveLength(1);
    expect(events.filter((e) => e.kind === "ran")).toHaveLength(2);
  });

  it("drops a line longer than 4 KiB that arrives in pieces, up to its newline, and reads the next", async () => {
    const { dir, events } = await startBridge({ allow: ["printf"] }, "file");
    await appendFile(join(dir, "reqs"), "g".repeat(5000));
    await delay(200);
    await writeFile(join(dir, "fine.cmd"), "#!/bin/bash\nprintf fine");
    await appendFile(join(dir, "reqs"), "gg\nfine\n");
    expect((await awaitAnswer(dir, "fine")).stdout.toString()).toBe("fine");
    expect(events.filter((e) => e.kind === "ignored").map((e) => e.kind === "ignored" && e.reason)).toEqual([
      "line too long",
    ]);
  });

  it("keeps serving after a client vanished while its command ran, and still answers it", async () => {
    const { dir } = await startBridge({ allow: ["sleep", "printf"] });
    const bin = join(work, `bin-${randomBytes(4).toString("hex")}`);
    await writeClientBin(bin, dir, ["sleep"]);
    const client = spawn(join(bin, "sleep"), ["1"], { stdio: "ignore" });
    await delay(300);
    client.kill("SIGKILL");
    await new Promise((resolve) => client.once("exit", resolve));
    const next = await pythonClient(dir, ["printf", "next"]);
    expect(next.stdout.toString()).toBe("next");
    // The vanished client's `sleep 1` is answered all the same.
    const deadline = Date.now() + 10_000;
    let codes: string[] = [];
    while (codes.length < 2 && Date.now() < deadline) {
      codes = (await readdir(dir)).filter((n) => n.endsWith(".code"));
      await delay(50);
    }
    expect(codes).toHaveLength(2);
  });
});

describe("host-command bridge: output and limits", () => {
  it("returns 10 MB of stdout intact; .stdout appears whole, and .code only after both outputs", async () => {
    const { dir } = await startBridge({ allow: ["cat"] });
    const data = randomBytes(10 * 1024 * 1024);
    const source = join(work, "ten-mb");
    await writeFile(source, data);
    const id = randomBytes(16).toString("base64url");
    // Watch the folder from the side while the client waits: the first sight of each name.
    const seen: { stdoutFirst?: { stdout?: number }; codeFirst?: { stdout?: number; stderr?: number } } = {};
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const code = existsSync(join(dir, `${id}.code`));
        const sizes: { stdout?: number; stderr?: number } = {};
        for (const s of ["stdout", "stderr"] as const) {
          const st = await stat(join(dir, `${id}.${s}`)).catch(() => undefined);
          if (st) sizes[s] = st.size;
        }
        if (sizes.stdout !== undefined && seen.stdoutFirst === undefined) seen.stdoutFirst = sizes;
        if (code && seen.codeFirst === undefined) seen.codeFirst = sizes;
        await delay(1);
      }
    })();
    const cmd = await open(join(dir, `${id}.cmd`), constants.O_CREAT | constants.O_WRONLY, 0o755);
    await cmd.write(`#!/bin/bash\ncat ${shlexQuote(source)}`);
    await cmd.close();
    await appendFile(join(dir, "reqs"), `${id}\n`);
    const answer = await awaitAnswer(dir, id);
    watching = false;
    await watcher;
    expect(answer.code).toBe(0);
    expect(createHash("sha256").update(answer.stdout).digest("hex")).toBe(
      createHash("sha256").update(data).digest("hex"),
    );
    expect(seen.stdoutFirst?.stdout).toBe(data.length);
    expect(seen.codeFirst).toEqual({ stdout: data.length, stderr: 0 });
  });

  it("stops a command at timeoutMs (124) and one over maxOutputBytes (125), cut at the limit", async () => {
    const { dir } = await startBridge({ allow: ["sleep", "yes"], timeoutMs: 500, maxOutputBytes: 100_000 });
    const started = Date.now();
    const slow = await pythonClient(dir, ["sleep", "30"]);
    expect(slow.code).toBe(HOST_COMMAND_CODES.timedOut);
    expect(slow.stderr.toString()).toBe("contexec host-command: stopped after 500 ms (timeoutMs)\n");
    expect(Date.now() - started).toBeLessThan(10_000);
    const loud = await pythonClient(dir, ["yes"]);
    expect(loud.code).toBe(HOST_COMMAND_CODES.bridgeFailure);
    expect(loud.stdout.length).toBe(100_000);
    expect(loud.stderr.toString()).toMatch(
      /output over 100000 bytes \(maxOutputBytes\): the command was stopped/,
    );
  });

  it("answers 127 for an allowed command missing on the host", async () => {
    const { dir } = await startBridge({ allow: ["no-such-command-here", "/no/such/path"] });
    const byName = await pythonClient(dir, ["no-such-command-here"]);
    expect(byName.code).toBe(HOST_COMMAND_CODES.notFound);
    expect(byName.stderr.toString()).toBe(
      "contexec host-command: no-such-command-here: not found on the host\n",
    );
    expect((await pythonClient(dir, ["path"])).code).toBe(127);
  });

  it("runs in hostCommands.cwd, or in an allowed `cd DIR` (code 1 when DIR is missing, as bash)", async () => {
    const cwd = await mkdtemp(join(work, "cwd-"));
    const other = await mkdtemp(join(work, "other-"));
    const { dir } = await startBridge({ allow: ["pwd"], cwd });
    expect((await pythonClient(dir, ["pwd"])).stdout.toString()).toBe(`${cwd}\n`);
    expect((await pythonClient(dir, ["pwd"], { cd: other })).code).toBe(126);
    const { dir: cdDir } = await startBridge({ allow: ["pwd"], cwd, allowCd: true });
    expect((await pythonClient(cdDir, ["pwd"], { cd: other })).stdout.toString()).toBe(`${other}\n`);
    const missing = await pythonClient(cdDir, ["pwd"], { cd: "/no/such/folder" });
    expect(missing.code).toBe(1);
    expect(missing.stderr.toString()).toMatch(/cd: \/no\/such\/folder: No such file or directory/);
  });

  it("close() stops a running command, answers it (125), and stops reading requests", async () => {
    const { dir, bridge } = await startBridge({ allow: ["sleep"] }, "file");
    const pending = pythonClient(dir, ["sleep", "30"]);
    await delay(500);
    const started = Date.now();
    await bridge.close();
    expect(Date.now() - started).toBeLessThan(5000);
    const answer = await pending;
    expect(answer.code).toBe(HOST_COMMAND_CODES.bridgeFailure);
    expect(answer.stderr.toString()).toMatch(/the bridge closed before the command ended/);
    await appendFile(join(dir, "reqs"), "late\n");
    await writeFile(join(dir, "late.cmd"), "#!/bin/bash\nsleep 0");
    await delay(300);
    expect(existsSync(join(dir, "late.code"))).toBe(false);
  });
});
